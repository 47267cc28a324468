// Item pre-training: the demo's stand-in for ImageNet weights, which cannot be fetched here. The
// segmentation model's own backbone, from its random initialisation, is trained for a minute or
// two as a 10-way classifier on single Fashion-MNIST training items (global average pool of the
// last stage, then a linear layer), at a small size and output stride 32 where an item costs a
// fraction of a scene. Segmentation training then starts from those weights: the classes are
// learned from clean item labels, the scenes teach where items are. Nothing outside the demo's
// own training items is used, so the whole run is still from scratch.
import * as torch from '../torch/index.js';
import { makeItemImage, type Items } from '../data/fashion-scenes.js';
import { pixelsToTensor } from '../data/to-tensor.js';
import type { Backbone } from '../models/backbone.js';
import type { Normalization } from '../models/segmentor.js';

export interface ItemPretrainOptions {
  steps: number;
  batch: number;
  /** side of the square item images */
  size: number;
  lr: number;
  weightDecay: number;
  /** linear warm-up steps (from lr / 10), then poly decay (power 0.9) to 0 */
  warmup: number;
  seed: number;
  precision: 'fp32' | 'bf16';
  channelsLast: boolean;
  normalization: Normalization;
  /** called every `logEvery` steps */
  onLog?: (step: number, loss: number, accuracy: number) => void;
  logEvery?: number;
}

export interface ItemPretrainResult {
  /** training accuracy over the last quarter of the steps (each batch is new items, so near held-out) */
  accuracy: number;
  seconds: number;
}

const CLASSES = 10;

/**
 * The demo's settings (`deeplab demo`; bench/py/demo_train.py reads them from here through node, so
 * the PyTorch run cannot drift). 180 steps of 128 items at 32x32, about 36 s on 2 cores in bf16,
 * 63% of the items right. Longer is not worth its time: the seconds go further as
 * segmentation iterations (720 steps, 77% right, then 640 iterations: 42.8 mIoU; 180 steps then 890
 * iterations: 47.5; 2026-12-04). lr 0.004: 70.1% after 360 steps against 67.9% at 0.002.
 */
export const DEMO_ITEM_PRETRAIN = {
  steps: 180,
  batch: 128,
  size: 32,
  lr: 0.004,
  weightDecay: 0.01,
  warmup: 20,
} as const;

/** Trains `backbone` in place; its output stride and returned stages are restored afterwards. */
export function pretrainOnItems(backbone: Backbone, items: Items, o: ItemPretrainOptions): ItemPretrainResult {
  const t0 = performance.now();
  const stride = backbone.outputStride;
  const outIndices = backbone.outIndices;
  const last = backbone.channels.length - 1;
  torch.manualSeed(o.seed);
  const fc = new torch.nn.Linear(backbone.channels[last], CLASSES);
  const opt = new torch.optim.AdamW([...backbone.parameters(), ...fc.parameters()], {
    lr: o.lr,
    weightDecay: o.weightDecay,
  });
  if (o.channelsLast) backbone.to({ memoryFormat: 'channels_last' });
  backbone.setOutputStride(32);
  backbone.outIndices = [last];
  backbone.train();
  let correct = 0;
  let counted = 0;
  try {
    for (let step = 0; step < o.steps; step++) {
      const warm = step < o.warmup ? 0.1 + (0.9 * step) / o.warmup : 1;
      opt.setLr(() => o.lr * warm * (1 - step / o.steps) ** 0.9);
      const pixels = new Uint8Array(o.batch * o.size * o.size * 3);
      const labels = new Int32Array(o.batch);
      for (let i = 0; i < o.batch; i++) {
        // Seeds apart from the scenes' (seed * 7919 + i and 1,000,000 + i).
        const item = makeItemImage(items, o.size, 2_000_000_000 + o.seed * 1_000_003 + step * o.batch + i);
        pixels.set(item.rgb, i * item.rgb.length);
        labels[i] = item.cls - 1;
      }
      const { loss, hits } = torch.scope(() => {
        const x = pixelsToTensor(
          pixels,
          o.batch,
          o.size,
          o.size,
          o.normalization,
          o.channelsLast ? 'channels_last' : 'contiguous',
        );
        const y = torch.tensor(labels).long();
        const forward = () => fc.forward(backbone.forward(x)[last]!.float().mean([2, 3]));
        const logits = o.precision === 'bf16' ? torch.autocast('cpu', 'bfloat16', forward) : forward();
        const loss = torch.F.crossEntropy(logits.float(), y);
        loss.backward();
        return { loss: loss.item(), hits: logits.argmax(1).eq(y).sum().item() };
      });
      opt.step();
      opt.zeroGrad();
      if (!Number.isFinite(loss)) throw new Error(`item pre-training: loss is ${loss} at step ${step + 1}`);
      if (step >= o.steps - Math.max(1, Math.floor(o.steps / 4))) {
        correct += hits;
        counted += o.batch;
      }
      if (o.onLog && ((step + 1) % (o.logEvery ?? 50) === 0 || step + 1 === o.steps))
        o.onLog(step + 1, loss, hits / o.batch);
    }
  } finally {
    opt.dispose();
    fc.dispose();
    backbone.setOutputStride(stride);
    backbone.outIndices = outIndices;
  }
  return { accuracy: counted ? correct / counted : NaN, seconds: (performance.now() - t0) / 1000 };
}
