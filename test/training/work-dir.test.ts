// A work dir after crashes: temps of interrupted writes removed, the two newest checkpoints kept
// whichever process wrote them, one log line per iteration, a pointer that names a file of its
// own folder (a copied work dir resumes from its own checkpoint), and checkpoint metadata checked
// before anything is restored. A whole resume after a crash is in trainer.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { parseConfig } from '../../src/config/load.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/training/checkpoint.js';
import { checkBatchFits } from '../../src/training/from-config.js';
import {
  bestMIoUOnDisk,
  periodicCheckpoints,
  prunePeriodic,
  readPointer,
  removeStaleTemps,
  truncateLog,
  setAsideLog,
  writePointer,
} from '../../src/training/work-dir.js';
import { tempDir } from '../helpers/paths.js';

test('temps of interrupted writes are removed; nothing else is', () => {
  const dir = tempDir('wd-temps-');
  const temps = [
    '.iter_4.safetensors.4242.0123456789ab.tmp',
    '.best_mIoU.safetensors.17.abcdefabcdef.tmp',
    'last_checkpoint.tmp',
  ];
  const keep = ['iter_4.safetensors', 'log.jsonl', 'notes.tmp', '.hidden'];
  for (const f of [...temps, ...keep]) writeFileSync(join(dir, f), 'x');
  assert.deepEqual(removeStaleTemps(dir).sort(), [...temps].sort());
  assert.deepEqual(readdirSync(dir).sort(), [...keep].sort());
  assert.deepEqual(removeStaleTemps(join(dir, 'missing')), []);
});

test('the two newest periodic checkpoints are kept, whichever process wrote them', () => {
  const dir = tempDir('wd-prune-');
  for (const i of [2, 10, 4, 8]) writeFileSync(join(dir, `iter_${i}.safetensors`), 'x');
  writeFileSync(join(dir, 'best_mIoU.safetensors'), 'x');
  writeFileSync(join(dir, 'final.safetensors'), 'x');
  assert.deepEqual(
    periodicCheckpoints(dir).map((c) => c.iter),
    [2, 4, 8, 10],
  );
  prunePeriodic(dir, 2);
  assert.deepEqual(readdirSync(dir).sort(), [
    'best_mIoU.safetensors',
    'final.safetensors',
    'iter_10.safetensors',
    'iter_8.safetensors',
  ]);
});

test('log.jsonl keeps the lines up to the resumed iteration; a line cut short is dropped', () => {
  const dir = tempDir('wd-log-');
  const log = join(dir, 'log.jsonl');
  writeFileSync(
    log,
    [
      '{"iter":1,"loss":2}',
      '{"iter":2,"loss":1}',
      '{"iter":2,"eval":{"mIoU":3}}',
      '{"iter":3,"loss":0.5}',
      '{"iter":4,"lo',
    ].join('\n'),
  );
  truncateLog(log, 2);
  assert.deepEqual(
    readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).iter),
    [1, 2, 2],
  );
});

test('last_checkpoint names a file of its own folder: a copied work dir resumes from its own checkpoint', () => {
  const dir = tempDir('wd-ptr-');
  const run = join(dir, 'run');
  mkdirSync(run);
  writeFileSync(join(run, 'iter_2.safetensors'), 'x');
  writePointer(run, join(run, 'iter_2.safetensors'));
  assert.equal(readFileSync(join(run, 'last_checkpoint'), 'utf8'), 'iter_2.safetensors');
  cpSync(run, join(dir, 'copy'), { recursive: true });
  assert.equal(readPointer(join(dir, 'copy')), join(dir, 'copy', 'iter_2.safetensors'));
  // an absolute name from an older version is read by its file name, in this folder
  writeFileSync(join(dir, 'copy', 'last_checkpoint'), join(run, 'iter_2.safetensors'));
  assert.equal(readPointer(join(dir, 'copy')), join(dir, 'copy', 'iter_2.safetensors'));
  assert.throws(() => writePointer(run, join(dir, 'elsewhere.safetensors')), /is not in the work dir/);
  assert.equal(readPointer(join(dir, 'none')), null);
  const bad = join(dir, 'bad');
  mkdirSync(join(bad, 'last_checkpoint'), { recursive: true });
  assert.throws(() => readPointer(bad), /last_checkpoint: expected a file naming the last checkpoint, found a folder/);
  writeFileSync(join(run, 'last_checkpoint'), 'iter_9.safetensors');
  assert.throws(() => readPointer(run), /names "iter_9.safetensors", which is not a file in/);
});

/** A saved checkpoint of a tiny model, and a way to rewrite its metadata. */
function tinyCheckpoint(dir: string): {
  file: string;
  model: torch.nn.Linear;
  opt: torch.optim.SGD;
  rewrite: (f: (m: Record<string, string>, t: Map<string, torch.Tensor>) => void) => string;
} {
  torch.manualSeed(0);
  const model = new torch.nn.Linear(3, 2);
  const opt = new torch.optim.SGD([{ params: model.parameters() }], { lr: 0.1, momentum: 0.9 });
  const file = join(dir, 'iter_3.safetensors');
  saveCheckpoint(file, model, opt, { iter: 3, bestMIoU: 41.5, loader: { epoch: 0, position: 6 }, config: 'tiny' });
  let n = 0;
  const rewrite = (f: (m: Record<string, string>, t: Map<string, torch.Tensor>) => void) => {
    const st = torch.readSafetensors(file);
    const meta = { ...st.metadata };
    const tensors = new Map(st);
    f(meta, tensors);
    const out = join(dir, `edited_${n++}.safetensors`);
    torch.writeSafetensors(out, tensors, meta);
    for (const t of st.values()) t.dispose();
    return out;
  };
  return { file, model, opt, rewrite };
}

test('checkpoint metadata is checked before anything is restored, and errors name the file', () => {
  const dir = tempDir('wd-meta-');
  const { file, model, opt, rewrite } = tinyCheckpoint(dir);
  assert.deepEqual(loadCheckpoint(file, model, opt, 10), {
    iter: 3,
    bestMIoU: 41.5,
    loader: { epoch: 0, position: 6 },
    config: 'tiny',
  });
  const huge = rewrite(
    (m) => (m.state = JSON.stringify({ iter: 1e9, bestMIoU: null, loader: { epoch: 0, position: 0 }, config: 'tiny' })),
  );
  assert.throws(
    () => loadCheckpoint(huge, model, opt, 10),
    (e: Error) =>
      e.message.startsWith(huge) &&
      /iteration 1000000000 is not a whole number from 0 to train.iters \(10\)/.test(e.message),
  );
  const badJson = rewrite((m) => (m.state = '{"iter": 3,'));
  assert.throws(() => loadCheckpoint(badJson, model, opt, 10), /checkpoint metadata "state" is not valid JSON/);
  const noRng = rewrite((_, t) => t.delete('rng.torch'));
  assert.throws(() => loadCheckpoint(noRng, model, opt, 10), /has no "rng.torch" tensor/);
  const badLoader = rewrite(
    (m) =>
      (m.state = JSON.stringify({ iter: 3, bestMIoU: null, loader: { epoch: -1, position: 0.5 }, config: 'tiny' })),
  );
  assert.throws(() => loadCheckpoint(badLoader, model, opt, 10), /data-loader position .* is not two whole numbers/);
  assert.throws(() => loadCheckpoint(dir, model, opt, 10), /not a file \(--resume takes a checkpoint file/);
  model.dispose();
  opt.dispose();
});

test('best_mIoU on disk is read from its header', () => {
  const dir = tempDir('wd-best-');
  assert.equal(bestMIoUOnDisk(dir), null);
  const t = torch.zeros([2]);
  torch.writeSafetensors(join(dir, 'best_mIoU.safetensors'), new Map([['w', t]]), { mIoU: '57.25' });
  t.dispose();
  assert.equal(bestMIoUOnDisk(dir), 57.25);
});

test('a crop and batch that cannot fit in memory is a config error naming the keys', () => {
  const cfg = parseConfig({
    name: 'big',
    model: { preset: 'deeplabv3_r18-d8', numClasses: 3, outputStride: { train: 16, eval: 8 } },
    data: {
      dataset: { type: 'custom', root: '/nonexistent' },
      train: { scale: [64, 64], crop: [100000, 100000] },
      test: { scale: null },
    },
    train: { iters: 2, batchSize: 8, optimizer: { type: 'sgd', lr: 0.01 }, checkpointInterval: 1, evalInterval: 1 },
    workDir: '/tmp/unused',
  });
  assert.throws(
    () => checkBatchFits(cfg, 24 * 2 ** 30),
    /data.train.crop \[100000, 100000\] with train.batchSize 8: one input batch needs 1117\.6 GiB, more than this machine's 24\.0 GiB/,
  );
  assert.doesNotThrow(() =>
    checkBatchFits({ ...cfg, data: { ...cfg.data, train: { ...cfg.data.train, crop: [512, 1024] } } }, 24 * 2 ** 30),
  );
});

test("a fresh run's start sets an earlier log aside under its time, never over another", () => {
  const dir = tempDir('wd-aside-');
  const log = join(dir, 'log.jsonl');
  assert.equal(setAsideLog(log), null, 'no log: nothing to do');
  writeFileSync(log, '');
  assert.equal(setAsideLog(log), null, 'an empty log stays');
  const when = new Date('2026-12-02T10:11:12.345Z');
  writeFileSync(log, '{"iter":1,"loss":2}\n');
  utimesSync(log, when, when);
  assert.equal(setAsideLog(log), join(dir, 'log.20261202T101112.jsonl'));
  writeFileSync(log, '{"iter":1,"loss":3}\n');
  utimesSync(log, when, when);
  assert.equal(setAsideLog(log), join(dir, 'log.20261202T101112-2.jsonl'));
  assert.deepEqual(readdirSync(dir).sort(), ['log.20261202T101112-2.jsonl', 'log.20261202T101112.jsonl']);
  assert.equal(readFileSync(join(dir, 'log.20261202T101112.jsonl'), 'utf8'), '{"iter":1,"loss":2}\n');
  assert.equal(readFileSync(join(dir, 'log.20261202T101112-2.jsonl'), 'utf8'), '{"iter":1,"loss":3}\n');
});
