// Records one forward pass of a model as an ONNX graph: every ATen call the forward makes
// (src/torch/record.ts) is mapped to ONNX nodes as it happens (onnx-ops.ts), while the tensors
// it reads are still alive. Tensors are tracked by handle: each handle points at a cell holding
// the ONNX value it carries now (an in-place operator puts a new value in the cell; handles on
// the same at::Tensor share one cell). Parameters and buffers become initializers named by their
// state_dict keys; any other tensor the forward reads but did not make is a constant.
import * as torch from '../torch/index.js';
import type { Handle } from '../torch/native.js';
import { handleData, handleShape, recordOps, sameTensor, withoutRecording } from '../torch/record.js';
import type { Tensor } from '../torch/index.js';
import { OnnxGraph } from './onnx-graph.js';
import { mapCall, UnsupportedOperatorError, type MapContext } from './onnx-ops.js';
import { MSC_SCALES, mscSide } from '../models/segmentors/msc.js';

/** Where a dynamic Resize gets one target size from, at run time. */
export type SizeSource =
  /** the spatial size of a value the graph computed before (or of the graph input) */
  | { kind: 'value'; value: string }
  /** DeepLab-v2 MSC's scaled input side, floor(side * scale) + 1 (models/segmentors/msc.ts), per side of the input */
  | { kind: 'msc'; scale: number };

/** A Resize whose sizes input is computed from shapes once the candidates are known. */
export interface PendingResize {
  /** the Resize's `sizes` input name, still to be produced */
  sizes: string;
  /** the resized tensor's value (batch and channels come from it) */
  x: string;
  /** the sources that give the traced size, best first */
  candidates: SizeSource[];
}

export interface TraceOptions {
  /** sizes computed from run-time shapes (true) or constants (false) */
  dynamic: boolean;
  /** copy weight data into the graph (false for a trace that only checks shapes) */
  withData: boolean;
  /** the graph input's name */
  inputName: string;
}

export interface Trace {
  graph: OnnxGraph;
  /** the value the graph input feeds into (the input itself) */
  input: string;
  output: string;
  outputShape: number[];
  /** every value's shape, as traced */
  shapes: Map<string, number[]>;
  pendingResizes: PendingResize[];
  /** operators seen, by name: for the report */
  operators: Map<string, number>;
}

interface Cell {
  value: string;
}

/**
 * Runs forward(x) with every operator recorded into an ONNX graph. `forward` returns the main
 * logits; the result is kept out of any scope (the caller disposes it).
 */
export function traceForward(
  model: torch.nn.Module,
  forward: (x: Tensor) => Tensor,
  x: Tensor,
  o: TraceOptions,
): { trace: Trace; logits: Tensor } {
  const graph = new OnnxGraph();
  const cells = new Map<Handle, Cell>();
  const shapes = new Map<string, number[]>();
  const pendingResizes: PendingResize[] = [];
  const operators = new Map<string, number>();
  const params = new Map<Handle, [string, Tensor]>();
  for (const [key, t] of model.stateDict()) if (!params.has(t.handle)) params.set(t.handle, [key, t]);
  const input = graph.claim(o.inputName);
  shapes.set(input, x.shape);
  const inputHandle = x.handle;
  cells.set(inputHandle, { value: input });

  const weight = (key: string, t: Tensor): string => {
    const data = o.withData
      ? withoutRecording(() =>
          torch.scope(() => {
            if (!t.dtype.startsWith('float') && t.dtype !== 'bfloat16')
              throw new Error(`ONNX export: ${key} is ${t.dtype}; only floating-point weights are exported`);
            return t.dtype === 'float32' ? (t.data() as Float32Array) : (t.to('float32').data() as Float32Array);
          }),
        )
      : new Float32Array(0);
    return graph.initializer({ dims: t.shape, data, followsPrecision: true }, key);
  };
  const constant = (h: Handle): string => {
    const { dtype, shape, data } = withoutRecording(() => handleData(h));
    if (dtype === 'float32' || dtype === 'float64')
      return graph.initializer({ dims: shape, data: Float32Array.from(data as Float32Array), followsPrecision: true });
    if (dtype === 'int64') return graph.initializer({ dims: shape, data: data as BigInt64Array, followsPrecision: false });
    throw new Error(`ONNX export: the forward reads a ${dtype} constant tensor of shape [${shape}]; not supported`);
  };
  const value = (h: Handle): string => {
    let cell = cells.get(h);
    if (!cell) {
      const p = params.get(h);
      const v = p ? weight(p[0], p[1]) : constant(h);
      shapes.set(v, handleShape(h));
      cells.set(h, (cell = { value: v }));
    }
    return cell.value;
  };
  const sizeCandidates = (size: [number, number]): SizeSource[] => {
    const same = (s: number[] | undefined) => s !== undefined && s.length === 4 && s[2] === size[0] && s[3] === size[1];
    const found: SizeSource[] = [];
    // Oldest first, the graph input before all: a later value of the same size is more often a
    // coincidence (DeepLab-v2 MSC's half-scale branch reaches the full branch's 1/8 size at its
    // own 1/4, at most input sizes); the traces at other sizes sort out the rest.
    for (const [v, s] of shapes) if (same(s) && !graph.initializers.has(v)) found.push({ kind: 'value', value: v });
    const [h, w] = x.shape.slice(2);
    for (const scale of MSC_SCALES) if (mscSide(h, scale) === size[0] && mscSide(w, scale) === size[1]) found.push({ kind: 'msc', scale });
    return found;
  };

  const ctx: MapContext = {
    graph,
    value,
    shape: (h) => handleShape(h),
    define(result, v) {
      cells.set(result, { value: v });
      if (!shapes.has(v)) shapes.set(v, handleShape(result));
    },
    update(h, v) {
      value(h); // a tensor first seen by an in-place op is a constant or a weight
      cells.get(h)!.value = v;
      shapes.set(v, handleShape(h));
    },
    alias(result, of) {
      const v = value(of);
      if (sameTensor(result, of)) cells.set(result, cells.get(of)!);
      else cells.set(result, { value: v });
    },
    resizeSizes(xh, size) {
      const xShape = handleShape(xh);
      if (!o.dynamic) return graph.int64s([xShape[0], xShape[1], size[0], size[1]]);
      const sizes = graph.fresh('sizes');
      pendingResizes.push({ sizes, x: value(xh), candidates: sizeCandidates(size) });
      return sizes;
    },
  };

  let logits: Tensor | undefined;
  torch.noGrad(() =>
    torch.F.withPlainConvolutions(() => {
      logits = torch.scope(() =>
        recordOps(
          {
            call(c) {
              const key = c.overload ? `${c.name}.${c.overload}` : c.name;
              operators.set(key, (operators.get(key) ?? 0) + 1);
              mapCall(ctx, c);
            },
          },
          () => forward(x),
        ),
      );
    }),
  );
  const out = logits!;
  const cell = cells.get(out.handle);
  if (!cell) {
    out.dispose();
    throw new Error('ONNX export: the forward returned a tensor it did not compute (the input or a weight)');
  }
  return {
    trace: { graph, input, output: cell.value, outputShape: out.shape, shapes, pendingResizes, operators },
    logits: out,
  };
}

export { UnsupportedOperatorError };
