// torchvision's DeepLabV3 models: our module trees give torchvision's exact state_dict, and with
// torchvision's weights (seeded, from test/fixtures/gen/torchvision.py) our forward gives its
// logits, at its output stride and after switching to another one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { TORCHVISION_PRESETS } from '../../src/models/presets/torchvision.js';
import { IMAGENET_01, type BuildOptions } from '../../src/models/segmentor.js';
import type { DeepLabV3 } from '../../src/models/segmentors/torchvision.js';
import type { ResNet } from '../../src/models/backbones/resnet.js';
import type { MobileNetV3Large } from '../../src/models/backbones/mobilenetv3.js';
import { committedFixture, generatedFixture } from '../helpers/paths.js';
import { buildPreset, maxAbsDiff, parityFixture, type Entry, type OutAuxModel } from '../helpers/parity.js';

interface Manifest {
  inputs: Record<string, Entry>;
  presets: Record<string, OutAuxModel>;
}
interface Keys {
  presets: Record<string, Record<'aux' | 'noaux', { keys: [string, number[]][]; params: number }>>;
}

const keys = JSON.parse(readFileSync(committedFixture('models', 'torchvision_keys.json'), 'utf8')) as Keys;
const fx = parityFixture<Manifest>('torchvision');
const build = (name: string, o?: BuildOptions) => buildPreset<DeepLabV3>(name, o);
/** The preset with the fixture's seeded checkpoint, loaded strictly, in eval mode. */
const loaded = (name: string, m: Manifest) => fx.loaded<DeepLabV3>(name, m.presets[name].checkpoint);

test('presets: names, classes, strides and normalisation as torchvision', () => {
  assert.deepEqual(
    TORCHVISION_PRESETS.map((p) => [p.name, p.numClasses, p.outputStride, p.aux, p.dataset]),
    [
      ['deeplabv3_resnet50', 21, 8, true, 'voc'],
      ['deeplabv3_resnet101', 21, 8, true, 'voc'],
      ['deeplabv3_mobilenet_v3_large', 21, 16, true, 'voc'],
    ],
  );
  for (const p of TORCHVISION_PRESETS) assert.deepEqual(p.normalization, IMAGENET_01);
});

test('state dict keys, order, shapes and parameter counts equal torchvision (with and without aux)', () => {
  for (const p of TORCHVISION_PRESETS) {
    for (const aux of [true, false]) {
      const want = keys.presets[p.name][aux ? 'aux' : 'noaux'];
      const model = p.build({ aux }) as DeepLabV3;
      try {
        const ours = [...model.stateDict()].map(([k, t]) => [k, t.shape]);
        assert.deepEqual(ours, want.keys, `${p.name} aux=${aux}`);
        assert.equal(model.numParameters(), want.params, `${p.name} aux=${aux}: parameters`);
        assert.equal(model.aux_classifier === null, !aux);
      } finally {
        model.dispose();
      }
    }
  }
});

for (const p of TORCHVISION_PRESETS) {
  test(`${p.name}: logits equal PyTorch's on a square and an odd-sized input`, (t) => {
    const m = fx.manifest();
    const model = loaded(p.name, m);
    try {
      for (const [name, want] of Object.entries(m.presets[p.name].outputs)) {
        const line = torch.scope(() => fx.compareOutAux(model, fx.load(m.inputs[name]), want, `${p.name} ${name}`));
        t.diagnostic(line);
      }
    } finally {
      model.dispose();
    }
  });
}

// Switching the output stride rewrites strides, dilations and ASPP rates only: the switched
// model is torchvision's model built at that stride, and switching back restores the logits.
for (const name of ['deeplabv3_resnet50', 'deeplabv3_mobilenet_v3_large']) {
  test(`${name}: setOutputStride matches torchvision built at that stride, and switches back exactly`, (t) => {
    const m = fx.manifest();
    const sw = m.presets[name].switched!;
    const model = loaded(name, m);
    const native = model.outputStride;
    try {
      torch.scope(() => {
        const x = fx.load(m.inputs[sw.input]);
        const before = torch.inferenceMode(() => model.forward(x).out);
        model.setOutputStride(sw.outputStride);
        assert.equal(model.outputStride, sw.outputStride);
        assert.deepEqual(model.atrousRates, sw.rates);
        t.diagnostic(fx.compareOutAux(model, x, sw, `${name} at OS${sw.outputStride}`));
        model.setOutputStride(native);
        assert.deepEqual(model.atrousRates, [12, 24, 36]);
        const after = torch.inferenceMode(() => model.forward(x).out);
        assert.equal(maxAbsDiff(after, before, 'logits after switching back'), 0, 'logits after switching back');
      });
    } finally {
      model.dispose();
    }
  });
}

test('output stride: backbone rates and ASPP rates move together', () => {
  const r = build('deeplabv3_resnet50', { aux: false });
  const mb = build('deeplabv3_mobilenet_v3_large', { aux: false });
  try {
    const resnet = r.backbone as unknown as ResNet;
    // torchvision's replace_stride_with_dilation=[False, True, True]: each dilated stage's first block keeps the previous rate
    assert.deepEqual(resnet.rates().slice(2), [
      [1, 2, 2, 2, 2, 2],
      [2, 4, 4],
    ]);
    assert.deepEqual(r.atrousRates, [12, 24, 36]);
    r.setOutputStride(16);
    assert.deepEqual(resnet.rates().slice(2), [
      [1, 1, 1, 1, 1, 1],
      [1, 2, 2],
    ]);
    assert.deepEqual(r.atrousRates, [6, 12, 18]);
    r.setOutputStride(32);
    assert.deepEqual(r.atrousRates, [3, 6, 9]);

    const mobile = mb.backbone as unknown as MobileNetV3Large;
    // dilated=True: the last stage (blocks 13-15) at rate 2, its first block included
    assert.deepEqual(mobile.rates(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
    assert.deepEqual(mb.atrousRates, [12, 24, 36]);
    mb.setOutputStride(8);
    assert.deepEqual(mobile.rates(), [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 4, 4, 4]);
    assert.deepEqual(mb.atrousRates, [24, 48, 72]);
    torch.scope(() => {
      const y = torch.inferenceMode(() => mb.eval().forward(torch.randn([1, 3, 64, 80])));
      assert.deepEqual(y.out.shape, [1, 21, 64, 80]);
      assert.equal(y.aux, undefined, 'no aux head, no aux output');
    });
    mb.setOutputStride(32);
    assert.deepEqual(mobile.rates(), new Array(15).fill(1));
    assert.deepEqual(mb.atrousRates, [6, 12, 18]);
    assert.throws(() => mb.setOutputStride(4 as 8), RangeError);
  } finally {
    r.dispose();
    mb.dispose();
  }
});

test('numClasses changes only classifier.4 and aux_classifier.4: strict loading names them, non-strict loads the rest', () => {
  const name = 'deeplabv3_mobilenet_v3_large';
  const m = fx.manifest();
  const model = build(name, { numClasses: 5 });
  try {
    torch.scope(() => {
      const sd = torch.readCheckpoint(generatedFixture('torchvision', m.presets[name].checkpoint)).tensors;
      const fresh = model.stateDict().get('classifier.4.weight')!.clone();
      assert.throws(
        () => model.loadStateDict(sd, { strict: true, source: name }),
        (e: Error) => {
          assert.ok(e instanceof torch.nn.StateDictError, String(e));
          assert.match(
            e.message,
            /size mismatch for classifier\.4\.weight: copying a param with shape \[21,256,1,1\] from checkpoint, the shape in current model is \[5,256,1,1\]/,
          );
          assert.deepEqual(
            e.mismatched.map((x) => x.key),
            ['classifier.4.weight', 'classifier.4.bias', 'aux_classifier.4.weight', 'aux_classifier.4.bias'],
          );
          assert.deepEqual([e.missing, e.unexpected], [[], []]);
          return true;
        },
      );
      const r = model.loadStateDict(sd, { strict: false });
      assert.deepEqual(
        r.mismatched.map((x) => [x.key, x.expected, x.got]),
        [
          ['classifier.4.weight', [5, 256, 1, 1], [21, 256, 1, 1]],
          ['classifier.4.bias', [5], [21]],
          ['aux_classifier.4.weight', [5, 10, 1, 1], [21, 10, 1, 1]],
          ['aux_classifier.4.bias', [5], [21]],
        ],
      );
      const skipped = new Set(r.mismatched.map((x) => x.key));
      for (const [k, t] of model.stateDict()) {
        if (!skipped.has(k)) assert.equal(maxAbsDiff(t.float(), sd.get(k)!.float(), k), 0, `${k} loaded`);
      }
      assert.equal(
        maxAbsDiff(model.stateDict().get('classifier.4.weight')!, fresh, 'classifier.4.weight'),
        0,
        'the new head keeps its initialisation',
      );
    });
  } finally {
    model.dispose();
  }
});
