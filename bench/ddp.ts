// Data-parallel training on one machine: 2 processes x 1 thread (c10d Gloo on loopback, DDP's
// Reducer) against 1 process x 2 threads, the same global batch; how much of a step the gradient
// all-reduce takes and how much of it hides behind backward; the bytes all-reduced per step.
//   node dist/bench/ddp.js [--model deeplabv3_r18-d8] [--size 128] [--batch 2] [--steps 4] [--rounds 2]
//                          [--out bench/results/ddp.md]
// --batch is per process (the single process trains 2 x batch). Runs, interleaved per round:
//   single  1 process, 2 threads, batch 2b
//   ddp     2 processes, 1 thread each, batch b each, DDP (gradients bucketed, all-reduced during backward)
//   syncbn  the same with SyncBN (statistics all-gathered in forward, all-reduced in backward)
//   local   2 processes without DDP: backward alone, then the gradients all-reduced after it (the
//           same bytes, nothing overlapped): the communication time on its own
// overlapped share = 1 - (ddp backward - local backward) / local all-reduce time.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { findPreset } from '../src/models/zoo.js';
import { readDistEnv } from '../src/distributed/env.js';
import { runAsRank } from '../src/distributed/rank.js';
import { DataParallel } from '../src/distributed/ddp.js';
import { convertSyncBatchNorm } from '../src/distributed/sync-bn.js';
import { launch } from '../src/distributed/launcher.js';
import type { Distributed } from '../src/distributed/process-group.js';
import { benchArgs } from './args.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

interface StepTimes {
  mode: string;
  step: number;
  forward: number;
  backward: number;
  allreduce: number;
  optimizer: number;
  perSample: number;
  bytes: number;
  buckets: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One worker: warm-up, then timed steps; rank 0 prints one JSON line. */
function worker(mode: string, dist: Distributed | null, o: Record<string, string>): void {
  const size = Number(o['--size']);
  const batch = Number(o['--batch']) * (dist ? 1 : 2);
  torch.manualSeed(0);
  const model = findPreset(o['--model']).build({ numClasses: 19, aux: false });
  model.train();
  if (dist && mode === 'syncbn') convertSyncBatchNorm(model, dist.pg);
  const ddp = dist && mode !== 'local' ? new DataParallel(model, dist.pg) : null;
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new torch.optim.SGD([{ params }], { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const x = torch.keep(torch.randn([batch, 3, size, size]));
  const y = torch.keep(torch.randint(0, 19, [batch, size, size]));
  const rows: Omit<StepTimes, 'mode' | 'perSample' | 'bytes' | 'buckets'>[] = [];
  const steps = Number(o['--steps']);
  for (let s = 0; s < steps + 2; s++) {
    const t0 = performance.now();
    ddp?.beforeForward(true);
    let t1 = 0;
    let t2 = 0;
    torch.scope(() => {
      const loss = torch.F.crossEntropy(model.forward(x).out, y);
      t1 = performance.now();
      loss.backward(); // with DDP: returns once every bucket is all-reduced
      t2 = performance.now();
    });
    if (dist && mode === 'local') torch.noGrad(() => dist.pg.allreduce(params.map((p) => p.grad!)));
    const t3 = performance.now();
    opt.step();
    opt.zeroGrad();
    const t4 = performance.now();
    if (s >= 2)
      rows.push({ step: t4 - t0, forward: t1 - t0, backward: t2 - t1, allreduce: t3 - t2, optimizer: t4 - t3 });
  }
  if (!dist || dist.isMain) {
    const m = (k: keyof (typeof rows)[0]) => median(rows.map((r) => r[k]));
    const result: StepTimes = {
      mode,
      step: m('step'),
      forward: m('forward'),
      backward: m('backward'),
      allreduce: m('allreduce'),
      optimizer: m('optimizer'),
      perSample: m('step') / (batch * (dist?.worldSize ?? 1)),
      bytes: params.reduce((n, p) => n + p.numel * 4, 0),
      buckets: ddp?.buckets ?? 0,
    };
    console.log(JSON.stringify(result));
  }
  ddp?.[Symbol.dispose]();
}

/** Runs one configuration in fresh processes; the last JSON line is rank 0's figures. */
function measure(mode: string, o: Record<string, string>): StepTimes {
  const self = fileURLToPath(import.meta.url);
  const pass = Object.entries(o).flatMap(([k, v]) => [k, v]);
  const args = mode === 'single' ? [self, 'worker', mode, ...pass] : [self, 'launch', mode, ...pass];
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, DEEPLAB_THREADS: mode === 'single' ? '2' : '1' },
    maxBuffer: 1 << 24,
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`${mode} failed:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line) as StepTimes;
}

/** Gradient bytes all-reduced per step (each parameter that trains, fp32, once). */
function gradientBytes(preset: string): number {
  const model = findPreset(preset).build({ numClasses: 19, aux: true });
  const n = model.parameters().reduce((s, p) => s + (p.requiresGrad ? p.numel * 4 : 0), 0);
  model.dispose();
  return n;
}

async function main(): Promise<void> {
  const [cmd, mode, ...rest] = process.argv.slice(2);
  const defaults = { '--model': 'deeplabv3_r18-d8', '--size': '128', '--batch': '2', '--steps': '4' };
  if (cmd === 'worker' || cmd === 'rank') {
    const o = benchArgs(defaults, rest);
    const env = readDistEnv();
    if (!env) return worker(mode, null, o);
    await runAsRank(env, { timeoutMs: 600000 }, async (dist) => worker(mode, dist, o));
    return;
  }
  if (cmd === 'launch') {
    const code = await launch({
      nprocPerNode: 2,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: '127.0.0.1',
      masterPort: 0,
      args: ['rank', mode, ...rest],
      timeoutMs: 600000,
      log: () => {},
    });
    process.exitCode = code;
    return;
  }
  const o = benchArgs(
    { ...defaults, '--rounds': '2', '--out': join(root, 'bench/results/ddp.md') },
    process.argv.slice(2),
  );
  const pass = { '--model': o['--model'], '--size': o['--size'], '--batch': o['--batch'], '--steps': o['--steps'] };
  const modes = ['single', 'ddp', 'syncbn', 'local'];
  const runs = new Map<string, StepTimes[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < Number(o['--rounds']); r++)
    for (const m of modes) {
      const t = measure(m, pass);
      runs.get(m)!.push(t);
      console.error(`round ${r + 1} ${m}: ${t.step.toFixed(0)} ms/step, ${t.perSample.toFixed(0)} ms/sample`);
    }
  const load = loadavg()[1].toFixed(1); // the machine may be shared: say how busy it was
  const med = (m: string, k: keyof StepTimes) => median(runs.get(m)!.map((t) => t[k] as number));
  const comm = med('local', 'allreduce');
  const exposed = med('ddp', 'backward') - med('local', 'backward');
  const hidden = Math.max(0, Math.min(1, 1 - exposed / comm));
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const b = Number(o['--batch']);
  const lines = [
    `# Data-parallel training on one machine`,
    '',
    `\`node dist/bench/ddp.js --model ${o['--model']} --size ${o['--size']} --batch ${o['--batch']} --steps ${o['--steps']} --rounds ${o['--rounds']}\`, ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${torch.buildInfo().torchVersion}, Gloo on loopback; medians of ${o['--rounds']} runs of ${o['--steps']} timed steps (after 2 warm-up steps), ${o['--size']}x${o['--size']} crops, SGD. Global batch ${2 * b} in every row. Load average over the last 5 minutes at the end: ${load}.`,
    '',
    '| run | ms / step | ms / sample | forward | backward (+ waiting for the last buckets) | all-reduce after backward | optimizer |',
    '|---|---|---|---|---|---|---|',
    ...modes.map((m) => {
      const name = {
        single: `1 process x 2 threads, batch ${2 * b}`,
        ddp: `2 processes x 1 thread, batch ${b} each, DDP`,
        syncbn: `2 processes x 1 thread, batch ${b} each, DDP + SyncBN`,
        local: `2 processes x 1 thread, backward, then one all-reduce`,
      }[m];
      const f = (k: keyof StepTimes) => med(m, k).toFixed(0);
      return `| ${name} | ${f('step')} | ${f('perSample')} | ${f('forward')} | ${f('backward')} | ${f('allreduce')} | ${f('optimizer')} |`;
    }),
    '',
    `2 x 1 with DDP / 1 x 2, per sample: **${(med('ddp', 'perSample') / med('single', 'perSample')).toFixed(2)}x**; with SyncBN: ${(med('syncbn', 'perSample') / med('single', 'perSample')).toFixed(2)}x.`,
    '',
    `Communication: all-reducing the ${mib(runs.get('ddp')![0].bytes)} of gradients takes ${comm.toFixed(0)} ms on its own (${((100 * comm) / med('ddp', 'step')).toFixed(0)}% of a DDP step); ` +
      (exposed < 0
        ? `DDP's backward measured ${(-exposed).toFixed(0)} ms shorter than a backward without communication: noise larger than the effect, the overlap is not resolved by this run (${runs.get('ddp')![0].buckets} buckets).`
        : `DDP's backward is ${exposed.toFixed(0)} ms longer than a backward without communication, so **${(100 * hidden).toFixed(0)}%** of the all-reduce overlaps backward (${runs.get('ddp')![0].buckets} buckets).`),
    '',
    '| model (numClasses 19, aux head) | gradient bytes all-reduced per step |',
    '|---|---|',
    ...['deeplabv3_r18-d8', 'deeplabv3_r50-d8', 'deeplabv3_r101-d8'].map((p) => `| ${p} | ${mib(gradientBytes(p))} |`),
    '',
  ];
  mkdirSync(dirname(o['--out']), { recursive: true });
  writeFileSync(o['--out'], lines.join('\n'));
  console.log(lines.join('\n'));
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
