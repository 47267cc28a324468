// mmsegmentation's decode heads for DeepLab (ASPPHead, DepthwiseSeparableASPPHead) and its
// auxiliary FCNHead, with mmcv's ConvModule bricks. Field names and their order are mmseg's, so
// state_dict keys match its checkpoints: BaseDecodeHead registers conv_seg and dropout before a
// subclass builds anything, hence `decode_head.conv_seg.*` leads each head's keys.
import { type Tensor, nn, F, scope } from '../../torch/index.js';
import { featureAt, scaleRates, setRates, type Features, type OutputStride } from '../backbone.js';
import { resizeFeatures } from '../segmentor.js';

interface ConvOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
}

/** mmcv ConvModule with norm BN and act ReLU: conv (no bias: BN follows) → bn → activate. */
export class ConvModule extends nn.Module {
  conv: nn.Conv2d;
  bn: nn.BatchNorm2d;
  activate = new nn.ReLU(true);

  constructor(inC: number, outC: number, k: number, o: ConvOptions = {}) {
    super();
    this.conv = new nn.Conv2d(inC, outC, k, { ...o, bias: false });
    this.bn = new nn.BatchNorm2d(outC);
    // mmcv's ConvModule.init_weights: kaiming_normal (fan_out, relu); BN starts at 1, 0.
    nn.init.kaimingNormal_(this.conv.weight, { mode: 'fan_out', nonlinearity: 'relu' });
  }

  forward(x: Tensor): Tensor {
    return nn.pipe(x, this.conv, this.bn, this.activate);
  }
}

/** mmcv DepthwiseSeparableConvModule: depthwise k x k ConvModule, then pointwise 1x1 ConvModule. */
export class DepthwiseSeparableConvModule extends nn.Module {
  depthwise_conv: ConvModule;
  pointwise_conv: ConvModule;

  constructor(inC: number, outC: number, k: number, o: { padding?: number; dilation?: number } = {}) {
    super();
    this.depthwise_conv = new ConvModule(inC, inC, k, { ...o, groups: inC });
    this.pointwise_conv = new ConvModule(inC, outC, 1);
  }

  forward(x: Tensor): Tensor {
    return nn.pipe(x, this.depthwise_conv, this.pointwise_conv);
  }
}

export interface HeadOptions {
  inChannels: number;
  channels: number;
  numClasses: number;
  /** which backbone stage the head reads (0..3) */
  inIndex: number;
  /** Dropout2d before conv_seg (mmseg's dropout_ratio); 0 for none */
  dropout?: number;
  alignCorners?: boolean;
}

/** mmseg BaseDecodeHead: the classifier (conv_seg, with bias) behind an optional Dropout2d. */
export abstract class DecodeHead extends nn.Module {
  conv_seg: nn.Conv2d;
  dropout: nn.Dropout2d | null;
  readonly numClasses: number;
  readonly inIndex: number;
  readonly alignCorners: boolean;

  constructor(o: HeadOptions) {
    super();
    this.conv_seg = new nn.Conv2d(o.channels, o.numClasses, 1);
    // mmseg's init_cfg for conv_seg: normal(0, 0.01), bias 0.
    nn.init.normal_(this.conv_seg.weight, 0, 0.01);
    nn.init.zeros_(this.conv_seg.bias!);
    const p = o.dropout ?? 0.1;
    this.dropout = p > 0 ? new nn.Dropout2d(p) : null;
    this.numClasses = o.numClasses;
    this.inIndex = o.inIndex;
    this.alignCorners = o.alignCorners ?? false;
  }

  /** The backbone stages forward() reads (the segmentor frees the others). */
  get inputs(): number[] {
    return [this.inIndex];
  }

  protected clsSeg(x: Tensor): Tensor {
    return this.conv_seg.forward(this.dropout ? this.dropout.forward(x) : x);
  }

  /** Logits at the resolution of the feature the head reads. */
  abstract forward(features: Features): Tensor;
}

export interface ASPPHeadOptions extends HeadOptions {
  /** atrous rates of the parallel branches; 1 is a 1x1 conv */
  dilations: readonly number[];
  /** the backbone output stride `dilations` are meant for */
  outputStride: OutputStride;
}

/**
 * mmseg ASPPHead (DeepLabV3): [image pool, one branch per rate] concatenated, a 3x3 bottleneck,
 * then the classifier. The separable flag builds DepthwiseSeparableASPPHead's branches.
 */
export class ASPPHead extends DecodeHead {
  image_pool: nn.Sequential;
  aspp_modules: nn.ModuleList<ConvModule | DepthwiseSeparableConvModule>;
  bottleneck: ConvModule;
  readonly #nativeDilations: readonly number[];
  readonly #nativeOutputStride: OutputStride;

  constructor(o: ASPPHeadOptions, separable = false) {
    super(o);
    const { inChannels: inC, channels: ch } = o;
    this.image_pool = new nn.Sequential(new nn.AdaptiveAvgPool2d(1), new ConvModule(inC, ch, 1));
    this.aspp_modules = new nn.ModuleList(
      o.dilations.map((d) => {
        if (d === 1) return new ConvModule(inC, ch, 1);
        return separable
          ? new DepthwiseSeparableConvModule(inC, ch, 3, { padding: d, dilation: d })
          : new ConvModule(inC, ch, 3, { padding: d, dilation: d });
      }),
    );
    this.bottleneck = new ConvModule((o.dilations.length + 1) * ch, ch, 3, { padding: 1 });
    this.#nativeDilations = [...o.dilations];
    this.#nativeOutputStride = o.outputStride;
  }

  private branchConvs(): nn.Conv2d[] {
    return this.aspp_modules.map((m) => (m instanceof ConvModule ? m.conv : m.depthwise_conv.conv));
  }

  /** The branches' current rates (1: the 1x1 branch). */
  get dilations(): number[] {
    return this.branchConvs().map((c) => c.rate);
  }

  /** Scales the rates by nativeOS / os, as the feature map's scale changes (12 at 8 → 6 at 16). */
  setOutputStride(os: OutputStride): void {
    setRates(
      this.branchConvs(),
      scaleRates(this.#nativeDilations, this.#nativeOutputStride, os, 'ASPPHead'),
      'ASPPHead',
    );
  }

  /** The bottleneck's output (ASPPHead's forward before cls_seg). */
  protected aspp(x: Tensor): Tensor {
    // In its own scope: the branches and their concatenation (5 x 512 channels at 1/8) are freed
    // as soon as the bottleneck has read them, not when the whole head returns.
    return scope(() => {
      const pooled = this.image_pool.forward(x);
      const outs = [resizeFeatures(pooled, [x.shape[2], x.shape[3]], this.alignCorners)];
      for (const m of this.aspp_modules) outs.push(m.forward(x));
      return this.bottleneck.forward(F.cat(outs, 1));
    });
  }

  forward(features: Features): Tensor {
    return this.clsSeg(this.aspp(featureAt(features, this.inIndex)));
  }
}

export interface SeparableASPPHeadOptions extends ASPPHeadOptions {
  /** channels of the stage-1 feature (features[0]); 0: no decoder skip */
  c1InChannels: number;
  c1Channels: number;
}

/**
 * mmseg DepthwiseSeparableASPPHead (DeepLabV3+): separable atrous branches; the ASPP output is
 * resized to the stride-4 feature, concatenated with its 1x1 projection (c1_bottleneck) and
 * refined by two separable 3x3 convs before the classifier.
 */
export class DepthwiseSeparableASPPHead extends ASPPHead {
  c1_bottleneck: ConvModule | null;
  sep_bottleneck: nn.Sequential;

  constructor(o: SeparableASPPHeadOptions) {
    super(o, true);
    this.c1_bottleneck = o.c1InChannels > 0 ? new ConvModule(o.c1InChannels, o.c1Channels, 1) : null;
    this.sep_bottleneck = new nn.Sequential(
      new DepthwiseSeparableConvModule(o.channels + o.c1Channels, o.channels, 3, { padding: 1 }),
      new DepthwiseSeparableConvModule(o.channels, o.channels, 3, { padding: 1 }),
    );
  }

  override get inputs(): number[] {
    return this.c1_bottleneck ? [0, this.inIndex] : [this.inIndex];
  }

  override forward(features: Features): Tensor {
    // The decoder's input alone outlives this scope (the ASPP output and its upsampled copy do not).
    const decoderIn = scope(() => {
      const out = this.aspp(featureAt(features, this.inIndex));
      if (!this.c1_bottleneck) return out;
      const c1 = this.c1_bottleneck.forward(featureAt(features, 0));
      const up = resizeFeatures(out, [c1.shape[2], c1.shape[3]], this.alignCorners);
      return F.cat([up, c1], 1);
    });
    return this.clsSeg(this.sep_bottleneck.forward(decoderIn));
  }
}

export interface FCNHeadOptions extends HeadOptions {
  /** mmseg's default is 2; its DeepLab configs use 1 */
  numConvs?: number;
  kernelSize?: number;
  /** concatenate the input with the convs' output through conv_cat (mmseg default true) */
  concatInput?: boolean;
}

/** mmseg FCNHead: num_convs ConvModules (then conv_cat when concat_input), the classifier. */
export class FCNHead extends DecodeHead {
  convs: nn.Sequential;
  conv_cat: ConvModule | null;

  constructor(o: FCNHeadOptions) {
    super(o);
    const n = o.numConvs ?? 2;
    const k = o.kernelSize ?? 3;
    if (n < 1) throw new RangeError(`FCNHead: numConvs must be at least 1 (got ${n})`);
    const convs = Array.from(
      { length: n },
      (_, i) => new ConvModule(i === 0 ? o.inChannels : o.channels, o.channels, k, { padding: k >> 1 }),
    );
    this.convs = new nn.Sequential(...convs);
    this.conv_cat =
      (o.concatInput ?? true) ? new ConvModule(o.inChannels + o.channels, o.channels, k, { padding: k >> 1 }) : null;
  }

  forward(features: Features): Tensor {
    const x = featureAt(features, this.inIndex);
    let out = this.convs.forward(x);
    if (this.conv_cat) out = this.conv_cat.forward(F.cat([x, out], 1));
    return this.clsSeg(out);
  }
}
