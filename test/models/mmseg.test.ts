// mmsegmentation's DeepLabV3/V3+ models: our module trees give mmseg's exact state_dict (keys,
// shapes, order, parameter count, from test/fixtures/mmseg_ref.py via make_mmseg_keys.py), and
// with seeded mmseg-style checkpoints (test/fixtures/gen/mmseg.py) our forward gives the
// reference's logits, at the native output stride and after switching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as torch from '../../src/torch/index.js';
import { MMSEG_PRESETS } from '../../src/models/presets/mmseg.js';
import { IMAGENET_255, type BuildOptions, type Segmentor } from '../../src/models/segmentor.js';
import type { EncoderDecoder } from '../../src/models/segmentors/encoder-decoder.js';
import type { ResNet } from '../../src/models/backbones/resnet.js';
import type { Features } from '../../src/models/backbone.js';
import type { ASPPHead } from '../../src/models/heads/mmseg.js';
import { committedFixture } from '../helpers/paths.js';
import { buildPreset, parityFixture, type Entry, type OutAuxModel } from '../helpers/parity.js';

type Model = EncoderDecoder<ResNet, ASPPHead>;
interface Manifest {
  ref_sha256: string;
  inputs: Record<string, Entry>;
  models: Record<string, OutAuxModel>;
}
interface Keys {
  presets: Record<string, { params: number; keys: [string, number[]][] }>;
}

const keys = JSON.parse(readFileSync(committedFixture('models', 'mmseg_keys.json'), 'utf8')) as Keys;
const fx = parityFixture<Manifest>('mmseg');

/** The generated manifest, after checking it was made from the current test/fixtures/mmseg_ref.py. */
function manifest(): Manifest {
  const m = fx.manifest();
  const ref = createHash('sha256')
    .update(readFileSync(committedFixture('mmseg_ref.py')))
    .digest('hex');
  assert.equal(
    m.ref_sha256,
    ref,
    'the generated mmseg fixture predates test/fixtures/mmseg_ref.py: rm -rf .cache/fixtures/mmseg && bash scripts/fixtures.sh',
  );
  return m;
}

const build = (name: string, o?: BuildOptions) => buildPreset<Model>(name, o);

function keyList(model: Model): [string, number[]][] {
  return [...model.stateDict()].map(([k, t]) => [k, t.shape]);
}

test('presets: mmseg config stems, Cityscapes, 0-255 ImageNet normalisation', () => {
  assert.deepEqual(MMSEG_PRESETS.map((p) => p.name).sort(), Object.keys(keys.presets).sort());
  for (const p of MMSEG_PRESETS) {
    assert.equal(p.source, 'mmsegmentation');
    assert.deepEqual([p.numClasses, p.dataset, p.aux, p.normalization], [19, 'cityscapes', true, IMAGENET_255], p.name);
    assert.equal(p.outputStride, p.name.includes('-d16') ? 16 : 8, p.name);
  }
});

test('every preset: state_dict keys, shapes, order and parameter count equal mmseg, and load strictly', () => {
  for (const [name, want] of Object.entries(keys.presets)) {
    const model = build(name);
    try {
      assert.deepEqual(keyList(model), want.keys, `${name}: state_dict`);
      assert.equal(model.numParameters(), want.params, `${name}: parameters`);
      torch.scope(() => {
        // zero-stride views: a full-size state dict at the cost of one element per tensor
        const sd = new Map(want.keys.map(([k, shape]) => [k, torch.zeros([]).expand(...shape)]));
        model.loadStateDict(sd, { strict: true, source: name });
      });
    } finally {
      model.dispose();
    }
  }
});

test('build options: numClasses changes only conv_seg; aux: false drops auxiliary_head', () => {
  const want = keys.presets['deeplabv3plus_r18-d8'].keys;
  const seven = build('deeplabv3plus_r18-d8', { numClasses: 7 });
  const expected = want.map(([k, s]): [string, number[]] => [
    k,
    k.endsWith('conv_seg.weight') ? [7, ...s.slice(1)] : k.endsWith('conv_seg.bias') ? [7] : s,
  ]);
  assert.deepEqual(keyList(seven), expected);
  assert.equal(seven.numClasses, 7);
  seven.dispose();
  const noAux = build('deeplabv3plus_r18-d8', { aux: false });
  assert.deepEqual(
    keyList(noAux),
    want.filter(([k]) => !k.startsWith('auxiliary_head.')),
  );
  assert.equal(noAux.auxiliary_head, null);
  torch.scope(() =>
    assert.equal(torch.inferenceMode(() => noAux.eval().forward(torch.randn([1, 3, 33, 33]))).aux, undefined),
  );
  noAux.dispose();
});

test('setOutputStride rewrites backbone rates and scales the ASPP rates; weights untouched', () => {
  const model = build('deeplabv3_r18-d8', { aux: false });
  const before = [...model.stateDict().values()].map((t) => t);
  assert.equal(model.outputStride, 8);
  assert.deepEqual(model.backbone.rates(), [
    [1, 1],
    [1, 1],
    [1, 2],
    [2, 4],
  ]);
  assert.deepEqual(model.decode_head.dilations, [1, 12, 24, 36]);
  model.setOutputStride(16);
  assert.equal(model.outputStride, 16);
  assert.deepEqual(model.backbone.rates(), [
    [1, 1],
    [1, 1],
    [1, 1],
    [1, 2],
  ]);
  assert.deepEqual(model.decode_head.dilations, [1, 6, 12, 18]);
  model.setOutputStride(32);
  assert.deepEqual(model.decode_head.dilations, [1, 3, 6, 9]);
  model.setOutputStride(8);
  assert.deepEqual(model.backbone.rates(), [
    [1, 1],
    [1, 1],
    [1, 2],
    [2, 4],
  ]);
  assert.deepEqual(model.decode_head.dilations, [1, 12, 24, 36]);
  assert.ok(
    [...model.stateDict().values()].every((t, i) => t === before[i]),
    'same tensors',
  );
  // padding follows the rate: logits stay at the input size at every stride
  torch.scope(() => {
    model.eval();
    for (const os of [8, 16, 32] as const) {
      model.setOutputStride(os);
      assert.deepEqual(
        torch.inferenceMode(() => model.forward(torch.randn([1, 3, 45, 61]))).out.shape,
        [1, 19, 45, 61],
      );
    }
  });
  const at16 = build('deeplabv3plus_r18-d8', { aux: false, outputStride: 16 });
  assert.deepEqual(at16.decode_head.dilations, [1, 6, 12, 18]);
  at16.dispose();
  model.dispose();
});

test('deeplabv3_r101-d16-mg124: layer4 rates 1, 2, 4 (mmseg multi_grid, absolute); ASPP 6/12/18', () => {
  const model = build('deeplabv3_r101-d16-mg124', { aux: false });
  const rates = model.backbone.rates();
  assert.equal(model.outputStride, 16);
  assert.deepEqual(rates[3], [1, 2, 4]);
  assert.ok(
    rates[2].every((r) => r === 1),
    'layer3 undilated',
  );
  assert.deepEqual(model.decode_head.dilations, [1, 6, 12, 18]);
  model.setOutputStride(8);
  assert.deepEqual(model.decode_head.dilations, [1, 12, 24, 36]);
  model.dispose();
});

test('logits equal the mmseg reference with its seeded checkpoints (max abs diff <= 1e-4)', (t) => {
  const m = manifest();
  for (const [name, entry] of Object.entries(m.models)) {
    const model = fx.loaded<Model>(name, entry.checkpoint, (ckpt) =>
      assert.equal(ckpt.source, 'state_dict', `${name}: mmseg's {meta, state_dict} layout`),
    );
    try {
      for (const [key, want] of Object.entries(entry.outputs)) {
        t.diagnostic(torch.scope(() => fx.compareOutAux(model, fx.load(m.inputs[key]), want, `${name} input ${key}`)));
      }
      const sw = entry.switched;
      if (sw) {
        model.setOutputStride(sw.outputStride);
        assert.deepEqual(model.decode_head.dilations, sw.rates);
        t.diagnostic(
          torch.scope(() =>
            fx.compareOutAux(model, fx.load(m.inputs[sw.input]), sw, `${name} at output stride ${sw.outputStride}`),
          ),
        );
      }
    } finally {
      model.dispose();
    }
  }
});

test('EncoderDecoder heads see only the stages they read, alive (mmseg out_indices) (V3: layer4 only; V3+: layer1 and layer4; aux: layer3 too)', () => {
  for (const [name, aux, kept] of [
    ['deeplabv3_r18-d8', false, [3]],
    ['deeplabv3plus_r18-d8', false, [0, 3]],
    ['deeplabv3_r18-d8', true, [2, 3]],
  ] as const) {
    torch.manualSeed(0);
    const model = buildPreset<EncoderDecoder>(name, { aux });
    model.eval();
    const seen: boolean[][] = [];
    const head = model.decode_head;
    const orig = head.forward.bind(head);
    Object.defineProperty(head, 'forward', {
      configurable: true,
      value: (features: Features) => {
        // stages not returned (undefined) or already freed count as not alive
        seen.push([0, 1, 2, 3].map((i) => features[i]?.isDisposed === false));
        return orig(features);
      },
    });
    const before = torch.liveTensors();
    torch.scope(() => torch.inferenceMode(() => model.forward(torch.randn([1, 3, 64, 64]))).out.shape);
    assert.equal(torch.liveTensors(), before, `${name}: nothing leaks`);
    assert.deepEqual(
      seen,
      [[0, 1, 2, 3].map((i) => (kept as readonly number[]).includes(i))],
      `${name}${aux ? ' + aux' : ''}: stages alive when the decode head runs`,
    );
    model.dispose();
  }
});

test('ResNet backbones free the stage outputs their segmentor does not read as soon as the next stage has read them', () => {
  // [preset, aux, stages still alive when layer4 starts (its input, layer3, always is)]
  const cases = [
    ['deeplabv3_r18-d8', false, [2]],
    ['deeplabv3plus_r18-d8', false, [0, 2]],
    ['deeplabv3_resnet50', true, [2]],
    ['deeplabv3_r18-d8', true, [2]],
  ] as const;
  for (const [name, aux, alive] of cases) {
    torch.manualSeed(0);
    const model = buildPreset<Segmentor & { backbone: ResNet }>(name, { aux });
    model.eval();
    const bb = model.backbone;
    const outs: torch.Tensor[] = [];
    const seen: boolean[][] = [];
    for (const [i, layer] of [bb.layer1, bb.layer2, bb.layer3, bb.layer4].entries()) {
      const orig = layer.forward.bind(layer);
      Object.defineProperty(layer, 'forward', {
        configurable: true,
        value: (x: torch.Tensor) => {
          if (i === 3) seen.push(outs.map((t) => !t.isDisposed));
          const y = orig(x);
          outs.push(y);
          return y;
        },
      });
    }
    const before = torch.liveTensors();
    torch.scope(() => torch.inferenceMode(() => model.forward(torch.randn([1, 3, 64, 64]))).out.shape);
    assert.equal(torch.liveTensors(), before, `${name}: nothing leaks`);
    assert.deepEqual(
      seen,
      [[0, 1, 2].map((i) => (alive as readonly number[]).includes(i))],
      `${name}${aux ? ' + aux' : ''}: stages alive when layer4 runs`,
    );
    model.dispose();
  }
});
