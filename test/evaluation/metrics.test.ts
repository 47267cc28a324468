// The confusion matrix and each reference system's metrics, against values computed by those
// systems' own code (test/fixtures/make_metrics.py): mmseg, torchvision, TF DeepLab, DeepLab-v2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { ConfusionMatrix, computeMetrics, type MetricMode, type Metrics } from '../../src/evaluation/metrics.js';
import {
  classTable,
  formatReport,
  pythonFloat,
  round2,
  summaryLine,
  toReportJSON,
} from '../../src/evaluation/report-table.js';
import { committedFixture } from '../helpers/paths.js';

interface Pair {
  shape: number[];
  pred: number[];
  gt: number[];
}
type Ref = Record<string, number | null | (number | null)[]>;
interface Case {
  name: string;
  numClasses: number;
  ignoreIndex: number;
  classes: string[];
  pairs: Pair[];
  counts: number[][];
  metrics: Partial<Record<MetricMode, Ref>>;
}
const fx = JSON.parse(readFileSync(committedFixture('metrics', 'metrics.json'), 'utf8')) as {
  cases: Case[];
  table: string | null;
  summary: string;
};
const byName = (n: string) => fx.cases.find((c) => c.name === n)!;

function matrixOf(c: Case, pairs = c.pairs): ConfusionMatrix {
  const cm = new ConfusionMatrix(c.numClasses, c.ignoreIndex);
  for (const p of pairs) cm.update(Int32Array.from(p.pred), Int32Array.from(p.gt));
  return cm;
}

function counts2d(cm: ConfusionMatrix): number[][] {
  return cm.toJSON().matrix;
}

// Per-class values are the same divisions as the reference's: exact. Means may differ in the
// last bit with numpy's summation order.
function assertNum(actual: number, expected: number | null, what: string, exact = true): void {
  if (expected === null) return assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
  if (exact) return assert.equal(actual, expected, what);
  assert.ok(
    Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

function assertMetrics(m: Metrics, ref: Ref, what: string): void {
  for (const k of ['aAcc', 'mIoU', 'mAcc', 'mDice'] as const) {
    if (k in ref) assertNum(m[k] as number, ref[k] as number | null, `${what} ${k}`, false);
  }
  for (const k of ['iou', 'acc', 'dice', 'precision', 'recall', 'fscore'] as const) {
    const r = ref[k] as (number | null)[] | undefined;
    if (!r) continue;
    r.forEach((v, i) => assertNum(m.perClass[i][k], v, `${what} ${k}[${i}]`));
  }
}

test('the confusion matrix counts as defined: ignore skipped, values outside 0..C-1 in the extra row and column', () => {
  for (const c of fx.cases) {
    const cm = matrixOf(c);
    assert.deepEqual(counts2d(cm), c.counts, c.name);
    cm.dispose();
  }
});

test('every mode equals its reference system (in-range predictions)', () => {
  const c = byName('in_range');
  const cm = matrixOf(c);
  for (const [mode, ref] of Object.entries(c.metrics))
    assertMetrics(computeMetrics(cm, mode as MetricMode), ref, `in_range/${mode}`);
  cm.dispose();
});

test('mmseg with predictions and labels outside 0..C-1: histc drops the value, not the pixel', () => {
  const c = byName('out_of_range');
  const cm = matrixOf(c);
  assertMetrics(computeMetrics(cm, 'mmseg'), c.metrics.mmseg!, 'out_of_range/mmseg');
  // torchvision and v2 drop ground truth outside the classes: class 0's prediction area loses row C
  const mm = computeMetrics(cm, 'mmseg').perClass[0];
  const tv = computeMetrics(cm, 'torchvision').perClass[0];
  assert.equal(mm.acc, tv.acc); // the label area is the same
  assert.ok(tv.iou > mm.iou, 'fewer false positives without the out-of-range ground truth');
  cm.dispose();
});

test('tensors and typed arrays give the same counts; shapes only need the same pixel count', () => {
  const c = byName('in_range');
  const cm = new ConfusionMatrix(c.numClasses, c.ignoreIndex);
  torch.scope(() => {
    for (const p of c.pairs) {
      const pred = torch.tensor(Int32Array.from(p.pred), { shape: [1, ...p.shape] }).long(); // argmax's 1 x H x W int64
      cm.update(pred, Uint8Array.from(p.gt));
    }
  });
  assert.deepEqual(counts2d(cm), c.counts);
  assert.throws(
    () => cm.update(new Int32Array(4), new Int32Array(5)),
    /prediction has shape \[4\] \(4 pixels\) but ground truth has shape \[5\]/,
  );
  assert.throws(
    () => torch.scope(() => cm.update(torch.zeros([4]), new Int32Array(4))),
    /integer prediction tensor but received float32/,
  );
  cm.dispose();
});

test('merging per-worker matrices equals one matrix over all the data; JSON round-trips', () => {
  const c = byName('in_range');
  const all = matrixOf(c);
  const a = matrixOf(c, c.pairs.slice(0, 1));
  const rest = matrixOf(c, c.pairs.slice(1));
  const b = ConfusionMatrix.fromJSON(JSON.parse(JSON.stringify(rest)));
  a.merge(b);
  assert.deepEqual(counts2d(a), counts2d(all));
  for (const mode of ['mmseg', 'torchvision', 'tf', 'v2'] as const) {
    assert.deepEqual(toReportJSON(computeMetrics(a, mode)), toReportJSON(computeMetrics(all, mode)));
  }
  assert.equal(a.at(0, 0), c.counts[0][0]);
  assert.throws(
    () => a.merge(new ConfusionMatrix(5)),
    /cannot merge a matrix of 5 classes \(ignore 255\) into one of 6 classes/,
  );
  assert.throws(() => ConfusionMatrix.fromJSON({ ...all.toJSON(), format: 'x' as never }), /expected format/);
  assert.throws(() => ConfusionMatrix.fromJSON({ ...all.toJSON(), matrix: [[1]] }), /expected 7 rows/);
  for (const m of [all, a, b, rest]) m.dispose();
});

test('NaN classes: which figures, why, and what each mode does with them', () => {
  const c = byName('in_range');
  const cm = matrixOf(c);
  const mm = computeMetrics(cm, 'mmseg');
  // class 4 never appears; class 5 is predicted but never in ground truth
  assert.deepEqual(
    mm.nanReasons.map((r) => [r.index, r.reason]),
    [
      [4, 'absent from ground truth and never predicted'],
      [5, 'never in ground truth'],
    ],
  );
  assert.ok(Number.isNaN(mm.perClass[4].iou) && Number.isNaN(mm.perClass[4].acc));
  assert.equal(mm.perClass[5].iou, 0);
  assert.ok(Number.isNaN(mm.perClass[5].acc));
  assert.match(mm.nanReasons[0].effect, /left out of mIoU/);
  // mIoU = mean of the five non-NaN IoUs (ghost's 0 included)
  const five = [0, 1, 2, 3, 5].map((i) => mm.perClass[i].iou);
  assert.ok(Math.abs(mm.mIoU - five.reduce((s, x) => s + x) / 5) < 1e-12);
  const tv = computeMetrics(cm, 'torchvision');
  assert.ok(Number.isNaN(tv.mIoU), 'a plain mean is NaN when a class has an empty union');
  assert.match(tv.nanReasons[0].effect, /makes mIoU and mAcc NaN/);
  const tf = computeMetrics(cm, 'tf');
  assert.ok(Number.isNaN(tf.perClass[5].iou), 'TF reports no IoU where tp + fn = 0');
  assert.ok(Math.abs(tf.mIoU - mm.mIoU) < 1e-12, 'but its 0 counts in the mean');
  assert.deepEqual(tf.nanReasons[1].nan, ['iou', 'acc', 'recall', 'fscore']);
  cm.dispose();
});

test('an empty matrix: NaN (mmseg, torchvision, v2) or 0 (TF mean_iou)', () => {
  const cm = new ConfusionMatrix(3);
  cm.update(Uint8Array.from([0, 1, 2]), Uint8Array.from([255, 255, 255]));
  assert.ok(Number.isNaN(computeMetrics(cm, 'mmseg').mIoU));
  assert.ok(Number.isNaN(computeMetrics(cm, 'mmseg').aAcc));
  assert.equal(computeMetrics(cm, 'tf').mIoU, 0);
  assert.ok(Number.isNaN(computeMetrics(cm, 'v2').mIoU));
  cm.dispose();
});

test("report: mmseg's per-class table and summary line, and the same figures as JSON", () => {
  const c = byName('in_range');
  const cm = matrixOf(c);
  const m = computeMetrics(cm, 'mmseg');
  if (fx.table !== null) assert.equal(classTable(m, c.classes), fx.table);
  assert.equal(summaryLine(m), fx.summary);
  const report = formatReport(m, c.classes);
  assert.ok(report.startsWith('per class results:\n\n+'));
  assert.match(
    report,
    /iou\/acc\/dice\/precision\/recall\/fscore NaN, absent from ground truth and never predicted; [^:]*: absent$/m,
  );
  const j = toReportJSON(m, c.classes);
  assert.equal(j.mIoU, round2(m.mIoU));
  assert.deepEqual(j.perClass[4], { class: 'absent', IoU: null, Acc: null });
  assert.deepEqual(j.perClass[5], { class: 'ghost', IoU: 0, Acc: null });
  assert.equal(j.nanReasons[1].class, 'ghost');
  assert.ok(j.mDice !== undefined);
  cm.dispose();
});

test("numpy's rounding and Python's float printing", () => {
  assert.equal(round2(12.345), 12.34); // 1234.4999... in binary
  assert.equal(round2(0.125), 0.12); // exact half: to even
  assert.equal(round2(0.375), 0.38);
  assert.deepEqual([100, 0, 98.7, NaN, 97.68].map(pythonFloat), ['100.0', '0.0', '98.7', 'nan', '97.68']);
});

test('no tensor leaks: update, merge, JSON, metrics', () => {
  const c = byName('out_of_range');
  const warm = matrixOf(c);
  warm.dispose();
  const before = torch.liveTensors();
  const cm = matrixOf(c);
  const other = ConfusionMatrix.fromJSON(cm.toJSON());
  cm.merge(other);
  computeMetrics(cm, 'mmseg');
  cm.dispose();
  other.dispose();
  assert.equal(torch.liveTensors(), before);
});
