// The layers DeepLab needs, with PyTorch's attribute names (they are the state_dict keys) and
// PyTorch's default initialisation.
import { Tensor } from '../tensor.js';
import { empty, ones, zeros, scalarTensor } from '../creation.js';
import * as F from '../functional.js';
import { noGrad } from '../autograd.js';
import { Module, type Layer } from './module.js';
import * as init from './init.js';
import { syncBatchNorm, type ProcessGroup } from '../distributed.js';
import { type ConvActivation, type PackedConv2d } from '../packed-conv.js';

type Pair = number | [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module implements Layer {
  weight: Tensor;
  bias: Tensor | null;
  readonly kernelSize: [number, number];
  stride: Pair;
  padding: Pair;
  dilation: Pair;
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    o: Conv2dOptions = {},
  ) {
    super();
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    this.stride = o.stride ?? 1;
    this.padding = o.padding ?? 0;
    this.dilation = o.dilation ?? 1;
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups) {
      throw new RangeError(
        `Conv2d: in_channels (${inChannels}) and out_channels (${outChannels}) must be divisible by groups (${this.groups})`,
      );
    }
    this.weight = this.param(empty([outChannels, inChannels / this.groups, ...this.kernelSize]));
    this.bias = o.bias === false ? null : this.param(empty([outChannels]));
    this.resetParameters();
  }

  /** The atrous rate: the dilation of a square kernel (the first one's otherwise). */
  get rate(): number {
    return typeof this.dilation === 'number' ? this.dilation : this.dilation[0];
  }

  /**
   * Rewrites the atrous rate (and the stride) in place; weights are untouched. The padding follows
   * so that a stride-1 conv keeps the map's size, (k - 1) / 2 x rate, unless `padded: false`: a
   * module that pads its input itself (TensorFlow's fixed_padding) keeps the conv's padding at 0.
   */
  setAtrous(rate: number, o: { stride?: number; padded?: boolean } = {}): void {
    if (!Number.isInteger(rate) || rate < 1)
      throw new RangeError(`Conv2d: expected a positive integer atrous rate but received ${rate}`);
    this.dilation = rate;
    if (o.stride !== undefined) this.stride = o.stride;
    const [kh, kw] = this.kernelSize;
    this.padding =
      o.padded === false ? 0 : kh === kw ? ((kh - 1) / 2) * rate : [((kh - 1) / 2) * rate, ((kw - 1) / 2) * rate];
  }

  /** PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias uniform in ±1/sqrt(fan_in). */
  resetParameters(): void {
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const bound = 1 / Math.sqrt(init.fans(this.weight)[0]);
      init.uniform_(this.bias, -bound, bound);
    }
  }

  /**
   * Sets the bias to `value` (copied), first registering a bias parameter (key `bias`) when the
   * conv has none: batch-norm folding gives bias-free convs one.
   */
  setBias(value: Tensor): void {
    noGrad(() => {
      if (this.bias) this.bias.copy_(value);
      else this.bias = this.param(value.to(this.weight.dtype, { copy: true }));
    });
  }

  /**
   * An activation this conv applies to its own output (set by src/inference/fuse.ts, which marks
   * the activation module after it `absorbed`): part of what forward() computes on every path.
   */
  epilogue: ConvActivation | null = null;
  /** The weights prepacked for fp32 inference (src/inference/fuse.ts); null: the plain path. */
  packed: PackedConv2d | null = null;

  forward(x: Tensor): Tensor {
    return this.forwardAdd(x, null);
  }

  /**
   * epilogue(conv(x) + residual), the residual add of a ResNet block inside the conv when it is
   * prepacked. residualInPlace: the result may be written into residual (nothing else reads it).
   */
  forwardAdd(x: Tensor, residual: Tensor | null, residualInPlace = false): Tensor {
    const o = { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
    if (this.packed && !F.convTakesOwnPath(x, this.weight, o)) {
      const y = this.packed.run(x, residual, residualInPlace);
      if (y) return y;
    }
    let y = F.conv2d(x, this.weight, this.bias, o);
    if (residual) y = y.add_(residual);
    if (this.epilogue === 'relu') return F.relu_(y);
    if (this.epilogue === 'relu6') return F.relu6(y);
    if (this.epilogue === 'hardswish') return F.hardswish(y);
    return y;
  }

  protected override releaseNative(): void {
    this.packed?.dispose();
    this.packed = null;
  }
}

export class Linear extends Module implements Layer {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: { bias?: boolean } = {},
  ) {
    super();
    this.weight = this.param(empty([outFeatures, inFeatures]));
    this.bias = o.bias === false ? null : this.param(empty([outFeatures]));
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const bound = 1 / Math.sqrt(inFeatures);
      init.uniform_(this.bias, -bound, bound);
    }
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** null: cumulative moving average, as PyTorch's momentum=None. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

export class BatchNorm2d extends Module implements Layer {
  weight: Tensor | null;
  bias: Tensor | null;
  running_mean: Tensor | null;
  running_var: Tensor | null;
  num_batches_tracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number | null;
  /**
   * Set by foldBatchNorm (src/models/fold.ts): the convolution before this layer applies its
   * normalisation, so forward is the identity in eval mode and an error in training mode (a
   * folded model is for inference only).
   */
  folded = false;
  /**
   * Set by convertSyncBatchNorm (src/distributed/sync-bn.ts): in training, the statistics are
   * those of every rank's batch together (torch.nn.SyncBatchNorm). Not state: checkpoints keep
   * BatchNorm2d's keys.
   */
  syncGroup: ProcessGroup | null = null;

  constructor(
    readonly numFeatures: number,
    o: BatchNormOptions = {},
  ) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    const affine = o.affine ?? true;
    const track = o.trackRunningStats ?? true;
    this.weight = affine ? this.param(ones([numFeatures])) : null;
    this.bias = affine ? this.param(zeros([numFeatures])) : null;
    this.running_mean = track ? this.buffer(zeros([numFeatures])) : null;
    this.running_var = track ? this.buffer(ones([numFeatures])) : null;
    this.num_batches_tracked = track ? this.buffer(scalarTensor(0, 'int64')) : null;
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`BatchNorm2d: expected 4D input (got ${x.ndim}D input)`);
    if (this.folded) {
      if (this.training)
        throw new Error(
          'BatchNorm2d: this layer is folded into the convolution before it (foldBatchNorm), which is for inference only; train a model that was not folded',
        );
      return x;
    }
    let momentum = this.momentum ?? 0;
    if (this.training && this.num_batches_tracked) {
      noGrad(() => this.num_batches_tracked!.add_(1));
      if (this.momentum === null) momentum = 1 / this.num_batches_tracked.item();
    }
    if (this.training && this.syncGroup && this.syncGroup.size > 1)
      return syncBatchNorm(
        this.syncGroup,
        x,
        this.running_mean,
        this.running_var,
        this.weight,
        this.bias,
        momentum,
        this.eps,
      );
    // In training, or without running statistics, normalise with the batch's own statistics.
    const useBatchStats = this.training || this.running_mean === null;
    return F.batchNorm(
      x,
      this.running_mean,
      this.running_var,
      this.weight,
      this.bias,
      useBatchStats,
      momentum,
      this.eps,
    );
  }
}

export class ReLU extends Module implements Layer {
  constructor(readonly inplace = false) {
    super();
  }
  /** the conv before it applies it (Conv2d.epilogue, src/inference/fuse.ts): pass through */
  absorbed = false;
  forward(x: Tensor): Tensor {
    if (this.absorbed) return x;
    return this.inplace ? F.relu_(x) : F.relu(x);
  }
}

export class ReLU6 extends Module implements Layer {
  /** the conv before it applies it (Conv2d.epilogue, src/inference/fuse.ts): pass through */
  absorbed = false;
  forward(x: Tensor): Tensor {
    if (this.absorbed) return x;
    return F.relu6(x);
  }
}

export class Hardswish extends Module implements Layer {
  /** the conv before it applies it (Conv2d.epilogue, src/inference/fuse.ts): pass through */
  absorbed = false;
  forward(x: Tensor): Tensor {
    if (this.absorbed) return x;
    return F.hardswish(x);
  }
}

export class Hardsigmoid extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.hardsigmoid(x);
  }
}

export class Sigmoid extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}

export class Identity extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Dropout extends Module implements Layer {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

/** Zeroes whole channels (nn.Dropout2d; mmseg's heads use it before conv_seg). */
export class Dropout2d extends Module implements Layer {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout2d(x, this.p, this.training);
  }
}

export class MaxPool2d extends Module implements Layer {
  constructor(
    readonly kernelSize: Pair,
    readonly o: F.PoolOptions & { dilation?: Pair } = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.o);
  }
}

export class AvgPool2d extends Module implements Layer {
  constructor(
    readonly kernelSize: Pair,
    readonly o: F.PoolOptions & { countIncludePad?: boolean } = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.o);
  }
}

export class AdaptiveAvgPool2d extends Module implements Layer {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}
