// Making tensors: from JS data, filled, ranges and random, on a given device.
import { native } from './native.js';
import { Tensor, callT, op, type Device, type Shape } from './tensor.js';
import { type DType, dtypeOfArray, elementSize } from './dtype.js';
import { checkShape } from './shape.js';
import { checkAllocation } from './budget.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

type NestedNumbers = number | boolean | NestedNumbers[];

/**
 * A tensor from a typed array (with its shape) or from nested JS arrays of numbers.
 * float16/bfloat16 data is given as raw 16-bit patterns in a Uint16Array.
 */
export function tensor(data: ArrayBufferView | NestedNumbers, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const dtype = opts.dtype ?? dtypeOfArray(data);
    const count = data.byteLength / elementSize(dtype);
    const shape = opts.shape ?? [count];
    checkShape(shape, 'tensor()');
    t = new Tensor(native.fromBuffer(data, dtype, shape, opts.device));
  } else {
    const shape: number[] = [];
    let probe: NestedNumbers = data;
    while (Array.isArray(probe)) {
      shape.push(probe.length);
      probe = probe[0];
    }
    const flatData: (number | boolean)[] = Array.isArray(data)
      ? ((data as unknown[]).flat(Infinity as 1) as (number | boolean)[])
      : [data];
    const expected = shape.reduce((a, b) => a * b, 1);
    if (flatData.length !== expected)
      throw new RangeError(
        `tensor(): ragged nested array; expected ${expected} elements for shape [${shape}], got ${flatData.length}`,
      );
    // Number() would turn 'a' into NaN and undefined into NaN: only numbers and booleans are data.
    for (let i = 0; i < flatData.length; i++) {
      const x = flatData[i] as unknown;
      if (typeof x !== 'number' && typeof x !== 'boolean') {
        throw new TypeError(
          `tensor(): element ${i} is ${x === null ? 'null' : typeof x === 'string' ? `the string ${JSON.stringify(x)}` : `a ${typeof x}`}; expected numbers or booleans`,
        );
      }
    }
    if (opts.shape) checkShape(opts.shape, 'tensor()');
    const isBool = typeof probe === 'boolean';
    const dtype = opts.dtype ?? (isBool ? 'bool' : 'float32');
    const f64 = Float64Array.from(flatData, Number);
    const base = new Tensor(native.fromBuffer(f64, 'float64', opts.shape ?? shape));
    t = base.to(dtype);
    base.dispose();
    if (opts.device && opts.device !== 'cpu') {
      const moved = t.to(opts.device);
      t.dispose();
      t = moved;
    }
  }
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** A 0-d tensor. */
export function scalarTensor(v: number, dtype: DType = 'float32'): Tensor {
  return callT(op('aten::scalar_tensor'), v, dtype);
}

/** The checks every creation function makes: sizes are non-negative integers, the bytes fit the budget. */
function checked(what: string, shape: Shape, dtype: DType): Shape {
  checkShape(shape, what);
  checkAllocation(shape, dtype, what);
  return shape;
}

function filled(name: string, shape: Shape, opts: TensorOptions): Tensor {
  checked(name, shape, opts.dtype ?? 'float32');
  const t = callT(op(`aten::${name}`, ''), [...shape], opts.dtype ?? 'float32', null, opts.device ?? null, null);
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return filled('zeros', shape, opts);
}
export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return filled('ones', shape, opts);
}
export function empty(shape: Shape, opts: TensorOptions = {}): Tensor {
  checked('empty', shape, opts.dtype ?? 'float32');
  return callT(
    op('aten::empty', 'memory_format'),
    [...shape],
    opts.dtype ?? 'float32',
    null,
    opts.device ?? null,
    null,
    null,
  );
}
/** Standard normal samples from the global generator (torch.manual_seed makes them repeatable). */
export function randn(shape: Shape, opts: TensorOptions = {}): Tensor {
  return filled('randn', shape, opts);
}
/** Uniform [0, 1) samples. */
export function rand(shape: Shape, opts: TensorOptions = {}): Tensor {
  return filled('rand', shape, opts);
}
export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  checked('full', shape, opts.dtype ?? 'float32');
  return callT(op('aten::full'), [...shape], value, opts.dtype ?? 'float32', null, opts.device ?? null, null);
}
/** Integers in [low, high). */
export function randint(low: number, high: number, shape: Shape, opts: TensorOptions = {}): Tensor {
  checked('randint', shape, opts.dtype ?? 'int64');
  return callT(
    op('aten::randint', 'low'),
    low,
    high,
    [...shape],
    opts.dtype ?? 'int64',
    null,
    opts.device ?? null,
    null,
  );
}
/** Like torch.randperm: a random permutation of 0..n-1 (int64). */
export function randperm(n: number): Tensor {
  checked('randperm', [n], 'int64');
  return callT(op('aten::randperm'), n, 'int64', null, null, null);
}
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const dtype = opts.dtype ?? (allInt ? 'int64' : 'float32');
  // LibTorch rejects non-finite bounds and a zero or wrong-signed step itself; the length is checked here.
  const length = Math.ceil((end - start) / step);
  if (Number.isFinite(length) && length > 0) checkAllocation([length], dtype, 'arange');
  return callT(op('aten::arange', 'start_step'), start, end, step, dtype, null, opts.device ?? null, null);
}
export function zerosLike(t: Tensor): Tensor {
  return callT(op('aten::zeros_like'), t.handle, null, null, null, null, null);
}
export function onesLike(t: Tensor): Tensor {
  return callT(op('aten::ones_like'), t.handle, null, null, null, null, null);
}
export function emptyLike(t: Tensor, memoryFormat?: 'contiguous' | 'channels_last' | 'preserve'): Tensor {
  return callT(op('aten::empty_like'), t.handle, null, null, null, null, memoryFormat ?? null);
}
