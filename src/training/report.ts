// The end-of-training report: loss, LR and mIoU curves and the per-class IoU of the last
// evaluation, as PNG charts, plus summary.json, all read back from the run's log.jsonl.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { ensureDir } from '../data/output-dir.js';
import { join } from 'node:path';
import { lineChartSvg, barChartSvg, writeSvgPng } from './charts.js';
import type { LogEntry } from './trainer.js';
import type { EvalSummary } from '../evaluation/on-split.js';

export interface ReportFiles {
  dir: string;
  charts: string[];
  summary: string;
}

export async function writeReport(workDir: string, classNames: readonly string[]): Promise<ReportFiles> {
  const logFile = join(workDir, 'log.jsonl');
  if (!existsSync(logFile)) throw new Error(`${logFile}: no training log to report on`);
  const lines = readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogEntry | { iter: number; eval: EvalSummary });
  const steps = lines.filter((l): l is LogEntry => 'loss' in l);
  const evals = lines.filter((l): l is { iter: number; eval: EvalSummary } => 'eval' in l);
  const dir = join(workDir, 'report');
  ensureDir(dir, 'report folder');
  const charts: [string, string][] = [
    [
      'loss.png',
      lineChartSvg('Training loss', 'iteration', 'loss', [
        { name: 'total', points: steps.map((s) => [s.iter, s.loss]) },
        { name: 'decode head', points: steps.map((s) => [s.iter, s.decodeLoss]) },
        ...(steps.some((s) => s.auxLoss !== null)
          ? [{ name: 'aux head', points: steps.map((s) => [s.iter, s.auxLoss ?? NaN] as [number, number]) }]
          : []),
      ]),
    ],
    [
      'lr.png',
      lineChartSvg('Learning rate', 'iteration', 'lr', [{ name: 'lr', points: steps.map((s) => [s.iter, s.lr]) }]),
    ],
    [
      'miou.png',
      lineChartSvg('Validation', 'iteration', '%', [
        { name: 'mIoU', points: evals.map((e) => [e.iter, e.eval.mIoU]) },
        { name: 'aAcc', points: evals.map((e) => [e.iter, e.eval.aAcc]) },
      ]),
    ],
  ];
  const last = evals[evals.length - 1];
  if (last)
    charts.push([
      'per_class_iou.png',
      barChartSvg(
        `Per-class IoU at iteration ${last.iter} (mIoU ${last.eval.mIoU.toFixed(2)})`,
        classNames.slice(0, last.eval.perClassIoU.length),
        last.eval.perClassIoU,
        'IoU %',
      ),
    ]);
  for (const [f, svg] of charts) await writeSvgPng(join(dir, f), svg);
  const summary = join(dir, 'summary.json');
  writeFileSync(
    summary,
    JSON.stringify(
      {
        iterations: steps.at(-1)?.iter ?? 0,
        finalLoss: steps.at(-1)?.loss ?? null,
        evaluations: evals,
        secondsPerIter: median(steps.map((s) => s.time)),
        dataWaitShare: sum(steps.map((s) => s.dataTime)) / Math.max(1e-9, sum(steps.map((s) => s.time))),
      },
      null,
      2,
    ),
  );
  return { dir, charts: charts.map(([f]) => join(dir, f)), summary };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
