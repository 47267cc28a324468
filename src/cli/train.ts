// `deeplab train CONFIG [--set key=value ...] [--resume]`
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { train, type TrainResult } from '../engine/trainer.js';
import type { Config } from '../config/schema.js';
import { buildModel, openSplit, makeBatchSource, evaluateOnSplit, summarize, writeResolvedConfig } from '../engine/from-config.js';
import { formatReport } from '../engine/report-table.js';
import { writeReport } from '../engine/report.js';
import { progress } from './progress.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function trainCommand(): Command {
  return new Command('train')
    .description('train a model from a config (see configs/)')
    .argument('<config>', 'a JSON or YAML config')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. train.iters=2000', collect, [])
    .option('--resume [checkpoint]', 'resume from the work dir\'s last checkpoint, or this one')
    .option('--no-eval', 'skip the periodic evaluation')
    .action(async (file: string, o: { set: string[]; resume?: boolean | string; eval: boolean }) => {
      await runTraining(loadConfig(file, o.set), { resume: o.resume, evaluate: o.eval });
    });
}

export interface TrainingRun {
  result: TrainResult;
  classes: readonly string[];
  reportCharts: string[];
}

/** Trains a validated config as `deeplab train` does (the demo runs this too). */
export async function runTraining(cfg: Config, o: { resume?: boolean | string; evaluate?: boolean } = {}): Promise<TrainingRun> {
  writeResolvedConfig(cfg);
  const { preset, model } = buildModel(cfg, { log: console.log });
  const trainSet = openSplit(cfg, 'train');
  const valSet = o.evaluate === false ? null : openSplit(cfg, 'val');
  console.log(`${cfg.name}: ${preset.name} (${(model.numParameters() / 1e6).toFixed(1)}M parameters), ${trainSet.samples.length} training samples, ${cfg.train.iters} iterations of batch ${cfg.train.batchSize}${cfg.train.accumulate > 1 ? ` x ${cfg.train.accumulate}` : ''}, ${cfg.train.precision}, work dir ${cfg.workDir}`);
  const bar = progress('train', cfg.train.iters, 'loss {loss} lr {lr}');
  try {
    const result = await train({
      config: cfg,
      model,
      normalization: preset.normalization,
      makeSource: makeBatchSource(cfg, trainSet, (f, e) => bar.log(`skipped bad sample ${f}: ${e.message}`)),
      resume: o.resume,
      onLog: (e) => bar.update(e.iter, { loss: e.loss.toFixed(4), lr: e.lr.toExponential(2) }),
      evaluate: valSet
        ? async (m) => {
            const r = await evaluateOnSplit(m, cfg, preset, valSet);
            r.confusion.dispose();
            bar.log(formatReport(r.metrics, valSet.classes));
            return summarize(r);
          }
        : undefined,
    });
    bar.stop();
    console.log(`done: ${result.iter} iterations, last loss ${result.lastLoss.toFixed(4)}${result.bestMIoU !== null ? `, best mIoU ${result.bestMIoU.toFixed(2)}` : ''}; waiting for data took ${(100 * result.dataWaitShare).toFixed(1)}% of the time`);
    const classes = (valSet ?? trainSet).classes;
    const report = await writeReport(cfg.workDir, classes);
    console.log(`report: ${report.charts.join(', ')}`);
    return { result, classes, reportCharts: report.charts };
  } finally {
    bar.stop();
    model.dispose();
  }
}
