// `deeplab train CONFIG [--set key=value ...] [--resume]`, on one process, or data-parallel:
// `--nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]` launches and
// supervises the workers as torchrun does; a process started with RANK/WORLD_SIZE/MASTER_ADDR/
// MASTER_PORT (torchrun, Slurm, Kubernetes, or our launcher) runs as that rank.
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { runTraining, type RunOutput } from '../training/run.js';
import { terminal } from './progress.js';
import { parseIntOption, parseNonNegativeIntOption } from './options.js';
import { readDistEnv } from '../distributed/env.js';
import { launch } from '../distributed/launcher.js';
import { runAsRank } from '../distributed/rank.js';

const collect = (v: string, prev: string[]) => [...prev, v];

interface TrainFlags {
  set: string[];
  resume?: boolean | string;
  eval: boolean;
  nprocPerNode?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  distTimeout: number;
  rdzvTimeout: number;
}

/** Ranks other than 0 print nothing but errors: rank 0 reports for the job. */
const quiet: RunOutput = {
  log: () => {},
  progress: () => ({ update: () => {}, stop: () => {}, log: () => {} }),
};

/** The worker's command line: the same training, without the launcher's options. */
function workerArgs(file: string, o: TrainFlags): string[] {
  return [
    'train',
    file,
    ...o.set.flatMap((s) => ['--set', s]),
    ...(typeof o.resume === 'string' ? ['--resume', o.resume] : o.resume ? ['--resume'] : []),
    ...(o.eval ? [] : ['--no-eval']),
    '--dist-timeout',
    String(o.distTimeout),
    '--rdzv-timeout',
    String(o.rdzvTimeout),
  ];
}

export function trainCommand(): Command {
  return new Command('train')
    .description('train a model from a config (see configs/); data-parallel with --nproc-per-node')
    .argument('<config>', 'a JSON or YAML config')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. train.iters=2000', collect, [])
    .option('--resume [checkpoint]', "resume from the work dir's last checkpoint, or this one")
    .option('--no-eval', 'skip the periodic evaluation')
    .option(
      '--nproc-per-node <n>',
      'start n worker processes on this machine (train.batchSize is per process)',
      parseIntOption,
    )
    .option('--nnodes <n>', 'machines in the job', parseIntOption, 1)
    .option(
      '--node-rank <r>',
      "this machine's index, 0..nnodes-1 (node 0 serves the rendezvous)",
      parseNonNegativeIntOption,
      0,
    )
    .option('--master-addr <address>', "node 0's address, reachable from every node", '127.0.0.1')
    .option(
      '--master-port <port>',
      "node 0's rendezvous port (0: any free port, one machine only)",
      parseNonNegativeIntOption,
      29500,
    )
    .option(
      '--dist-timeout <seconds>',
      'a collective that a dead or hung rank never completes fails after this long',
      parseIntOption,
      1800,
    )
    .option('--rdzv-timeout <seconds>', 'every rank must have joined within this long', parseIntOption, 900)
    .action(async (file: string, o: TrainFlags) => {
      const timeoutMs = o.distTimeout * 1000;
      const rendezvousTimeoutMs = o.rdzvTimeout * 1000;
      if (o.nprocPerNode !== undefined) {
        if (process.env.WORLD_SIZE !== undefined)
          throw new Error(
            '--nproc-per-node starts the workers itself: unset WORLD_SIZE/RANK, or drop --nproc-per-node',
          );
        loadConfig(file, o.set); // a bad config is reported once, before any worker starts
        const code = await launch({
          nprocPerNode: o.nprocPerNode,
          nnodes: o.nnodes,
          nodeRank: o.nodeRank,
          masterAddr: o.masterAddr,
          masterPort: o.masterPort,
          args: workerArgs(file, o),
          timeoutMs: rendezvousTimeoutMs,
          log: (l) => console.error(`deeplab train: ${l}`),
        });
        process.exitCode = code;
        return;
      }
      const env = readDistEnv();
      const cfg = loadConfig(file, o.set);
      const run = { resume: o.resume, evaluate: o.eval };
      if (!env) {
        await runTraining(cfg, terminal, run);
        return;
      }
      await runAsRank(env, { timeoutMs, rendezvousTimeoutMs }, (dist) =>
        runTraining(cfg, dist.isMain ? terminal : quiet, { ...run, dist }),
      );
    });
}
