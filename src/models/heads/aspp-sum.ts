// DeepLab-v2's classifier ("ASPP-L", the port's Classifier_Module): parallel 3x3 atrous convs
// from the backbone straight to class scores, their outputs summed rather than concatenated.
// The field name `conv2d_list` gives the port's keys `layer5.conv2d_list.{i}.{weight,bias}`.
import { type Tensor, nn } from '../../torch/index.js';
import { setRates } from '../backbone.js';

export class AsppSum extends nn.Module {
  conv2d_list: nn.ModuleList<nn.Conv2d>;

  constructor(inChannels: number, numClasses: number, rates: readonly number[]) {
    super();
    this.conv2d_list = new nn.ModuleList(
      rates.map((r) => new nn.Conv2d(inChannels, numClasses, 3, { padding: r, dilation: r, bias: true })),
    );
  }

  get rates(): number[] {
    return this.conv2d_list.map((c) => c.rate);
  }

  /** One rate per branch; padding follows (output size = input size). */
  set rates(rates: readonly number[]) {
    setRates([...this.conv2d_list], rates, 'AsppSum');
  }

  forward(x: Tensor): Tensor {
    let out = this.conv2d_list.at(0).forward(x);
    for (let i = 1; i < this.conv2d_list.length; i++) out = out.add_(this.conv2d_list.at(i).forward(x));
    return out;
  }
}
