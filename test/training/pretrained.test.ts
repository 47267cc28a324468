// Initialisation from an ImageNet backbone checkpoint (model.pretrained + model.pretrainedPrefix):
// a torchvision resnet18 .pth saved by torch.save (test/fixtures/gen/imagenet.py) goes into mmseg's
// R-18b-D8 under "backbone.", as mmseg's `pretrained='torchvision://resnet18'` does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { parseConfig } from '../../src/config/load.js';
import { buildForTraining } from '../../src/training/from-config.js';
import { readWeights } from '../../src/inference/weights.js';
import { generatedFixture } from '../helpers/paths.js';

function config(pretrained?: string, pretrainedPrefix = 'backbone.') {
  return parseConfig({
    name: 'pretrained',
    model: {
      preset: 'deeplabv3_r18b-d8',
      numClasses: 5,
      outputStride: { train: 16, eval: 8 },
      ...(pretrained ? { pretrained, pretrainedPrefix } : {}),
    },
    data: {
      dataset: { type: 'custom', root: '/nonexistent' },
      train: { scale: [64, 64], crop: [64, 64] },
      test: { scale: null },
    },
    train: { iters: 1, batchSize: 2, optimizer: { type: 'sgd', lr: 0.01 }, checkpointInterval: 1, evalInterval: 1 },
    workDir: '/nonexistent',
  });
}

test('an ImageNet ResNet .pth initialises the backbone under "backbone."; fc is skipped, the heads stay as seeded', () => {
  const file = generatedFixture('imagenet', 'resnet18.pth');
  const logs: string[] = [];
  const { model } = buildForTraining(config(file), { log: (s) => logs.push(s) });
  const { model: fresh } = buildForTraining(config());
  const weights = readWeights(file);
  try {
    const sd = model.stateDict();
    const freshSd = fresh.stateDict();
    let backbone = 0;
    for (const [k, v] of weights) {
      if (k.startsWith('fc.')) {
        assert.ok(!sd.has(`backbone.${k}`), `backbone.${k} should not exist`);
        continue;
      }
      const mine = sd.get(`backbone.${k}`);
      assert.ok(mine, `backbone.${k} missing from the model`);
      assert.deepEqual(mine.shape, v.shape, k);
      assert.ok(mine.equal(v), `backbone.${k} differs from the checkpoint`);
      backbone++;
    }
    // resnet18: 1 stem conv + 5 BN tensors + 8 blocks x (2 convs + 2 BNs) + 3 downsamples x (conv + BN) = 120 tensors
    assert.equal(backbone, 120);
    // the checkpoint's values really differ from a fresh init, so the equality above means something
    assert.ok(!sd.get('backbone.layer1.0.conv1.weight')!.equal(freshSd.get('backbone.layer1.0.conv1.weight')!));
    assert.equal(sd.get('backbone.bn1.num_batches_tracked')!.item(), 1234);
    // heads: not in the file, so exactly the seeded init a run without pretrained weights gets
    let heads = 0;
    for (const [k, v] of sd) {
      if (k.startsWith('backbone.')) continue;
      assert.ok(v.equal(freshSd.get(k)!), `${k} should keep its seeded initial value`);
      heads++;
    }
    assert.ok(heads > 20);
    assert.equal(logs.length, 1);
    assert.match(
      logs[0],
      /initialised 120 tensors from .*resnet18\.pth; 2 not in the model \(e\.g\. backbone\.fc\.(weight|bias)\)/,
    );
  } finally {
    model.dispose();
    fresh.dispose();
    for (const t of weights.values()) t.dispose();
  }
});

test('a wrong prefix is an error naming the file and model.pretrainedPrefix', () => {
  const file = generatedFixture('imagenet', 'resnet18.pth');
  const before = torch.liveTensors();
  assert.throws(
    () => buildForTraining(config(file, 'encoder.')),
    (e: Error) => {
      assert.ok(e.message.includes(file), e.message);
      assert.match(e.message, /no key matches the model \(first keys after prefix "encoder\.": encoder\.conv1\.weight/);
      assert.match(e.message, /set model\.pretrainedPrefix/);
      return true;
    },
  );
  // the half-built model and the file's tensors are released
  assert.equal(torch.liveTensors(), before);
});
