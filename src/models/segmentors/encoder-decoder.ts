// mmsegmentation's EncoderDecoder: backbone → decode head (+ auxiliary head for training). The
// field names are mmseg's, so keys read backbone.*, decode_head.*, auxiliary_head.*.
import { type Tensor, nn } from '../../torch/index.js';
import { Segmentor, resizeLogits, type OutputStride, type SegmentationOutput } from '../segmentor.js';
import type { DecodeHead } from '../heads/mmseg.js';
import { ResNet } from '../backbones/resnet.js';

/** What the segmentor needs of a backbone: every stage's output and a run-time output stride. */
export interface Backbone extends nn.Module {
  forward(x: Tensor): Tensor[];
  setOutputStride(os: OutputStride): void;
  readonly outputStride: OutputStride;
}

/** A decode head whose atrous rates follow the output stride (ASPP heads). */
type StrideAwareHead = DecodeHead & { setOutputStride?(os: number): void };

export class EncoderDecoder<B extends Backbone = Backbone, H extends StrideAwareHead = StrideAwareHead> extends Segmentor {
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
    if (backbone instanceof ResNet) backbone.keepStages = new Set([...decodeHead.inputs, ...(auxiliaryHead?.inputs ?? [])]);
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
    // Stages no head reads are freed now (mmseg keeps the whole tuple until the heads are done;
    // a ResNet backbone has already freed them as it went, see keepStages).
    const read = new Set([...this.decode_head.inputs, ...(this.auxiliary_head?.inputs ?? [])]);
    features.forEach((f, i) => read.has(i) || f.dispose());
    const resize = (t: Tensor, alignCorners: boolean) => resizeLogits(t, size, alignCorners);
    const out = resize(this.decode_head.forward(features), this.decode_head.alignCorners);
    if (!this.auxiliary_head) return { out };
    return { out, aux: resize(this.auxiliary_head.forward(features), this.auxiliary_head.alignCorners) };
  }
}
