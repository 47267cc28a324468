// DeepLabV3+ in the layout of jfzhang95/pytorch-deeplab-xception (modeling/deeplab.py): fields
// `backbone`, `aspp`, `decoder` give the port's keys; the decoder's logits are upsampled
// bilinearly with align_corners=True to the input size, as the port does. Output stride 16 or 8
// (the port's two settings): the backbone's strides and rates and the ASPP's rates change together.
import type { Tensor } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput } from '../segmentor.js';
import { checkOutputStride, featureAt, type Backbone, type OutputStride } from '../backbone.js';
import { AlignedXception } from '../backbones/xception.js';
import { MobileNetV2 } from '../backbones/mobilenetv2.js';
import { DeepLabV3PlusASPP, DeepLabV3PlusDecoder } from '../heads/deeplabv3plus.js';

/** A backbone whose stages are [low-level features (stride 4), deep features]. */
export interface V3PlusBackbone extends Backbone {
  /** extra state_dict names the port's module tree gives the same tensors (MobileNetV2) */
  withPortAliases?(sd: Map<string, Tensor>, prefix: string): Map<string, Tensor>;
}

const LOW = 0;
const HIGH = 1;

/** The port's ASPP rates (of the three 3x3 branches) per output stride. */
const ASPP_RATES: Record<8 | 16, [number, number, number]> = { 16: [6, 12, 18], 8: [12, 24, 36] };

function checkStride(os: number): asserts os is 8 | 16 {
  checkOutputStride(os, 'DeepLabV3+ (as in the port)', [8, 16]);
}

export class DeepLabV3Plus extends Segmentor {
  // Field order is the state_dict order.
  backbone: V3PlusBackbone;
  aspp: DeepLabV3PlusASPP;
  decoder: DeepLabV3PlusDecoder;
  readonly numClasses: number;

  constructor(backbone: V3PlusBackbone, numClasses: number) {
    super();
    const os = backbone.outputStride;
    checkStride(os);
    this.backbone = backbone;
    this.aspp = new DeepLabV3PlusASPP(backbone.channels[HIGH], ASPP_RATES[os]);
    this.decoder = new DeepLabV3PlusDecoder(backbone.channels[LOW], numClasses);
    this.numClasses = numClasses;
  }

  get outputStride(): OutputStride {
    return this.backbone.outputStride;
  }

  /** The three 3x3 ASPP rates as they are now. */
  get atrousRates(): number[] {
    return this.aspp.rates;
  }

  setOutputStride(os: OutputStride): void {
    checkStride(os);
    this.backbone.setOutputStride(os);
    this.aspp.rates = ASPP_RATES[os];
  }

  override stateDict(): Map<string, Tensor> {
    const sd = super.stateDict();
    return this.backbone.withPortAliases ? this.backbone.withPortAliases(sd, 'backbone.') : sd;
  }

  forward(x: Tensor): SegmentationOutput {
    const [h, w] = x.shape.slice(-2);
    const stages = this.backbone.forward(x);
    const logits = this.decoder.forward(this.aspp.forward(featureAt(stages, HIGH)), featureAt(stages, LOW));
    return { out: resizeLogits(logits, [h, w], true) };
  }
}

export function deeplabv3plusXception65(numClasses: number, outputStride: OutputStride = 16): DeepLabV3Plus {
  checkStride(outputStride);
  return new DeepLabV3Plus(new AlignedXception({ outputStride }), numClasses);
}

export function deeplabv3plusMobileNetV2(numClasses: number, outputStride: OutputStride = 16): DeepLabV3Plus {
  checkStride(outputStride);
  return new DeepLabV3Plus(new MobileNetV2({ outputStride }), numClasses);
}
