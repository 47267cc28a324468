// A dataset's masks checked before a run spends hours on them: every mask of a split read as the
// loader reads it, its raw values counted, and what commonly goes wrong found and named with its
// fix: values outside the classes, 0/255 binary masks, palette PNGs (read as indices, which is
// right, but worth knowing), masks of another size than their image, classes that never occur,
// and a reduceZeroLabel setting the values contradict.
import sharp from 'sharp';
import type { Dataset } from './datasets/index.js';
import { labelLookup, readMask, labelHint } from './masks.js';

export interface Finding {
  level: 'error' | 'warning' | 'info';
  message: string;
  /** up to a few files it concerns */
  files?: string[];
}

export interface SplitReport {
  split: string;
  masks: number;
  /** raw mask value -> pixels */
  rawHistogram: Map<number, number>;
  /** pixels per class after reduceZeroLabel and the label map (index = class) */
  classPixels: number[];
  findings: Finding[];
}

const SHOWN = 5;

export async function lintSplit(
  ds: Dataset,
  numClasses: number,
  onProgress?: (done: number, total: number) => void,
): Promise<SplitReport> {
  const raw = new Float64Array(256);
  const lut = labelLookup(ds.reduceZeroLabel, ds.labelMap);
  const unreadable: string[] = [];
  const sizeMismatch: string[] = [];
  const outOfRange = new Map<string, number[]>();
  const palette: string[] = [];
  let binaryMasks = 0;
  for (const [i, s] of ds.samples.entries()) {
    onProgress?.(i, ds.samples.length);
    let mask;
    try {
      mask = await readMask(s.mask);
    } catch (e) {
      unreadable.push(`${s.mask} (${(e as Error).message.replace(`${s.mask}: `, '')})`);
      continue;
    }
    if (mask.palette) palette.push(s.mask);
    try {
      const meta = await sharp(s.image).metadata();
      if (meta.width !== mask.width || meta.height !== mask.height)
        sizeMismatch.push(`${s.mask} is ${mask.width}x${mask.height}, its image ${meta.width}x${meta.height}`);
    } catch (e) {
      unreadable.push(`${s.image} (${(e as Error).message.split('\n')[0]})`);
    }
    const seen = new Float64Array(256);
    for (const v of mask.data) seen[v]++;
    let onlyBinary = true;
    const bad: number[] = [];
    for (let v = 0; v < 256; v++) {
      if (!seen[v]) continue;
      raw[v] += seen[v];
      if (v !== 0 && v !== 255) onlyBinary = false;
      const label = lut[v];
      if (label >= numClasses && label !== ds.ignoreIndex) bad.push(v);
    }
    if (onlyBinary && seen[255]) binaryMasks++;
    if (bad.length) outOfRange.set(s.mask, bad);
  }
  onProgress?.(ds.samples.length, ds.samples.length);

  const classPixels = new Array<number>(numClasses).fill(0);
  for (let v = 0; v < 256; v++) if (raw[v] && lut[v] < numClasses) classPixels[lut[v]] += raw[v];
  const rawValues = [...raw.keys()].filter((v) => raw[v] > 0);
  const findings: Finding[] = [];
  const some = (files: string[]) => files.slice(0, SHOWN);
  if (unreadable.length)
    findings.push({
      level: 'error',
      message: `${unreadable.length} masks or images cannot be read`,
      files: some(unreadable),
    });
  if (sizeMismatch.length)
    findings.push({
      level: 'error',
      message: `${sizeMismatch.length} masks differ in size from their image (labels must be pixel-aligned)`,
      files: some(sizeMismatch),
    });
  if (outOfRange.size) {
    const values = [...new Set([...outOfRange.values()].flat())].sort((a, b) => a - b);
    const mapped = [...new Set(values.map((v) => lut[v]))].sort((a, b) => a - b);
    const hint = labelHint(
      mapped,
      rawValues,
      { numClasses, reduceZeroLabel: ds.reduceZeroLabel, labelMap: ds.labelMap, file: '' },
      ds.ignoreIndex,
    );
    findings.push({
      level: 'error',
      message: `${outOfRange.size} masks hold raw values ${values.join(', ')} that are not classes 0..${numClasses - 1} or ${ds.ignoreIndex} (ignore). Fix: ${hint}`,
      files: some([...outOfRange].map(([f, v]) => `${f} (${v.join(', ')})`)),
    });
  }
  if (binaryMasks && binaryMasks === ds.samples.length - unreadable.length && !ds.labelMap?.[255]) {
    findings.push({
      level: 'warning',
      message: `every mask is 0/255 binary: 255 is the ignore label, so nothing but background would be learned. Fix: labelMap {255: 1} with numClasses 2`,
    });
  }
  if (palette.length)
    findings.push({
      level: 'info',
      message: `${palette.length} of ${ds.samples.length} masks are palette PNGs: read as their indices (as mmseg does), not their colours`,
      files: some(palette),
    });
  const absent = classPixels.flatMap((p, c) => (p === 0 ? [`${c} ${ds.classes[c] ?? ''}`.trim()] : []));
  if (absent.length && ds.samples.length)
    findings.push({ level: 'warning', message: `classes never present in ${ds.split}: ${absent.join(', ')}` });
  const has0 = raw[0] > 0;
  const maxRaw = rawValues.filter((v) => v !== 255).at(-1) ?? 0;
  if (!ds.reduceZeroLabel && has0 && maxRaw === numClasses) {
    findings.push({
      level: 'warning',
      message: `raw values run 0..${numClasses}: labels look 1-based with 0 as "unlabelled". Fix: reduceZeroLabel: true (as mmseg for ADE20K), or numClasses ${numClasses + 1} if 0 is a class`,
    });
  }
  if (ds.reduceZeroLabel && !has0 && rawValues.length && maxRaw < numClasses) {
    findings.push({
      level: 'warning',
      message: `reduceZeroLabel is on, but no mask uses 0 as "unlabelled" and the values fit 0..${numClasses - 1}: every label would shift down by one and class ${numClasses - 1} never be seen. Fix: reduceZeroLabel: false`,
    });
  }
  const rawHistogram = new Map(rawValues.map((v) => [v, raw[v]]));
  return { split: ds.split, masks: ds.samples.length, rawHistogram, classPixels, findings };
}
