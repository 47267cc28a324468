// DeepLab-v2 (single and multi-scale), DeepLabV3+ (Xception-65, MobileNetV2) and the cascaded
// DeepLabV3: our module trees give the reference state_dicts (test/fixtures/ref_v2_v3plus.py,
// written from the PyTorch ports), and with the references' seeded weights
// (test/fixtures/gen/v2_v3plus.py) our forward gives their logits, at the preset's output stride
// and at the port's other one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { V2_PRESETS, CAFFE_BGR } from '../../src/models/presets/deeplab-v2.js';
import { V3PLUS_PRESETS } from '../../src/models/presets/deeplabv3plus.js';
import { IMAGENET_01, type OutputStride } from '../../src/models/segmentor.js';
import { DeepLabV2 } from '../../src/models/segmentors/deeplab-v2.js';
import { DeepLabV2MSC, mscSide } from '../../src/models/segmentors/msc.js';
import { DeepLabV3Plus } from '../../src/models/segmentors/deeplabv3plus.js';
import { CascadeDeepLabV3 } from '../../src/models/segmentors/cascade.js';
import { MobileNetV2 } from '../../src/models/backbones/mobilenetv2.js';
import { fixedPadding } from '../../src/models/backbones/xception.js';
import { committedFixture } from '../helpers/paths.js';
import { buildPreset, maxAbsDiff, parityFixture, TOL, type Entry } from '../helpers/parity.js';

const PRESETS = [...V2_PRESETS, ...V3PLUS_PRESETS];

interface Output extends Entry {
  os: OutputStride;
  case: string;
  /** MSC only: forwardScales' outputs */
  scales?: Entry[];
}
interface Manifest {
  inputs: Record<string, Entry>;
  presets: Record<string, { checkpoint: string; outputs: Output[] }>;
}
interface Keys {
  presets: Record<string, { keys: [string, number[]][]; parameters: number }>;
}

const keys = JSON.parse(readFileSync(committedFixture('models', 'v2_v3plus_keys.json'), 'utf8')) as Keys;
const fx = parityFixture<Manifest>('v2_v3plus');
/** The preset with the fixture's seeded checkpoint, loaded strictly, in eval mode. */
const loaded = (name: string, m: Manifest) => fx.loaded(name, m.presets[name].checkpoint);

test('presets: names, classes, strides, sources and normalisation', () => {
  assert.deepEqual(
    PRESETS.map((p) => [p.name, p.source, p.numClasses, p.outputStride, p.aux, p.dataset]),
    [
      ['deeplabv2_resnet101', 'deeplab-v2', 21, 8, false, 'voc'],
      ['deeplabv2_resnet101_msc', 'deeplab-v2', 21, 8, false, 'voc'],
      ['deeplabv3plus_xception65', 'deeplabv3plus', 21, 16, false, 'voc'],
      ['deeplabv3plus_mobilenetv2', 'deeplabv3plus', 21, 16, false, 'voc'],
      ['deeplabv3_cascade_resnet50', 'paper', 21, 16, false, 'voc'],
    ],
  );
  for (const p of V2_PRESETS) assert.deepEqual(p.normalization, CAFFE_BGR);
  assert.deepEqual(CAFFE_BGR, { scale: 1, mean: [104.00699, 116.66877, 122.67891], std: [1, 1, 1], bgr: true });
  for (const p of V3PLUS_PRESETS) assert.deepEqual(p.normalization, IMAGENET_01);
  assert.throws(() => buildPreset('deeplabv3plus_mobilenetv2', { aux: true }), /no auxiliary head/);
});

test('state dict keys, order, shapes and parameter counts equal the references', () => {
  for (const p of PRESETS) {
    const want = keys.presets[p.name];
    const model = p.build();
    try {
      const ours = [...model.stateDict()].map(([k, t]) => [k, t.shape]);
      assert.deepEqual(ours, want.keys, p.name);
      assert.equal(model.numParameters(), want.parameters, `${p.name}: parameters`);
    } finally {
      model.dispose();
    }
  }
});

test("MobileNetV2: the port's low/high_level_features names alias features, in state_dict only", () => {
  const model = buildPreset<DeepLabV3Plus>('deeplabv3plus_mobilenetv2');
  try {
    const sd = model.stateDict();
    assert.equal(sd.get('backbone.low_level_features.3.conv.0.weight'), sd.get('backbone.features.3.conv.0.weight'));
    assert.equal(sd.get('backbone.high_level_features.17.conv.6.weight'), sd.get('backbone.features.17.conv.6.weight'));
    const params = [...model.namedParameters()].map(([k]) => k);
    assert.ok(!params.some((k) => k.includes('level_features')), 'named parameters list each tensor once');
    // the backbone alone gives the same names without the prefix
    const own = [...(model.backbone as MobileNetV2).stateDict().keys()];
    assert.deepEqual(
      own,
      [...sd.keys()].filter((k) => k.startsWith('backbone.')).map((k) => k.slice('backbone.'.length)),
    );
  } finally {
    model.dispose();
  }
});

test('numClasses changes only the classifier layers', () => {
  const classifiers: Record<string, RegExp> = {
    deeplabv2_resnet101: /^layer5\./,
    deeplabv2_resnet101_msc: /^Scale\.layer5\./,
    deeplabv3plus_xception65: /^decoder\.last_conv\.8\./,
    deeplabv3plus_mobilenetv2: /^decoder\.last_conv\.8\./,
    deeplabv3_cascade_resnet50: /^classifier\./,
  };
  for (const p of PRESETS) {
    const model = p.build({ numClasses: 5 });
    try {
      assert.equal(model.numClasses, 5);
      const want = keys.presets[p.name].keys;
      const ours = [...model.stateDict()].map(([k, t]) => [k, t.shape] as [string, number[]]);
      assert.deepEqual(
        ours.map(([k]) => k),
        want.map(([k]) => k),
        p.name,
      );
      const changed = ours.filter(([, s], i) => JSON.stringify(s) !== JSON.stringify(want[i][1])).map(([k]) => k);
      assert.ok(changed.length > 0 && changed.every((k) => classifiers[p.name].test(k)), `${p.name}: ${changed}`);
    } finally {
      model.dispose();
    }
  }
});

for (const p of PRESETS) {
  test(`${p.name}: logits equal the reference's, at each output stride, and switching back restores them`, (t) => {
    const m = fx.manifest();
    const model = loaded(p.name, m);
    const native = model.outputStride;
    assert.equal(native, p.outputStride);
    try {
      for (const o of m.presets[p.name].outputs) {
        const what = `${p.name} OS${o.os} ${o.case}`;
        model.setOutputStride(o.os);
        assert.equal(model.outputStride, o.os);
        const line = torch.scope(() => {
          const x = fx.load(m.inputs[o.case]);
          const got = torch.inferenceMode(() => model.forward(x).out);
          const d = maxAbsDiff(got, fx.load(o), what);
          assert.ok(d <= TOL, `${what}: max abs diff ${d.toExponential(3)} > ${TOL}`);
          let text = `${what}: max abs diff ${d.toExponential(2)}`;
          if (o.scales) {
            const scales = torch.inferenceMode(() => (model as DeepLabV2MSC).forwardScales(x));
            const ds = scales.map((s, i) => maxAbsDiff(s, fx.load(o.scales![i]), `${what} scale ${i}`));
            assert.ok(
              ds.every((v) => v <= TOL),
              `${what}: forwardScales max abs diffs ${ds}`,
            );
            text += `; forwardScales ${ds.map((v) => v.toExponential(2)).join(', ')}`;
          }
          return text;
        });
        t.diagnostic(line);
      }
      // back to the preset's stride: bit-identical logits
      const first = m.presets[p.name].outputs[0];
      model.setOutputStride(native);
      torch.scope(() => {
        const got = torch.inferenceMode(() => model.forward(fx.load(m.inputs[first.case])).out);
        assert.equal(maxAbsDiff(got, fx.load(first), p.name) <= TOL, true);
      });
    } finally {
      model.dispose();
    }
  });
}

test('DeepLab-v2: every unit of layer3/layer4 at rate 2/4; ASPP-L rates follow the stride; BN affine frozen', () => {
  const v2 = buildPreset<DeepLabV2>('deeplabv2_resnet101');
  try {
    assert.deepEqual(v2.backboneRates().slice(2), [new Array(23).fill(2), [4, 4, 4]]);
    assert.deepEqual(v2.atrousRates, [6, 12, 18, 24]);
    v2.setOutputStride(16);
    assert.deepEqual(v2.backboneRates().slice(2), [new Array(23).fill(1), [2, 2, 2]]);
    assert.deepEqual(v2.atrousRates, [3, 6, 9, 12]);
    assert.throws(() => v2.setOutputStride(32), RangeError);
    assert.equal(v2.outputStride, 16, 'a refused stride changes nothing');
    v2.setOutputStride(8);
    assert.deepEqual(v2.atrousRates, [6, 12, 18, 24]);
    assert.ok(!v2.bn1.weight!.requiresGrad && !v2.layer4.at(2).stateDict().get('bn3.bias')!.requiresGrad);
    assert.ok(v2.layer5.conv2d_list.at(0).weight.requiresGrad);
    // the port's multi-scale sizes: int(s * side) + 1
    assert.deepEqual([mscSide(65, 0.75), mscSide(65, 0.5), mscSide(49, 0.75), mscSide(81, 0.5)], [49, 33, 37, 41]);
  } finally {
    v2.dispose();
  }
});

test('DeepLabV3+: backbone and ASPP rates per output stride, as the port builds them', () => {
  const x = buildPreset<DeepLabV3Plus>('deeplabv3plus_xception65');
  const mb = buildPreset<DeepLabV3Plus>('deeplabv3plus_mobilenetv2');
  try {
    assert.deepEqual(x.atrousRates, [6, 12, 18]);
    x.setOutputStride(8);
    assert.deepEqual(x.atrousRates, [12, 24, 36]);
    assert.throws(() => x.setOutputStride(32), RangeError);
    assert.equal(x.outputStride, 8);

    const backbone = mb.backbone as MobileNetV2;
    // at 16 the 160-channel stage stops striding but keeps rate 1; only the last unit gets 2
    assert.deepEqual(backbone.rates(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
    mb.setOutputStride(8);
    assert.deepEqual(backbone.rates(), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 4]);
    assert.deepEqual(mb.atrousRates, [12, 24, 36]);
    assert.deepEqual(
      [fixedPadding(3, 1), fixedPadding(3, 4), fixedPadding(4, 1)],
      [
        [1, 1],
        [4, 4],
        [1, 2],
      ],
    );
  } finally {
    x.dispose();
    mb.dispose();
  }
});

test('cascaded DeepLabV3: Multi-Grid (1, 2, 4) times a block rate that doubles from block4 to block7', () => {
  const c = buildPreset<CascadeDeepLabV3>('deeplabv3_cascade_resnet50');
  try {
    const tail = (os: OutputStride) => {
      c.setOutputStride(os);
      return c.rates().slice(2);
    };
    assert.deepEqual(tail(16), [
      [1, 1, 1, 1, 1, 1],
      [2, 4, 8],
      [4, 8, 16],
      [8, 16, 32],
      [16, 32, 64],
    ]);
    assert.deepEqual(tail(8), [
      [2, 2, 2, 2, 2, 2],
      [4, 8, 16],
      [8, 16, 32],
      [16, 32, 64],
      [32, 64, 128],
    ]);
    assert.deepEqual(tail(16), [
      [1, 1, 1, 1, 1, 1],
      [2, 4, 8],
      [4, 8, 16],
      [8, 16, 32],
      [16, 32, 64],
    ]);
  } finally {
    c.dispose();
  }
});

test('every preset runs a zero-sized batch (shape-only forward) and keeps its output size', () => {
  for (const p of PRESETS) {
    const model = p.build().eval();
    try {
      torch.scope(() => {
        const y = torch.inferenceMode(() => model.forward(torch.zeros([0, 3, 49, 81])));
        assert.deepEqual(y.out.shape, [0, 21, 49, 81], p.name);
      });
    } finally {
      model.dispose();
    }
  }
});
