// The demo's item pre-training (src/training/item-pretrain.ts): item images are deterministic and
// whole, a short run learns the classes well above chance, and the backbone comes back at the
// output stride and stages it had.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { ResNet } from '../../src/models/backbones/resnet.js';
import { FASHION_DIR, makeItemImage, readFashionMnist } from '../../src/data/fashion-scenes.js';
import { IMAGENET_255 } from '../../src/models/segmentor.js';
import { pretrainOnItems } from '../../src/training/item-pretrain.js';

const skip = !existsSync(FASHION_DIR) && 'dataset-fashion-mnist not installed';

test('item images are deterministic, sized, and carry their item', { skip }, () => {
  const items = readFashionMnist('t10k');
  const a = makeItemImage(items, 32, 7);
  const b = makeItemImage(items, 32, 7);
  assert.deepEqual(a, b);
  assert.equal(a.rgb.length, 32 * 32 * 3);
  const classes = new Set(Array.from({ length: 200 }, (_, i) => makeItemImage(items, 32, 100 + i).cls));
  assert.deepEqual(
    [...classes].sort((x, y) => x - y),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
});

test('a short item pre-training learns well above chance and restores the backbone', { skip }, () => {
  const items = readFashionMnist('train');
  torch.manualSeed(0);
  const backbone = new ResNet({ depth: 18, stem: 'deep', outputStride: 16 });
  const logged: number[] = [];
  try {
    const r = pretrainOnItems(backbone, items, {
      steps: 160,
      batch: 32,
      size: 32,
      lr: 0.002,
      weightDecay: 0.01,
      warmup: 10,
      seed: 0,
      precision: 'fp32',
      channelsLast: false,
      normalization: IMAGENET_255,
      logEvery: 10,
      onLog: (_step, loss) => logged.push(loss),
    });
    // Ten classes: chance is 10%. This run reaches 43% on this machine (seeds 0-2: 36-45%); another
    // CPU's kernels change the last bits and so the path, hence the wide margin.
    assert.ok(r.accuracy > 0.2, `accuracy ${r.accuracy} over the last quarter`);
    assert.equal(logged.length, 16);
    assert.ok(logged.at(-1)! < logged[0], `loss ${logged.join(', ')}`);
    assert.equal(backbone.outputStride, 16);
    assert.deepEqual(backbone.outIndices, [0, 1, 2, 3]);
    torch.inferenceMode(() => {
      const out = backbone.forward(torch.zeros([1, 3, 64, 64]));
      assert.deepEqual(out[3]!.shape, [1, 512, 4, 4]);
    });
  } finally {
    backbone.dispose();
  }
});
