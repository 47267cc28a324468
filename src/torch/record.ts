// Records the operators one piece of code runs: the raw material of a trace (src/export/trace.ts).
// Every operator goes through the addon's few entry points (the boxed `call`/`callVoid` and the
// unboxed add/sub/mul/div), so while `recordOps` runs, those
// entry points are wrapped on the binding object and put back afterwards: nothing is checked on
// the hot path when no one records.
import { native, type Handle, type NativeBinding } from './native.js';
import { opName } from './tensor.js';
import { typedArrayFor, type DType, type TypedArray } from './dtype.js';

/** One operator call as the addon saw it. */
export interface RecordedCall {
  /** the ATen operator, e.g. "aten::conv2d" ("aten::add_" for an in-place add) */
  name: string;
  overload: string;
  /** the arguments as passed: tensor handles are numbers, like integer arguments (the schema tells them apart) */
  args: unknown[];
  /** what it returned: a handle, a list of handles, a number or boolean; undefined for in-place calls */
  result: unknown;
}

export interface Recorder {
  call(c: RecordedCall): void;
}

const BINARY = ['aten::add', 'aten::sub', 'aten::mul', 'aten::div'];

let recording = false;
let suspended = false;

/** Runs fn without reporting its operators (a recorder reading a weight, say). */
export function withoutRecording<T>(fn: () => T): T {
  const prev = suspended;
  suspended = true;
  try {
    return fn();
  } finally {
    suspended = prev;
  }
}

/** The shape of the tensor behind a handle (a recorder's view of a result). */
export function handleShape(h: Handle): number[] {
  return native.shape(h);
}

/** The dtype and row-major elements of the tensor behind a handle (a constant the trace met). */
export function handleData(h: Handle): { dtype: DType; shape: number[]; data: TypedArray } {
  const [dtype, shape] = native.meta(h);
  return { dtype: dtype as DType, shape, data: typedArrayFor(dtype as DType, native.toBuffer(h)) };
}

/** Whether two handles are the same at::Tensor (an operator that returned its input). */
export function sameTensor(a: Handle, b: Handle): boolean {
  return native.sameTensor(a, b);
}

/**
 * Runs body with every operator call reported to the recorder (after it ran, so results are
 * known). Not reentrant: one recording at a time per thread.
 */
export function recordOps<T>(rec: Recorder, body: () => T): T {
  if (recording) throw new Error('recordOps: already recording');
  // The addon's own functions (they do not use `this`), put back as they were afterwards.
  const saved = {
    call: Reflect.get<NativeBinding, 'call'>(native, 'call'),
    callVoid: Reflect.get<NativeBinding, 'callVoid'>(native, 'callVoid'),
    binary: Reflect.get<NativeBinding, 'binary'>(native, 'binary'),
    binaryScalar: Reflect.get<NativeBinding, 'binaryScalar'>(native, 'binaryScalar'),
  };
  const nameOf = (id: number): [string, string] => opName(id) ?? [`<operator id ${id}>`, ''];
  const b: NativeBinding = native;
  recording = true;
  try {
    b.call = (id, ...args) => {
      const result: unknown = saved.call.call(native, id, ...args);
      const [name, overload] = nameOf(id);
      if (!suspended) rec.call({ name, overload, args, result });
      return result;
    };
    b.callVoid = (id, ...args) => {
      saved.callVoid.call(native, id, ...args);
      const [name, overload] = nameOf(id);
      if (!suspended) rec.call({ name, overload, args, result: undefined });
    };
    // add/sub/mul/div with a tensor (a handle) or a scalar other: one wrapper, the overload says which.
    const recordBinary =
      (run: NativeBinding['binary'] | NativeBinding['binaryScalar'], overload: 'Tensor' | 'Scalar') =>
      (code: number, a: Handle, o: number, alpha: number, inplace: boolean): Handle => {
        const result = run.call(native, code, a, o, alpha, inplace);
        if (!suspended)
          rec.call({
            name: BINARY[code] + (inplace ? '_' : ''),
            overload,
            args: [a, o, alpha],
            result: inplace ? undefined : result,
          });
        return result;
      };
    b.binary = recordBinary(saved.binary, 'Tensor');
    b.binaryScalar = recordBinary(saved.binaryScalar, 'Scalar');
    return body();
  } finally {
    Object.assign(b, saved);
    recording = false;
  }
}
