// A worker process for the data-parallel tests, compiled with them: one rank (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT in its environment; none = a single process) running one scenario
// through the same code `deeplab train` uses (runAsRank, DataParallel, SyncBN, the sampler, the
// launcher), writing what the test compares to a file.
//
//   node worker.js train OUT BATCH ITERS BN      BN: frozen | sync
//   node worker.js syncbn OUT BATCH              SyncBN forward/backward on this rank's slice
//   node worker.js suite DIR                     the tests' scenarios in one process per rank
//                                                (process start-up is most of their time)
//   node worker.js fault MODE RANK [DIR]         MODE: die | hang | ok; RANK: the rank that misbehaves;
//                                                each rank that finishes writes DIR/done-RANK
//   node worker.js launch NPROC -- ARGS...       our launcher, running this script with ARGS
//                                                (TEST_NNODES, TEST_NODE_RANK, TEST_MASTER_PORT: one node of several)
import { writeFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { readDistEnv } from '../../src/distributed/env.js';
import { runAsRank } from '../../src/distributed/rank.js';
import type { Distributed } from '../../src/distributed/process-group.js';
import { DataParallel } from '../../src/distributed/ddp.js';
import { convertSyncBatchNorm } from '../../src/distributed/sync-bn.js';
import { shardStart } from '../../src/distributed/sampler.js';
import { launch } from '../../src/distributed/launcher.js';
import { tinyNet, sampleBatch, syncBnInput } from './tiny.js';

const [mode, ...args] = process.argv.slice(2);
// `node --test dist/test/` loads this file too (in Node 20 every .js under a test/ folder is a test
// file); run without a mode, it has nothing to do.
if (mode === undefined) process.exit(0);
// Collectives time out quickly in the fault tests; ranks may start seconds apart on a loaded
// machine, so the rendezvous waits longer unless a test is about the rendezvous.
const TIMEOUT_MS = Number(process.env.TEST_DIST_TIMEOUT_MS ?? 20000);
const RDZV_TIMEOUT_MS = Number(process.env.TEST_RDZV_TIMEOUT_MS ?? 60000);

/** `iters` SGD steps of the tiny net; the ranks' batches are the sampler's shards of one stream. */
function trainScenario(dist: Distributed | null, out: string, batch: number, iters: number, bn: string): void {
  const rank = dist?.rank ?? 0;
  const world = dist?.worldSize ?? 1;
  const model = tinyNet();
  if (bn === 'frozen') for (const [, m] of model.namedModules()) if (m instanceof torch.nn.BatchNorm2d) m.eval();
  if (bn === 'frozen')
    for (const [, m] of model.namedModules())
      if (m instanceof torch.nn.BatchNorm2d) for (const p of [m.weight!, m.bias!]) p.requiresGrad_(false);
  if (dist && bn === 'sync') convertSyncBatchNorm(model, dist.pg);
  const ddp = dist ? new DataParallel(model, dist.pg) : null;
  const opt = new torch.optim.SGD([{ params: model.parameters().filter((p) => p.requiresGrad) }], {
    lr: 0.1,
    momentum: 0.9,
    weightDecay: 1e-4,
  });
  for (let it = 0; it < iters; it++) {
    ddp?.beforeForward(true);
    torch.scope(() => {
      // Stream positions of this rank's samples in step `it`, as DataLoader takes them.
      const base = it * batch * world;
      const indices = Array.from({ length: batch }, (_, j) => shardStart(base, { rank, worldSize: world }) + j * world);
      const { x, y } = sampleBatch(indices);
      torch.F.crossEntropy(model.forward(x), y).backward();
    });
    opt.step();
    opt.zeroGrad();
  }
  if (rank === 0) torch.writeSafetensors(out, model.stateDict(), {});
  ddp?.[Symbol.dispose]();
}

/** SyncBN on this rank's slice of one combined batch: output, input gradient, parameter gradients. */
function syncBnScenario(dist: Distributed, out: string, batch: number): void {
  const { x, g } = syncBnInput(batch * dist.worldSize);
  const bn = new torch.nn.BatchNorm2d(x.size(1));
  torch.noGrad(() => {
    bn.weight!.copy_(torch.arange(0, x.size(1)).float().mul(0.25).add(0.5));
    bn.bias!.copy_(torch.arange(0, x.size(1)).float().mul(0.1).sub(0.2));
  });
  convertSyncBatchNorm(bn, dist.pg);
  bn.train();
  const mine = x
    .narrow(0, dist.rank * batch, batch)
    .detach()
    .requiresGrad_(true);
  const y = bn.forward(mine);
  y.mul(g.narrow(0, dist.rank * batch, batch))
    .sum()
    .backward();
  torch.writeSafetensors(out.replace('RANK', String(dist.rank)), {
    y,
    dx: mine.grad!,
    dweight: bn.weight!.grad!,
    dbias: bn.bias!.grad!,
    running_mean: bn.running_mean!,
    running_var: bn.running_var!,
  });
}

/** Steps of all-reduce; rank `bad` dies or hangs at the third. */
function faultScenario(dist: Distributed, how: string, bad: number): void {
  for (let step = 0; step < 6; step++) {
    if (step === 2 && dist.rank === bad) {
      if (how === 'die') process.exit(3);
      if (how === 'hang') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
    torch.scope(() => dist.pg.allreduce([torch.ones([4])]));
  }
}

async function main(): Promise<void> {
  if (mode === 'launch') {
    const sep = args.indexOf('--');
    const code = await launch({
      nprocPerNode: Number(args[0]),
      nnodes: Number(process.env.TEST_NNODES ?? 1),
      nodeRank: Number(process.env.TEST_NODE_RANK ?? 0),
      masterAddr: '127.0.0.1',
      masterPort: Number(process.env.TEST_MASTER_PORT ?? 0),
      args: args.slice(sep + 1),
      timeoutMs: RDZV_TIMEOUT_MS,
      killGraceMs: 2000,
      log: (l) => console.error(`launcher: ${l}`),
    });
    process.exitCode = code;
    return;
  }
  const env = readDistEnv();
  if (!env) {
    if (mode === 'suite') {
      for (const bn of ['frozen', 'sync']) trainScenario(null, `${args[0]}/one-${bn}.safetensors`, 4, 3, bn);
      return;
    }
    if (mode !== 'train') throw new Error(`${mode} needs RANK/WORLD_SIZE`);
    trainScenario(null, args[0], Number(args[1]), Number(args[2]), args[3]);
    return;
  }
  await runAsRank(env, { timeoutMs: TIMEOUT_MS, rendezvousTimeoutMs: RDZV_TIMEOUT_MS }, async (dist) => {
    if (mode === 'suite') {
      for (const bn of ['frozen', 'sync']) trainScenario(dist, `${args[0]}/two-${bn}.safetensors`, 2, 3, bn);
      syncBnScenario(dist, `${args[0]}/syncbn-RANK.safetensors`, 3);
    } else if (mode === 'train') trainScenario(dist, args[0], Number(args[1]), Number(args[2]), args[3]);
    else if (mode === 'syncbn') syncBnScenario(dist, args[0], Number(args[1]));
    else if (mode === 'fault') faultScenario(dist, args[0], Number(args[1]));
    else throw new Error(`unknown scenario ${mode}`);
    if (mode === 'fault' && args[2]) writeFileSync(`${args[2]}/done-${dist.rank}`, 'ok');
  });
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
