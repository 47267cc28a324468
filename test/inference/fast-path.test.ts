// The inference fast path: load() folds and goes channels_last by default and gives the plain
// model's logits; activations stay channels_last to the logits; bf16 autocast; the CLI options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.js';
import { load, findPreset } from '../../src/index.js';
import { forwardLogits, prepareForInference } from '../../src/inference/fast-path.js';
import { predictLabels } from '../../src/evaluation/evaluate.js';
import { isFolded } from '../../src/models/fold.js';
import type { RgbImage } from '../../src/data/image.js';
import { cliMain, generatedFixture, tempDir } from '../helpers/paths.js';
import { Segmenter } from '../../src/inference/segmenter.js';
import { paletteFor } from '../../src/data/palettes.js';
import { resizeBilinear } from '../../src/data/geometry.js';

// Small images: one thread avoids waiting on a second one at every operator on a busy machine.
torch.setNumThreads(1);
const run = promisify(execFile);
const PRESET = 'deeplabv3_mobilenet_v3_large';
const weights = () => generatedFixture('torchvision', `${PRESET}.pth`);

/** A smooth picture with a few shapes: something a model gives structured output on. */
function picture(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inDisc = (x - width / 2) ** 2 + (y - height / 3) ** 2 < (width / 5) ** 2;
      const inBox = x > width / 8 && x < width / 3 && y > height / 2;
      const base = [128 + 100 * Math.sin(x / 9 + seed), 128 + 100 * Math.cos(y / 7), 128 + 60 * Math.sin((x + y) / 13)];
      const px = inDisc ? [220, 40, 40] : inBox ? [30, 60, 200] : base;
      data.set(
        px.map((v) => Math.max(0, Math.min(255, Math.round(v)))),
        (y * width + x) * 3,
      );
    }
  }
  return { width, height, data };
}

function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

test("load(): the fast path by default (folded, channels_last) gives the plain model's logits", async () => {
  const fast = await load(PRESET, { weights: weights() });
  const plain = await load(PRESET, { weights: weights(), fast: false });
  assert.deepEqual(fast.settings, { precision: 'fp32', channelsLast: true });
  assert.deepEqual(plain.settings, { precision: 'fp32', channelsLast: false });
  assert.ok(isFolded(fast.model) && !isFolded(plain.model));
  const convWeights = [...fast.model.namedParameters()].filter(
    ([, p]) => p.ndim === 4 && p.shape[1] > 1 && p.shape[2] * p.shape[3] > 1,
  );
  assert.ok(
    convWeights.length >= 5 && convWeights.every(([, p]) => p.isContiguous('channels_last') && !p.isContiguous()),
  );
  const img = picture(67, 45, 1);
  const a = fast.segmentImage(img, { logits: true });
  const b = plain.segmentImage(img, { logits: true });
  let worst = 0,
    scale = 0;
  for (let i = 0; i < a.logits!.length; i++) {
    worst = Math.max(worst, Math.abs(a.logits![i] - b.logits![i]));
    scale = Math.max(scale, Math.abs(b.logits![i]));
  }
  assert.ok(worst / scale < 1e-4, `max abs diff ${worst} of ${scale}`);
  assert.ok(agreement(a.labels, b.labels) > 0.999);
  const live = torch.liveTensors();
  fast.segmentImage(img);
  assert.equal(torch.liveTensors(), live, 'no tensor leaked');
  fast.dispose();
  plain.dispose();
});

test("channels_last from the input to the head's logits, which are resized into NCHW; forwardLogits gives contiguous float32", () => {
  const model = findPreset(PRESET).build({ aux: false });
  const { settings, fold } = prepareForInference(model);
  assert.ok(fold!.folded.length > 50);
  assert.ok(settings.channelsLast);
  torch.scope(() => {
    const x = torch.randn([1, 3, 40, 56]).contiguous('channels_last');
    // Every module's 4-D output with more than one channel and pixel is channels_last, except the
    // segmentor's own: resizeLogits turns the small logits NCHW before the resize (no transpose
    // of the full-size ones).
    const notCl: string[] = [];
    const hooked = new Map<torch.nn.Module, PropertyDescriptor | undefined>();
    for (const [name, m] of model.namedModules()) {
      const orig = (m as unknown as { forward?: (x: torch.Tensor) => unknown }).forward;
      if (typeof orig !== 'function' || hooked.has(m)) continue;
      hooked.set(m, Object.getOwnPropertyDescriptor(m, 'forward'));
      Object.defineProperty(m, 'forward', {
        configurable: true,
        value: (input: torch.Tensor) => {
          const r = orig.call(m, input);
          const outs = r instanceof torch.Tensor ? [r] : Object.values(r as object);
          for (const t of outs) {
            if (
              t instanceof torch.Tensor &&
              t.ndim === 4 &&
              t.shape[1] > 1 &&
              t.shape[2] * t.shape[3] > 1 &&
              !t.isContiguous('channels_last')
            )
              notCl.push(name);
          }
          return r;
        },
      });
    }
    let logits: torch.Tensor | undefined;
    try {
      logits = torch.inferenceMode(() => model.forward(x)).out;
    } finally {
      for (const [m, own] of hooked) {
        if (own) Object.defineProperty(m, 'forward', own);
        else delete (m as unknown as { forward?: unknown }).forward;
      }
    }
    assert.deepEqual(notCl, ['']);
    assert.ok(logits.isContiguous() && !logits.isContiguous('channels_last'));
    const out = forwardLogits(model, x, settings);
    assert.equal(out.dtype, 'float32');
    assert.ok(out.isContiguous() && !out.isContiguous('channels_last'));
    assert.deepEqual(out.shape, [1, 21, 40, 56]);
  });
  model.dispose();
});

test('bf16 autocast: float32 logits close to fp32, most labels equal', async () => {
  const fp32 = await load(PRESET, { weights: weights() });
  const bf16 = await load(PRESET, { weights: weights(), precision: 'bf16' });
  assert.deepEqual(bf16.settings, { precision: 'bf16', channelsLast: true });
  const img = picture(64, 48, 2);
  const a = fp32.segmentImage(img, { logits: true, probabilities: true });
  const b = bf16.segmentImage(img, { logits: true, probabilities: true });
  assert.ok(b.logits instanceof Float32Array && b.probabilities instanceof Float32Array);
  let worst = 0,
    scale = 0;
  for (let i = 0; i < a.logits!.length; i++) {
    worst = Math.max(worst, Math.abs(a.logits![i] - b.logits[i]));
    scale = Math.max(scale, Math.abs(a.logits![i]));
  }
  assert.ok(worst > 0, 'bf16 really ran in lower precision');
  assert.ok(worst / scale < 0.1, `bf16 logits differ by ${worst} of ${scale}`);
  assert.ok(agreement(a.labels, b.labels) > 0.9, `label agreement ${agreement(a.labels, b.labels)}`);
  await assert.rejects(
    load(PRESET, { precision: 'fp16' as 'bf16' }),
    /Expected precision to be one of fp32, bf16, int8 but received "fp16"/,
  );
  fp32.dispose();
  bf16.dispose();
});

test('evaluation labels: the fast path (whole and slide) agrees with the plain model', () => {
  torch.manualSeed(3);
  const plain = findPreset('deeplabv3_r18-d8').build({ aux: false, numClasses: 5 }).eval();
  const fast = findPreset('deeplabv3_r18-d8').build({ aux: false, numClasses: 5 });
  fast.loadStateDict(plain.stateDict());
  const { settings } = prepareForInference(fast);
  const img = picture(50, 38, 3);
  const norm = findPreset('deeplabv3_r18-d8').normalization;
  const evalCfg = (mode: 'whole' | 'slide') => ({
    mode,
    crop: [32, 32] as [number, number],
    stride: [21, 21] as [number, number],
    metric: 'mmseg' as const,
    tta: { scales: [1], flip: false },
  });
  for (const mode of ['whole', 'slide'] as const) {
    torch.scope(() => {
      const o = { norm, eval: evalCfg(mode) as never, augTest: false };
      const a = predictLabels(plain, { image: img, resized: img }, o);
      const b = predictLabels(fast, { image: img, resized: img }, { ...o, settings });
      assert.deepEqual(a.shape, [1, 38, 50]);
      assert.ok(agreement(a.toArray(), b.toArray()) > 0.999, mode);
    });
  }
  plain.dispose();
  fast.dispose();
});

test("scale: the Segmenter runs on the image resized as the test pipeline resizes it, labels at the image's size", () => {
  torch.manualSeed(5);
  const model = findPreset('deeplabv3_r18-d8').build({ aux: false, numClasses: 5 });
  const { settings } = prepareForInference(model);
  const preset = findPreset('deeplabv3_r18-d8');
  const seg = new Segmenter(preset, model, paletteFor(undefined, 5), null, settings);
  const img = picture(66, 50, 2);
  const half = seg.segmentImage(img, { scale: 0.5, logits: true });
  assert.equal(half.labels.length, 66 * 50);
  assert.equal(half.logits!.length, 5 * 66 * 50);
  torch.scope(() => {
    // The evaluation with data.test.scale [25, 33]: the data layer's resize, logits back to 66x50.
    const o = {
      norm: preset.normalization,
      eval: { mode: 'whole', metric: 'mmseg', tta: { scales: [1], flip: false } } as never,
      augTest: false,
      settings,
    };
    const e = predictLabels(model, { image: img, resized: resizeBilinear(img, 33, 25) }, o);
    assert.deepEqual([...e.toArray()], [...half.labels]);
  });
  // Not the same as running at full size (the model sees other pixels).
  assert.notDeepEqual(seg.segmentImage(img).labels, half.labels);
  assert.throws(() => seg.segmentImage(img, { scale: -1 }), /scale: expected a number > 0 but received -1/);
  seg.dispose();
});

test('CLI predict --precision bf16, --no-fast and --scale run; a bad precision or scale is refused', async () => {
  const dir = tempDir('deeplab-fast-');
  const img = picture(33, 29, 4);
  const file = join(dir, 'pic.png');
  await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toFile(file);
  for (const extra of [['--precision', 'bf16'], ['--no-fast'], ['--scale', '0.5']]) {
    const { stdout } = await run(
      process.execPath,
      [
        cliMain,
        'predict',
        file,
        '--model',
        PRESET,
        '--weights',
        weights(),
        '--out',
        join(dir, extra.join('')),
        ...extra,
      ],
      { env: { ...process.env, DEEPLAB_THREADS: '1' } },
    );
    assert.match(stdout, /pic\.png: 33x29 in \d+ ms/);
    // Labels at the image's size whatever size the model ran at.
    const labels = await sharp(join(dir, extra.join(''), 'pic_labels.png')).metadata();
    assert.deepEqual([labels.width, labels.height], [33, 29]);
  }
  await assert.rejects(
    run(process.execPath, [cliMain, 'predict', file, '--model', PRESET, '--scale', '0']),
    (e: { stderr: string }) =>
      /option '--scale <factor>' argument '0' is invalid. expected a number above 0/.test(e.stderr),
  );
  await assert.rejects(
    run(process.execPath, [cliMain, 'predict', file, '--model', PRESET, '--precision', 'fp16']),
    (e: { stderr: string }) => /argument 'fp16' is invalid. Allowed choices are fp32, bf16/.test(e.stderr),
  );
});

test("every model takes the fast path in channels_last; DeepLabV3+ (dilated depthwise ASPP, our kernel) gives the eager model's logits", () => {
  for (const name of ['deeplabv3plus_r18-d8', 'deeplabv3plus_mobilenetv2', 'deeplabv3_r18-d8']) {
    torch.manualSeed(0);
    const eager = findPreset(name).build({ aux: false });
    torch.manualSeed(0);
    const fast = findPreset(name).build({ aux: false });
    try {
      eager.eval();
      const { settings, fold } = prepareForInference(fast);
      assert.deepEqual(settings, { precision: 'fp32', channelsLast: true }, name);
      assert.ok(fold && fold.folded.length > 0, `${name}: batch norms folded`);
      torch.scope(() => {
        const x = torch.randn([1, 3, 96, 128]);
        const a = forwardLogits(fast, x, settings);
        const b = forwardLogits(eager, x);
        const scale = b.abs().max().item();
        const worst = a.sub(b).abs().max().item();
        assert.ok(
          worst <= 1e-4 * Math.max(1, scale),
          `${name}: max-abs ${worst} against eager (logits up to ${scale})`,
        );
      });
    } finally {
      eager.dispose();
      fast.dispose();
    }
  }
});
