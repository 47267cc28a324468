// mmsegmentation's EncoderDecoder: backbone → decode head (+ auxiliary head for training). The
// field names are mmseg's, so keys read backbone.*, decode_head.*, auxiliary_head.*.
import type { Tensor } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput } from '../segmentor.js';
import type { Backbone, OutputStride } from '../backbone.js';
import type { DecodeHead } from '../heads/mmseg.js';

/** A decode head whose atrous rates follow the output stride (ASPP heads). */
type StrideAwareHead = DecodeHead & { setOutputStride?(os: OutputStride): void };

export class EncoderDecoder<
  B extends Backbone = Backbone,
  H extends StrideAwareHead = StrideAwareHead,
> extends Segmentor {
  backbone: B;
  decode_head: H;
  /** deep supervision in training; mmseg's checkpoints carry it, its inference ignores it */
  auxiliary_head: DecodeHead | null;
  readonly numClasses: number;

  constructor(backbone: B, decodeHead: H, auxiliaryHead: DecodeHead | null = null) {
    super();
    this.backbone = backbone;
    this.decode_head = decodeHead;
    this.auxiliary_head = auxiliaryHead;
    this.numClasses = decodeHead.numClasses;
    // mmseg's out_indices: the stages the heads read.
    backbone.outIndices = [...new Set([...decodeHead.inputs, ...(auxiliaryHead?.inputs ?? [])])].sort((a, b) => a - b);
  }

  get outputStride(): OutputStride {
    return this.backbone.outputStride;
  }

  /** Backbone strides/rates and the head's atrous rates together, so the ASPP keeps its field of view. */
  setOutputStride(os: OutputStride): void {
    this.backbone.setOutputStride(os);
    this.decode_head.setOutputStride?.(os);
  }

  /**
   * Logits resized (bilinear, each head's align_corners) to the input size: mmseg's whole-mode
   * encode_decode for `out`, and the resize its loss applies for `aux`. The auxiliary head runs
   * whenever it exists (build with aux: false to skip it at inference).
   */
  forward(x: Tensor): SegmentationOutput {
    const size: [number, number] = [x.shape[2], x.shape[3]];
    const features = this.backbone.forward(x);
    const resize = (t: Tensor, alignCorners: boolean) => resizeLogits(t, size, alignCorners);
    const out = resize(this.decode_head.forward(features), this.decode_head.alignCorners);
    if (!this.auxiliary_head) return { out };
    return { out, aux: resize(this.auxiliary_head.forward(features), this.auxiliary_head.alignCorners) };
  }
}
