// What every DeepLab model is to the rest of the system: a module that maps a normalised
// N x 3 x H x W batch to logits at the input's resolution, upsampled as its source project does.
import { nn, F, type Tensor } from '../torch/index.js';
import type { OutputStride } from './backbone.js';

export type { OutputStride };

export interface SegmentationOutput {
  /** main head logits, N x C x H x W at the input's resolution */
  out: Tensor;
  /** auxiliary head logits (training), same size, when the model has one */
  aux?: Tensor;
}

/**
 * Logits a training loss reads: 'decode' losses are summed into the main loss, 'aux' ones are
 * weighted by the config's auxWeight. Logits smaller than the input get the labels resized to
 * their size (nearest), as DeepLab-v2's multi-scale training does.
 */
export interface TrainingOutput {
  role: 'decode' | 'aux';
  logits: Tensor;
}

export abstract class Segmentor extends nn.Module {
  abstract readonly numClasses: number;
  abstract forward(x: Tensor): SegmentationOutput;
  /** What training puts a loss on: the main logits and, when the model has its head, the auxiliary ones. */
  trainingOutputs(x: Tensor): TrainingOutput[] {
    const { out, aux } = this.forward(x);
    return aux
      ? [
          { role: 'decode', logits: out },
          { role: 'aux', logits: aux },
        ]
      : [{ role: 'decode', logits: out }];
  }
  /** Changes atrous rates and strides in place (train at 16, evaluate at 8); weights untouched. */
  abstract setOutputStride(os: OutputStride): void;
  abstract get outputStride(): OutputStride;
}

/**
 * Bilinear resize of a head's logits to the input size, done where it is cheap: while the logits
 * are small (1/8 or 1/16 of the input per side) they are made float32 and contiguous (NCHW), so
 *  - a channels_last network (the inference fast path) gets full-size logits in NCHW directly
 *    instead of transposing N x classes x H x W after the resize;
 *  - under bf16 autocast the resize runs in fp32: LibTorch's bf16 bilinear kernel is slower than
 *    its fp32 one, and the losses and the argmax read fp32 anyway.
 * For an fp32 NCHW model (training, eager inference) it is the plain resize.
 */
export function resizeLogits(t: Tensor, size: [number, number], alignCorners: boolean): Tensor {
  const small = t.dtype === 'bfloat16' || t.dtype === 'float16' ? t.to('float32').contiguous() : t.contiguous();
  return F.interpolate(small, { size, mode: 'bilinear', alignCorners });
}

/**
 * Bilinear resize of a feature map inside a head (the ASPP's pooled branch, the DeepLabV3+ decoder's
 * upsampled ASPP output). When autograd records it on a bfloat16 or float16 map (bf16 training),
 * the resize runs in float32 and casts back: LibTorch 1.13's bf16 bilinear backward is slow (a
 * channels_last 16x128x4x4 map to 32x32, forward + backward: 19 ms in bf16 against 4.4 ms through
 * float32 on a 2-core Zen 4; about 5% of the demo's training step). Without a gradient (inference)
 * the resize stays in the map's dtype: there the bf16 forward is as fast or faster (a 1x512x1x1
 * pooled map to 64x128: 6.3 ms against 12.7 ms through float32).
 */
export function resizeFeatures(t: Tensor, size: [number, number], alignCorners: boolean): Tensor {
  if (!t.requiresGrad || (t.dtype !== 'bfloat16' && t.dtype !== 'float16'))
    return F.interpolate(t, { size, mode: 'bilinear', alignCorners });
  return F.interpolate(t.to('float32'), { size, mode: 'bilinear', alignCorners }).to(t.dtype);
}

/** How a preset wants its RGB input: x' = (x * scale - mean) / std per channel, x in 0..255. */
export interface Normalization {
  /** 1/255 for torchvision's 0-1 inputs, 1 for mmseg's 0-255 */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  /** feed channels as BGR (caffe DeepLab-v2) */
  bgr: boolean;
}

export const IMAGENET_01: Normalization = {
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  bgr: false,
};
export const IMAGENET_255: Normalization = {
  scale: 1,
  mean: [123.675, 116.28, 103.53],
  std: [58.395, 57.12, 57.375],
  bgr: false,
};

export interface BuildOptions {
  numClasses?: number;
  /** build the auxiliary head too (its keys are in the source's checkpoints) */
  aux?: boolean;
  outputStride?: OutputStride;
  /** bilinear resizes in the heads and of the logits (mmseg's 769x769 configs set it true) */
  alignCorners?: boolean;
}

export interface Preset {
  /** the name users type: torchvision's builder name or mmseg's config stem */
  name: string;
  /** whose key layout and semantics: a project, or 'paper' for a layout of our own from the paper */
  source: 'torchvision' | 'mmsegmentation' | 'deeplab-v2' | 'deeplabv3plus' | 'paper';
  description: string;
  numClasses: number;
  /** output stride the source evaluates at */
  outputStride: OutputStride;
  /** whether the source's checkpoints carry an auxiliary head */
  aux: boolean;
  normalization: Normalization;
  /** the dataset whose classes numClasses refers to, for palettes and legends */
  dataset: 'voc' | 'cityscapes' | 'ade20k' | 'coco-stuff' | 'pascal-context' | 'pascal-context-59';
  build(o?: BuildOptions): Segmentor;
}
