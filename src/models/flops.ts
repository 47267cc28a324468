// Forward FLOPs as the bench-ref counts them: 2 x multiply-accumulates of every Conv2d and
// Linear, read off the output shapes of a zero-batch forward (LibTorch computes shapes only).
import * as torch from '../torch/index.js';
import type { Segmentor } from './segmentor.js';

export function countFlops(model: Segmentor, height: number, width: number): number {
  let flops = 0;
  // The originals, called with .call(this) from the wrappers and put back when counting is done.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const convForward = torch.nn.Conv2d.prototype.forward;
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const linearForward = torch.nn.Linear.prototype.forward;
  torch.nn.Conv2d.prototype.forward = function (this: torch.nn.Conv2d, x: torch.Tensor) {
    const y = convForward.call(this, x);
    const [, c, h, w] = y.shape;
    flops += 2 * c * h * w * (this.inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    return y;
  };
  torch.nn.Linear.prototype.forward = function (this: torch.nn.Linear, x: torch.Tensor) {
    const y = linearForward.call(this, x);
    flops += 2 * y.shape.slice(1).reduce((a, b) => a * b, 1) * this.inFeatures;
    return y;
  };
  const wasTraining = model.training;
  try {
    model.eval();
    torch.scope(() => torch.inferenceMode(() => model.forward(torch.zeros([0, 3, height, width]))));
  } finally {
    torch.nn.Conv2d.prototype.forward = convForward;
    torch.nn.Linear.prototype.forward = linearForward;
    model.train(wasTraining);
  }
  return flops;
}
