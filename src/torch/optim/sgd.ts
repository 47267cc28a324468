// SGD with momentum, dampening, Nesterov and weight decay: torch.optim.SGD's update, step by step.
import type { Tensor } from '../tensor.js';
import { keep } from '../scope.js';
import { Optimizer, type GroupSpec, type ParamState } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Iterable<Tensor> | GroupSpec<SGDOptions>[], o: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...o });
    for (const g of this.groups) {
      if (g.hyper.nesterov && (g.hyper.momentum <= 0 || g.hyper.dampening !== 0)) {
        throw new Error('SGD: Nesterov momentum requires a momentum and zero dampening');
      }
    }
  }

  protected update(p: Tensor, grad: Tensor, st: ParamState, h: SGDOptions): void {
    let d = h.weightDecay !== 0 ? grad.add(p, h.weightDecay) : grad;
    if (h.momentum !== 0) {
      let buf = st.momentum_buffer as Tensor | undefined;
      if (!buf) {
        buf = keep(d.clone().detach());
        st.momentum_buffer = buf;
      } else {
        buf.mul_(h.momentum).add_(d, 1 - h.dampening);
      }
      d = h.nesterov ? d.add(buf, h.momentum) : buf;
    }
    p.add_(d, -h.lr);
  }
}
