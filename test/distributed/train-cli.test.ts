// `deeplab train --nproc-per-node 2` on a seed config (SyncBN on, as mmseg's) and a tiny dataset:
// it trains and evaluates, rank 0 alone writes, the sharded evaluation's mIoU is exactly the
// one-process figure for the same weights, and one process resumes the two-process run from the
// same place in the data stream.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadConfig } from '../../src/config/load.js';
import { buildForTraining } from '../../src/training/from-config.js';
import { openSplit } from '../../src/data/datasets/index.js';
import { evaluateOnSplit } from '../../src/evaluation/on-split.js';
import { writeCityscapes } from '../helpers/tiny-datasets.js';
import { cliMain, repoRoot, tempDir } from '../helpers/paths.js';
import { killAll, runNode } from './spawn.js';

after(killAll);

const config = join(repoRoot, 'configs/deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.json');

/** The seed config made tiny: `key=value` overrides. */
function small(root: string, workDir: string, iters: number): string[] {
  const set = {
    'data.dataset.root': root,
    workDir,
    'train.iters': String(iters),
    'train.batchSize': '1',
    'data.train.crop': '[32,48]',
    'data.train.scale': '[120,80]',
    'data.test.scale': '[120,80]',
    'train.checkpointInterval': '2',
    'train.evalInterval': '2',
    'train.logInterval': '1',
    'train.workers': '0',
    // channels_last, as the demo trains: the Reducer's stride warning is dropped (distributed.cc)
    'train.channelsLast': 'true',
  };
  return Object.entries(set).map(([k, v]) => `${k}=${v}`);
}

const asFlags = (sets: string[]) => sets.flatMap((s) => ['--set', s]);

test('2 processes train and evaluate a seed config; sharded mIoU = 1-process mIoU; 1 process resumes it', async () => {
  const root = await writeCityscapes(tempDir('ddp-city-'));
  const wd = tempDir('ddp-wd-');
  const sets = small(root, wd, 2);
  const r = await runNode([cliMain, 'train', config, '--nproc-per-node', '2', '--master-port', '0', ...asFlags(sets)], {
    timeoutMs: 180000,
  });
  assert.equal(r.code, 0, r.out);
  assert.doesNotMatch(r.out, /Grad strides do not match bucket view strides/);
  assert.equal(loadConfig(config, []).model.syncBN, true, 'the seed configs use SyncBN, as mmseg');
  // rank 0 reports once: one header, one table
  assert.equal(r.out.match(/iterations of batch 2 x 1/g)?.length, 1, r.out);
  assert.equal(r.out.match(/aAcc: [\d.]+ +mIoU/g)?.length, 1, r.out);
  for (const f of ['final.safetensors', 'iter_2.safetensors', 'log.jsonl', 'config.json', 'report'])
    assert.ok(readdirSync(wd).includes(f), f);
  const log = readFileSync(join(wd, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { iter: number; eval?: { mIoU: number } });
  assert.deepEqual(
    log.map((e) => e.iter),
    [1, 2, 2],
  );
  const sharded = log[2].eval!.mIoU;

  // The same weights evaluated by one process (one thread, as each rank had): the same mIoU, exactly.
  const cfg = loadConfig(config, sets);
  const { preset, model } = buildForTraining(cfg);
  const threads = torch.getNumThreads();
  try {
    const weights = torch.readSafetensors(join(wd, 'final.safetensors'));
    model.loadStateDict(weights);
    for (const t of weights.values()) t.dispose();
    if (cfg.train.channelsLast) model.to({ memoryFormat: 'channels_last' });
    model.eval();
    model.setOutputStride(cfg.model.outputStride.eval);
    torch.setNumThreads(1);
    const one = await evaluateOnSplit(model, cfg, preset, openSplit(cfg, 'val'));
    one.confusion.dispose();
    assert.equal(one.metrics.mIoU, sharded);
  } finally {
    torch.setNumThreads(threads);
    model.dispose();
  }

  // 2 iterations x 2 ranks x batch 1 of the 4 training samples: the stream is at epoch 1, sample 0.
  const meta = torch.readSafetensorsMetadata(join(wd, 'iter_2.safetensors'));
  assert.deepEqual((JSON.parse(meta.state) as { loader: unknown }).loader, { epoch: 1, position: 0 });
  const resumed = await runNode([cliMain, 'train', config, ...asFlags(small(root, wd, 3)), '--resume', '--no-eval'], {
    timeoutMs: 120000,
  });
  assert.equal(resumed.code, 0, resumed.out);
  assert.match(resumed.out, /resumed from .*iter_2\.safetensors at iteration 2/);
  assert.match(resumed.out, /done: 3 iterations/);
  const last = JSON.parse(readFileSync(join(wd, 'log.jsonl'), 'utf8').trim().split('\n').at(-1)!) as { iter: number };
  assert.equal(last.iter, 3);
});
