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
import type { Distributed } from '../distributed/process-group.js';
import { createHash } from 'node:crypto';

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
  /** one rank of a data-parallel job (src/distributed): rank 0 writes and reports, all train */
  dist?: Distributed;
}

/** Trains a validated config as `deeplab train` does (the demo runs this too). */
export async function runTraining(cfg: Config, out: RunOutput, o: RunOptions = {}): Promise<TrainingRun> {
  const dist = o.dist;
  const main = !dist || dist.isMain;
  // Every rank must run the same config (the same file and --set options): checked before
  // anything is written.
  dist?.agree('config', createHash('sha256').update(JSON.stringify(cfg)).digest('hex'));
  if (main) writeResolvedConfig(cfg);
  const { preset, model } = buildForTraining(cfg, { log: (l) => out.log(l) });
  const trainSet = openSplit(cfg, 'train');
  const valSet = o.evaluate === false ? null : openSplit(cfg, 'val');
  out.log(
    `${cfg.name}: ${preset.name} (${(model.numParameters() / 1e6).toFixed(1)}M parameters), ${trainSet.samples.length} training samples, ${cfg.train.iters} iterations of batch ${dist ? `${dist.worldSize} x ` : ''}${cfg.train.batchSize}${cfg.train.accumulate > 1 ? ` x ${cfg.train.accumulate}` : ''}, ${cfg.train.precision}, work dir ${cfg.workDir}`,
  );
  let lastEval: EvalSummary | null = null;
  const bar = out.progress('train', cfg.train.iters, 'loss {loss} lr {lr}');
  try {
    const result = await train({
      config: cfg,
      model,
      normalization: preset.normalization,
      makeSource: makeBatchSource(
        cfg,
        trainSet,
        (f, e) => bar.log(`skipped bad sample ${f}: ${e.message}`),
        dist ? { rank: dist.rank, worldSize: dist.worldSize } : undefined,
      ),
      resume: o.resume,
      dist,
      onNotice: (line) => bar.log(line),
      onLog: (e) => bar.update(e.iter, { loss: e.loss.toFixed(4), lr: e.lr.toExponential(2) }),
      evaluate: valSet
        ? async (m) => {
            const r = await evaluateOnSplit(m, cfg, preset, valSet, {
              onBadSample: (f, e) => bar.log(`skipped bad validation sample ${f}: ${e.message}`),
              group: dist?.pg,
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
    const charts = main ? (await writeReport(cfg.workDir, classes)).charts : [];
    if (main) out.log(`report: ${charts.join(', ')}`);
    return { result, classes, reportCharts: charts, lastEval };
  } finally {
    bar.stop();
    model.dispose();
  }
}
