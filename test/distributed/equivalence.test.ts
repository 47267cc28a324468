// Data parallelism changes nothing but speed: two processes of batch b end at the weights of one
// process of batch 2b (BN frozen, and SyncBN); SyncBN equals BatchNorm2d over the combined batch,
// forward and backward; the sampler's shards are the one-process batch, split without overlap,
// and its position carries over to another number of processes. On loopback, OS-chosen ports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { DataLoader } from '../../src/data/loader.js';
import { parseConfig } from '../../src/config/load.js';
import { openDataset } from '../../src/data/datasets/index.js';
import { writeCustom } from '../helpers/tiny-datasets.js';
import { tempDir } from '../helpers/paths.js';
import { killAll, runNode, workerScript } from './spawn.js';
import { syncBnInput } from './tiny.js';

after(killAll);

// One process of batch 4 and two of batch 2 run every scenario (worker.ts `suite`), concurrently.
const dir = tempDir('ddp-equiv-');
before(async () => {
  const [one, two] = await Promise.all([
    runNode([workerScript, 'suite', dir]),
    runNode([workerScript, 'launch', '2', '--', 'suite', dir]),
  ]);
  assert.equal(one.code, 0, one.out);
  assert.equal(two.code, 0, two.out);
});

function maxDiff(a: Map<string, torch.Tensor>, b: Map<string, torch.Tensor>): { diff: number; key: string } {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  let worst = { diff: 0, key: '' };
  for (const [k, t] of a) {
    const d = t.float().sub(b.get(k)!.float()).abs().max().item();
    if (d > worst.diff) worst = { diff: d, key: k };
  }
  return worst;
}

for (const bn of ['frozen', 'sync'] as const) {
  test(`2 processes x batch 2 train to the weights of 1 process x batch 4 (BN ${bn}, 3 SGD steps)`, async () => {
    const a = torch.readSafetensors(join(dir, `one-${bn}.safetensors`));
    const b = torch.readSafetensors(join(dir, `two-${bn}.safetensors`));
    const { diff, key } = maxDiff(a, b);
    assert.ok(diff <= 1e-5, `${key} differs by ${diff}`);
    // The run did move the weights (and, with SyncBN, the running statistics).
    const init = (await import('./tiny.js')).tinyNet().stateDict();
    assert.ok(a.get('0.weight')!.sub(init.get('0.weight')!).abs().max().item() > 1e-3);
    if (bn === 'sync') assert.ok(a.get('1.running_mean')!.abs().max().item() > 1e-3);
    else assert.equal(a.get('1.running_mean')!.abs().max().item(), 0);
  });
}

test('SyncBN: forward, input and parameter gradients, running statistics = BatchNorm2d over the combined batch', async () => {
  const per = 3;
  const ranks = [0, 1].map((k) => torch.readSafetensors(join(dir, `syncbn-${k}.safetensors`)));
  // The reference: one BatchNorm2d in training mode over both ranks' samples.
  const { x, g } = syncBnInput(2 * per);
  const bn = new torch.nn.BatchNorm2d(x.size(1));
  torch.noGrad(() => {
    bn.weight!.copy_(torch.arange(0, x.size(1)).float().mul(0.25).add(0.5));
    bn.bias!.copy_(torch.arange(0, x.size(1)).float().mul(0.1).sub(0.2));
  });
  const xr = x.detach().requiresGrad_(true);
  const y = bn.forward(xr);
  y.mul(g).sum().backward();
  const close = (a: torch.Tensor, b: torch.Tensor, what: string) => {
    const d = a.sub(b).abs().max().item();
    assert.ok(d <= 1e-5, `${what}: differs by ${d}`);
  };
  for (const [k, t] of ranks.entries()) {
    close(t.get('y')!, y.narrow(0, k * per, per), `rank ${k} output`);
    close(t.get('dx')!, xr.grad!.narrow(0, k * per, per), `rank ${k} input gradient`);
    close(t.get('running_mean')!, bn.running_mean!, `rank ${k} running_mean`);
    close(t.get('running_var')!, bn.running_var!, `rank ${k} running_var`);
  }
  // Weight and bias gradients stay per rank (DDP's Reducer averages them): their sum is the reference.
  close(ranks[0].get('dweight')!.add(ranks[1].get('dweight')!), bn.weight!.grad!, 'weight gradient');
  close(ranks[0].get('dbias')!.add(ranks[1].get('dbias')!), bn.bias!.grad!, 'bias gradient');
});

test('the sampler: shards of one shuffled stream, no overlap, the 1-process batch; resumes across process counts', async () => {
  const root = await writeCustom(tempDir('ddp-sampler-'), { train: 7, val: 1 });
  const ds = openDataset({ type: 'custom', root, meta: join(root, 'meta.yaml') }, 'train');
  const pipeline = parseConfig({
    name: 'sampler',
    model: { preset: 'deeplabv3_r18-d8', numClasses: 3, outputStride: { train: 16, eval: 16 } },
    data: {
      dataset: { type: 'custom', root },
      train: { scale: [60, 40], ratioRange: [1, 1], crop: [40, 60], catMaxRatio: 1, flipProb: 0.5 },
      test: { scale: null },
    },
    train: { iters: 1, batchSize: 1, checkpointInterval: 1, evalInterval: 1, optimizer: { type: 'sgd', lr: 0.01 } },
    workDir: root,
  }).data.train;
  const loader = (
    batchSize: number,
    shard?: { rank: number; worldSize: number },
    start?: { epoch: number; position: number },
  ) =>
    new DataLoader(ds, {
      pipeline,
      batchSize,
      seed: 5,
      workers: 0,
      numClasses: 3,
      shard,
      start,
    });
  const single = loader(4);
  const ranks = [0, 1].map((rank) => loader(2, { rank, worldSize: 2 }));
  try {
    for (let step = 0; step < 4; step++) {
      const whole = await single.next();
      const parts = await Promise.all(ranks.map((l) => l.next()));
      // rank r takes stream positions r, r + 2, ...: interleaved, they are the 1-process batch
      assert.deepEqual([parts[0].names[0], parts[1].names[0], parts[0].names[1], parts[1].names[1]], whole.names);
      // and the same pixels (augmentation draws per sample, not per rank)
      assert.deepEqual(parts[0].images.subarray(0, 40 * 60 * 3), whole.images.subarray(0, 40 * 60 * 3));
      assert.deepEqual(ranks[0].state(), single.state());
      assert.deepEqual(ranks[1].state(), single.state());
    }
    // 16 samples of a 7-sample split: the position is in the whole stream, epoch 2, sample 2.
    assert.deepEqual(single.state(), { epoch: 2, position: 2 });
    // Resuming the 2-process position with 1 process (and the reverse) gives the next samples.
    const resumedOne = loader(4, undefined, ranks[0].state());
    const resumedTwo = [0, 1].map((rank) => loader(2, { rank, worldSize: 2 }, single.state()));
    const next = await single.next();
    assert.deepEqual((await resumedOne.next()).names, next.names);
    const [p0, p1] = await Promise.all(resumedTwo.map((l) => l.next()));
    assert.deepEqual([p0.names[0], p1.names[0], p0.names[1], p1.names[1]], next.names);
    await resumedOne.close();
    await Promise.all(resumedTwo.map((l) => l.close()));
  } finally {
    await single.close();
    await Promise.all(ranks.map((l) => l.close()));
  }
});
