// Segmentation masks: PNG files of class indices, read as mmseg reads them (Pillow, 'unchanged':
// a palette PNG gives its indices, not its colours), then made into training labels the way
// mmseg's LoadAnnotations does (reduce_zero_label, then the label map), then checked against the
// model's class count, because an out-of-range label is the most common way a custom dataset
// silently trains to nothing.
import { readFile } from 'node:fs/promises';
import { decode as decodePng, hasPngSignature } from 'fast-png';
import sharp from 'sharp';

export interface LabelMask {
  width: number;
  height: number;
  /** H x W raw label indices */
  data: Uint8Array;
  /** a palette PNG (its indices were read, not its colours) */
  palette?: boolean;
}

export class MaskError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'MaskError';
  }
}

export class LabelError extends Error {
  constructor(
    readonly file: string,
    readonly badValues: number[],
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'LabelError';
  }
}

/** Reads a mask file as raw label indices (no mapping). */
export async function readMask(file: string): Promise<LabelMask> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MaskError(
      file,
      code === 'ENOENT' ? 'no such file (the image has no mask)' : `cannot read mask (${(e as Error).message})`,
    );
  }
  if (hasPngSignature(buf)) return decodeMaskPng(buf, file);
  return decodeOtherMask(buf, file);
}

/** A PNG's raw indices: gray or palette at 1-8 bits, 16-bit gray when every value is < 256. */
export function decodeMaskPng(buf: Uint8Array, file = '<buffer>'): LabelMask {
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(buf);
  } catch (e) {
    throw new MaskError(file, `cannot decode PNG mask (${(e as Error).message})`);
  }
  const { width, height, channels, depth } = png;
  const n = width * height;
  const palette = png.palette !== undefined;
  if (depth < 8) {
    // fast-png leaves 1/2/4-bit rows packed; each row starts on a byte boundary.
    if (channels !== 1) throw new MaskError(file, `unsupported ${depth}-bit PNG with ${channels} channels`);
    return { width, height, data: unpackBits(png.data as Uint8Array, width, height, depth), palette };
  }
  const src = png.data;
  if (depth === 16) {
    let max = 0;
    for (let i = 0; i < src.length; i += channels) if (src[i] > max) max = src[i];
    if (max > 255) {
      throw new MaskError(
        file,
        `16-bit mask with label values up to ${max}: only 8-bit labels (< 256) are supported; mmseg would wrap these modulo 256`,
      );
    }
  }
  return { width, height, data: firstChannel(src, n, channels, file), palette };
}

/** Non-PNG masks (TIFF, BMP, ...) through libvips: no palette handling there, gray only. */
async function decodeOtherMask(buf: Buffer, file: string): Promise<LabelMask> {
  try {
    const { data, info } = await sharp(buf, { failOn: 'error' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      data: firstChannel(data, info.width * info.height, info.channels, file),
    };
  } catch (e) {
    if (e instanceof MaskError) throw e;
    throw new MaskError(file, `cannot decode mask (${(e as Error).message.split('\n')[0]})`);
  }
}

/**
 * One label per pixel. Gray (+alpha) takes the gray channel; an RGB mask is accepted only when it
 * is gray stored as RGB, because a colour mask needs its palette to become indices.
 */
function firstChannel(src: ArrayLike<number>, n: number, channels: number, file: string): Uint8Array {
  const out = new Uint8Array(n);
  if (channels <= 2) {
    for (let i = 0, j = 0; i < n; i++, j += channels) out[i] = src[j];
    return out;
  }
  for (let i = 0, j = 0; i < n; i++, j += channels) {
    const r = src[j];
    if (src[j + 1] !== r || src[j + 2] !== r) {
      throw new MaskError(
        file,
        `colour (RGB) mask: masks must hold class indices (a gray or palette PNG); convert colours to indices with the dataset palette first`,
      );
    }
    out[i] = r;
  }
  return out;
}

function unpackBits(packed: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const perByte = 8 / depth;
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const byte = packed[y * rowBytes + Math.floor(x / perByte)];
      const shift = 8 - depth * ((x % perByte) + 1);
      out[y * width + x] = (byte >> shift) & mask;
    }
  }
  return out;
}

export interface LabelOptions {
  numClasses: number;
  /** mmseg's reduce_zero_label: 0 -> 255 (ignored), x -> x - 1 */
  reduceZeroLabel: boolean;
  /** old label -> new label, applied after reduceZeroLabel as mmseg's label_map; unlisted values stay */
  labelMap?: Readonly<Record<number, number>>;
  ignoreIndex?: number;
  /** named in errors */
  file: string;
}

/** The 256-entry lookup table of reduceZeroLabel followed by the label map. */
export function labelLookup(reduceZeroLabel: boolean, labelMap?: Readonly<Record<number, number>>): Uint8Array {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    // mmseg on uint8: 0 -> 255, then -1 (255 -> 254), then 254 -> 255. The ignore value 255 is fixed
    // here in mmseg (loading.py), whatever ignore_index the loss uses.
    let x = v;
    if (reduceZeroLabel) x = x === 0 || x === 255 ? 255 : x - 1;
    lut[v] = x;
  }
  if (labelMap) {
    // mmseg maps with a copy of the input, so chains (1->2, 2->3) do not compound.
    const before = lut.slice();
    for (const [from, to] of Object.entries(labelMap)) {
      const f = Number(from);
      if (!Number.isInteger(f) || f < 0 || f > 255 || !Number.isInteger(to) || to < 0 || to > 255) {
        throw new RangeError(`labelMap entry ${from} -> ${to}: labels must be integers in 0..255`);
      }
      for (let v = 0; v < 256; v++) if (before[v] === f) lut[v] = to;
    }
  }
  return lut;
}

/**
 * Raw mask indices -> training labels (a new array): reduceZeroLabel, the label map, then a check
 * that every label is a class (< numClasses) or the ignore index, naming the file and the values.
 */
export function prepareLabels(mask: Uint8Array | LabelMask, o: LabelOptions): Uint8Array {
  const raw = mask instanceof Uint8Array ? mask : mask.data;
  return applyLabelLookup(raw, labelLookup(o.reduceZeroLabel, o.labelMap), o);
}

/** prepareLabels with a lookup table made once (the loader's hot path). */
export function applyLabelLookup(raw: Uint8Array, lut: Uint8Array, o: LabelOptions): Uint8Array {
  const ignore = o.ignoreIndex ?? 255;
  const seen = new Uint8Array(256);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    seen[v] = 1;
    out[i] = lut[v];
  }
  const bad: number[] = [];
  for (let v = 0; v < 256; v++) {
    if (!seen[v]) continue;
    const m = lut[v];
    if (m >= o.numClasses && m !== ignore && !bad.includes(m)) bad.push(m);
  }
  if (bad.length) {
    bad.sort((a, b) => a - b);
    const rawValues = [...seen.keys()].filter((v) => seen[v]);
    throw new LabelError(o.file, bad, outOfRangeMessage(bad, rawValues, o, ignore));
  }
  return out;
}

function outOfRangeMessage(bad: number[], rawValues: number[], o: LabelOptions, ignore: number): string {
  const shown = bad.length > 12 ? `${bad.slice(0, 12).join(', ')}, ... (${bad.length} values)` : bad.join(', ');
  const mapped = o.reduceZeroLabel || o.labelMap ? ' after reduceZeroLabel/labelMap' : '';
  const head = `label values ${shown}${mapped} are out of range: numClasses is ${o.numClasses} (labels 0..${o.numClasses - 1}, ${ignore} = ignore)`;
  return `${head}. Hint: ${labelHint(bad, rawValues, o, ignore)}`;
}

/** What probably went wrong when `bad` labels (after mapping) come from masks holding the `raw` values. */
export function labelHint(bad: number[], raw: number[], o: LabelOptions, ignore: number): string {
  const rawSet = new Set(raw);
  if (o.numClasses === 1) {
    return 'a binary mask needs numClasses 2 (background and foreground): the loss has one output channel per class';
  }
  if (rawSet.has(0) && rawSet.has(255) && raw.length > 4 && bad.length >= 3) {
    return 'this looks like a 0/255 binary mask with anti-aliased or lossy (JPEG) edges: save masks as lossless PNGs of class indices (0/1), or threshold them';
  }
  if (bad.includes(255) && ignore !== 255 && raw.every((v) => v === 0 || v === 255)) {
    return '0/255 binary masks: set numClasses 2 and map 255 -> 1 (labelMap {255: 1})';
  }
  if (!o.reduceZeroLabel && rawSet.has(0) && bad.length === 1 && bad[0] === o.numClasses) {
    return `labels look 1-based (1..${o.numClasses}) with 0 as "unlabelled": set reduceZeroLabel: true (as mmseg does for ADE20K), or numClasses ${o.numClasses + 1} if 0 is a real class`;
  }
  return `check numClasses (the model has ${o.numClasses}), reduceZeroLabel (${o.reduceZeroLabel}) and the dataset's label map; masks must hold class indices, not colours`;
}

/** Cityscapes label ids -> the 19 train ids (cityscapesScripts labels.py); everything else 255. */
export const CITYSCAPES_ID_TO_TRAIN_ID: Readonly<Record<number, number>> = (() => {
  const pairs: [number, number][] = [
    [7, 0],
    [8, 1],
    [11, 2],
    [12, 3],
    [13, 4],
    [17, 5],
    [19, 6],
    [20, 7],
    [21, 8],
    [22, 9],
    [23, 10],
    [24, 11],
    [25, 12],
    [26, 13],
    [27, 14],
    [28, 15],
    [31, 16],
    [32, 17],
    [33, 18],
  ];
  const table: Record<number, number> = {};
  for (let id = 0; id < 256; id++) table[id] = 255;
  for (const [id, train] of pairs) table[id] = train;
  return table;
})();
