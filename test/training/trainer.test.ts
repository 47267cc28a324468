// The training loop on a real preset with a synthetic batch source: the loss falls, LR follows
// the poly schedule, checkpoints resume to bit-identical weights, gradient accumulation and
// bf16 run, and nothing leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { findPreset } from '../../src/models/zoo.js';
import { parseConfig } from '../../src/config/load.js';
import { train, paramGroups, type BatchSource } from '../../src/training/trainer.js';
import type { Batch } from '../../src/data/loader.js';
import { polyLr } from '../../src/training/schedule.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { periodicCheckpoints } from '../../src/training/work-dir.js';
import { tempDir } from '../helpers/paths.js';

const S = 32;
/** Deterministic batches: a bright square of class 1 or 2 on class 0, some pixels ignored. */
function source(at: { epoch: number; position: number }, batchSize = 2): BatchSource {
  let pos = at.position;
  return {
    async next(): Promise<Batch> {
      const images = new Uint8Array(batchSize * S * S * 3);
      const labels = new Uint8Array(batchSize * S * S);
      for (let b = 0; b < batchSize; b++) {
        const k = pos * batchSize + b;
        const cls = 1 + (k % 2);
        const x0 = (k * 7) % 16,
          y0 = (k * 11) % 16;
        for (let y = 0; y < S; y++)
          for (let x = 0; x < S; x++) {
            const inside = x >= x0 && x < x0 + 12 && y >= y0 && y < y0 + 12;
            const i = b * S * S + y * S + x;
            labels[i] = y === 0 ? 255 : inside ? cls : 0;
            images.set(inside ? (cls === 1 ? [220, 40, 40] : [40, 40, 220]) : [90, 90, 90], i * 3);
          }
      }
      pos++;
      return { images, labels, height: S, width: S, names: [] };
    },
    state: () => ({ epoch: 0, position: pos }),
    close() {},
  };
}

function config(workDir: string, over: Partial<ConfigInput['train']> = {}): ReturnType<typeof parseConfig> {
  return parseConfig({
    name: 'tiny',
    model: { preset: 'deeplabv3_r18-d8', numClasses: 3, outputStride: { train: 16, eval: 8 } },
    data: {
      dataset: { type: 'custom', root: '/nonexistent' },
      train: { scale: [S, S], crop: [S, S] },
      test: { scale: null },
    },
    train: {
      iters: 6,
      batchSize: 2,
      optimizer: { type: 'sgd', lr: 0.01 },
      checkpointInterval: 3,
      evalInterval: 1000,
      logInterval: 1,
      workers: 0,
      ...over,
    },
    workDir,
  });
}

function build(): ReturnType<ReturnType<typeof findPreset>['build']> {
  torch.manualSeed(0);
  return findPreset('deeplabv3_r18-d8').build({ numClasses: 3, aux: true });
}

test('poly schedule with floor and warm-up, as mmseg', () => {
  const s = { type: 'poly' as const, power: 0.9, minLr: 1e-4, warmupIters: 0, warmupRatio: 0.1 };
  assert.equal(polyLr(0, 100, 0.01, s), 0.01);
  assert.ok(Math.abs(polyLr(50, 100, 0.01, s) - ((0.01 - 1e-4) * 0.5 ** 0.9 + 1e-4)) < 1e-15);
  assert.equal(polyLr(100, 100, 0.01, s), 1e-4);
  assert.ok(Math.abs(polyLr(0, 100, 0.01, { ...s, warmupIters: 10 }) - 0.001) < 1e-12);
});

test('LR multipliers group parameters by prefix; frozen ones are left out', () => {
  const m = build();
  const g = paramGroups(m, [{ prefix: 'decode_head.conv_seg', mult: 10 }]);
  assert.equal(g.length, 2);
  assert.equal(g[1].mult, 10);
  assert.equal(g[1].params.length, 2);
  m.dispose();
});

test('kill-and-resume: 3 + 3 iterations from the checkpoint equal 6 straight, bit for bit', async () => {
  const dirA = tempDir('train-a-');
  const a = build();
  const ra = await train({
    config: config(dirA),
    model: a,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at) => source(at),
  });
  assert.equal(ra.iter, 6);
  assert.ok(existsSync(join(dirA, 'final.safetensors')));

  const dirB = tempDir('train-b-');
  const b1 = build();
  const first = await train({
    config: config(dirB),
    model: b1,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at) => source(at),
    stopAfter: 3,
  });
  assert.equal(first.iter, 3);
  b1.dispose();
  // A new process would build a fresh model: different weights until the checkpoint loads.
  torch.manualSeed(123);
  const b2 = findPreset('deeplabv3_r18-d8').build({ numClasses: 3, aux: true });
  const rb = await train({
    config: config(dirB),
    model: b2,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at) => source(at),
    resume: true,
  });
  assert.equal(rb.iter, 6);
  const sa = a.stateDict();
  for (const [k, t] of b2.stateDict()) assert.ok(t.equal(sa.get(k)!), `${k} differs after resume`);
  assert.equal(rb.lastLoss, ra.lastLoss);
  const log = readFileSync(join(dirB, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    log.map((e) => e.iter),
    [1, 2, 3, 4, 5, 6],
  );
  a.dispose();
  b2.dispose();
});

test('the loss falls on the synthetic task; accumulation and bf16 run; nothing leaks', async () => {
  const m = build();
  const live = torch.liveTensors();
  const dir = tempDir('train-c-');
  const r = await train({
    config: config(dir, { iters: 30, checkpointInterval: 30, optimizer: { type: 'sgd', lr: 0.05 } }),
    model: m,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at) => source(at),
  });
  const first = JSON.parse(readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n')[0]).loss;
  assert.equal(torch.liveTensors(), live, 'training leaked tensors');
  assert.ok(r.lastLoss < 0.6 * first, `loss went from ${first} to ${r.lastLoss} in 30 iterations`);
  const acc = await train({
    config: config(tempDir('train-d-'), { iters: 2, accumulate: 2, precision: 'bf16', checkpointInterval: 2 }),
    model: m,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at) => source(at),
  });
  assert.ok(Number.isFinite(acc.lastLoss));
  m.dispose();
});

test('train.channelsLast: the same losses as NCHW (to float rounding), checkpoints in the standard layout', async () => {
  const nchw = build();
  const cl = build();
  const norm = findPreset('deeplabv3_r18-d8').normalization;
  const dirs = [tempDir('train-nchw-'), tempDir('train-cl-')];
  await train({
    config: config(dirs[0], { iters: 3, checkpointInterval: 3 }),
    model: nchw,
    normalization: norm,
    makeSource: (at) => source(at),
  });
  await train({
    config: config(dirs[1], { iters: 3, checkpointInterval: 3, channelsLast: true }),
    model: cl,
    normalization: norm,
    makeSource: (at) => source(at),
  });
  const losses = dirs.map((d) =>
    readFileSync(join(d, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => 'loss' in e)
      .map((e) => e.loss as number),
  );
  assert.equal(losses[1].length, 3);
  // The first forward is the same network on the same batch: equal to rounding. After that the two
  // runs drift apart by the rounding of gradients reduced in another order (BN weight gradients,
  // sums of near-cancelling terms, differ by ~1e-3 relative), so later losses agree to ~1%.
  assert.ok(
    Math.abs(losses[0][0] - losses[1][0]) < 1e-5 * Math.abs(losses[0][0]),
    `iteration 1: ${losses[0][0]} vs ${losses[1][0]}`,
  );
  losses[0].forEach((l, i) =>
    assert.ok(Math.abs(l - losses[1][i]) < 1e-2 * Math.abs(l), `iteration ${i + 1}: ${l} vs ${losses[1][i]}`),
  );
  const w = cl.stateDict().get('backbone.layer1.0.conv1.weight')!;
  assert.equal(w.isContiguous('channels_last'), true, 'the model trained in channels_last');
  // the checkpoint loads into a plain NCHW model with the trained values
  const fresh = build();
  const saved = torch.readSafetensors(join(dirs[1], 'final.safetensors'));
  fresh.loadStateDict(saved);
  for (const t of saved.values()) t.dispose();
  for (const [k, v] of cl.stateDict()) assert.ok(fresh.stateDict().get(k)!.equal(v), k);
  for (const m of [nchw, cl, fresh]) m.dispose();
});

test("DeepLab-v2 multi-scale input trains with the port's four summed losses", async () => {
  torch.manualSeed(0);
  const m = findPreset('deeplabv2_resnet101_msc').build({ numClasses: 3 });
  const cfg = parseConfig({
    ...JSON.parse(JSON.stringify(config('/tmp'))),
    model: {
      preset: 'deeplabv2_resnet101_msc',
      numClasses: 3,
      aux: false,
      outputStride: { train: 8, eval: 8 },
      batchNorm: 'frozen',
    },
    train: {
      iters: 1,
      batchSize: 2,
      optimizer: { type: 'sgd', lr: 2.5e-4 },
      lrMult: [{ prefix: 'Scale.layer5', mult: 10 }],
      checkpointInterval: 1,
      evalInterval: 1000,
      logInterval: 1,
      workers: 0,
    },
    workDir: tempDir('train-msc-'),
  });
  const before = [...m.namedParameters()].find(([k]) => k === 'Scale.layer5.conv2d_list.0.weight')![1].clone();
  const bnBefore = [...m.namedParameters()].find(([k]) => k === 'Scale.bn1.weight')![1].clone();
  const r = await train({
    config: cfg,
    model: m,
    normalization: findPreset('deeplabv2_resnet101_msc').normalization,
    makeSource: (at) => source(at),
  });
  assert.ok(Number.isFinite(r.lastLoss) && r.lastLoss > 0);
  const after = [...m.namedParameters()].find(([k]) => k === 'Scale.layer5.conv2d_list.0.weight')![1];
  assert.equal(after.equal(before), false, 'the classifier did not move');
  assert.equal(
    [...m.namedParameters()].find(([k]) => k === 'Scale.bn1.weight')![1].equal(bnBefore),
    true,
    'frozen BN moved',
  );
  before.dispose();
  bnBefore.dispose();
  m.dispose();
});

test('a resume after a crash: temps removed, old checkpoints pruned, log lines not repeated; --resume with nothing says so', async () => {
  const workDir = tempDir('wd-resume-');
  const cfg = config(workDir, { checkpointInterval: 2 });
  const notices: string[] = [];
  // Resumes whatever the work dir holds; what the trainer says goes to notices.
  const run = (model: ReturnType<typeof build>) => ({
    config: cfg,
    model,
    normalization: findPreset('deeplabv3_r18-d8').normalization,
    makeSource: (at: { epoch: number; position: number }) => source(at),
    resume: true,
    onNotice: (l: string) => notices.push(l),
  });
  let m = build();
  await train({ ...run(m), stopAfter: 4 });
  m.dispose();
  assert.match(notices[0], /--resume: no checkpoint in .* \(no last_checkpoint file\): starting from iteration 0/);
  // What a SIGKILL mid-write and an older process leave: temps, an older checkpoint, log lines past the checkpoint.
  writeFileSync(join(workDir, '.iter_6.safetensors.999.0123456789ab.tmp'), 'partial');
  writeFileSync(join(workDir, 'last_checkpoint.tmp'), 'iter_6.safetensors');
  cpSync(join(workDir, 'iter_2.safetensors'), join(workDir, 'iter_0.safetensors'));
  writeFileSync(join(workDir, 'log.jsonl'), readFileSync(join(workDir, 'log.jsonl'), 'utf8') + '{"iter":5,"loss":1}\n');
  notices.length = 0;
  m = build();
  await train(run(m));
  m.dispose();
  assert.match(notices.join('\n'), /removed 2 temp file\(s\) of interrupted writes/);
  assert.match(notices.join('\n'), /resumed from .*iter_4\.safetensors at iteration 4/);
  assert.deepEqual(
    readdirSync(workDir).filter((f) => f.endsWith('.tmp')),
    [],
  );
  assert.deepEqual(
    periodicCheckpoints(workDir).map((c) => c.iter),
    [4, 6],
  );
  const iters = readFileSync(join(workDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).iter);
  assert.deepEqual(iters, [1, 2, 3, 4, 5, 6]);
  assert.ok(existsSync(join(workDir, 'final.safetensors')));
});
