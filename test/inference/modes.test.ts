// Whole, slide and TTA inference, and evaluate(), against mmseg's own slide_inference and
// SegTTAModel merge run in PyTorch on a tiny fixed model (test/fixtures/make_metrics.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import {
  Segmentor,
  type Normalization,
  type OutputStride,
  type SegmentationOutput,
} from '../../src/models/segmentor.js';
import { inferAug, inferSlide, inferView, inferWhole } from '../../src/inference/modes.js';
import { evaluate } from '../../src/evaluation/evaluate.js';
import type { EvalSample } from '../../src/data/loader.js';
import { resizeBilinear, sizeForScaleFactor } from '../../src/data/geometry.js';
import { ConfusionMatrix, computeMetrics } from '../../src/evaluation/metrics.js';
import { toInputTensor } from '../../src/data/to-tensor.js';
import type { RgbImage } from '../../src/data/image.js';
import type { EvalConfig } from '../../src/config/schema.js';
import { assertClose } from '../helpers/compare.js';
import { committedFixture } from '../helpers/paths.js';

interface Blob {
  shape: number[];
  data: string;
}
const fx = JSON.parse(readFileSync(committedFixture('metrics', 'inference.json'), 'utf8')) as {
  classes: number;
  weight: string;
  bias: string;
  image: { width: number; height: number; data: string };
  norm: Normalization;
  crop: [number, number];
  stride: [number, number];
  windows: number[][];
  smallWindows: number[][];
  scales: number[];
  outputs: Record<string, Blob>;
  rescale: [number, number, number, number, number][];
  resized: { ratio: number; width: number; height: number; data: string }[];
};

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const floats = (s: string) => new Float32Array(bytes(s).buffer);
const expected = (name: string) => floats(fx.outputs[name].data);
const image: RgbImage = { width: fx.image.width, height: fx.image.height, data: bytes(fx.image.data) };
const TOL = { rtol: 1e-5, atol: 1e-5 };

/** The fixture's model: a 3x3 stride-2 conv, upsampled bilinear to the input size. Records the windows it sees. */
class TinySeg extends Segmentor {
  readonly numClasses = fx.classes;
  weight: torch.Tensor;
  bias: torch.Tensor;
  readonly seen: number[][] = [];
  constructor() {
    super();
    this.weight = this.param(torch.tensor(floats(fx.weight), { shape: [fx.classes, 3, 3, 3] }), false);
    this.bias = this.param(torch.tensor(floats(fx.bias)), false);
  }
  forward(x: torch.Tensor): SegmentationOutput {
    this.seen.push(x.shape.slice(2));
    const y = F.conv2d(x, this.weight, this.bias, { stride: 2, padding: 1 });
    return { out: F.interpolate(y, { size: [x.size(2), x.size(3)], mode: 'bilinear', alignCorners: false }) };
  }
  setOutputStride(): void {}
  get outputStride(): OutputStride {
    return 16;
  }
}

const model = new TinySeg().eval();

test('whole: the model forward, equal to the PyTorch model', () => {
  torch.scope(() => {
    const x = toInputTensor(image, fx.norm);
    const out = inferWhole(model, x);
    assertClose(out, model.forward(x).out, 'whole vs forward', { rtol: 0, atol: 0 });
    assertClose(out, expected('whole'), 'whole vs PyTorch', TOL);
  });
});

test("slide: mmseg's windows (last one snapped to the border) and logit average", () => {
  torch.scope(() => {
    const x = toInputTensor(image, fx.norm);
    model.seen.length = 0;
    const out = inferSlide(model, x, fx.crop, fx.stride, fx.classes);
    assert.deepEqual(out.shape, [1, 3, 37, 53]);
    assert.deepEqual(
      model.seen,
      fx.windows.map(([y1, y2, x1, x2]) => [y2 - y1, x2 - x1]),
    );
    assertClose(out, expected('slide'), 'slide 37x53 crop 17x23 stride 11x13', TOL);
  });
});

test('slide on an image smaller than the crop: the window is the image, unpadded', () => {
  torch.scope(() => {
    const x = toInputTensor(image, fx.norm).slice(2, 0, 15);
    model.seen.length = 0;
    const out = inferSlide(model, x, fx.crop, fx.stride, fx.classes);
    assert.deepEqual(
      model.seen,
      fx.smallWindows.map(([y1, y2, x1, x2]) => [y2 - y1, x2 - x1]),
    );
    assert.ok(model.seen.every(([h]) => h === 15));
    assertClose(out, expected('slideSmall'), 'slide 15x53', TOL);
    assert.throws(
      () => inferSlide(model, x, fx.crop, fx.stride, 5),
      /the model gives 3 classes, expected numClasses = 5/,
    );
    assert.throws(() => inferSlide(model, x, [0, 3], fx.stride, 3), /expected crop as two positive integers/);
  });
});

test("mmcv's Resize(scale_factor, keep_ratio) sizes, and the image resize", () => {
  for (const [w, h, r, nw, nh] of fx.rescale)
    assert.deepEqual(sizeForScaleFactor(w, h, r), [nw, nh], `${w}x${h} x ${r}`);
  for (const r of fx.resized) {
    const out = resizeBilinear(image, r.width, r.height);
    assert.deepEqual([out.width, out.height], [r.width, r.height]);
    assert.deepEqual(out.data, bytes(r.data), `resize x ${r.ratio}`);
  }
  assert.deepEqual(resizeBilinear(image, image.width, image.height).data, image.data);
});

test('TTA: mean softmax over scales x flips, at the original size (whole and slide)', () => {
  torch.scope(() => {
    const whole = inferAug(model, image, fx.norm, { scales: fx.scales, flip: true, mode: 'whole' });
    assertClose(whole, expected('ttaWhole'), 'TTA whole', TOL);
    const slide = inferAug(model, image, fx.norm, {
      scales: fx.scales,
      flip: true,
      mode: 'slide',
      crop: fx.crop,
      stride: fx.stride,
    });
    assertClose(slide, expected('ttaSlide'), 'TTA slide', TOL);
    const sums = whole.sum(1);
    assertClose(sums, torch.onesLike(sums), 'probabilities sum to 1', TOL);
  });
});

test('TTA with scale 1.0 and no flip is the softmax of whole inference', () => {
  torch.scope(() => {
    const probs = inferAug(model, image, fx.norm, { scales: [1.0], flip: false, mode: 'whole' });
    const want = F.softmax(inferWhole(model, toInputTensor(image, fx.norm)), 1);
    assertClose(probs, want, 'TTA [1.0] vs softmax(whole)', { rtol: 0, atol: 0 });
  });
});

test('flipped views are un-flipped', () => {
  torch.scope(() => {
    const x = toInputTensor(image, fx.norm);
    // The flipped view of a mirrored image is the original image's logits, mirrored back.
    const view = inferView(model, x.flip(3), { mode: 'whole', flip: true, size: [37, 53] });
    assertClose(view, model.forward(x).out.flip(3), 'flip view', { rtol: 0, atol: 0 });
    const probs = inferAug(model, image, fx.norm, { scales: [1.0], flip: true, mode: 'whole' });
    assertClose(probs, expected('ttaFlipOnly'), 'TTA [1.0] + flip', TOL);
  });
});

test('no tensor leaks: whole, slide, TTA', () => {
  const x = toInputTensor(image, fx.norm);
  inferAug(model, image, fx.norm, {
    scales: [0.5],
    flip: true,
    mode: 'slide',
    crop: fx.crop,
    stride: fx.stride,
  }).dispose(); // warm-up
  const before = torch.liveTensors();
  inferWhole(model, x).dispose();
  inferSlide(model, x, fx.crop, fx.stride, fx.classes).dispose();
  inferAug(model, image, fx.norm, {
    scales: fx.scales,
    flip: true,
    mode: 'slide',
    crop: fx.crop,
    stride: fx.stride,
  }).dispose();
  inferAug(model, image, fx.norm, { scales: [1.0], flip: false, mode: 'whole' }).dispose();
  assert.equal(torch.liveTensors(), before);
  x.dispose();
});

// ---- evaluate ---------------------------------------------------------------------------------

function labelsOf(probsOrLogits: torch.Tensor): Uint8Array {
  return torch.scope(() => probsOrLogits.argmax(1).to('uint8').data() as Uint8Array);
}

async function* samplesOf(items: EvalSample[]): AsyncIterable<EvalSample> {
  for (const s of items) yield s;
}

const evalConfig = (o: Partial<EvalConfig> = {}): EvalConfig => ({
  mode: 'whole',
  tta: { scales: [0.5, 1.0], flip: true },
  metric: 'mmseg',
  ...o,
});

test('evaluate: test resize, logits back to the original size, argmax, one matrix over the dataset', async () => {
  // Ground truth = the model's own whole-image prediction, with a band relabelled and some ignored.
  const truth = torch.scope(() => labelsOf(inferWhole(model, toInputTensor(image, fx.norm))));
  const label = truth.map((v, i) => (i % 53 < 5 ? 255 : i % 7 === 0 ? (v + 1) % 3 : v));
  const flipped: RgbImage = torch.scope(() => {
    const t = torch
      .tensor(image.data, { dtype: 'uint8', shape: [37, 53, 3] })
      .flip(1)
      .contiguous();
    return { width: 53, height: 37, data: t.data() as Uint8Array };
  });
  const testResize = (img: RgbImage) => resizeBilinear(img, 40, 28);
  const items = [
    { name: 'a', image, resized: testResize(image), label },
    { name: 'b', image: flipped, resized: testResize(flipped), label: Uint8Array.from(label).reverse() },
  ];
  const progress: string[] = [];
  const before = torch.liveTensors();
  const r = await evaluate(model, samplesOf(items), {
    norm: fx.norm,
    numClasses: 3,
    ignoreIndex: 255,
    eval: evalConfig({ metric: 'torchvision' }),
    augTest: false,
    onProgress: (p) => progress.push(`${p.done}:${p.name}`),
  });
  assert.deepEqual(progress, ['1:a', '2:b']);
  assert.ok(r.seconds >= 0);
  // By hand: resize, whole, bilinear to 37x53, argmax.
  const want = new ConfusionMatrix(3);
  for (const s of items) {
    torch.scope(() => {
      const logits = inferWhole(model, toInputTensor(testResize(s.image), fx.norm));
      want.update(F.interpolate(logits, { size: [37, 53], mode: 'bilinear', alignCorners: false }).argmax(1), s.label);
    });
  }
  assert.deepEqual(r.confusion.toJSON(), want.toJSON());
  assert.deepEqual(r.metrics, computeMetrics(want, 'torchvision'));
  r.confusion.dispose();
  want.dispose();
  assert.equal(torch.liveTensors(), before, 'evaluate leaked tensors');
});

test('evaluate with --aug-test uses the TTA views of the original image; slide needs crop and stride', async () => {
  const label = torch.scope(() =>
    labelsOf(inferAug(model, image, fx.norm, { scales: [0.5, 1.0], flip: true, mode: 'whole' })),
  );
  const o = { norm: fx.norm, numClasses: 3, ignoreIndex: 255, augTest: true };
  // TTA reads the original image: a test-resized image it must not use
  const resized: RgbImage = { width: 1, height: 1, data: new Uint8Array(3) };
  const r = await evaluate(model, samplesOf([{ name: 'a', image, resized, label }]), { ...o, eval: evalConfig() });
  assert.equal(r.metrics.aAcc, 100); // the label is the TTA prediction itself
  r.confusion.dispose();
  await assert.rejects(
    evaluate(model, samplesOf([{ name: 'a', image, resized, label }]), { ...o, eval: evalConfig({ mode: 'slide' }) }),
    /needs eval.crop and eval.stride/,
  );
  await assert.rejects(
    evaluate(model, samplesOf([{ name: 'short', image, resized, label: label.subarray(1) }]), {
      ...o,
      eval: evalConfig(),
    }),
    /short: the label has 1960 pixels but the image is 53x37 \(1961\)/,
  );
});
