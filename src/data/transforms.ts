// mmseg's training pipeline on (RGB image, label map): RandomResize (keep_ratio) -> RandomCrop
// (cat_max_ratio) -> RandomFlip -> PhotoMetricDistortion -> pad to the crop size (image 0, label
// 255), and the test pipeline's Resize (keep_ratio). Random draws happen in mmseg's order.
//
// Sizes and resizing are OpenCV's, bit-exact (data/geometry.ts). The training path resizes only the
// crop window: the crop is chosen on the label through the nearest-neighbour index maps, then just
// the cropped pixels are interpolated. This gives the same bytes as resizing everything and then
// cropping (the tests check it) for a fraction of the work on upscaled frames.
import type { TrainPipelineConfig } from '../config/schema.js';
import type { RgbImage } from './image.js';
import type { Rng } from './rng.js';
import {
  gatherNearest,
  nearestIndex,
  randomRatioScale,
  resizeBilinear,
  sizeToFit,
  type Box,
  type Size,
} from './geometry.js';

export interface Labeled {
  image: RgbImage;
  /** H x W, same size as the image */
  label: Uint8Array;
}

/** mmcv RandomResize._random_sample_ratio with this pipeline's random stream. */
export function sampleRandomScale(
  scale: readonly [number, number],
  ratioRange: readonly [number, number],
  rng: Rng,
): Size {
  return randomRatioScale(scale, ratioRange, rng.uniform());
}

// ---- RandomCrop ----

/**
 * mmseg's cat_max_ratio test on a crop's label histogram: more than one non-ignored class, and
 * the largest of them under `catMaxRatio` of the non-ignored pixels.
 */
export function cropAccepted(counts: ArrayLike<number>, catMaxRatio: number, ignoreIndex = 255): boolean {
  let classes = 0;
  let max = 0;
  let sum = 0;
  for (let v = 0; v < counts.length; v++) {
    if (v === ignoreIndex || counts[v] === 0) continue;
    classes++;
    sum += counts[v];
    if (counts[v] > max) max = counts[v];
  }
  return classes > 1 && max / sum < catMaxRatio;
}

/**
 * mmseg RandomCrop.crop_bbox on a width x height map: a random window of the crop size (smaller
 * where the map is); with catMaxRatio < 1 it is re-drawn up to 10 times until `cropAccepted`,
 * the last draw kept as is. `histogram(box)` counts the labels inside a window.
 */
export function randomCropBox(
  width: number,
  height: number,
  crop: readonly [number, number],
  catMaxRatio: number,
  rng: Rng,
  histogram: (b: Box) => Uint32Array,
  ignoreIndex = 255,
): Box {
  const [ch, cw] = crop;
  const draw = (): Box => {
    const y1 = rng.int(0, Math.max(height - ch, 0) + 1);
    const x1 = rng.int(0, Math.max(width - cw, 0) + 1);
    // mmseg slices [y1 : y1 + ch]; numpy stops at the edge, so clip here.
    return { y1, y2: Math.min(y1 + ch, height), x1, x2: Math.min(x1 + cw, width) };
  };
  let box = draw();
  if (catMaxRatio < 1) {
    for (let t = 0; t < 10; t++) {
      if (cropAccepted(histogram(box), catMaxRatio, ignoreIndex)) break;
      box = draw();
    }
  }
  return box;
}

/** Label counts inside a window of a w-wide label map. */
export function labelHistogram(label: Uint8Array, w: number, b: Box): Uint32Array {
  const counts = new Uint32Array(256);
  for (let y = b.y1; y < b.y2; y++) for (let i = y * w + b.x1, e = y * w + b.x2; i < e; i++) counts[label[i]]++;
  return counts;
}

export function cropImage(img: RgbImage, b: Box): RgbImage {
  return resizeBilinear(img, img.width, img.height, b);
}

export function cropLabel(label: Uint8Array, w: number, b: Box): Uint8Array {
  const ow = b.x2 - b.x1;
  const out = new Uint8Array(ow * (b.y2 - b.y1));
  for (let y = b.y1; y < b.y2; y++) out.set(label.subarray(y * w + b.x1, y * w + b.x2), (y - b.y1) * ow);
  return out;
}

// ---- RandomFlip ----

/** Mirrors left-right in place. */
export function flipImage(img: RgbImage): void {
  const { width: w, height: h, data } = img;
  for (let y = 0; y < h; y++) {
    for (let l = y * w * 3, r = (y * w + w - 1) * 3; l < r; l += 3, r -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = data[l + c];
        data[l + c] = data[r + c];
        data[r + c] = t;
      }
    }
  }
}

export function flipLabel(label: Uint8Array, w: number): void {
  for (let y = 0; y < label.length / w; y++) label.subarray(y * w, y * w + w).reverse();
}

// ---- PhotoMetricDistortion ----

const f32 = Math.fround;

/** mmseg's convert(): float32 img * alpha + beta, clipped to 0..255, cast to uint8 (truncation). */
function convertLut(alpha: number, beta: number): Uint8Array {
  const lut = new Uint8Array(256);
  const a = f32(alpha);
  const b = f32(beta);
  for (let v = 0; v < 256; v++) {
    const x = f32(f32(v * a) + b);
    lut[v] = x <= 0 ? 0 : x >= 255 ? 255 : Math.trunc(x);
  }
  return lut;
}

function applyLut(data: Uint8Array, lut: Uint8Array, start = 0, step = 1): void {
  for (let i = start; i < data.length; i += step) data[i] = lut[data[i]];
}

/** Brightness: every channel + beta (mmseg draws beta ~ U(-32, 32)). */
export function adjustBrightness(img: RgbImage, beta: number): void {
  applyLut(img.data, convertLut(1, beta));
}

/** Contrast: every channel x alpha (mmseg draws alpha ~ U(0.5, 1.5)); no mean subtraction, as mmseg. */
export function adjustContrast(img: RgbImage, alpha: number): void {
  applyLut(img.data, convertLut(alpha, 0));
}

/** Saturation: HSV's S x alpha, through OpenCV's 8-bit HSV round trip. */
export function adjustSaturation(img: RgbImage, alpha: number): void {
  const hsv = rgbToHsv(img.data);
  applyLut(hsv, convertLut(alpha, 0), 1, 3);
  hsvToRgb(hsv, img.data);
}

/** Hue: (H + delta) mod 180 on OpenCV's 0..179 hue scale. */
export function shiftHue(img: RgbImage, delta: number): void {
  const hsv = rgbToHsv(img.data);
  for (let i = 0; i < hsv.length; i += 3) hsv[i] = (((hsv[i] + delta) % 180) + 180) % 180;
  hsvToRgb(hsv, img.data);
}

/**
 * mmseg PhotoMetricDistortion on an 8-bit image, in place: brightness, then contrast either
 * first or last (mode), saturation, hue; each step with probability 1/2.
 */
export function photoMetricDistortion(img: RgbImage, rng: Rng): void {
  if (rng.int(0, 2)) adjustBrightness(img, rng.uniform(-32, 32));
  const mode = rng.int(0, 2);
  if (mode === 1 && rng.int(0, 2)) adjustContrast(img, rng.uniform(0.5, 1.5));
  if (rng.int(0, 2)) adjustSaturation(img, rng.uniform(0.5, 1.5));
  if (rng.int(0, 2)) shiftHue(img, rng.int(-18, 18)); // numpy randint(-18, 18): high exclusive
  if (mode === 0 && rng.int(0, 2)) adjustContrast(img, rng.uniform(0.5, 1.5));
}

// OpenCV's 8-bit RGB<->HSV (H in 0..180, S and V in 0..255): integer tables one way, float32 back.
const HSV_SHIFT = 12;
const SDIV = new Int32Array(256);
const HDIV = new Int32Array(256);
for (let i = 1; i < 256; i++) {
  SDIV[i] = Math.round((255 << HSV_SHIFT) / i);
  HDIV[i] = Math.round((180 << HSV_SHIFT) / (6 * i));
}

/** Interleaved RGB -> interleaved HSV, as cv2.cvtColor(COLOR_BGR2HSV) on the BGR image. */
export function rgbToHsv(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const half = 1 << (HSV_SHIFT - 1);
  for (let i = 0; i < rgb.length; i += 3) {
    const r = rgb[i];
    const g = rgb[i + 1];
    const b = rgb[i + 2];
    const v = r > g ? (r > b ? r : b) : g > b ? g : b;
    const diff = v - (r < g ? (r < b ? r : b) : g < b ? g : b);
    const s = (diff * SDIV[v] + half) >> HSV_SHIFT;
    let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * HDIV[diff] + half) >> HSV_SHIFT;
    if (h < 0) h += 180;
    out[i] = h > 255 ? 255 : h;
    out[i + 1] = s;
    out[i + 2] = v;
  }
  return out;
}

const HSCALE = f32(6 / 180);
const INV255 = f32(1 / 255);
// OpenCV's sector table: which of (v, p, q, t) is b, g and r in each sixth of the hue circle.
const SECTOR_B = [1, 1, 3, 0, 0, 2];
const SECTOR_G = [3, 0, 0, 2, 1, 1];
const SECTOR_R = [0, 2, 1, 1, 3, 0];
// Tables of the float32 steps that do not involve V: for every (hue byte, saturation byte) the
// factors (1 - s), (1 - s h) and (1 - s (1 - h)) that OpenCV multiplies V by; per pixel only the
// products with V remain.
const UNIT = new Float64Array(256);
const SECTOR = new Uint8Array(256);
const FACTORS = new Float32Array(256 * 256 * 3);
for (let i = 0; i < 256; i++) UNIT[i] = f32(i * INV255);
for (let hb = 0; hb < 256; hb++) {
  let h = f32(f32(hb * HSCALE) % 6);
  let sector = Math.floor(h);
  h = f32(h - sector);
  if (sector < 0 || sector >= 6) {
    sector = 0;
    h = 0;
  }
  SECTOR[hb] = sector;
  for (let sb = 0; sb < 256; sb++) {
    const s = UNIT[sb];
    const k = ((hb << 8) | sb) * 3;
    FACTORS[k] = f32(1 - s);
    FACTORS[k + 1] = f32(1 - f32(s * h));
    FACTORS[k + 2] = f32(1 - f32(s * f32(1 - h)));
  }
}

/** cvRound then saturate to 0..255 (round half to even, as lrint). */
function toByte(x: number): number {
  let r = Math.round(x);
  if (r - x === 0.5 && r % 2 !== 0) r -= 1;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** Interleaved HSV -> RGB into `out`, as cv2.cvtColor(COLOR_HSV2BGR) (float32 arithmetic). */
export function hsvToRgb(hsv: Uint8Array, out: Uint8Array): void {
  const tab = new Float64Array(4);
  for (let i = 0; i < hsv.length; i += 3) {
    const sb = hsv[i + 1];
    const v = UNIT[hsv[i + 2]];
    if (sb === 0) {
      out[i] = out[i + 1] = out[i + 2] = toByte(f32(v * 255));
      continue;
    }
    const sector = SECTOR[hsv[i]];
    const k = ((hsv[i] << 8) | sb) * 3;
    tab[0] = v;
    tab[1] = f32(v * FACTORS[k]);
    tab[2] = f32(v * FACTORS[k + 1]);
    tab[3] = f32(v * FACTORS[k + 2]);
    out[i] = toByte(f32(tab[SECTOR_R[sector]] * 255));
    out[i + 1] = toByte(f32(tab[SECTOR_G[sector]] * 255));
    out[i + 2] = toByte(f32(tab[SECTOR_B[sector]] * 255));
  }
}

// ---- padding ----

/** Pads at the bottom and right to h x w: image with 0, labels with 255 (mmseg's SegDataPreProcessor). */
export function padTo(s: Labeled, h: number, w: number, segPadValue = 255): Labeled {
  const { width: iw, height: ih } = s.image;
  if (iw === w && ih === h) return s;
  if (iw > w || ih > h) throw new RangeError(`cannot pad ${iw}x${ih} to ${w}x${h}`);
  const image = new Uint8Array(w * h * 3);
  const label = new Uint8Array(w * h).fill(segPadValue);
  for (let y = 0; y < ih; y++) {
    image.set(s.image.data.subarray(y * iw * 3, (y + 1) * iw * 3), y * w * 3);
    label.set(s.label.subarray(y * iw, (y + 1) * iw), y * w);
  }
  return { image: { width: w, height: h, data: image }, label };
}

// ---- the pipelines ----

/**
 * The whole train pipeline on one sample (the input is not modified). The output is always
 * crop (H, W) in size: smaller images are padded.
 */
export function trainTransform(s: Labeled, p: TrainPipelineConfig, rng: Rng, ignoreIndex = 255): Labeled {
  const { width: w, height: h } = s.image;
  if (s.label.length !== w * h) throw new RangeError(`label has ${s.label.length} pixels for a ${w}x${h} image`);
  const [nw, nh] = sizeToFit(w, h, sampleRandomScale(p.scale, p.ratioRange, rng));
  const xs = nearestIndex(w, nw);
  const ys = nearestIndex(h, nh);
  const histogram = (b: Box): Uint32Array => {
    const counts = new Uint32Array(256);
    for (let y = b.y1; y < b.y2; y++) {
      const row = ys[y] * w;
      for (let x = b.x1; x < b.x2; x++) counts[s.label[row + xs[x]]]++;
    }
    return counts;
  };
  const box = randomCropBox(nw, nh, p.crop, p.catMaxRatio, rng, histogram, ignoreIndex);
  const label = gatherNearest(s.label, w, xs, ys, box);
  const image = resizeBilinear(s.image, nw, nh, box);
  if (rng.uniform() < p.flipProb) {
    flipImage(image);
    flipLabel(label, image.width);
  }
  if (p.photometric) photoMetricDistortion(image, rng);
  return padTo({ image, label }, p.crop[0], p.crop[1]);
}
