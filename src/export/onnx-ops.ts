// ATen operator -> ONNX nodes (opset 17), one case per operator the presets' eval forwards run,
// following torch.onnx's symbolic functions (torch/onnx/symbolic_opset9.py and later): the same
// Conv attributes, Resize modes, HardSigmoid alpha. Argument lists are the operators' schemas as
// src/torch passes them (native/src/ops.cc converts them by schema); a tensor argument is a handle.
import type { Handle } from '../torch/native.js';
import type { RecordedCall } from '../torch/record.js';
import type { Attr, OnnxGraph } from './onnx-graph.js';

/** What a mapping needs from the trace (trace.ts). */
export interface MapContext {
  graph: OnnxGraph;
  /** the ONNX value a tensor argument holds now (a weight becomes its initializer on first use) */
  value(h: Handle): string;
  shape(h: Handle): number[];
  /** the operator's result tensor holds this value */
  define(result: Handle, value: string): void;
  /** an in-place operator: the tensor now holds this value */
  update(h: Handle, value: string): void;
  /** the result is its input (eval dropout, contiguous on a contiguous tensor, ...) */
  alias(result: Handle, of: Handle): void;
  /** Resize's `sizes` input for resizing x to [h, w]: constant, or computed from shapes when dynamic */
  resizeSizes(x: Handle, size: [number, number]): string;
}

export class UnsupportedOperatorError extends Error {}

const num = (v: unknown): number => v as number;
const ints = (v: unknown): number[] => v as number[];
const pair = (v: unknown): [number, number] => {
  const a = v as number[];
  return a.length === 1 ? [a[0], a[0]] : [a[0], a[1]];
};

const ELEMENTWISE: Record<string, string> = {
  'aten::add': 'Add',
  'aten::sub': 'Sub',
  'aten::mul': 'Mul',
  'aten::div': 'Div',
};

/** Adds the nodes for one recorded call. Throws UnsupportedOperatorError for an operator without a mapping. */
export function mapCall(ctx: MapContext, c: RecordedCall): void {
  const g = ctx.graph;
  const a = c.args;
  const result = c.result as Handle;
  const unary = (op: string, attrs = {}) => ctx.define(result, g.add(op, [ctx.value(a[0] as Handle)], attrs));
  const inplace = (op: string, attrs = {}) =>
    ctx.update(a[0] as Handle, g.add(op, [ctx.value(a[0] as Handle)], attrs));
  const refuse = (why: string): never => {
    throw new UnsupportedOperatorError(`${c.name}${c.overload ? `.${c.overload}` : ''} ${why}`);
  };

  switch (c.name) {
    case 'aten::conv2d':
    case 'deeplab::depthwise_conv2d_nhwc': {
      // conv2d(input, weight, bias?, stride, padding, dilation, groups); the depthwise kernel has
      // the same arguments without groups (one group per channel).
      const [x, w, bias, stride, padding, dilation] = a as [Handle, Handle, Handle | null, ...unknown[]];
      if (typeof padding === 'string') refuse(`with padding "${padding}" (only explicit padding is exported)`);
      const [ph, pw] = pair(padding);
      const wShape = ctx.shape(w);
      const groups = c.name === 'aten::conv2d' ? num(a[6]) : wShape[0];
      const inputs = [ctx.value(x), ctx.value(w)];
      if (bias !== null && bias !== undefined) inputs.push(ctx.value(bias));
      ctx.define(
        result,
        g.add('Conv', inputs, {
          kernel_shape: { ints: wShape.slice(2) },
          strides: { ints: pair(stride) },
          pads: { ints: [ph, pw, ph, pw] },
          dilations: { ints: pair(dilation) },
          group: { int: groups },
        }),
      );
      return;
    }
    case 'aten::batch_norm': {
      // batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
      const [x, w, b, mean, variance, training, , eps] = a as [Handle, Handle | null, Handle | null, Handle | null, Handle | null, boolean, number, number];
      if (training) refuse('in training mode (export an eval model)');
      if (mean === null || variance === null) refuse('without running statistics');
      const c = ctx.shape(x)[1];
      const scale = w === null ? g.floats(new Array<number>(c).fill(1)) : ctx.value(w);
      const shift = b === null ? g.floats(new Array<number>(c).fill(0)) : ctx.value(b);
      ctx.define(
        result,
        g.add('BatchNormalization', [ctx.value(x), scale, shift, ctx.value(mean!), ctx.value(variance!)], {
          epsilon: { float: eps },
        }),
      );
      return;
    }
    case 'aten::relu':
      return unary('Relu');
    case 'aten::relu_':
      return inplace('Relu');
    case 'aten::sigmoid':
      return unary('Sigmoid');
    case 'aten::tanh':
      return unary('Tanh');
    case 'aten::hardswish':
      return unary('HardSwish');
    case 'aten::hardswish_':
      return inplace('HardSwish');
    case 'aten::hardsigmoid':
      // PyTorch's hardsigmoid is relu6(x + 3) / 6; ONNX's defaults are alpha 0.2, beta 0.5.
      return unary('HardSigmoid', { alpha: { float: 1 / 6 }, beta: { float: 0.5 } });
    case 'aten::hardsigmoid_':
      return inplace('HardSigmoid', { alpha: { float: 1 / 6 }, beta: { float: 0.5 } });
    case 'aten::hardtanh':
    case 'aten::hardtanh_': {
      // hardtanh(x, min, max): ReLU6 is hardtanh(0, 6).
      const clip = g.add('Clip', [ctx.value(a[0] as Handle), g.floats([num(a[1])], []), g.floats([num(a[2])], [])]);
      if (c.name === 'aten::hardtanh') ctx.define(result, clip);
      else ctx.update(a[0] as Handle, clip);
      return;
    }
    case 'aten::add':
    case 'aten::sub':
    case 'aten::mul':
    case 'aten::div':
    case 'aten::add_':
    case 'aten::sub_':
    case 'aten::mul_':
    case 'aten::div_': {
      // (self, other, alpha): other is a tensor (overload "Tensor") or a number ("Scalar");
      // add/sub compute self + alpha * other.
      const base = c.name.replace(/_$/, '');
      const other = c.overload === 'Scalar' ? g.floats([num(a[1])], []) : ctx.value(a[1] as Handle);
      const alpha = num(a[2]);
      const scaled = alpha === 1 || base === 'aten::mul' || base === 'aten::div' ? other : g.add('Mul', [other, g.floats([alpha], [])]);
      const out = g.add(ELEMENTWISE[base], [ctx.value(a[0] as Handle), scaled]);
      if (c.name.endsWith('_')) ctx.update(a[0] as Handle, out);
      else ctx.define(result, out);
      return;
    }
    case 'aten::maximum':
      return ctx.define(result, g.add('Max', [ctx.value(a[0] as Handle), ctx.value(a[1] as Handle)]));
    case 'aten::minimum':
      return ctx.define(result, g.add('Min', [ctx.value(a[0] as Handle), ctx.value(a[1] as Handle)]));
    case 'aten::cat': {
      const list = a[0] as Handle[];
      const rank = ctx.shape(list[0]).length;
      const dim = num(a[1]);
      return ctx.define(result, g.add('Concat', list.map((h) => ctx.value(h)), { axis: { int: dim < 0 ? dim + rank : dim } }));
    }
    case 'aten::max_pool2d': {
      // max_pool2d(x, kernel, stride, padding, dilation, ceil_mode); an empty stride means the kernel.
      const kernel = pair(a[1]);
      const stride = ints(a[2]).length === 0 ? kernel : pair(a[2]);
      const [ph, pw] = pair(a[3]);
      return unary('MaxPool', {
        kernel_shape: { ints: kernel },
        strides: { ints: stride },
        pads: { ints: [ph, pw, ph, pw] },
        dilations: { ints: pair(a[4]) },
        ceil_mode: { int: a[5] ? 1 : 0 },
      });
    }
    case 'aten::avg_pool2d': {
      // avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
      if (a[6] !== null && a[6] !== undefined) refuse('with divisor_override');
      const kernel = pair(a[1]);
      const stride = ints(a[2]).length === 0 ? kernel : pair(a[2]);
      const [ph, pw] = pair(a[3]);
      return unary('AveragePool', {
        kernel_shape: { ints: kernel },
        strides: { ints: stride },
        pads: { ints: [ph, pw, ph, pw] },
        ceil_mode: { int: a[4] ? 1 : 0 },
        count_include_pad: { int: a[5] ? 1 : 0 },
      });
    }
    case 'aten::adaptive_avg_pool2d': {
      const [oh, ow] = pair(a[1]);
      if (oh !== 1 || ow !== 1) refuse(`to ${oh}x${ow} (only the global pool, output 1x1, is exported)`);
      return unary('GlobalAveragePool');
    }
    case 'aten::mean': {
      // mean.dim(x, dims, keepdim, dtype)
      if (c.overload !== 'dim') refuse('over all elements');
      const rank = ctx.shape(a[0] as Handle).length;
      return unary('ReduceMean', {
        axes: { ints: ints(a[1]).map((d) => (d < 0 ? d + rank : d)) },
        keepdims: { int: a[2] ? 1 : 0 },
      });
    }
    case 'aten::upsample_bilinear2d':
    case 'aten::upsample_nearest2d': {
      // upsample_bilinear2d.vec(x, size?, align_corners, scales?) / upsample_nearest2d.vec(x, size?, scales?)
      if (c.overload !== 'vec') refuse('(only the .vec overload F.interpolate calls is exported)');
      const x = a[0] as Handle;
      const bilinear = c.name === 'aten::upsample_bilinear2d';
      const size = a[1] as number[] | null;
      const scales = (bilinear ? a[3] : a[2]) as number[] | null;
      // torch.onnx: align_corners -> "align_corners", else "pytorch_half_pixel"; nearest -> "asymmetric", floor.
      const attrs: Record<string, Attr> = bilinear
        ? { mode: { string: 'linear' }, coordinate_transformation_mode: { string: a[2] ? 'align_corners' : 'pytorch_half_pixel' } }
        : { mode: { string: 'nearest' }, coordinate_transformation_mode: { string: 'asymmetric' }, nearest_mode: { string: 'floor' } };
      // Resize-13: X, roi, scales, sizes; unused optional inputs are empty names.
      const inputs =
        size !== null
          ? [ctx.value(x), '', '', ctx.resizeSizes(x, pair(size))]
          : [ctx.value(x), '', g.float32s([1, 1, ...pair(scales)])];
      return ctx.define(result, g.add('Resize', inputs, attrs));
    }
    case 'aten::constant_pad_nd': {
      // constant_pad_nd(x, pad, value): pad runs from the last dim backwards in (begin, end) pairs;
      // ONNX wants all begins then all ends, first dim first.
      const pad = ints(a[1]);
      const rank = ctx.shape(a[0] as Handle).length;
      const begins = new Array<number>(rank).fill(0),
        ends = new Array<number>(rank).fill(0);
      for (let i = 0; i < pad.length / 2; i++) {
        begins[rank - 1 - i] = pad[2 * i];
        ends[rank - 1 - i] = pad[2 * i + 1];
      }
      return ctx.define(
        result,
        g.add('Pad', [ctx.value(a[0] as Handle), g.int64s([...begins, ...ends]), g.floats([num(a[2])], [])], {
          mode: { string: 'constant' },
        }),
      );
    }
    case 'aten::dropout':
    case 'aten::feature_dropout':
      // (x, p, train): identity in eval mode.
      if (a[2]) refuse('in training mode (export an eval model)');
      return ctx.alias(result, a[0] as Handle);
    case 'aten::contiguous':
    case 'aten::clone':
    case 'aten::detach':
      // Layout and copies do not exist in ONNX: the value is the same.
      return ctx.alias(result, a[0] as Handle);
    case 'aten::to':
      if (c.overload === 'dtype' && a[1] !== 'float32')
        refuse(`to ${String(a[1])} (export a float32 model; --precision fp16 converts the graph)`);
      return ctx.alias(result, a[0] as Handle);
    default:
      refuse('has no ONNX mapping in src/export/onnx-ops.ts');
  }
}
