// AdamW (decoupled weight decay), as torch.optim.AdamW's single-tensor update.
import type { Tensor } from '../tensor.js';
import { keep } from '../scope.js';
import { zerosLike } from '../creation.js';
import { Optimizer, type GroupSpec, type ParamState } from './optimizer.js';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: Iterable<Tensor> | GroupSpec<AdamWOptions>[], o: Partial<AdamWOptions> = {}) {
    super(params, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-2, amsgrad: false, ...o });
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, h: AdamWOptions): void {
    if (st.step === undefined) {
      st.step = 0;
      st.exp_avg = keep(zerosLike(p));
      st.exp_avg_sq = keep(zerosLike(p));
      if (h.amsgrad) st.max_exp_avg_sq = keep(zerosLike(p));
    }
    const step = (st.step as number) + 1;
    st.step = step;
    const expAvg = st.exp_avg as Tensor;
    const expAvgSq = st.exp_avg_sq as Tensor;
    p.mul_(1 - h.lr * h.weightDecay);
    expAvg.lerp_(grad, 1 - h.beta1);
    expAvgSq.mul_(h.beta2).addcmul_(grad, grad, 1 - h.beta2);
    const bc1 = 1 - h.beta1 ** step;
    const bc2Sqrt = Math.sqrt(1 - h.beta2 ** step);
    let second = expAvgSq;
    if (h.amsgrad) {
      const maxSq = st.max_exp_avg_sq as Tensor;
      maxSq.copy_(maxSq.maximum(expAvgSq));
      second = maxSq;
    }
    const denom = second.sqrt().div(bc2Sqrt).add(h.eps);
    p.addcdiv_(expAvg, denom, -h.lr / bc1);
  }
}
