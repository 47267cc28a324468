// The ONNX graph an export builds, before serialisation: nodes in execution order, initializers
// (weights and constants) with their data, and one place that hands out unique value names.
// Plain data: onnx-model.ts turns it into a ModelProto, fold-bn.ts rewrites it.

/** ONNX TensorProto.DataType codes used here. */
export const ELEM = { float: 1, int64: 7, float16: 10, double: 11 } as const;

export type Attr = { int: number } | { float: number } | { ints: readonly number[] } | { string: string };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

export interface Initializer {
  name: string;
  dims: number[];
  /** float data is stored in the model's precision (fp16 models convert it when written) */
  data: Float32Array | Float64Array | BigInt64Array;
  /** false for data whose type the operator fixes (Resize scales, shape arithmetic) */
  followsPrecision: boolean;
}

export class OnnxGraph {
  readonly nodes: OnnxNode[] = [];
  readonly initializers = new Map<string, Initializer>();
  #counter = 0;
  #taken = new Set<string>();

  /** A value name not used yet: prefix_N. */
  fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.#counter++}`;
    while (this.#taken.has(name));
    this.#taken.add(name);
    return name;
  }

  /** Reserves a given name (a state_dict key, a graph input); refuses a second use. */
  claim(name: string): string {
    if (this.#taken.has(name)) throw new Error(`ONNX export: the value name "${name}" is used twice`);
    this.#taken.add(name);
    return name;
  }

  /** Appends a node with one output (a fresh name) and returns that output. */
  add(op: string, inputs: string[], attrs: Record<string, Attr> = {}, output?: string): string {
    const out = output ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [out], attrs });
    return out;
  }

  initializer(init: Omit<Initializer, 'name'>, name?: string): string {
    const n = name === undefined ? this.fresh('const') : this.claim(name);
    this.initializers.set(n, { name: n, ...init });
    return n;
  }

  /** A float constant that follows the model's precision (scalars: dims []). */
  floats(values: readonly number[], dims: number[] = [values.length]): string {
    return this.initializer({ dims, data: Float32Array.from(values), followsPrecision: true });
  }

  int64s(values: readonly number[]): string {
    return this.initializer({
      dims: [values.length],
      data: BigInt64Array.from(values, (v) => BigInt(v)),
      followsPrecision: false,
    });
  }

  /** A float32 constant whatever the precision (Resize's scales). */
  float32s(values: readonly number[]): string {
    return this.initializer({ dims: [values.length], data: Float32Array.from(values), followsPrecision: false });
  }

  doubles(values: readonly number[]): string {
    return this.initializer({ dims: [values.length], data: Float64Array.from(values), followsPrecision: false });
  }
}
