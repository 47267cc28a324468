// ONNX export against onnxruntime-node: the light presets' static exports give our forward's
// logits; dynamic exports (mmseg DeepLabV3+ with align_corners and its low-level resize, mmseg
// R-18b, jfzhang95's MobileNetV2) agree at sizes they were not traced at (a multiple of 16, an
// odd size in a batch of 2); fp16 runs within a looser bound; an unmapped operator is named; the
// CLI writes a file ORT loads, or fails cleanly leaving no file. Every preset, and DeepLab-v2
// MSC's dynamic export: test/export/onnx-all-presets.ts (minutes; run by hand).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as torch from '../../src/torch/index.js';
import { findPreset } from '../../src/models/zoo.js';
import { loadForInference } from '../../src/inference/load.js';
import { forwardLogits } from '../../src/inference/fast-path.js';
import { exportOnnx } from '../../src/export/export.js';
import { Segmentor, type SegmentationOutput } from '../../src/models/segmentor.js';
import { exportCommand } from '../../src/cli/export.js';
import { cliMain, tempDir } from '../helpers/paths.js';
import {
  dynamicExportErrors,
  FP16_TOL,
  FP32_TOL,
  relativeError,
  runOrt,
  seeded,
  SESSION,
  staticExportError,
} from '../helpers/onnx.js';

torch.setNumThreads(1);

// Each operator the 22 presets use appears here: Conv (dilated, grouped, strided), Relu, Clip
// (ReLU6), HardSwish, HardSigmoid, Mul, Add, MaxPool, Pad, GlobalAveragePool, Concat, Resize (both
// coordinate modes). Max (MSC's fusion) is in onnx-all-presets.ts.
const LIGHT = [
  'deeplabv3_mobilenet_v3_large',
  'deeplabv3_r18-d8',
  'deeplabv3_r18b-d8',
  'deeplabv3plus_r18-d8',
  'deeplabv3plus_r18b-d8',
  'deeplabv3plus_mobilenetv2',
];

for (const name of LIGHT) {
  findPreset(name);
  test(`${name}: static ONNX export agrees with our forward in onnxruntime`, async (t) => {
    const err = await staticExportError(name);
    t.diagnostic(`max abs diff / logit scale ${err.toExponential(2)}`);
    assert.ok(err < FP32_TOL, `max abs diff / logit scale = ${err}`);
  });
}

const DYNAMIC: [string, { alignCorners?: boolean }][] = [
  ['deeplabv3plus_r18-d8', { alignCorners: true }],
  ['deeplabv3_r18b-d8', {}],
  ['deeplabv3plus_mobilenetv2', {}],
];
for (const [name, o] of DYNAMIC) {
  test(`${name}${o.alignCorners ? ' (align_corners)' : ''}: a dynamic export agrees at 64x96 and 2 x 77x111`, async (t) => {
    const errors = await dynamicExportErrors(name, o, [
      [1, 3, 64, 96],
      [2, 3, 77, 111],
    ]);
    t.diagnostic(`max abs diff / logit scale ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) assert.ok(e < FP32_TOL, `max abs diff / logit scale = ${e}`);
  });
}

test('fp16 export: float16 inside, float32 at the ends, agrees within 1e-2 of the logit scale', async (t) => {
  const model = seeded('deeplabv3_mobilenet_v3_large');
  const e = exportOnnx(model, { size: [49, 65], precision: 'fp16' });
  try {
    assert.equal(e.onnxOperators.Cast, 2, 'one Cast at each end');
    const session = await ort.InferenceSession.create(e.bytes, SESSION);
    const out = await runOrt(session, e.input);
    assert.equal(out.type, 'float32');
    const err = relativeError(e.logits, out);
    await session.release();
    t.diagnostic(`max abs diff / logit scale ${err.toExponential(2)}`);
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

test('deeplab export: bad input fails with a clear message, a non-zero exit and no file', async () => {
  const dir = tempDir();
  const weights = join(dir, 'r18.safetensors');
  const model = seeded('deeplabv3_r18-d8');
  torch.writeSafetensors(weights, model.stateDict());
  model.dispose();
  const out = join(dir, 'model.onnx');
  const noFile = (what: string) => {
    assert.ok(!existsSync(out), `${what}: no output file`);
    assert.deepEqual(readdirSync(dir), ['r18.safetensors'], `${what}: no temporary file left`);
  };
  // Through the command (exit status, stderr): an unknown preset, weights of another model.
  const spawned: [string[], RegExp][] = [
    [['--model', 'no_such_model', '--random-weights'], /unknown model preset "no_such_model"/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--weights', weights], /r18\.safetensors/],
  ];
  for (const [args, message] of spawned) {
    const r = cli(['export', '--out', out, ...args]);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    noFile(args.join(' '));
  }
  // Option checks, in this process (each spawn loads LibTorch: seconds on a busy machine).
  const inProcess: [string[], RegExp][] = [
    [['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--size', '64x'], /expected HEIGHTxWIDTH/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--size', '8x8'], /expected HEIGHTxWIDTH/],
    [
      ['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--size', '64x64', '--dynamic'],
      /--size or --dynamic, not both/,
    ],
    [['--model', 'deeplabv3plus_mobilenetv2'], /--weights FILE is required/],
    [['--model', 'deeplabv3plus_mobilenetv2', '--random-weights', '--format', 'tflite'], /Allowed choices are onnx/],
  ];
  for (const [args, message] of inProcess) {
    const cmd = exportCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => undefined });
    await assert.rejects(cmd.parseAsync(['--out', out, ...args], { from: 'user' }), message, args.join(' '));
    noFile(args.join(' '));
  }
});
