// A tiny convnet and deterministic samples for the data-parallel tests: sample k of the stream
// is a function of k alone (a small integer hash, not an RNG whose state a rank would consume), so
// any split of the stream over ranks sees the same samples.
import * as torch from '../../src/torch/index.js';

export const SIZE = 12;
export const CLASSES = 4;

/** conv-BN-ReLU twice (the second strided), then a 1x1 classifier: logits at SIZE/2. */
export function tinyNet(): torch.nn.Sequential {
  torch.manualSeed(7);
  const { Sequential, Conv2d, BatchNorm2d, ReLU } = torch.nn;
  return new Sequential(
    new Conv2d(3, 8, 3, { padding: 1 }),
    new BatchNorm2d(8),
    new ReLU(),
    new Conv2d(8, 8, 3, { stride: 2, padding: 1 }),
    new BatchNorm2d(8),
    new ReLU(),
    new Conv2d(8, CLASSES, 1),
  );
}

function hash(k: number, i: number): number {
  let h = Math.imul(k + 1, 0x9e3779b1) ^ Math.imul(i + 7, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 13;
  return (h >>> 0) / 2 ** 32;
}

/** Samples `indices` of the stream: images N x 3 x SIZE x SIZE, labels at the logits' size. */
export function sampleBatch(indices: number[]): { x: torch.Tensor; y: torch.Tensor } {
  const n = indices.length;
  const half = SIZE / 2;
  const x = new Float32Array(n * 3 * SIZE * SIZE);
  const y = new BigInt64Array(n * half * half);
  indices.forEach((k, b) => {
    for (let i = 0; i < 3 * SIZE * SIZE; i++) x[b * 3 * SIZE * SIZE + i] = hash(k, i) * 2 - 1;
    for (let i = 0; i < half * half; i++) y[b * half * half + i] = BigInt(Math.floor(hash(k, 10000 + i) * CLASSES));
  });
  return {
    x: torch.tensor(x, { shape: [n, 3, SIZE, SIZE] }),
    y: torch.tensor(y, { shape: [n, half, half] }),
  };
}

/** One combined batch for SyncBN (N x 5 x 4 x 3, not centred) and the output gradient to apply. */
export function syncBnInput(n: number): { x: torch.Tensor; g: torch.Tensor } {
  const shape = [n, 5, 4, 3];
  const count = shape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: count }, (_, i) => 3 + 2 * hash(1, i) + (i % 5));
  const g = Float32Array.from({ length: count }, (_, i) => hash(2, i) - 0.5);
  return { x: torch.tensor(x, { shape }), g: torch.tensor(g, { shape }) };
}
