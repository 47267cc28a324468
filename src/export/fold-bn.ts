// Batch norms folded into the convolutions before them, on the ONNX graph: a
// BatchNormalization whose input is a Conv's output that nothing else reads becomes part of that
// Conv (W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps), per output channel,
// in float64, rounded once to float32), as torch.onnx's eval peephole does. Working on the graph
// leaves the model itself untouched (models/fold.ts rewrites a model in place, for the fast path).
// A weight that several Convs share (DeepLab-v2 MSC runs one network at three scales) is folded
// when every one of them feeds a BatchNormalization with the same parameters.
import type { Initializer, OnnxGraph, OnnxNode } from './onnx-graph.js';

export function foldBatchNorms(graph: OnnxGraph, outputs: readonly string[]): number {
  const producer = new Map<string, OnnxNode>();
  const readers = new Map<string, number>();
  for (const n of graph.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  for (const o of outputs) readers.set(o, (readers.get(o) ?? 0) + 1);
  const init = (name: string | undefined): Initializer | undefined =>
    name === undefined ? undefined : graph.initializers.get(name);

  // conv weight name -> the (conv, bn) pairs that use it, or null when one use cannot be folded
  const byWeight = new Map<string, { conv: OnnxNode; bn: OnnxNode }[] | null>();
  for (const n of graph.nodes) if (n.op === 'Conv') byWeight.set(n.inputs[1], byWeight.get(n.inputs[1]) ?? []);
  for (const bn of graph.nodes) {
    if (bn.op !== 'BatchNormalization') continue;
    const conv = producer.get(bn.inputs[0]);
    if (!conv || conv.op !== 'Conv' || readers.get(bn.inputs[0]) !== 1) continue;
    const list = byWeight.get(conv.inputs[1]);
    if (list) list.push({ conv, bn });
  }
  let folded = 0;
  const removed = new Set<OnnxNode>();
  for (const [weightName, pairs] of byWeight) {
    const uses = graph.nodes.filter((n) => n.inputs.includes(weightName)).length;
    if (!pairs || pairs.length === 0 || pairs.length !== uses) continue;
    const key = (p: { conv: OnnxNode; bn: OnnxNode }) => [...p.bn.inputs.slice(1), p.conv.inputs[2] ?? ''].join('|');
    if (new Set(pairs.map(key)).size !== 1) continue;
    const { conv, bn } = pairs[0];
    const w = init(weightName);
    const [gamma, beta, mean, variance] = bn.inputs.slice(1).map(init);
    const bias = conv.inputs[2] ? init(conv.inputs[2]) : undefined;
    if (!w || !gamma || !beta || !mean || !variance || (conv.inputs[2] && !bias)) continue;
    const eps = 'float' in bn.attrs.epsilon ? bn.attrs.epsilon.float : 1e-5;
    const c = w.dims[0];
    const per = w.data.length / c;
    const wData = w.data as Float32Array;
    const newW = new Float32Array(wData.length);
    const newB = new Float32Array(c);
    for (let o = 0; o < c; o++) {
      const s = Number(gamma.data[o]) / Math.sqrt(Number(variance.data[o]) + eps);
      for (let i = o * per; i < (o + 1) * per; i++) newW[i] = wData[i] * s;
      newB[o] = ((bias ? Number(bias.data[o]) : 0) - Number(mean.data[o])) * s + Number(beta.data[o]);
    }
    w.data = newW;
    // The folded bias keeps the conv's bias key, or takes the one its weight key implies.
    const biasName = conv.inputs[2] || graph.initializer({ dims: [c], data: newB, followsPrecision: true }, biasKey(graph, weightName));
    if (bias) bias.data = newB;
    for (const p of pairs) {
      p.conv.inputs[2] = biasName;
      p.conv.outputs[0] = p.bn.outputs[0];
      removed.add(p.bn);
      folded++;
    }
  }
  const kept = graph.nodes.filter((n) => !removed.has(n));
  graph.nodes.splice(0, graph.nodes.length, ...kept);
  // The BN parameters no longer read by anything go.
  const read = new Set(graph.nodes.flatMap((n) => n.inputs));
  for (const name of [...graph.initializers.keys()]) if (!read.has(name)) graph.initializers.delete(name);
  return folded;
}

function biasKey(graph: OnnxGraph, weightName: string): string {
  const base = weightName.endsWith('.weight') ? `${weightName.slice(0, -'.weight'.length)}.bias` : `${weightName}.bias`;
  return graph.initializers.has(base) ? graph.fresh(base) : base;
}
