// Image geometry as mmcv computes it, in one place for training, evaluation workers and
// inference: the size rules (how big a resized image is) and the resize maps (which source
// pixels, with which weights, make each output pixel).
//
// Bilinear is OpenCV's INTER_LINEAR for 8-bit images, bit-exact: mmcv resizes with cv2, which
// computes 8-bit bilinear in fixed point (11-bit weights, a vertical pass that truncates twice),
// so float bilinear differs from it by one grey level in about 13 % of values. This is OpenCV
// 4.x's generic path (resize.cpp: HResizeLinear, VResizeLinearVec_32s8u) in integers;
// test/fixtures/make_metrics.py checks the same arithmetic against cv2 itself. Nearest is
// INTER_NEAREST (src = floor(dst * src/dst)), so labels stay exact indices.
import type { RgbImage } from './image.js';

/** (width, height) */
export type Size = [number, number];

/** A window [y1, y2) x [x1, x2) of a resized image, as mmseg's crop_bbox. */
export interface Box {
  y1: number;
  y2: number;
  x1: number;
  x2: number;
}

// ---- size rules (mmcv.image.geometric) ----

/**
 * mmcv's rescale_size with a (W, H) scale, as Resize(scale, keep_ratio=True) uses it: the largest
 * size with the aspect ratio kept whose long side is <= max(scale) and short side <= min(scale),
 * rounded as int(x * f + 0.5).
 */
export function sizeToFit(w: number, h: number, scale: readonly [number, number]): Size {
  const f = Math.min(Math.max(scale[0], scale[1]) / Math.max(h, w), Math.min(scale[0], scale[1]) / Math.min(h, w));
  return sizeScaledBy(w, h, f);
}

/** mmcv's rescale_size with a number: both sides times `factor`, rounded as int(x * f + 0.5). */
export function sizeScaledBy(w: number, h: number, factor: number): Size {
  if (!(factor > 0) || !Number.isFinite(factor))
    throw new RangeError(`invalid resize factor ${factor} for a ${w}x${h} image`);
  // mmcv would hand OpenCV a 0 side for extreme aspect ratios; one pixel keeps the sample usable.
  return [Math.max(1, Math.trunc(w * factor + 0.5)), Math.max(1, Math.trunc(h * factor + 0.5))];
}

/**
 * The size mmcv's Resize(scale_factor=r, keep_ratio=True) gives (test-time augmentation): the
 * scale (round(w r), round(h r)) is turned back into one factor by imrescale (the largest that
 * fits both edges), and the size rounded again: int(x + 0.5) both times.
 */
export function sizeForScaleFactor(w: number, h: number, ratio: number): Size {
  const sw = Math.trunc(w * ratio + 0.5);
  const sh = Math.trunc(h * ratio + 0.5);
  const factor = Math.min(Math.max(sw, sh) / Math.max(w, h), Math.min(sw, sh) / Math.min(w, h));
  return [Math.trunc(w * factor + 0.5), Math.trunc(h * factor + 0.5)];
}

/** mmcv RandomResize._random_sample_ratio: the target scale (int(W r), int(H r)), r = uniform in [lo, hi). */
export function randomRatioScale(
  scale: readonly [number, number],
  ratioRange: readonly [number, number],
  uniform: number,
): Size {
  const [lo, hi] = ratioRange;
  const r = uniform * (hi - lo) + lo;
  return [Math.trunc(scale[0] * r), Math.trunc(scale[1] * r)];
}

// ---- resize maps (OpenCV) ----

/** One axis of a bilinear map: two source indices and their 11-bit weights (sum 2048) per output pixel. */
export interface BilinearTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Int32Array;
  w1: Int32Array;
}

/** rint: to nearest, halves to even (cvRound). */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * cv2's INTER_LINEAR taps for one axis. The coordinate is computed in float32 as cv2 does.
 * Columns outside the image take the edge pixel at full weight (`clampWeights`); rows keep their
 * weights and read the edge row twice (cv2 clamps the row index only).
 */
export function bilinearTaps(src: number, dst: number, clampWeights: boolean): BilinearTaps {
  const scale = 1 / (dst / src); // cv2: scale_x = 1. / inv_scale_x
  const t: BilinearTaps = {
    i0: new Int32Array(dst),
    i1: new Int32Array(dst),
    w0: new Int32Array(dst),
    w1: new Int32Array(dst),
  };
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (clampWeights && s < 0) [f, s] = [0, 0];
    if (clampWeights && s >= src - 1) [f, s] = [0, src - 1];
    t.i0[d] = Math.min(Math.max(s, 0), src - 1);
    t.i1[d] = Math.min(Math.max(s + 1, 0), src - 1);
    t.w0[d] = rint(Math.fround(1 - f) * 2048);
    t.w1[d] = rint(f * 2048);
  }
  return t;
}

/** cv2 INTER_NEAREST source index for one axis: min(floor(d * (1 / (dst / src))), src - 1). */
export function nearestIndex(src: number, dst: number): Int32Array {
  const ifx = 1 / (dst / src);
  const out = new Int32Array(dst);
  for (let d = 0; d < dst; d++) out[d] = Math.min(Math.floor(d * ifx), src - 1);
  return out;
}

function checkSize(w: number, h: number): void {
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0))
    throw new RangeError(`resize: expected a positive integer size but received ${w}x${h}`);
}

/**
 * cv2.resize(img, (nw, nh), interpolation=INTER_LINEAR), bit-exact, for the pixels inside `box`
 * of the resized image (the whole image by default): the training pipeline interpolates only its
 * crop window, which gives the same bytes as resizing everything and then cropping.
 */
export function resizeBilinear(
  img: RgbImage,
  nw: number,
  nh: number,
  box: Box = { y1: 0, y2: nh, x1: 0, x2: nw },
): RgbImage {
  checkSize(nw, nh);
  const ow = box.x2 - box.x1;
  const oh = box.y2 - box.y1;
  const out = new Uint8Array(ow * oh * 3);
  const src = img.data;
  const stride = img.width * 3;
  if (nw === img.width && nh === img.height) {
    // cv2 copies when the size does not change.
    for (let j = 0; j < oh; j++)
      out.set(src.subarray((box.y1 + j) * stride + box.x1 * 3, (box.y1 + j) * stride + box.x2 * 3), j * ow * 3);
    return { width: ow, height: oh, data: out };
  }
  const xt = bilinearTaps(img.width, nw, true);
  const yt = bilinearTaps(img.height, nh, false);
  // Horizontal pass of one source row over the box's columns: exact integer sums (weights x 2048),
  // then >> 4 as cv2 stores them for the vertical pass. Rows are cached: neighbours share them.
  const rowCache = new Map<number, Int32Array>();
  const horizontal = (sy: number): Int32Array => {
    let r = rowCache.get(sy);
    if (r) return r;
    r = new Int32Array(ow * 3);
    const base = sy * stride;
    for (let i = 0; i < ow; i++) {
      const d = box.x1 + i;
      const a = base + xt.i0[d] * 3;
      const b = base + xt.i1[d] * 3;
      const w0 = xt.w0[d];
      const w1 = xt.w1[d];
      for (let c = 0; c < 3; c++) r[i * 3 + c] = (src[a + c] * w0 + src[b + c] * w1) >> 4;
    }
    if (rowCache.size > 4) rowCache.delete(rowCache.keys().next().value!);
    rowCache.set(sy, r);
    return r;
  };
  let o = 0;
  for (let j = 0; j < oh; j++) {
    const d = box.y1 + j;
    const r0 = horizontal(yt.i0[d]);
    const r1 = horizontal(yt.i1[d]);
    const b0 = yt.w0[d];
    const b1 = yt.w1[d];
    // cv2's VResizeLinearVec_32s8u: ((r0 * b0) >> 16) + ((r1 * b1) >> 16), then (sum + 2) >> 2.
    for (let k = 0; k < ow * 3; k++) {
      const v = (((r0[k] * b0) >> 16) + ((r1[k] * b1) >> 16) + 2) >> 2;
      out[o++] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: ow, height: oh, data: out };
}

/** Labels inside `box` of a w x h label map resized (nearest) to nw x nh; the whole map by default. */
export function resizeNearest(
  label: Uint8Array,
  w: number,
  h: number,
  nw: number,
  nh: number,
  box: Box = { y1: 0, y2: nh, x1: 0, x2: nw },
): Uint8Array {
  return gatherNearest(label, w, nearestIndex(w, nw), nearestIndex(h, nh), box);
}

/** The labels inside `box` through precomputed nearest maps (xs, ys of the resized size). */
export function gatherNearest(label: Uint8Array, w: number, xs: Int32Array, ys: Int32Array, box: Box): Uint8Array {
  const ow = box.x2 - box.x1;
  const out = new Uint8Array(ow * (box.y2 - box.y1));
  let o = 0;
  for (let y = box.y1; y < box.y2; y++) {
    const row = ys[y] * w;
    for (let x = box.x1; x < box.x2; x++) out[o++] = label[row + xs[x]];
  }
  return out;
}

/** mmseg's test Resize(scale, keep_ratio=True) of an image; null keeps it (the same object). */
export function testResize(img: RgbImage, scale: readonly [number, number] | null): RgbImage {
  if (!scale) return img;
  const [nw, nh] = sizeToFit(img.width, img.height, scale);
  return nw === img.width && nh === img.height ? img : resizeBilinear(img, nw, nh);
}
