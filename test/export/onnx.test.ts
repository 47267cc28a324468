// ONNX export against onnxruntime-node: every preset's static export gives our forward's logits,
// dynamic exports (DeepLab-v2 MSC, mmseg with align_corners, DeepLabV3+ with its low-level resize)
// agree at sizes they were not traced at (odd, batch 2), fp16 runs within a looser bound, and
// the CLI writes a file ORT loads, or fails cleanly leaving no file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as torch from '../../src/torch/index.js';
import { PRESETS } from '../../src/models/zoo.js';
import { loadForInference } from '../../src/inference/load.js';
import { forwardLogits } from '../../src/inference/fast-path.js';
import { exportOnnx } from '../../src/export/export.js';
import { Segmentor, type SegmentationOutput } from '../../src/models/segmentor.js';
import { cliMain, tempDir } from '../helpers/paths.js';

// Small forwards: one thread each for LibTorch and ORT wastes no time waiting on a busy machine.
// ORT runs the graph as written (no fusions: they would test ORT, and cost seconds per session
// on the ResNet-101 presets).
torch.setNumThreads(1);
const SESSION: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'disabled',
};

/** fp32: max |ORT - ours| over max |ours| (the logit scale) */
const FP32_TOL = 1e-4;
/** fp16 weights and activations: ~1e-3 measured; 1e-2 of the logit scale */
const FP16_TOL = 1e-2;

async function runOrt(session: ort.InferenceSession, x: torch.Tensor): Promise<ort.Tensor> {
  const r = await session.run({ input: new ort.Tensor('float32', x.data() as Float32Array, x.shape) });
  return r.logits;
}

function relativeError(ours: torch.Tensor, theirs: ort.Tensor): number {
  assert.deepEqual([...theirs.dims], ours.shape);
  const a = ours.data() as Float32Array;
  const b = theirs.data as Float32Array;
  let diff = 0,
    scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  assert.ok(scale > 0 && Number.isFinite(diff), 'logits are finite and not all zero');
  return diff / scale;
}

function seeded(preset: string, o: { alignCorners?: boolean } = {}) {
  torch.manualSeed(0);
  return loadForInference(preset, { fast: false, ...o }).model;
}

for (const preset of PRESETS) {
  test(`${preset.name}: static ONNX export agrees with our forward in onnxruntime`, async () => {
    const model = seeded(preset.name);
    const e = exportOnnx(model, { size: [49, 65], name: preset.name });
    try {
      assert.equal(e.onnxOperators.BatchNormalization, undefined, 'batch norms folded');
      const session = await ort.InferenceSession.create(e.bytes, SESSION);
      const err = relativeError(e.logits, await runOrt(session, e.input));
      await session.release();
      assert.ok(err < FP32_TOL, `max abs diff / logit scale = ${err}`);
    } finally {
      e.logits.dispose();
      e.input.dispose();
      model.dispose();
    }
  });
}

const DYNAMIC_CASES: [string, { alignCorners?: boolean }][] = [
  ['deeplabv2_resnet101_msc', {}],
  ['deeplabv3plus_r18-d8', { alignCorners: true }],
  ['deeplabv3_r18b-d8', {}],
  ['deeplabv3plus_mobilenetv2', {}],
];
for (const [name, o] of DYNAMIC_CASES) {
  test(`${name}${o.alignCorners ? ' (align_corners)' : ''}: a dynamic export agrees at two other sizes, one odd, one batch of 2`, async () => {
    const model = seeded(name, o);
    const e = exportOnnx(model, { dynamic: true, name });
    e.logits.dispose();
    e.input.dispose();
    try {
      const session = await ort.InferenceSession.create(e.bytes, SESSION);
      assert.deepEqual(session.inputNames, ['input']);
      for (const shape of [
        [1, 3, 64, 96],
        [2, 3, 77, 111],
      ]) {
        const x = torch.randn(shape);
        const ours = forwardLogits(model, x);
        const err = relativeError(ours, await runOrt(session, x));
        x.dispose();
        ours.dispose();
        assert.ok(err < FP32_TOL, `${shape.join('x')}: max abs diff / logit scale = ${err}`);
      }
      await session.release();
    } finally {
      model.dispose();
    }
  });
}

test('fp16 export: float16 inside, float32 at the ends, agrees within 1e-2 of the logit scale', async () => {
  const model = seeded('deeplabv3_mobilenet_v3_large');
  const e = exportOnnx(model, { size: [49, 65], precision: 'fp16' });
  try {
    assert.equal(e.onnxOperators.Cast, 2, 'one Cast at each end');
    const session = await ort.InferenceSession.create(e.bytes, SESSION);
    const out = await runOrt(session, e.input);
    assert.equal(out.type, 'float32');
    const err = relativeError(e.logits, out);
    await session.release();
    assert.ok(err < FP16_TOL, `max abs diff / logit scale = ${err}`);
    assert.ok(err > 1e-6, 'the graph really computes in float16');
  } finally {
    e.logits.dispose();
    e.input.dispose();
    model.dispose();
  }
});

class Softmaxed extends Segmentor {
  readonly numClasses = 3;
  conv = new torch.nn.Conv2d(3, 3, 1);
  forward(x: torch.Tensor): SegmentationOutput {
    return { out: torch.F.softmax(this.conv.forward(x), 1) };
  }
  setOutputStride(): void {}
  get outputStride(): 8 {
    return 8;
  }
}

test('an operator without an ONNX mapping is named in the error', () => {
  const model = new Softmaxed();
  model.eval();
  assert.throws(
    () => exportOnnx(model, { size: [16, 16], name: 'softmaxed' }),
    /ONNX export of softmaxed: the forward calls aten::softmax\.int has no ONNX mapping/,
  );
  model.dispose();
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: 300_000 });
}

test("deeplab export writes a .onnx file that onnxruntime loads and that agrees with predict's model", async () => {
  const dir = tempDir();
  const weights = join(dir, 'w.safetensors');
  const model = seeded('deeplabv3plus_mobilenetv2');
  torch.writeSafetensors(weights, model.stateDict());
  model.dispose();
  const out = join(dir, 'model.onnx');
  const r = cli([
    'export',
    '--format',
    'onnx',
    '--model',
    'deeplabv3plus_mobilenetv2',
    '--weights',
    weights,
    '--out',
    out,
    '--size',
    '33x47',
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /wrote .*model\.onnx: deeplabv3plus_mobilenetv2, .* MB, opset 17, fp32/);
  assert.deepEqual(readdirSync(dir).sort(), ['model.onnx', 'w.safetensors'], 'no temporary file left');
  const session = await ort.InferenceSession.create(readFileSync(out), SESSION);
  const { model: loaded, settings } = loadForInference('deeplabv3plus_mobilenetv2', { weights });
  const x = torch.randn([1, 3, 33, 47]);
  const ours = forwardLogits(loaded, x, settings);
  const err = relativeError(ours, await runOrt(session, x));
  await session.release();
  [x, ours].forEach((t) => t.dispose());
  loaded.dispose();
  assert.ok(err < FP32_TOL, `max abs diff / logit scale = ${err}`);
});

test('deeplab export: bad input fails with a clear message and leaves no file', () => {
  const dir = tempDir();
  const weights = join(dir, 'r18.safetensors');
  const model = seeded('deeplabv3_r18-d8');
  torch.writeSafetensors(weights, model.stateDict());
  model.dispose();
  const out = join(dir, 'model.onnx');
  const base = ['export', '--out', out];
  const cases: [string[], RegExp][] = [
    [['--model', 'no_such_model', '--random-weights'], /unknown model preset "no_such_model"/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--weights', weights], /r18\.safetensors/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--size', '64x'], /--size.*expected HEIGHTxWIDTH/],
    [
      ['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--size', '64x64', '--dynamic'],
      /--size or --dynamic, not both/,
    ],
    [['--model', 'deeplabv3plus_mobilenetv2'], /--weights FILE is required/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--format', 'tflite'], /--format.*onnx/],
  ];
  for (const [args, message] of cases) {
    const r = cli([...base, ...args]);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.ok(!existsSync(out), `${args.join(' ')}: no output file`);
    assert.deepEqual(readdirSync(dir), ['r18.safetensors'], 'no temporary file left');
  }
});
