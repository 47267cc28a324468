// torch.nn.functional and the tensor-combining functions (cat, stack, where, pad), each mapped
// onto the ATen operator PyTorch itself calls, so numerics and gradients are PyTorch's.
import { native } from './native.js';
import { Tensor, callT, op } from './tensor.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  return callT(
    op('aten::cat'),
    ts.map((t) => t.handle),
    dim,
  );
}
export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  return callT(
    op('aten::stack'),
    ts.map((t) => t.handle),
    dim,
  );
}
/** cond ? a : b, element-wise with broadcasting; a or b may be numbers. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === 'number' && typeof b === 'number') return callT(op('aten::where', 'Scalar'), cond.handle, a, b);
  if (typeof a === 'number') return callT(op('aten::where', 'ScalarSelf'), cond.handle, a, (b as Tensor).handle);
  if (typeof b === 'number') return callT(op('aten::where', 'ScalarOther'), cond.handle, a.handle, b);
  return callT(op('aten::where', 'self'), cond.handle, a.handle, b.handle);
}

/** F.pad: pad is (left, right, top, bottom, ...) from the last dimension backwards. */
export function pad(
  x: Tensor,
  padding: readonly number[],
  mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value = 0,
): Tensor {
  if (mode === 'constant') return callT(op('aten::constant_pad_nd'), x.handle, [...padding], value);
  const n = padding.length / 2;
  const name = `aten::${mode === 'reflect' ? 'reflection' : 'replication'}_pad${n}d`;
  return callT(op(name), x.handle, [...padding]);
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

// Off while an exporter records a forward (src/export): the graph must hold the convolution as
// the model wrote it, for every input size, not the shortcut that suits the size traced.
let shortcuts = true;

/**
 * Runs fn with every F.conv2d going to aten::conv2d as written: no depthwise kernel, no taps
 * narrowed away for this input size.
 */
export function withPlainConvolutions<T>(fn: () => T): T {
  const prev = shortcuts;
  shortcuts = false;
  try {
    return fn();
  } finally {
    shortcuts = prev;
  }
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  const stride = pair(o.stride ?? 1),
    padding = pair(o.padding ?? 0),
    dilation = pair(o.dilation ?? 1),
    groups = o.groups ?? 1;
  if (shortcuts && Math.max(...dilation) > 1) {
    if (groups > 1 && Math.max(...dilation) >= 8 && useOwnDepthwise(x, weight, bias, groups)) {
      return callT(
        op('deeplab::depthwise_conv2d_nhwc'),
        x.handle,
        weight.handle,
        bias?.handle ?? null,
        stride,
        padding,
        dilation,
      );
    }
    const trimmed = withoutPaddingTaps(x, weight, stride, padding, dilation);
    if (trimmed) {
      using w = trimmed.weight;
      return callT(
        op('aten::conv2d'),
        x.handle,
        w.handle,
        bias?.handle ?? null,
        stride,
        trimmed.padding,
        dilation,
        groups,
      );
    }
  }
  return callT(op('aten::conv2d'), x.handle, weight.handle, bias?.handle ?? null, stride, padding, dilation, groups);
}

/**
 * Whether conv2d would take one of its own paths for this input (our depthwise kernel, or a
 * kernel trimmed of its padding-only taps) rather than LibTorch's plain conv: a prepacked
 * convolution (Conv2d.packed) must then step aside, or it would lose what those paths gain.
 */
export function convTakesOwnPath(x: Tensor, weight: Tensor, o: Conv2dOptions = {}): boolean {
  const dilation = pair(o.dilation ?? 1);
  if (Math.max(...dilation) <= 1) return false;
  if ((o.groups ?? 1) > 1 && Math.max(...dilation) >= 8) return true;
  const [kh, kw] = weight.shape.slice(2),
    [h, w] = x.shape.slice(2);
  const stride = pair(o.stride ?? 1),
    padding = pair(o.padding ?? 0);
  if (stride[0] !== 1 || stride[1] !== 1 || x.ndim !== 4) return false;
  const trims = (k: number, size: number, pad: number, d: number) =>
    k % 2 === 1 && pad === (d * (k - 1)) / 2 && 2 * Math.floor((size - 1) / d) + 1 < k;
  return trims(kh, h, padding[0], dilation[0]) || trims(kw, w, padding[1], dilation[1]);
}

/**
 * A "same" atrous convolution (stride 1, odd kernel, padding = dilation x half the kernel) whose
 * dilation reaches past the input keeps taps that only ever read padding: with rate 36 on a 32x32
 * map (torchvision's MobileNetV3 ASPP at 512x512) eight of nine taps multiply zeros. Returns the
 * kernel narrowed to the taps that can reach the input (a 1x1 or 1xk / kx1 convolution) with the
 * padding to match, or null when every tap counts. Exact: only products with padding zeros are
 * dropped, and gradients for the dropped taps are zero either way. oneDNN already skips much of
 * that work; what is left to gain is modest (that branch: 1.5 -> 1.1 ms fp32, PyTorch measured).
 */
function withoutPaddingTaps(
  x: Tensor,
  weight: Tensor,
  stride: [number, number],
  padding: [number, number],
  dilation: [number, number],
): { weight: Tensor; padding: [number, number] } | null {
  if (stride[0] !== 1 || stride[1] !== 1 || x.ndim !== 4 || weight.ndim !== 4) return null;
  const [kh, kw] = weight.shape.slice(2),
    [h, w] = x.shape.slice(2);
  const keep = (k: number, size: number, pad: number, d: number) => {
    if (k % 2 === 0 || pad !== (d * (k - 1)) / 2) return k;
    // taps j with |j - centre| * d < size can land inside the input
    return Math.min(k, 2 * Math.floor((size - 1) / d) + 1);
  };
  const nh = keep(kh, h, padding[0], dilation[0]),
    nw = keep(kw, w, padding[1], dilation[1]);
  if (nh === kh && nw === kw) return null;
  // A copy in the weight's own layout (LibTorch rejects some strided weights, e.g. on empty batches).
  using rows = weight.narrow(2, (kh - nh) / 2, nh);
  using taps = rows.narrow(3, (kw - nw) / 2, nw);
  const trimmed = taps.contiguous(weight.isContiguous() ? 'contiguous' : 'channels_last');
  return { weight: trimmed, padding: [(dilation[0] * (nh - 1)) / 2, (dilation[1] * (nw - 1)) / 2] };
}

/**
 * Whether a dilated (>= 8) depthwise convolution goes to our kernel (native/src/depthwise.cc)
 * instead of oneDNN, which takes a path 8-100x slower for those on channels_last input: a CPU,
 * float32/bf16, channels_last input, one filter per channel, and no gradient wanted (the kernel
 * has no backward). Everything else, NCHW included, stays with aten::conv2d.
 */
function useOwnDepthwise(x: Tensor, weight: Tensor, bias: Tensor | null, groups: number): boolean {
  if (x.ndim !== 4 || weight.ndim !== 4 || groups !== x.size(1) || weight.size(0) !== groups || weight.size(1) !== 1)
    return false;
  if (x.device !== 'cpu' || (x.dtype !== 'float32' && x.dtype !== 'bfloat16') || !x.isContiguous('channels_last'))
    return false;
  if (native.isInferenceMode() || !native.isGradEnabled()) return true;
  return !x.requiresGrad && !weight.requiresGrad && !(bias?.requiresGrad ?? false);
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return callT(op('aten::linear'), x.handle, weight.handle, bias?.handle ?? null);
}

/**
 * F.batch_norm. In training, the running statistics are updated in place (with momentum, as
 * PyTorch: running = (1 - momentum) * running + momentum * batch, unbiased variance).
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null,
  bias: Tensor | null,
  training: boolean,
  momentum = 0.1,
  eps = 1e-5,
): Tensor {
  return callT(
    op('aten::batch_norm'),
    x.handle,
    weight?.handle ?? null,
    bias?.handle ?? null,
    runningMean?.handle ?? null,
    runningVar?.handle ?? null,
    training,
    momentum,
    eps,
    true,
  );
}

export function relu(x: Tensor): Tensor {
  return callT(op('aten::relu'), x.handle);
}
/** In place: for activations nobody else reads (ReLU(inplace=True)). */
export function relu_(x: Tensor): Tensor {
  native.callVoid(op('aten::relu_'), x.handle);
  return x;
}
export function relu6(x: Tensor): Tensor {
  // bfloat16 (training under bf16 autocast): LibTorch 1.13 has no bf16 backward for hardtanh
  // ("hardshrink_backward_cpu" not implemented), so clamp, whose backward it has. The two differ
  // only in the gradient at exactly 0 and 6 (clamp passes it, hardtanh does not).
  if (x.dtype === 'bfloat16') return x.clamp(0, 6);
  return callT(op('aten::hardtanh'), x.handle, 0, 6);
}
export function hardswish(x: Tensor): Tensor {
  return callT(op('aten::hardswish'), x.handle);
}
export function hardsigmoid(x: Tensor): Tensor {
  return callT(op('aten::hardsigmoid'), x.handle);
}
export function sigmoid(x: Tensor): Tensor {
  return callT(op('aten::sigmoid'), x.handle);
}
export function tanh(x: Tensor): Tensor {
  return callT(op('aten::tanh'), x.handle);
}

/** F.dropout: zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  return callT(op('aten::dropout'), x.handle, p, training);
}
/** F.dropout2d: zeroes whole channels. */
export function dropout2d(x: Tensor, p = 0.5, training = true): Tensor {
  return callT(op('aten::feature_dropout'), x.handle, p, training);
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

export function maxPool2d(x: Tensor, kernel: Pair, o: PoolOptions & { dilation?: Pair } = {}): Tensor {
  return callT(
    op('aten::max_pool2d'),
    x.handle,
    pair(kernel),
    pair(o.stride ?? kernel),
    pair(o.padding ?? 0),
    pair(o.dilation ?? 1),
    o.ceilMode ?? false,
  );
}
export function avgPool2d(x: Tensor, kernel: Pair, o: PoolOptions & { countIncludePad?: boolean } = {}): Tensor {
  return callT(
    op('aten::avg_pool2d'),
    x.handle,
    pair(kernel),
    pair(o.stride ?? kernel),
    pair(o.padding ?? 0),
    o.ceilMode ?? false,
    o.countIncludePad ?? true,
    null,
  );
}
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return callT(op('aten::adaptive_avg_pool2d'), x.handle, pair(size));
}

export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number | [number, number];
  mode?: 'bilinear' | 'nearest';
  alignCorners?: boolean;
}

/** F.interpolate for 4-D input: bilinear (align_corners true or false) or nearest. */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  const size = o.size === undefined ? null : pair(o.size);
  const scales =
    o.scaleFactor === undefined
      ? null
      : typeof o.scaleFactor === 'number'
        ? [o.scaleFactor, o.scaleFactor]
        : o.scaleFactor;
  if (size === null && scales === null) throw new TypeError('interpolate: expected size or scaleFactor');
  const mode = o.mode ?? 'nearest';
  if (mode === 'nearest') {
    if (o.alignCorners !== undefined) throw new TypeError('interpolate: alignCorners only applies to bilinear mode');
    return callT(op('aten::upsample_nearest2d', 'vec'), x.handle, size, scales);
  }
  return callT(op('aten::upsample_bilinear2d', 'vec'), x.handle, size, o.alignCorners ?? false, scales);
}

export function softmax(x: Tensor, dim: number): Tensor {
  return callT(op('aten::softmax', 'int'), x.handle, dim, null);
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return callT(op('aten::log_softmax', 'int'), x.handle, dim, null);
}

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}

/**
 * F.cross_entropy over class dim 1 with int64 targets. With reduction 'mean' the sum is divided by
 * the (weighted) count of non-ignored targets, as PyTorch does.
 */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return callT(
    op('aten::cross_entropy_loss'),
    logits.handle,
    target.handle,
    o.weight?.handle ?? null,
    REDUCTION[o.reduction ?? 'mean'],
    o.ignoreIndex ?? -100,
    o.labelSmoothing ?? 0,
  );
}

/** F.nll_loss on log-probabilities, any number of spatial dims. */
export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return callT(
    op('aten::nll_loss_nd'),
    logProbs.handle,
    target.handle,
    o.weight?.handle ?? null,
    REDUCTION[o.reduction ?? 'mean'],
    o.ignoreIndex ?? -100,
  );
}

export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  return callT(op('aten::mse_loss'), a.handle, b.handle, REDUCTION[reduction]);
}
