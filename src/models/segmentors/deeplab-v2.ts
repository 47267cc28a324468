// DeepLab-v2 (ResNet-101) in the layout of its PyTorch port (speedinghzl/Pytorch-Deeplab,
// deeplab/model.py `Res_Deeplab`): the port's ResNet *is* the model, so the backbone's layers sit
// at the top of the state_dict (`conv1`, `bn1`, `layer1..4`) next to the classifier `layer5`.
// Caffe-style bottlenecks (stride on the first 1x1), a ceil-mode max-pool, every unit of layer3
// and layer4 at rate 2 and 4 (output stride 8), frozen BatchNorm affine parameters, and ASPP-L:
// four 3x3 atrous convs (6, 12, 18, 24) to class scores, summed.
import { type Tensor, F, nn } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput } from '../segmentor.js';
import { featureAt, scaleRates, type OutputStride } from '../backbone.js';
import { ResNet } from '../backbones/resnet.js';
import { AsppSum } from '../heads/aspp-sum.js';

/** The paper's ASPP-L rates, at output stride 8. */
export const V2_RATES = [6, 12, 18, 24] as const;
const V2_RATES_STRIDE = 8;

/**
 * The port's scripts resize with nn.Upsample(mode='bilinear') from PyTorch 0.2/0.3, where
 * bilinear resizing aligned corners (its later evaluate.py says align_corners=True).
 */
export function v2Resize(x: Tensor, size: [number, number]): Tensor {
  return F.interpolate(x, { size, mode: 'bilinear', alignCorners: true });
}

export interface DeepLabV2Options {
  numClasses: number;
  outputStride?: OutputStride;
}

export class DeepLabV2 extends Segmentor {
  // Field order is the state_dict order; the modules are the ResNet's own.
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  layer1: nn.Sequential;
  layer2: nn.Sequential;
  layer3: nn.Sequential;
  layer4: nn.Sequential;
  layer5: AsppSum;
  readonly numClasses: number;
  // Kept off the module tree (a private field is no property): it runs the layers above.
  readonly #resnet: ResNet;

  constructor(o: DeepLabV2Options) {
    super();
    const r = new ResNet({
      depth: 101,
      style: 'caffe',
      ceilPool: true,
      contractDilation: false,
      bnAffineTrainable: false,
      outputStride: 8,
    });
    r.outIndices = [3];
    this.#resnet = r;
    this.conv1 = r.conv1!;
    this.bn1 = r.bn1!;
    this.layer1 = r.layer1;
    this.layer2 = r.layer2;
    this.layer3 = r.layer3;
    this.layer4 = r.layer4;
    this.layer5 = new AsppSum(r.channels[3], o.numClasses, V2_RATES);
    this.numClasses = o.numClasses;
    if (o.outputStride && o.outputStride !== 8) this.setOutputStride(o.outputStride);
  }

  get outputStride(): OutputStride {
    return this.#resnet.outputStride;
  }

  /** layer5's atrous rates as they are now. */
  get atrousRates(): number[] {
    return this.layer5.rates;
  }

  /** Per-stage dilations of the backbone's 3x3 convs. */
  backboneRates(): number[][] {
    return this.#resnet.rates();
  }

  /** Rates scale inversely with the stride: 3, 6, 9, 12 at 16; stride 32 would need 1.5. */
  setOutputStride(os: OutputStride): void {
    const rates = scaleRates(V2_RATES, V2_RATES_STRIDE, os, 'DeepLab-v2');
    this.#resnet.setOutputStride(os);
    this.layer5.rates = rates;
  }

  /** Class scores at the output stride, as the port's Res_Deeplab returns them. */
  logits(x: Tensor): Tensor {
    return this.layer5.forward(featureAt(this.#resnet.forward(x), 3));
  }

  forward(x: Tensor): SegmentationOutput {
    const [h, w] = x.shape.slice(-2);
    return { out: resizeLogits(this.logits(x), [h, w], true) };
  }
}
