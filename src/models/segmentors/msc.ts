// DeepLab-v2's multi-scale-input training wrapper (the port's MS_Deeplab): one shared network,
// held as `Scale` (so every key reads `Scale.…`), runs on the input at 1, 0.75 and 0.5; the
// smaller scales' class scores are resized to the 1x scores' size and the three fused by
// element-wise max. Training puts a loss on each of the four (the 1x, 0.75x, 0.5x and fused
// scores), hence forwardScales(); forward() returns the fused scores at the input's size.
import { type Tensor } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput, type TrainingOutput } from '../segmentor.js';
import type { OutputStride } from '../backbone.js';
import { DeepLabV2, v2Resize, type DeepLabV2Options } from './deeplab-v2.js';

export const MSC_SCALES = [0.75, 0.5] as const;

/** The port's size for a scaled input side: int(s * side) + 1. */
export function mscSide(side: number, s: number): number {
  return Math.floor(side * s) + 1;
}

export class DeepLabV2MSC extends Segmentor {
  Scale: DeepLabV2;

  constructor(o: DeepLabV2Options) {
    super();
    this.Scale = new DeepLabV2(o);
  }

  get numClasses(): number {
    return this.Scale.numClasses;
  }

  get outputStride(): OutputStride {
    return this.Scale.outputStride;
  }

  setOutputStride(os: OutputStride): void {
    this.Scale.setOutputStride(os);
  }

  /**
   * [1x, 0.75x, 0.5x, fused] class scores, all at the 1x scores' size (the output stride), as the
   * port's MS_Deeplab returns them. The port reads one side (square crops) for both; here each
   * side is scaled on its own, which is the same on squares.
   */
  forwardScales(x: Tensor): [Tensor, Tensor, Tensor, Tensor] {
    const [h, w] = x.shape.slice(-2);
    const full = this.Scale.logits(x);
    const size = full.shape.slice(-2) as [number, number];
    const [s75, s50] = MSC_SCALES.map((s) =>
      v2Resize(this.Scale.logits(v2Resize(x, [mscSide(h, s), mscSide(w, s)])), size),
    );
    const fused = full.maximum(s75).maximum(s50);
    return [full, s75, s50, fused];
  }

  /** The port's train_msc: a loss on each of the four, against labels resized to the output stride. */
  override trainingOutputs(x: Tensor): TrainingOutput[] {
    return this.forwardScales(x).map((logits) => ({ role: 'decode', logits }));
  }

  forward(x: Tensor): SegmentationOutput {
    const [h, w] = x.shape.slice(-2);
    return { out: resizeLogits(this.forwardScales(x)[3], [h, w], true) };
  }
}
