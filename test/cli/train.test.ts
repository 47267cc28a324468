// `deeplab train` and `deeplab eval` as a user runs them: a seed-table config on a tiny dataset
// in the official Cityscapes layout, evaluation in each mode, a run killed with SIGKILL and
// resumed to the same weights, and the error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.js';
import { writeCityscapes } from '../helpers/tiny-datasets.js';
import { cliMain, repoRoot, tempDir } from '../helpers/paths.js';

const run = promisify(execFile);
const config = join(repoRoot, 'configs/deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.json');

async function dataset(): Promise<string> {
  return writeCityscapes(tempDir('cli-city-'));
}

function small(root: string, workDir: string, iters: number, extra: string[] = []): string[] {
  return [
    '--set',
    `data.dataset.root=${root}`,
    '--set',
    `workDir=${workDir}`,
    '--set',
    `train.iters=${iters}`,
    '--set',
    'train.batchSize=2',
    '--set',
    'data.train.crop=[32,48]',
    '--set',
    'data.train.scale=[120,80]',
    '--set',
    'data.test.scale=[120,80]',
    '--set',
    'train.checkpointInterval=2',
    '--set',
    `train.evalInterval=${iters}`,
    '--set',
    'train.logInterval=1',
    '--set',
    'train.workers=1',
    ...extra,
  ];
}

async function cliRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [cliMain, ...args], { maxBuffer: 1 << 24 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

function weightsOf(file: string): Map<string, torch.Tensor> {
  return torch.readSafetensors(file);
}

test('train a seed config on an official-layout dataset, then evaluate it three ways', async () => {
  const root = await dataset();
  const wd = tempDir('cli-wd-');
  const r = await cliRun(['train', config, ...small(root, wd, 4)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024: deeplabv3_r18-d8 .* 4 iterations of batch 2/);
  assert.match(r.stdout, /aAcc: [\d.]+ +mIoU: [\d.]+ +mAcc: [\d.]+/);
  for (const f of [
    'final.safetensors',
    'best_mIoU.safetensors',
    'iter_4.safetensors',
    'log.jsonl',
    'config.json',
    'report/summary.json',
  ])
    assert.ok(existsSync(join(wd, f)), f);
  for (const f of ['loss.png', 'lr.png', 'miou.png', 'per_class_iou.png'])
    assert.equal((await sharp(join(wd, 'report', f)).metadata()).format, 'png');
  const log = readFileSync(join(wd, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    log.filter((l) => 'loss' in l).map((l) => l.iter),
    [1, 2, 3, 4],
  );
  assert.ok(log.some((l) => 'eval' in l));

  for (const extra of [
    [],
    ['--mode', 'slide', '--set', 'evaluation.crop=[32,32]', '--set', 'evaluation.stride=[24,24]'],
    ['--aug-test', '--metric', 'torchvision'],
  ]) {
    const json = join(wd, `eval-${extra.length}.json`);
    const e = await cliRun([
      'eval',
      config,
      '--weights',
      join(wd, 'final.safetensors'),
      '--json',
      json,
      '--set',
      `data.dataset.root=${root}`,
      '--set',
      'data.test.scale=[120,80]',
      ...extra,
    ]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /\| +Class +\| +IoU +\| +Acc +\|/);
    const j = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(typeof j.aAcc, 'number');
    assert.equal(j.perClass.length, 19);
    assert.equal(j.augTest, extra.includes('--aug-test'));
  }
  // The training checkpoint itself is accepted by eval and predict (its model part).
  const e2 = await cliRun([
    'eval',
    config,
    '--weights',
    join(wd, 'iter_4.safetensors'),
    '--set',
    `data.dataset.root=${root}`,
    '--set',
    'data.test.scale=[120,80]',
  ]);
  assert.equal(e2.code, 0, e2.stderr);
});

test('a run killed with SIGKILL and resumed ends with the same weights as one that never stopped', async () => {
  const root = await dataset();
  const straight = tempDir('cli-straight-');
  assert.equal((await cliRun(['train', config, '--no-eval', ...small(root, straight, 8)])).code, 0);

  const killed = tempDir('cli-killed-');
  const child = spawn(process.execPath, [cliMain, 'train', config, '--no-eval', ...small(root, killed, 8)], {
    stdio: 'ignore',
  });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(join(killed, 'iter_4.safetensors'))) {
        clearInterval(poll);
        child.kill('SIGKILL');
        resolve();
      }
    }, 5);
    child.on('exit', () => {
      clearInterval(poll);
      reject(new Error('the run finished before it could be killed'));
    });
  });
  await new Promise((r) => child.on('exit', r));
  assert.ok(!existsSync(join(killed, 'final.safetensors')), 'the killed run had already finished');
  // A kill can land inside a checkpoint write and leave its temp file (or last_checkpoint.tmp):
  // what must hold is that the resume removes such leftovers and ends with the same weights.
  writeFileSync(join(killed, '.iter_6.safetensors.4242.0123456789ab.tmp'), 'cut short');
  const resumed = await cliRun(['train', config, '--no-eval', '--resume', ...small(root, killed, 8)]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(
    readdirSync(killed).filter((f) => f.endsWith('.tmp')),
    [],
    'the resume left temp files behind',
  );
  assert.deepEqual(
    readdirSync(killed)
      .filter((f) => /^iter_\d+\.safetensors$/.test(f))
      .sort(),
    ['iter_6.safetensors', 'iter_8.safetensors'],
    'only the two newest checkpoints are kept',
  );
  const a = weightsOf(join(straight, 'final.safetensors'));
  const b = weightsOf(join(killed, 'final.safetensors'));
  assert.equal(a.size, b.size);
  for (const [k, t] of a) assert.ok(t.equal(b.get(k)!), `${k} differs after kill and resume`);
  for (const t of [...a.values(), ...b.values()]) t.dispose();
});

test('config errors and bad samples: named, non-zero exit, nothing saved lost', async () => {
  const root = await dataset();
  const typo = await cliRun(['train', config, '--set', 'train.optimiser.lr=0.1']);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024\.json: invalid config/);
  assert.match(typo.stderr, /unknown key "train\.optimiser"/);
  const bad = join(tempDir('cfg-'), 'bad.json');
  writeFileSync(
    bad,
    JSON.stringify({
      ...JSON.parse(readFileSync(config, 'utf8')),
      model: { ...JSON.parse(readFileSync(config, 'utf8')).model, decode_head: {} },
    }),
  );
  assert.match((await cliRun(['train', bad])).stderr, /unknown key "model\.decode_head"/);

  // A corrupt image: 'stop' names it and fails; 'skip' logs it and finishes.
  const img = readdirSync(join(root, 'leftImg8bit', 'train', 'aachen')).sort()[0];
  writeFileSync(join(root, 'leftImg8bit', 'train', 'aachen', img), 'garbage');
  const wd = tempDir('cli-bad-');
  const stop = await cliRun(['train', config, '--no-eval', ...small(root, wd, 4, ['--set', 'train.badSample="stop"'])]);
  assert.equal(stop.code, 1);
  assert.match(stop.stderr, new RegExp(img.replace('.', '\\.')));
  const skip = await cliRun([
    'train',
    config,
    '--no-eval',
    ...small(root, tempDir('cli-skip-'), 4, ['--set', 'train.badSample="skip"']),
  ]);
  assert.equal(skip.code, 0, skip.stderr);
  assert.match(skip.stdout, new RegExp(`skipped bad sample .*${img.replace('.', '\\.')}`));
});
