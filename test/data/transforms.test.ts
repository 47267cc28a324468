// mmseg's train pipeline, piece by piece and whole: mmcv's resize rounding, OpenCV geometry, the
// cat_max_ratio crop rule, flip, padding values, PhotoMetricDistortion's arithmetic and bounds,
// and that the crop-window fast path equals resize-then-crop exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RgbImage } from '../../src/data/image.js';
import { Rng } from '../../src/data/rng.js';
import {
  adjustBrightness,
  adjustContrast,
  adjustSaturation,
  cropAccepted,
  cropImage,
  cropLabel,
  flipImage,
  flipLabel,
  hsvToRgb,
  labelHistogram,
  padTo,
  photoMetricDistortion,
  randomCropBox,
  rgbToHsv,
  sampleRandomScale,
  shiftHue,
  trainTransform,
} from '../../src/data/transforms.js';
import {
  nearestIndex,
  resizeBilinear,
  resizeNearest,
  sizeScaledBy,
  sizeToFit,
  testResize,
  type Box,
} from '../../src/data/geometry.js';
import { TrainPipelineConfig } from '../../src/config/schema.js';
import { blockyMask, imageFor } from '../helpers/tiny-datasets.js';

function img(width: number, height: number, f: (x: number, y: number, c: number) => number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = f(x, y, c);
  return { width, height, data };
}

test('sizeToFit and sizeScaledBy are mmcv rescale_size: fit (long, short) edges, int(x * f + 0.5)', () => {
  assert.deepEqual(sizeToFit(500, 375, [2048, 512]), [683, 512]); // f = min(2048/500, 512/375)
  assert.deepEqual(sizeToFit(375, 500, [2048, 512]), [512, 683]); // orientation does not matter
  assert.deepEqual(sizeToFit(2048, 1024, [1024, 512]), [1024, 512]);
  assert.deepEqual(sizeToFit(2048, 1024, [2048, 1024]), [2048, 1024]);
  assert.deepEqual(sizeToFit(683, 512, [520, 520]), [520, 390]); // 683 * 520/683 = 520, 512 * 0.7613... = 389.8 -> 390
  assert.deepEqual(sizeToFit(640, 480, [1463, 365]), [487, 365]); // 640 * 365/480 = 486.67 -> 487
  assert.deepEqual(sizeScaledBy(3, 2, 1.5), [5, 3]); // 4.5 + .5 -> 5; 3
  assert.deepEqual(sizeScaledBy(7, 3, 0.5), [4, 2]); // 3.5 + .5 -> 4; 1.5 + .5 -> 2
});

test('sampleRandomScale: int(scale * r) with r in the ratio range', () => {
  const rng = new Rng(1);
  for (let i = 0; i < 200; i++) {
    const [w, h] = sampleRandomScale([2048, 512], [0.5, 2.0], rng);
    assert.ok(w >= 1024 && w < 4096 && h >= 256 && h < 1024);
    assert.ok(Math.abs(w / 2048 - h / 512) < 0.01);
  }
  assert.deepEqual(sampleRandomScale([2048, 512], [1, 1], rng), [2048, 512]);
});

test('nearest and bilinear resizing follow OpenCV geometry', () => {
  assert.deepEqual(Array.from(nearestIndex(3, 6)), [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(Array.from(nearestIndex(6, 3)), [0, 2, 4]);
  assert.deepEqual(Array.from(nearestIndex(5, 3)), [0, 1, 3]); // floor(d * 5/3)
  const lab = new Uint8Array([1, 2, 3, 4, 5, 6]); // 3 x 2
  assert.deepEqual(Array.from(resizeNearest(lab, 3, 2, 6, 2)), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);

  // 2x shrink samples between pixel pairs: the mean of each 2x2 block (no antialias beyond that)
  const a = img(4, 4, (x, y, c) => x * 10 + y * 40 + c);
  const half = resizeBilinear(a, 2, 2);
  assert.deepEqual(Array.from(half.data), [25, 26, 27, 45, 46, 47, 105, 106, 107, 125, 126, 127]);
  // a 4x shrink reads 2 of every 4 columns: no area averaging, as cv2.INTER_LINEAR
  const row = img(8, 1, (x) => (x % 4 === 1 || x % 4 === 2 ? 200 : 0));
  assert.deepEqual(Array.from(resizeBilinear(row, 2, 1).data.filter((_, i) => i % 3 === 0)), [200, 200]);
  // 2x enlarge: edges clamp, interior at 1/4 and 3/4
  const two = img(2, 1, (x) => (x ? 100 : 0));
  assert.deepEqual(Array.from(resizeBilinear(two, 4, 1).data.filter((_, i) => i % 3 === 0)), [0, 25, 75, 100]);
  // same size: unchanged
  assert.deepEqual(resizeBilinear(a, 4, 4).data, a.data);
  // a constant image stays constant at any size
  const flat = img(7, 5, () => 77);
  assert.ok(resizeBilinear(flat, 13, 3).data.every((v) => v === 77));
});

test('cat_max_ratio acceptance: >1 non-ignored class and the largest < ratio of non-ignored pixels', () => {
  const h = (o: Record<number, number>) => {
    const c = new Uint32Array(256);
    for (const [k, v] of Object.entries(o)) c[Number(k)] = v;
    return c;
  };
  assert.equal(cropAccepted(h({ 3: 100 }), 0.75), false);
  assert.equal(cropAccepted(h({ 3: 75, 4: 25 }), 0.75), false); // exactly 0.75 is not < 0.75
  assert.equal(cropAccepted(h({ 3: 74, 4: 26 }), 0.75), true);
  assert.equal(cropAccepted(h({ 3: 70, 4: 30, 255: 5000 }), 0.75), true); // ignore pixels do not count
  assert.equal(cropAccepted(h({ 3: 10, 255: 10 }), 0.75), false);
  assert.equal(cropAccepted(h({ 255: 10 }), 0.75), false);
  assert.equal(cropAccepted(h({ 0: 1, 1: 1, 2: 1 }), 0.75), true);
});

test('randomCropBox: up to 10 tests, the 11th draw kept untested; one draw without cat_max_ratio', () => {
  let calls = 0;
  const never = () => (calls++, new Uint32Array(256));
  const a = randomCropBox(100, 80, [32, 48], 0.75, new Rng(3), never);
  assert.equal(calls, 10);
  const r = new Rng(3);
  for (let i = 0; i < 10; i++) {
    // the ten rejected draws (y then x)
    r.int(0, 49);
    r.int(0, 53);
  }
  const y1 = r.int(0, 49);
  const x1 = r.int(0, 53);
  assert.deepEqual(a, { y1, y2: y1 + 32, x1, x2: x1 + 48 });

  calls = 0;
  randomCropBox(100, 80, [32, 48], 1, new Rng(3), never);
  assert.equal(calls, 0);
  // a map smaller than the crop: the whole map, clipped
  assert.deepEqual(
    randomCropBox(20, 10, [32, 48], 0.75, new Rng(0), () => new Uint32Array(256)),
    { y1: 0, y2: 10, x1: 0, x2: 20 },
  );
  // the accepted crop really has mixed classes
  const lab = new Uint8Array(100 * 80);
  for (let i = 0; i < lab.length; i++) lab[i] = i % 100 < 70 ? 1 : 2; // class 2 only in the last 30 columns
  let tries = 0;
  const box = randomCropBox(100, 80, [32, 48], 0.75, new Rng(9), (b) => (tries++, labelHistogram(lab, 100, b)));
  assert.ok(tries > 1, 'the first crop was rejected');
  assert.ok(cropAccepted(labelHistogram(lab, 100, box), 0.75));
});

test('flip mirrors image and labels; padding puts 0 / 255 at the bottom and right', () => {
  const a = img(3, 2, (x, y, c) => 100 * y + 10 * x + c);
  flipImage(a);
  assert.deepEqual(Array.from(a.data.slice(0, 9)), [20, 21, 22, 10, 11, 12, 0, 1, 2]);
  const lab = new Uint8Array([1, 2, 3, 4, 5, 6]);
  flipLabel(lab, 3);
  assert.deepEqual(Array.from(lab), [3, 2, 1, 6, 5, 4]);

  const p = padTo({ image: img(2, 1, () => 9), label: new Uint8Array([4, 5]) }, 2, 3);
  assert.deepEqual([p.image.width, p.image.height], [3, 2]);
  assert.deepEqual(Array.from(p.label), [4, 5, 255, 255, 255, 255]);
  assert.deepEqual(Array.from(p.image.data), [9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test('photometric steps: mmseg float32 arithmetic, clip, truncation', () => {
  const a = img(4, 1, (x) => [0, 10, 128, 250][x]);
  adjustBrightness(a, -0.5);
  assert.deepEqual(Array.from(a.data.filter((_, i) => i % 3 === 0)), [0, 9, 127, 249]); // trunc(9.5) = 9
  adjustBrightness(a, 31.9);
  assert.deepEqual(Array.from(a.data.filter((_, i) => i % 3 === 0)), [31, 40, 158, 255]);
  adjustContrast(a, 0.5);
  assert.deepEqual(Array.from(a.data.filter((_, i) => i % 3 === 0)), [15, 20, 79, 127]);
  adjustContrast(a, 1.5);
  assert.deepEqual(Array.from(a.data.filter((_, i) => i % 3 === 0)), [22, 30, 118, 190]);
});

test("OpenCV's 8-bit HSV: known colours, gray is invariant, round trips are close", () => {
  const px = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 128, 128, 128, 0, 0, 0]);
  const hsv = rgbToHsv(px);
  assert.deepEqual(Array.from(hsv), [0, 255, 255, 60, 255, 255, 120, 255, 255, 30, 255, 255, 0, 0, 128, 0, 0, 0]);
  const back = new Uint8Array(px.length);
  hsvToRgb(hsv, back);
  assert.deepEqual(back, px);

  const rng = new Rng(4);
  const rand = img(64, 64, () => rng.int(0, 256));
  const trip = new Uint8Array(rand.data.length);
  hsvToRgb(rgbToHsv(rand.data), trip);
  let worst = 0;
  for (let i = 0; i < trip.length; i++) worst = Math.max(worst, Math.abs(trip[i] - rand.data[i]));
  assert.ok(worst <= 8, `round trip error ${worst}`); // 8-bit hue (2 degrees) and saturation steps

  const gray = img(3, 3, () => 90);
  adjustSaturation(gray, 1.5);
  shiftHue(gray, 17);
  assert.ok(gray.data.every((v) => v === 90));
  const red = img(1, 1, (_, __, c) => (c === 0 ? 255 : 0));
  shiftHue(red, 30); // H 0 -> 30 (60 degrees): yellow
  assert.deepEqual(Array.from(red.data), [255, 255, 0]);
  const red2 = img(1, 1, (_, __, c) => (c === 0 ? 255 : 0));
  shiftHue(red2, -18); // wraps to 162
  assert.deepEqual(Array.from(rgbToHsv(red2.data)), [162, 255, 255]);
  adjustSaturation(red2, 0.5);
  assert.equal(rgbToHsv(red2.data)[1], 127);
});

test('PhotoMetricDistortion stays within brightness +-32 and contrast [0.5, 1.5] bounds', () => {
  for (let seed = 0; seed < 300; seed++) {
    const g = img(2, 2, () => 100);
    photoMetricDistortion(g, new Rng(seed));
    const v = g.data[0];
    assert.ok(
      g.data.every((x) => x === v),
      'a gray image stays gray',
    );
    // worst cases: (100 - 32) * 0.5 and (100 + 32) * 1.5
    assert.ok(v >= Math.floor(68 * 0.5) - 1 && v <= Math.ceil(132 * 1.5), `seed ${seed}: ${v}`);
  }
  const a = img(8, 8, (x, y, c) => (x * 31 + y * 17 + c * 5) % 256);
  const b = img(8, 8, (x, y, c) => (x * 31 + y * 17 + c * 5) % 256);
  photoMetricDistortion(a, new Rng(11));
  photoMetricDistortion(b, new Rng(11));
  assert.deepEqual(a.data, b.data);
});

const PIPE = TrainPipelineConfig.parse({ scale: [120, 40], crop: [32, 48] });

/** The pipeline the slow way: resize everything, crop, flip, distort, pad. */
function reference(image: RgbImage, label: Uint8Array, p: TrainPipelineConfig, rng: Rng) {
  const [nw, nh] = sizeToFit(image.width, image.height, sampleRandomScale(p.scale, p.ratioRange, rng));
  const big = resizeBilinear(image, nw, nh);
  const bigLab = resizeNearest(label, image.width, image.height, nw, nh);
  const box: Box = randomCropBox(nw, nh, p.crop, p.catMaxRatio, rng, (b) => labelHistogram(bigLab, nw, b));
  const im = cropImage(big, box);
  const lab = cropLabel(bigLab, nw, box);
  if (rng.uniform() < p.flipProb) {
    flipImage(im);
    flipLabel(lab, im.width);
  }
  if (p.photometric) photoMetricDistortion(im, rng);
  return padTo({ image: im, label: lab }, p.crop[0], p.crop[1]);
}

test('trainTransform equals resize -> crop -> flip -> photometric -> pad, exactly; crop-sized; deterministic', () => {
  for (const [w, h] of [
    [60, 40],
    [23, 17],
    [97, 61],
  ]) {
    const label = blockyMask(3, w, h, [0, 4, 9, 255]);
    const image: RgbImage = { width: w, height: h, data: imageFor(label, w, h, (v) => v) };
    for (let seed = 0; seed < 25; seed++) {
      const fast = trainTransform({ image, label }, PIPE, new Rng(seed));
      const slow = reference(image, label, PIPE, new Rng(seed));
      assert.deepEqual([fast.image.width, fast.image.height], [48, 32]);
      assert.equal(fast.label.length, 32 * 48);
      assert.deepEqual(fast.image.data, slow.image.data, `${w}x${h} seed ${seed}`);
      assert.deepEqual(fast.label, slow.label, `${w}x${h} seed ${seed}`);
      assert.ok(fast.label.every((v) => v === 0 || v === 4 || v === 9 || v === 255));
      const again = trainTransform({ image, label }, PIPE, new Rng(seed));
      assert.deepEqual(again.image.data, fast.image.data);
    }
  }
  // the input is not modified
  const label = blockyMask(0, 60, 40, [1, 2]);
  const image: RgbImage = { width: 60, height: 40, data: imageFor(label, 60, 40, (v) => v) };
  const copy = image.data.slice();
  trainTransform({ image, label }, PIPE, new Rng(0));
  assert.deepEqual(image.data, copy);
});

test('test Resize keeps the aspect ratio (mmcv rounding); null keeps the image', () => {
  const a = img(60, 40, () => 1);
  assert.equal(testResize(a, null), a);
  const r = testResize(a, [2048, 512]);
  assert.deepEqual([r.width, r.height], [768, 512]);
  assert.equal(r.data.length, 768 * 512 * 3);
  assert.equal(testResize(a, [60, 40]), a);
});
