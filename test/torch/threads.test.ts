// Intra-op threads are settable; the addon loads and computes inside worker_threads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import * as torch from '../../src/torch/index.js';

test('setNumThreads / getNumThreads', () => {
  const prev = torch.getNumThreads();
  torch.setNumThreads(1);
  assert.equal(torch.getNumThreads(), 1);
  torch.setNumThreads(prev);
  assert.equal(torch.getNumThreads(), prev);
  assert.throws(() => torch.setNumThreads(0), /positive thread count/);
});

test('two workers run convolutions with the addon at the same time as the main thread', async () => {
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then((torch) => {
      const s = workerData.seed;
      const r = torch.scope(() => {
        // inputs from the seed without the random generator, which all threads share
        const x = torch.F.tanh(torch.arange(0, 1024).mul(0.013 * s).sub(6)).reshape(1, 4, 16, 16);
        const w = torch.F.tanh(torch.arange(0, 144).mul(0.07 * s).sub(5)).reshape(4, 4, 3, 3);
        return torch.F.conv2d(x, w, null, { padding: 2, dilation: 2 }).sum().item();
      });
      parentPort.postMessage({ r, live: torch.liveTensors() });
    }).catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const run = (seed: number) =>
    new Promise<{ r: number; live: number; error?: string }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { url, seed } });
      w.once('message', resolve);
      w.once('error', reject);
    });
  const expected = (s: number) =>
    torch.scope(() => {
      const x = torch.F.tanh(
        torch
          .arange(0, 1024)
          .mul(0.013 * s)
          .sub(6),
      ).reshape(1, 4, 16, 16);
      const w = torch.F.tanh(
        torch
          .arange(0, 144)
          .mul(0.07 * s)
          .sub(5),
      ).reshape(4, 4, 3, 3);
      return torch.F.conv2d(x, w, null, { padding: 2, dilation: 2 }).sum().item();
    });
  const [a, b] = await Promise.all([run(1), run(2)]);
  assert.equal(a.error, undefined);
  assert.equal(b.error, undefined);
  assert.ok(Math.abs(a.r - expected(1)) < 1e-3, `worker 1 result ${a.r}`);
  assert.ok(Math.abs(b.r - expected(2)) < 1e-3, `worker 2 result ${b.r}`);
});
