// Segmentation metrics: one dataset-level confusion matrix, and the formulas of each reference
// system over it (mmseg, torchvision, TensorFlow DeepLab, DeepLab-v2), so a number printed here
// can be put next to the paper's or the zoo's number it claims to reproduce.
//
// The matrix has one row and one column more than there are classes. Index C ("outside") holds
// ground truth that is neither ignored nor a class (a label 200 in a 21-class set) and
// predictions outside 0..C-1. mmseg counts such pixels on one side only (its histc drops values
// outside [0, C-1] from that side's histogram, not the pixel), so a C x C matrix could not give
// its numbers exactly; the other systems drop those ground-truth rows, which we can also do.
import * as torch from '../torch/index.js';
import { callT, op } from '../torch/index.js';

export type MetricMode = 'mmseg' | 'torchvision' | 'tf' | 'v2';

export interface ConfusionMatrixJSON {
  format: typeof FORMAT;
  numClasses: number;
  ignoreIndex: number;
  /** (C+1) x (C+1) pixel counts, rows = ground truth, columns = prediction; index C = outside 0..C-1 */
  matrix: number[][];
}

const FORMAT = 'deeplab.confusion-matrix/1';

type IndexInput = torch.Tensor | ArrayLike<number> | BigInt64Array;

/**
 * Pixel counts accumulated over a whole dataset (never averaged per image, as every reference
 * does). Counts are int64 and live in LibTorch; call dispose() when done (the garbage collector
 * frees a forgotten one).
 */
export class ConfusionMatrix {
  readonly numClasses: number;
  readonly ignoreIndex: number;
  // Kept out of every scope; created and changed only in inference mode, so an in-place add is
  // allowed wherever update() is called from.
  #counts: torch.Tensor;

  constructor(numClasses: number, ignoreIndex = 255) {
    if (!Number.isInteger(numClasses) || numClasses < 1)
      throw new RangeError(`ConfusionMatrix: expected a positive integer numClasses but received ${numClasses}`);
    if (!Number.isInteger(ignoreIndex))
      throw new RangeError(`ConfusionMatrix: expected an integer ignoreIndex but received ${ignoreIndex}`);
    this.numClasses = numClasses;
    this.ignoreIndex = ignoreIndex;
    const n = numClasses + 1;
    this.#counts = torch.keep(torch.inferenceMode(() => torch.zeros([n, n], { dtype: 'int64' })));
  }

  /**
   * Adds one prediction / ground-truth pair (any shapes with the same number of elements, e.g.
   * 1xHxW argmax and HxW label). Ground truth equal to ignoreIndex is skipped.
   */
  update(pred: IndexInput, gt: IndexInput): void {
    const C = this.numClasses;
    torch.scope(() =>
      torch.inferenceMode(() => {
        const p0 = asIndexTensor(pred, 'prediction');
        const g0 = asIndexTensor(gt, 'ground truth');
        if (p0.numel !== g0.numel) {
          throw new RangeError(
            `ConfusionMatrix.update: prediction has shape [${p0.shape}] (${p0.numel} pixels) but ground truth has shape [${g0.shape}] (${g0.numel} pixels)`,
          );
        }
        // Count on the prediction's device (a GPU for big images); only the small result moves.
        const p = p0.flatten();
        const g = g0.device === p0.device ? g0.flatten() : g0.flatten().to(p0.device);
        const valid = g.ne(this.ignoreIndex);
        const gv = g.maskedSelect(valid);
        const pv = p.maskedSelect(valid);
        const row = torch.where(gv.ge(0).logicalAnd(gv.lt(C)), gv, C);
        const col = torch.where(pv.ge(0).logicalAnd(pv.lt(C)), pv, C);
        const cells = (C + 1) * (C + 1);
        const flat = row.mul(C + 1).add(col);
        const counts = callT(op('aten::bincount'), flat.handle, null, cells);
        this.#counts.add_(counts.cpu().view(C + 1, C + 1));
      }),
    );
  }

  /** Adds another matrix's counts (a data-parallel worker's); both must describe the same classes. */
  merge(other: ConfusionMatrix): this {
    if (other.numClasses !== this.numClasses || other.ignoreIndex !== this.ignoreIndex) {
      throw new RangeError(
        `ConfusionMatrix.merge: cannot merge a matrix of ${other.numClasses} classes (ignore ${other.ignoreIndex}) into one of ${this.numClasses} classes (ignore ${this.ignoreIndex})`,
      );
    }
    torch.inferenceMode(() => this.#counts.add_(other.#counts));
    return this;
  }

  /** Sums the counts of every rank of a data-parallel job (each evaluated its shard), in place. */
  sumAcrossRanks(group: torch.distributed.ProcessGroup): this {
    torch.inferenceMode(() => group.allreduce([this.#counts]));
    return this;
  }

  /** The counts, row-major (C+1) x (C+1); index C is "outside 0..C-1". Exact below 2^53 pixels. */
  counts(): Float64Array {
    return Float64Array.from(this.#counts.data() as BigInt64Array, Number);
  }

  /** Pixels with ground truth `gt` predicted as `pred` (either may be numClasses for "outside"). */
  at(gt: number, pred: number): number {
    return this.counts()[gt * (this.numClasses + 1) + pred];
  }

  toJSON(): ConfusionMatrixJSON {
    const n = this.numClasses + 1;
    const c = this.counts();
    const matrix = Array.from({ length: n }, (_, r) => Array.from(c.subarray(r * n, (r + 1) * n)));
    return { format: FORMAT, numClasses: this.numClasses, ignoreIndex: this.ignoreIndex, matrix };
  }

  static fromJSON(j: ConfusionMatrixJSON): ConfusionMatrix {
    const format: unknown = (j as { format?: unknown } | null)?.format;
    if (format !== FORMAT)
      throw new TypeError(
        `ConfusionMatrix.fromJSON: expected format "${FORMAT}" but received ${JSON.stringify(format)}`,
      );
    const n = j.numClasses + 1;
    const flat = new BigInt64Array(n * n);
    if (!Array.isArray(j.matrix) || j.matrix.length !== n)
      throw new RangeError(
        `ConfusionMatrix.fromJSON: expected ${n} rows (numClasses + 1) but received ${j.matrix?.length}`,
      );
    j.matrix.forEach((row, r) => {
      if (!Array.isArray(row) || row.length !== n)
        throw new RangeError(`ConfusionMatrix.fromJSON: row ${r} has ${row?.length} entries, expected ${n}`);
      row.forEach((v, c) => {
        if (!Number.isSafeInteger(v) || v < 0)
          throw new RangeError(`ConfusionMatrix.fromJSON: matrix[${r}][${c}] = ${v} is not a pixel count`);
        flat[r * n + c] = BigInt(v);
      });
    });
    const cm = new ConfusionMatrix(j.numClasses, j.ignoreIndex);
    torch.scope(() => torch.inferenceMode(() => cm.#counts.copy_(torch.tensor(flat, { shape: [n, n] }))));
    return cm;
  }

  /** Frees the native counts. Safe to call twice. */
  dispose(): void {
    this.#counts.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function asIndexTensor(x: IndexInput, what: string): torch.Tensor {
  if (x instanceof torch.Tensor) {
    if (torch.isFloating(x.dtype))
      throw new TypeError(`ConfusionMatrix.update: expected an integer ${what} tensor but received ${x.dtype}`);
    return x.long();
  }
  if (
    x instanceof BigInt64Array ||
    x instanceof Int32Array ||
    x instanceof Uint8Array ||
    x instanceof Int16Array ||
    x instanceof Int8Array
  )
    return torch.tensor(x).long();
  // Uint16Array (labels of > 256 classes) and plain arrays have no LibTorch dtype of their own.
  return torch.tensor(Int32Array.from(x)).long();
}

// ---- formulas -----------------------------------------------------------------------------------

export interface ClassMetrics {
  /** all in %, unrounded; NaN where a reference system gives NaN */
  iou: number;
  acc: number;
  dice: number;
  precision: number;
  recall: number;
  fscore: number;
}

export interface NanReason {
  /** class index */
  index: number;
  /** which per-class figures are NaN */
  nan: (keyof ClassMetrics)[];
  reason: 'absent from ground truth and never predicted' | 'never in ground truth';
  /** what that does to this mode's means */
  effect: string;
}

export interface Metrics {
  mode: MetricMode;
  /** %, unrounded (summaries round to 2 decimals) */
  aAcc: number;
  mIoU: number;
  mAcc: number;
  /** mmseg only (its mDice) */
  mDice?: number;
  perClass: ClassMetrics[];
  nanReasons: NanReason[];
}

/** Per-class areas as each system counts them (pixels). */
interface Areas {
  intersect: number[];
  pred: number[];
  label: number[];
}

function areas(cm: ConfusionMatrix, mode: MetricMode): Areas {
  const C = cm.numClasses;
  const n = C + 1;
  const m = cm.counts();
  const intersect: number[] = [];
  const pred: number[] = [];
  const label: number[] = [];
  for (let c = 0; c < C; c++) {
    intersect.push(m[c * n + c]);
    // A pixel predicted outside 0..C-1 is still a miss for its ground-truth class, in every mode.
    let l = 0;
    for (let k = 0; k <= C; k++) l += m[c * n + k];
    label.push(l);
    // Ground truth outside 0..C-1 (and not ignored): mmseg keeps the pixel in its prediction
    // histogram; torchvision (k = gt < n), TF (its confusion matrix asserts on it) and v2
    // (gt < nclass) drop the pixel.
    let p = 0;
    const lastRow = mode === 'mmseg' ? C : C - 1;
    for (let r = 0; r <= lastRow; r++) p += m[r * n + c];
    pred.push(p);
  }
  return { intersect, pred, label };
}

/**
 * The metrics of one reference system over the dataset's confusion matrix:
 * - mmseg (IoUMetric): mean over classes whose IoU is not NaN (nanmean): a class absent from
 *   ground truth and prediction is excluded; one predicted but never in ground truth has IoU 0
 *   (it counts) and Acc NaN (excluded from mAcc).
 * - torchvision (ConfusionMatrix): plain mean over all classes: one empty union makes mIoU NaN.
 * - tf (tf.metrics.mean_iou): mean over classes with a non-zero union (0 when there is none);
 *   per-class IoU reported only where tp + fn > 0, as DeepLab's eval.py does.
 * - v2 (DeepLab-ResNet v2's jaccard / accuracy): plain mean over all classes.
 * aAcc is the same in all: correct pixels / labelled pixels.
 */
export function computeMetrics(cm: ConfusionMatrix, mode: MetricMode = 'mmseg', o: { beta?: number } = {}): Metrics {
  const beta2 = (o.beta ?? 1) ** 2;
  const { intersect: I, pred: P, label: L } = areas(cm, mode);
  const C = cm.numClasses;
  const perClass: ClassMetrics[] = [];
  const fraction = { iou: [] as number[], acc: [] as number[], dice: [] as number[] };
  for (let c = 0; c < C; c++) {
    const union = P[c] + L[c] - I[c];
    // 0/0 is NaN in JS as in numpy and torch: no special cases needed for mmseg's formulas.
    let iou = I[c] / union;
    if (mode === 'tf') iou = L[c] > 0 ? I[c] / union : NaN; // tp + fn = label count
    const acc = I[c] / L[c];
    const dice = (2 * I[c]) / (P[c] + L[c]);
    const precision = I[c] / P[c];
    const recall = I[c] / L[c];
    const fscore = ((1 + beta2) * (precision * recall)) / (beta2 * precision + recall);
    fraction.iou.push(iou);
    fraction.acc.push(acc);
    fraction.dice.push(dice);
    perClass.push({
      iou: iou * 100,
      acc: acc * 100,
      dice: dice * 100,
      precision: precision * 100,
      recall: recall * 100,
      fscore: fscore * 100,
    });
  }
  const totalI = I.reduce((a, b) => a + b, 0);
  const totalL = L.reduce((a, b) => a + b, 0);
  const out: Metrics = {
    mode,
    aAcc: (totalI / totalL) * 100,
    mIoU: NaN,
    mAcc: NaN,
    perClass,
    nanReasons: nanReasons(I, P, L, mode),
  };
  switch (mode) {
    case 'mmseg':
      out.mIoU = nanmean(fraction.iou) * 100;
      out.mAcc = nanmean(fraction.acc) * 100;
      out.mDice = nanmean(fraction.dice) * 100;
      break;
    case 'torchvision':
    case 'v2':
      out.mIoU = mean(fraction.iou) * 100;
      out.mAcc = mean(fraction.acc) * 100;
      break;
    case 'tf': {
      // Classes with a non-zero union count, with IoU 0 when never in ground truth.
      let sum = 0;
      let count = 0;
      for (let c = 0; c < C; c++) {
        const union = P[c] + L[c] - I[c];
        if (union !== 0) {
          sum += I[c] / union;
          count++;
        }
      }
      out.mIoU = count > 0 ? (sum / count) * 100 : 0;
      // DeepLab's eval reports no accuracy; we average it over the classes whose IoU it reports.
      out.mAcc = nanmean(fraction.acc) * 100;
      break;
    }
  }
  return out;
}

function mean(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** numpy's nanmean: NaN entries left out; NaN when all are. */
function nanmean(xs: number[]): number {
  let s = 0;
  let n = 0;
  for (const x of xs) {
    if (!Number.isNaN(x)) {
      s += x;
      n++;
    }
  }
  return n === 0 ? NaN : s / n;
}

// Why a class is NaN, and what that does to the mean: mmseg's most asked question (a NaN row in
// the per-class table, or a "low" mIoU on a binary task).
function nanReasons(I: number[], P: number[], L: number[], mode: MetricMode): NanReason[] {
  const out: NanReason[] = [];
  for (let c = 0; c < L.length; c++) {
    if (L[c] > 0) continue;
    if (P[c] === 0) {
      out.push({
        index: c,
        nan: ['iou', 'acc', 'dice', 'precision', 'recall', 'fscore'],
        reason: 'absent from ground truth and never predicted',
        effect: {
          mmseg: 'left out of mIoU and mAcc (nanmean)',
          torchvision: 'makes mIoU and mAcc NaN (plain mean over all classes)',
          v2: 'makes mIoU and mAcc NaN (plain mean over all classes)',
          tf: 'left out of mIoU (empty union) and mAcc',
        }[mode],
      });
    } else {
      out.push({
        index: c,
        nan: mode === 'tf' ? ['iou', 'acc', 'recall', 'fscore'] : ['acc', 'recall', 'fscore'],
        reason: 'never in ground truth',
        effect: {
          mmseg: 'IoU 0 counts in mIoU (its false positives lower it); Acc left out of mAcc',
          torchvision: 'IoU 0 counts in mIoU; Acc NaN makes mAcc NaN',
          v2: 'IoU 0 counts in mIoU; Acc NaN makes mAcc NaN',
          tf: 'per-class IoU not reported (tp + fn = 0) but IoU 0 counts in mIoU; Acc left out of mAcc',
        }[mode],
      });
    }
  }
  return out;
}
