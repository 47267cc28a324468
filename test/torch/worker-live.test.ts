// liveTensors() counts this thread's tensors only: a worker's tensors are its own, and a worker
// that exits without disposing them leaves nothing in the main thread's count (issue 12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import * as torch from '../../src/torch/index.js';

test('tensors a worker leaves behind are not counted by the main thread, while it runs or after it exits', async () => {
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  // The worker makes 5 tensors, never disposes them, reports, waits for a message, then exits.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then((torch) => {
      const base = torch.liveTensors();
      globalThis.kept = Array.from({ length: 5 }, (_, i) => torch.full([1000], i));
      parentPort.postMessage({ base, live: torch.liveTensors() });
      parentPort.once('message', () => process.exit(0));
    }).catch((e) => parentPort.postMessage({ error: String(e) }));`;
  const before = torch.liveTensors();
  const w = new Worker(code, { eval: true, workerData: { url } });
  const exited = new Promise<number>((resolve) => w.once('exit', resolve));
  const report = await new Promise<{ base: number; live: number; error?: string }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.equal(report.error, undefined);
  assert.equal(report.live - report.base, 5, 'the worker counts its own tensors');
  assert.equal(torch.liveTensors(), before, 'the main thread does not count them while the worker runs');
  w.postMessage('exit');
  assert.equal(await exited, 0);
  assert.equal(torch.liveTensors(), before, 'nor after the worker exits');
  // The main thread's table still works.
  assert.equal(
    torch.scope(() => torch.ones([3]).sum().item()),
    3,
  );
});
