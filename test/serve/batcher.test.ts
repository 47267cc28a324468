// The batcher against a runner the test controls: which images run together, the bounded queue,
// and aborts. No model and no timing: each batch waits until the test lets it finish.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, QueueFullError } from '../../src/serve/batcher.js';
import type { BatchRunner } from '../../src/serve/model-thread.js';

/** Labels = each image's first pixel value, so results show which image they came from. */
class ManualRunner implements BatchRunner {
  readonly batches: { n: number; width: number; height: number; release: () => void }[] = [];
  run(b: Parameters<BatchRunner['run']>[0]) {
    return new Promise<{ labels: Uint8Array; ms: number }>((resolve) => {
      const hw = b.width * b.height;
      const labels = new Uint8Array(b.n * hw);
      for (let i = 0; i < b.n; i++) labels.fill(b.pixels[i * hw * 3], i * hw, (i + 1) * hw);
      this.batches.push({ n: b.n, width: b.width, height: b.height, release: () => resolve({ labels, ms: 1 }) });
    });
  }
}

const img = (w: number, h: number, v: number) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });
const tick = () => new Promise((r) => setImmediate(r));

test('images that wait while the model runs go as one batch of their size, up to maxBatch, in arrival order', async () => {
  const runner = new ManualRunner();
  const b = new Batcher(runner, { maxBatch: 3, maxQueue: 10, maxWaitMs: 0 });
  const first = b.submit(img(4, 2, 1));
  await tick();
  assert.equal(runner.batches.length, 1); // idle model, no wait: runs at once
  const rest = [b.submit(img(4, 2, 2)), b.submit(img(5, 2, 3)), b.submit(img(4, 2, 4)), b.submit(img(4, 2, 5))];
  rest.push(b.submit(img(4, 2, 6)));
  assert.equal(b.depth, 5);
  runner.batches[0].release();
  await first;
  await tick();
  // the oldest waiting image (4x2) and the next two of its size; the 5x2 one waits its turn
  assert.deepEqual(
    runner.batches.map((x) => [x.n, x.width]),
    [
      [1, 4],
      [3, 4],
    ],
  );
  runner.batches[1].release();
  await tick();
  assert.deepEqual(runner.batches[2] && [runner.batches[2].n, runner.batches[2].width], [1, 5]);
  runner.batches[2].release();
  await tick();
  runner.batches[3].release();
  const results = await Promise.all(rest);
  assert.deepEqual(
    results.map((r) => [r.labels[0], r.labels.length, r.batchSize]),
    [
      [2, 8, 3],
      [3, 10, 1],
      [4, 8, 3],
      [5, 8, 3],
      [6, 8, 1],
    ],
  );
});

test('a full queue refuses at once; an abort takes an image out of the queue', async () => {
  const runner = new ManualRunner();
  const b = new Batcher(runner, { maxBatch: 4, maxQueue: 2, maxWaitMs: 0 });
  const running = b.submit(img(2, 2, 1));
  await tick();
  const ac = new AbortController();
  const waiting = [b.submit(img(2, 2, 2), ac.signal), b.submit(img(2, 2, 3))];
  await assert.rejects(
    b.submit(img(2, 2, 4)),
    (e: Error) => e instanceof QueueFullError && /2 images already wait/.test(e.message),
  );
  ac.abort(new Error('client gone'));
  await assert.rejects(waiting[0], /client gone/);
  assert.equal(b.depth, 1);
  runner.batches[0].release();
  await running;
  await tick();
  assert.equal(runner.batches[1].n, 1); // only the image still waiting
  runner.batches[1].release();
  assert.equal((await waiting[1]).labels[0], 3);
});

test('maxWaitMs: an idle model waits for a batch to fill, and a full batch goes at once', async () => {
  const runner = new ManualRunner();
  const b = new Batcher(runner, { maxBatch: 2, maxQueue: 10, maxWaitMs: 60_000 });
  const a = b.submit(img(2, 2, 1));
  await tick();
  assert.equal(runner.batches.length, 0); // waiting for a second image (up to a minute here)
  const c = b.submit(img(2, 2, 2));
  await tick();
  assert.equal(runner.batches[0].n, 2);
  runner.batches[0].release();
  assert.deepEqual([(await a).labels[0], (await c).labels[0]], [1, 2]);
});
