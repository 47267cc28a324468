// `deeplab train CONFIG [--set key=value ...] [--resume]`
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { runTraining } from '../training/run.js';
import { terminal } from './progress.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function trainCommand(): Command {
  return new Command('train')
    .description('train a model from a config (see configs/)')
    .argument('<config>', 'a JSON or YAML config')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. train.iters=2000', collect, [])
    .option('--resume [checkpoint]', "resume from the work dir's last checkpoint, or this one")
    .option('--no-eval', 'skip the periodic evaluation')
    .action(async (file: string, o: { set: string[]; resume?: boolean | string; eval: boolean }) => {
      await runTraining(loadConfig(file, o.set), terminal, { resume: o.resume, evaluate: o.eval });
    });
}
