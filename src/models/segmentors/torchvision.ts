// torchvision's DeepLabV3 (_SimpleSegmentationModel): a backbone, the DeepLab head on its last
// features and, optionally, an FCN head on shallower ones; both upsampled bilinearly
// (align_corners=false) to the input size. Fields `backbone`, `classifier`, `aux_classifier`
// give torchvision's checkpoint keys.
import type { Tensor } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput } from '../segmentor.js';
import { featureAt, scaleRates, type Backbone, type OutputStride } from '../backbone.js';
import { ResNet } from '../backbones/resnet.js';
import { MobileNetV3Large } from '../backbones/mobilenetv3.js';
import { DeepLabHead, FCNHead } from '../heads/torchvision.js';

/** Which of the backbone's outputs a head reads, and how many channels it has. */
export interface Tap {
  index: number;
  channels: number;
}

export interface DeepLabV3Options {
  backbone: Backbone;
  numClasses: number;
  out: Tap;
  /** null: no auxiliary head (and no `aux_classifier.*` keys) */
  aux: Tap | null;
  /** ASPP rates at the backbone's output stride when constructed (torchvision: 12, 24, 36) */
  rates?: [number, number, number];
}

export class DeepLabV3 extends Segmentor {
  // Field order is the state_dict order.
  backbone: Backbone;
  classifier: DeepLabHead;
  aux_classifier: FCNHead | null;
  readonly numClasses: number;
  readonly #out: number;
  readonly #aux: number;
  // The rates are set for this output stride and scale inversely with it.
  readonly #baseRates: readonly number[];
  readonly #baseStride: OutputStride;

  constructor(o: DeepLabV3Options) {
    super();
    const rates = o.rates ?? [12, 24, 36];
    this.backbone = o.backbone;
    this.classifier = new DeepLabHead(o.out.channels, o.numClasses, rates);
    this.aux_classifier = o.aux ? new FCNHead(o.aux.channels, o.numClasses) : null;
    this.numClasses = o.numClasses;
    this.#out = o.out.index;
    this.#aux = o.aux?.index ?? -1;
    // torchvision's IntermediateLayerGetter returns only these stages.
    o.backbone.outIndices = o.aux ? [o.aux.index, o.out.index] : [o.out.index];
    this.#baseRates = rates;
    this.#baseStride = o.backbone.outputStride;
  }

  get outputStride(): OutputStride {
    return this.backbone.outputStride;
  }

  /** The ASPP's atrous rates as they are now. */
  get atrousRates(): number[] {
    return this.classifier.aspp.rates;
  }

  /** Rewrites the backbone's strides and dilations and scales the ASPP rates to match. */
  setOutputStride(os: OutputStride): void {
    const rates = scaleRates(this.#baseRates, this.#baseStride, os, 'DeepLabV3');
    this.backbone.setOutputStride(os);
    this.classifier.aspp.rates = rates;
  }

  forward(x: Tensor): SegmentationOutput {
    const [h, w] = x.shape.slice(-2);
    const up = (t: Tensor) => resizeLogits(t, [h, w], false);
    const features = this.backbone.forward(x);
    const out = up(this.classifier.forward(featureAt(features, this.#out)));
    if (!this.aux_classifier) return { out };
    return { out, aux: up(this.aux_classifier.forward(featureAt(features, this.#aux))) };
  }
}

export interface TorchvisionBuildOptions {
  numClasses: number;
  aux: boolean;
  outputStride?: OutputStride;
}

/** deeplabv3_resnet50/101: ResNet at output stride 8 (replace_stride_with_dilation [F, T, T]); aux on layer3. */
export function deeplabv3ResNet(depth: 50 | 101, o: TorchvisionBuildOptions): DeepLabV3 {
  const backbone = new ResNet({ depth, outputStride: 8 });
  const [, , c3, c4] = backbone.channels;
  const model = new DeepLabV3({
    backbone,
    numClasses: o.numClasses,
    out: { index: 3, channels: c4 },
    aux: o.aux ? { index: 2, channels: c3 } : null,
  });
  if (o.outputStride && o.outputStride !== 8) model.setOutputStride(o.outputStride);
  return model;
}

/**
 * deeplabv3_mobilenet_v3_large: MobileNetV3-Large at output stride 16 (dilated=True). As in
 * torchvision, the head reads the last layer (960 channels) and the aux head the C2 block
 * (features[4], 40 channels, stride 8); the ASPP keeps rates 12, 24, 36 at stride 16.
 */
export function deeplabv3MobileNetV3Large(o: TorchvisionBuildOptions): DeepLabV3 {
  const backbone = new MobileNetV3Large({ outputStride: 16 });
  const n = backbone.taps.length;
  // torchvision: out = stage_indices[-1], aux = stage_indices[-4]
  const tap = (i: number): Tap => ({ index: i, channels: backbone.channels[i] });
  const model = new DeepLabV3({ backbone, numClasses: o.numClasses, out: tap(n - 1), aux: o.aux ? tap(n - 4) : null });
  if (o.outputStride && o.outputStride !== 16) model.setOutputStride(o.outputStride);
  return model;
}
