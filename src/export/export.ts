// `exportOnnx`: a segmentor's eval forward as an ONNX model. One forward is recorded
// (trace.ts), mapped to ONNX operators as it runs (onnx-ops.ts), batch norms are folded into
// their convolutions (fold-bn.ts) and the graph is written with ONNX's own schema
// (onnx-model.ts). A dynamic export records a second forward at another size: the two must run
// the same operators, and each traced resize size must come from the same place in both (a
// tensor whose spatial size it is, or DeepLab-v2 MSC's scaled-input rule), which is then computed
// from run-time shapes in the graph.
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import * as torch from '../torch/index.js';
import type { Tensor } from '../torch/index.js';
import type { Segmentor } from '../models/segmentor.js';
import { loadForInference, type InferenceModelOptions } from '../inference/load.js';
import { ELEM, type OnnxGraph } from './onnx-graph.js';
import { encodeModel, OPSET, type OnnxPrecision } from './onnx-model.js';
import { traceForward, UnsupportedOperatorError, type PendingResize, type SizeSource, type Trace } from './trace.js';
import { foldBatchNorms } from './fold-bn.js';

export const ONNX_PRECISIONS: readonly OnnxPrecision[] = ['fp32', 'fp16'];
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';
/** a static export's default input size */
export const DEFAULT_SIZE: [number, number] = [512, 512];
/**
 * The sizes a dynamic export is traced at: the graph comes from the first, the others check it.
 * Odd and even, multiples of 8 and not of 16 or 32, height != width, so that sizes that differ
 * symbolically (the input, its 1/4, 1/8, 1/16 with ceil or floor rounding, MSC's scaled inputs)
 * do not coincide in all three.
 */
export const DYNAMIC_TRACE_SIZES: readonly [number, number][] = [
  [97, 129],
  [120, 170],
  [136, 200],
];

export interface OnnxExportOptions {
  /** the static input size [height, width] (default 512x512); not with dynamic */
  size?: [number, number];
  /** batch, height and width symbolic */
  dynamic?: boolean;
  /** fp16: weights and activations float16 inside, input and output float32 (Cast at both ends) */
  precision?: OnnxPrecision;
  /** the input a static trace runs on (1 x 3 x H x W; default random normal, the global RNG kept) */
  input?: Tensor;
  /** the model's name in messages and as the graph's name */
  name?: string;
}

export interface OnnxExport {
  /** the .onnx file's bytes */
  bytes: Uint8Array;
  /** our forward's logits on the traced input (the caller disposes them) */
  logits: Tensor;
  /** the traced input (the caller disposes it) */
  input: Tensor;
  /** whether batch, height and width are symbolic */
  dynamic: boolean;
  /** the traced logits' shape */
  logitsShape: number[];
  nodes: number;
  foldedBatchNorms: number;
  /** ONNX operators in the graph, by type */
  onnxOperators: Record<string, number>;
}

export function exportOnnx(model: Segmentor, o: OnnxExportOptions = {}): OnnxExport {
  const precision = o.precision ?? 'fp32';
  if (!ONNX_PRECISIONS.includes(precision))
    throw new RangeError(`Expected precision to be one of ${ONNX_PRECISIONS.join(', ')} but received "${precision}"`);
  if (o.dynamic && o.size) throw new RangeError('ONNX export: give a size or dynamic, not both');
  if (model.training) throw new Error('ONNX export: call model.eval() first (the export records the eval forward)');
  const name = o.name ?? model.constructor.name;
  const size = o.input ? (o.input.shape.slice(2) as [number, number]) : (o.size ?? (o.dynamic ? DYNAMIC_TRACE_SIZES[0] : DEFAULT_SIZE));
  checkSize(size);
  const forward = (x: Tensor) => model.forward(x).out;
  const sampleInput = (s: [number, number]): Tensor => {
    const rng = torch.getRngState();
    try {
      return torch.randn([1, 3, ...s]);
    } finally {
      torch.setRngState(rng);
      rng.dispose();
    }
  };
  const input = o.input ? o.input.clone() : sampleInput(size);
  let logits: Tensor | undefined;
  try {
    const traced = run(name, () => traceForward(model, forward, input, { dynamic: o.dynamic ?? false, withData: true, inputName: INPUT_NAME }));
    logits = traced.logits;
    const trace = traced.trace;
    if (o.dynamic) {
      const others: Trace[] = [];
      for (const s of DYNAMIC_TRACE_SIZES.slice(1)) {
        const other = sampleInput(s);
        try {
          const t = run(name, () => traceForward(model, forward, other, { dynamic: true, withData: false, inputName: INPUT_NAME }));
          t.logits.dispose();
          others.push(t.trace);
        } finally {
          other.dispose();
        }
      }
      resolveSizes(name, trace, others);
    }
    const graph = trace.graph;
    const foldedBatchNorms = foldBatchNorms(graph, [trace.output]);
    const batch = o.dynamic ? 'batch' : 1;
    const [h, w] = o.dynamic ? ['height', 'width'] : size;
    finishEnds(graph, trace, precision);
    const bytes = encodeModel(graph, {
      graphName: name,
      precision,
      producerVersion: '0.1.0',
      docString: `${name}: DeepLab semantic segmentation logits (${precision}, opset ${OPSET}), exported by deeplab`,
      inputs: [{ name: INPUT_NAME, elemType: ELEM.float, shape: [batch, 3, h, w] }],
      outputs: [{ name: OUTPUT_NAME, elemType: ELEM.float, shape: [batch, trace.outputShape[1], h, w] }],
    });
    const onnxOperators: Record<string, number> = {};
    for (const n of graph.nodes) onnxOperators[n.op] = (onnxOperators[n.op] ?? 0) + 1;
    return {
      bytes,
      logits,
      input,
      dynamic: o.dynamic ?? false,
      logitsShape: trace.outputShape,
      nodes: graph.nodes.length,
      foldedBatchNorms,
      onnxOperators,
    };
  } catch (e) {
    logits?.dispose();
    input.dispose();
    throw e;
  }
}

export interface PresetExportOptions extends Omit<OnnxExportOptions, 'name'> {
  /** the checkpoint (as `deeplab predict --weights`); without it the weights are random */
  weights?: string;
  numClasses?: number;
  outputStride?: InferenceModelOptions['outputStride'];
  alignCorners?: boolean;
}

/** A preset with its weights (loaded as predict loads them), exported. */
export function exportPresetOnnx(preset: string, o: PresetExportOptions = {}): OnnxExport {
  const { model } = loadForInference(preset, {
    weights: o.weights,
    numClasses: o.numClasses,
    outputStride: o.outputStride,
    alignCorners: o.alignCorners,
    // the plain eager model: the export folds batch norms on the graph, and channels_last or
    // bf16 are run-time settings of ours, not part of the model
    fast: false,
  });
  try {
    return exportOnnx(model, { ...o, name: preset });
  } finally {
    model.dispose();
  }
}

/** Writes the model to a temporary name beside `file` and renames it: no partial file is left. */
export function writeOnnxFile(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function checkSize([h, w]: [number, number]): void {
  if (!(Number.isInteger(h) && Number.isInteger(w) && h >= 16 && w >= 16 && h <= 8192 && w <= 8192))
    throw new RangeError(`ONNX export: the input size must be two integers from 16 to 8192, got ${h}x${w}`);
}

function run<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UnsupportedOperatorError)
      throw new Error(`ONNX export of ${name}: the forward calls ${e.message}`, { cause: e });
    throw e;
  }
}

const sameSource = (a: SizeSource, b: SizeSource) =>
  a.kind === b.kind && (a.kind === 'value' ? a.value === (b as typeof a).value : a.scale === (b as { scale: number }).scale);

/**
 * Picks each dynamic Resize's size source (the first candidate of the first trace that also
 * holds in the others) and puts the nodes computing it before the Resize.
 */
function resolveSizes(name: string, a: Trace, others: Trace[]): void {
  const ops = (t: Trace) => t.graph.nodes.map((n) => n.op).join(',');
  for (const b of others)
    if (ops(a) !== ops(b) || a.pendingResizes.length !== b.pendingResizes.length)
      throw new Error(
        `ONNX export of ${name}: the forward runs different operators at ${DYNAMIC_TRACE_SIZES.map((s) => s.join('x')).join(', ')}; it cannot be exported with dynamic sizes (export a fixed --size)`,
      );
  const chosen = new Map<string, { pending: PendingResize; source: SizeSource }>();
  a.pendingResizes.forEach((p, i) => {
    const source = p.candidates.find((c) =>
      others.every((b) => b.pendingResizes[i].candidates.some((d) => sameSource(c, d))),
    );
    if (!source)
      throw new Error(
        `ONNX export of ${name}: cannot tell where the size of resize #${i + 1} comes from (no tensor has it at every traced size); export a fixed --size`,
      );
    chosen.set(p.sizes, { pending: p, source });
  });
  const g = a.graph;
  const nodes = g.nodes.splice(0);
  for (const n of nodes) {
    const c = n.op === 'Resize' ? chosen.get(n.inputs[3]) : undefined;
    if (c) emitSizes(g, a.input, c.pending, c.source);
    g.nodes.push(n);
  }
}

/** sizes = concat(shape(x)[0:2], spatial size from the source), int64. */
function emitSizes(g: OnnxGraph, input: string, p: PendingResize, s: SizeSource): void {
  const batchChannels = g.add('Shape', [p.x], { start: { int: 0 }, end: { int: 2 } });
  let spatial: string;
  if (s.kind === 'value') spatial = g.add('Shape', [s.value], { start: { int: 2 }, end: { int: 4 } });
  else {
    // floor(side * scale) + 1, in double (exact for any real side)
    const sides = g.add('Cast', [g.add('Shape', [input], { start: { int: 2 }, end: { int: 4 } })], { to: { int: ELEM.double } });
    const scaled = g.add('Floor', [g.add('Mul', [sides, g.doubles([s.scale])])]);
    spatial = g.add('Add', [g.add('Cast', [scaled], { to: { int: ELEM.int64 } }), g.int64s([1])]);
  }
  g.add('Concat', [batchChannels, spatial], { axis: { int: 0 } }, p.sizes);
}

/** Names the graph's ends "input"/"logits"; fp16 graphs get a Cast at each end. */
function finishEnds(g: OnnxGraph, t: Trace, precision: OnnxPrecision): void {
  const rename = (from: string, to: string, where: 'inputs' | 'outputs') => {
    for (const n of g.nodes) n[where] = n[where].map((v) => (v === from ? to : v));
  };
  if (precision === 'fp16') {
    // Every reader of the input but shape arithmetic reads the half copy.
    const half = g.fresh('input_fp16');
    for (const n of g.nodes) if (n.op !== 'Shape') n.inputs = n.inputs.map((v) => (v === t.input ? half : v));
    g.nodes.unshift({ op: 'Cast', inputs: [t.input], outputs: [half], attrs: { to: { int: ELEM.float16 } } });
    g.add('Cast', [t.output], { to: { int: ELEM.float } }, g.claim(OUTPUT_NAME));
  } else if (t.output === t.input || g.initializers.has(t.output)) {
    g.add('Identity', [t.output], {}, g.claim(OUTPUT_NAME));
  } else {
    rename(t.output, g.claim(OUTPUT_NAME), 'outputs');
    rename(t.output, OUTPUT_NAME, 'inputs');
  }
}
