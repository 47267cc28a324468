// The evaluation report as mmseg shows it: "per class results:", a PrettyTable of Class / IoU /
// Acc (values x100 rounded to 2 decimals, printed as Python prints floats: 98.7, 100.0, nan),
// then the summary line mmengine logs (aAcc: 96.0400  mIoU: 79.0900  mAcc: 86.7300). The same
// figures as JSON for files and tools.
import type { Metrics, NanReason } from './metrics.js';

/** numpy's round(x, 2): rint(x * 100) / 100, halves to even. */
export function round2(x: number): number {
  if (!Number.isFinite(x)) return x;
  const y = x * 100;
  let r = Math.round(y);
  if (r - y === 0.5 && r % 2 !== 0) r -= 1; // Math.round takes halves up; rint takes them to even
  return r / 100;
}

/** str() of a Python float: integral values keep ".0", NaN is "nan". */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return Number.isInteger(x) ? `${x.toFixed(1)}` : String(x);
}

function className(names: readonly string[] | undefined, i: number): string {
  return names?.[i] ?? String(i);
}

// PrettyTable's centring: odd slack goes right for odd-length text and left for even-length
// text (as str.center), one space of padding each side.
function centre(text: string, width: number): string {
  const excess = width - text.length;
  const half = Math.floor(excess / 2);
  if (excess % 2 === 0) return ' '.repeat(half) + text + ' '.repeat(half);
  return text.length % 2
    ? ' '.repeat(half) + text + ' '.repeat(half + 1)
    : ' '.repeat(half + 1) + text + ' '.repeat(half);
}

/** A PrettyTable (default style) of the given columns. */
export function prettyTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (cells: readonly string[]) => '|' + cells.map((t, c) => ` ${centre(t, widths[c])} `).join('|') + '|';
  return [rule, line(header), rule, ...rows.map(line), rule].join('\n');
}

/** mmseg's per-class table: Class, IoU, Acc. */
export function classTable(m: Metrics, classNames?: readonly string[]): string {
  const rows = m.perClass.map((c, i) => [
    className(classNames, i),
    pythonFloat(round2(c.iou)),
    pythonFloat(round2(c.acc)),
  ]);
  return prettyTable(['Class', 'IoU', 'Acc'], rows);
}

/** The summary mmengine logs after validation: the rounded metrics with 4 decimals. */
export function summaryLine(m: Metrics): string {
  const f = (x: number) => (Number.isNaN(x) ? 'nan' : round2(x).toFixed(4));
  return `aAcc: ${f(m.aAcc)}  mIoU: ${f(m.mIoU)}  mAcc: ${f(m.mAcc)}`;
}

/** The whole terminal report, plus a line per kind of NaN saying which classes and why. */
export function formatReport(m: Metrics, classNames?: readonly string[]): string {
  const lines = ['per class results:', '', classTable(m, classNames), summaryLine(m)];
  const groups = new Map<string, string[]>();
  for (const r of m.nanReasons) {
    const key = `${r.nan.join('/')} NaN, ${r.reason}; ${r.effect}`;
    groups.set(key, [...(groups.get(key) ?? []), className(classNames, r.index)]);
  }
  for (const [why, classes] of groups) lines.push(`${why}: ${classes.join(', ')}`);
  return lines.join('\n');
}

export interface ReportJSON {
  mode: Metrics['mode'];
  /** %, rounded to 2 decimals as mmseg's results; null where NaN */
  aAcc: number | null;
  mIoU: number | null;
  mAcc: number | null;
  mDice?: number | null;
  perClass: { class: string; IoU: number | null; Acc: number | null }[];
  nanReasons: (Omit<NanReason, 'index'> & { class: string })[];
}

const jsonNumber = (x: number): number | null => (Number.isNaN(x) ? null : round2(x));

/** The report's figures as JSON (NaN, which JSON cannot hold, becomes null). */
export function toReportJSON(m: Metrics, classNames?: readonly string[]): ReportJSON {
  const out: ReportJSON = {
    mode: m.mode,
    aAcc: jsonNumber(m.aAcc),
    mIoU: jsonNumber(m.mIoU),
    mAcc: jsonNumber(m.mAcc),
    perClass: m.perClass.map((c, i) => ({
      class: className(classNames, i),
      IoU: jsonNumber(c.iou),
      Acc: jsonNumber(c.acc),
    })),
    nanReasons: m.nanReasons.map(({ index, ...r }) => ({ class: className(classNames, index), ...r })),
  };
  if (m.mDice !== undefined) out.mDice = jsonNumber(m.mDice);
  return out;
}
