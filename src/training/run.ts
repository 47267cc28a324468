// One training run from a validated config, as `deeplab train` and the demo run it: the model
// and its initial weights, the data, the trainer with periodic evaluation, and the report.
// Progress goes to the terminal through the progress bar; the figures come back.
import { train, type TrainResult } from './trainer.js';
import type { Config } from '../config/schema.js';
import { openSplit } from '../data/datasets/index.js';
import { buildForTraining, makeBatchSource, writeResolvedConfig } from './from-config.js';
import { evaluateOnSplit, summarize, type EvalSummary } from '../evaluation/on-split.js';
import { formatReport } from '../evaluation/report-table.js';
import { writeReport } from './report.js';

/** Where a run reports: lines of text, and a progress bar over the iterations (the CLI's terminal). */
export interface RunOutput {
  log(line: string): void;
  progress(label: string, total: number, fieldsFormat: string): Progress;
}

export interface Progress {
  update(done: number, fields?: Record<string, string>): void;
  stop(): void;
  /** print a line without breaking the bar */
  log(line: string): void;
}

export interface TrainingRun {
  result: TrainResult;
  classes: readonly string[];
  reportCharts: string[];
  /** the last periodic evaluation (the final weights when evaluation ran at the last iteration) */
  lastEval: EvalSummary | null;
}

export interface RunOptions {
  /** resume from the work dir's last checkpoint (true) or from this file */
  resume?: boolean | string;
  /** false: no periodic evaluation */
  evaluate?: boolean;
}

/** Trains a validated config as `deeplab train` does (the demo runs this too). */
export async function runTraining(cfg: Config, out: RunOutput, o: RunOptions = {}): Promise<TrainingRun> {
  writeResolvedConfig(cfg);
  const { preset, model } = buildForTraining(cfg, { log: (l) => out.log(l) });
  const trainSet = openSplit(cfg, 'train');
  const valSet = o.evaluate === false ? null : openSplit(cfg, 'val');
  out.log(
    `${cfg.name}: ${preset.name} (${(model.numParameters() / 1e6).toFixed(1)}M parameters), ${trainSet.samples.length} training samples, ${cfg.train.iters} iterations of batch ${cfg.train.batchSize}${cfg.train.accumulate > 1 ? ` x ${cfg.train.accumulate}` : ''}, ${cfg.train.precision}, work dir ${cfg.workDir}`,
  );
  let lastEval: EvalSummary | null = null;
  const bar = out.progress('train', cfg.train.iters, 'loss {loss} lr {lr}');
  try {
    const result = await train({
      config: cfg,
      model,
      normalization: preset.normalization,
      makeSource: makeBatchSource(cfg, trainSet, (f, e) => bar.log(`skipped bad sample ${f}: ${e.message}`)),
      resume: o.resume,
      onNotice: (line) => bar.log(line),
      onLog: (e) => bar.update(e.iter, { loss: e.loss.toFixed(4), lr: e.lr.toExponential(2) }),
      evaluate: valSet
        ? async (m) => {
            const r = await evaluateOnSplit(m, cfg, preset, valSet, {
              onBadSample: (f, e) => bar.log(`skipped bad validation sample ${f}: ${e.message}`),
            });
            r.confusion.dispose();
            bar.log(formatReport(r.metrics, valSet.classes));
            lastEval = summarize(r);
            return lastEval;
          }
        : undefined,
    });
    bar.stop();
    out.log(
      `done: ${result.iter} iterations, last loss ${result.lastLoss.toFixed(4)}${result.bestMIoU !== null ? `, best mIoU ${result.bestMIoU.toFixed(2)}` : ''}; waiting for data took ${(100 * result.dataWaitShare).toFixed(1)}% of the time`,
    );
    const classes = (valSet ?? trainSet).classes;
    const report = await writeReport(cfg.workDir, classes);
    out.log(`report: ${report.charts.join(', ')}`);
    return { result, classes, reportCharts: report.charts, lastEval };
  } finally {
    bar.stop();
    model.dispose();
  }
}
