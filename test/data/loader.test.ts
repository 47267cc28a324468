// The data loader: batch shapes, the same batches for 0 or 2 workers, exact resume from state(),
// skip vs stop on bad samples (corrupt image, missing mask, size mismatch, labels out of range),
// and the evaluation iterator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { TrainPipelineConfig } from '../../src/config/schema.js';
import { openDataset } from '../../src/data/datasets/index.js';
import { BadSampleError, DataLoader, iterateEval, type Batch, type LoaderOptions } from '../../src/data/loader.js';
import {
  writeAde20k,
  writeCityscapes,
  writeVoc,
  TINY_CITYSCAPES_IDS,
  TINY_HEIGHT,
  TINY_WIDTH,
} from '../helpers/tiny-datasets.js';
import { readMask } from '../../src/data/masks.js';
import { resizeBilinear } from '../../src/data/geometry.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-loader-');
const vocRoot = await writeVoc(join(dir, 'voc'), { train: 5, val: 2 });
const voc = openDataset({ type: 'voc', root: vocRoot }, 'train');
const pipeline = TrainPipelineConfig.parse({ scale: [120, 40], crop: [32, 48] });
const base: LoaderOptions = { pipeline, batchSize: 3, seed: 42, workers: 0, numClasses: 21 };

async function take(loader: DataLoader, n: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let i = 0; i < n; i++) out.push(await loader.next());
  return out;
}

async function batches(o: Partial<LoaderOptions>, n: number, ds = voc): Promise<Batch[]> {
  const loader = new DataLoader(ds, { ...base, ...o });
  try {
    return await take(loader, n);
  } finally {
    await loader.close();
  }
}

test('batches are N x H x W x 3 uint8 images and N x H x W labels of the crop size', async () => {
  const [b] = await batches({}, 1);
  assert.deepEqual([b.height, b.width], [32, 48]);
  assert.equal(b.images.length, 3 * 32 * 48 * 3);
  assert.equal(b.labels.length, 3 * 32 * 48);
  assert.equal(b.names.length, 3);
  assert.ok(b.names.every((n) => voc.samples.some((s) => s.name === n)));
  assert.ok(b.labels.every((v) => [0, 8, 12, 15, 255].includes(v)));
});

test('same seed, same batches with 0 or 2 workers; epochs reshuffle; another seed differs', async () => {
  const inline = await batches({ workers: 0 }, 4); // 12 samples: crosses two epoch boundaries (5 per epoch)
  const threaded = await batches({ workers: 2 }, 4);
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(threaded[i].names, inline[i].names);
    assert.deepEqual(threaded[i].images, inline[i].images, `batch ${i} images`);
    assert.deepEqual(threaded[i].labels, inline[i].labels, `batch ${i} labels`);
  }
  const epoch0 = [...inline[0].names, ...inline[1].names.slice(0, 2)];
  assert.equal(new Set(epoch0).size, 5, 'each epoch visits every sample once');
  const other = await batches({ seed: 7 }, 2);
  assert.notDeepEqual(
    other.map((b) => b.images),
    inline.slice(0, 2).map((b) => b.images),
  );
  const ordered = await batches({ shuffle: false }, 2);
  assert.deepEqual(
    [...ordered[0].names, ...ordered[1].names],
    [...voc.samples.map((s) => s.name), voc.samples[0].name],
  );
});

test('resuming from state() gives exactly the batches that followed', async () => {
  const loader = new DataLoader(voc, { ...base, workers: 2 });
  assert.deepEqual(loader.state(), { epoch: 0, position: 0 });
  await loader.next();
  const at = loader.state();
  assert.deepEqual(at, { epoch: 0, position: 3 });
  const rest = await take(loader, 3);
  assert.deepEqual(loader.state(), { epoch: 2, position: 2 });
  await loader.close();

  const resumed = await batches({ start: at }, 3);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(resumed[i].names, rest[i].names);
    assert.deepEqual(resumed[i].images, rest[i].images);
    assert.deepEqual(resumed[i].labels, rest[i].labels);
  }
  // seek() does the same on an open loader
  const l2 = new DataLoader(voc, base);
  await take(l2, 2);
  l2.seek(at);
  assert.deepEqual((await l2.next()).images, rest[0].images);
  await l2.close();
  assert.throws(() => new DataLoader(voc, { ...base, start: { epoch: 0, position: 9 } }), RangeError);
});

test('a corrupt image: stop names the file, skip reports it and fills the batch with the next samples', async () => {
  const root = await writeVoc(join(dir, 'corrupt'), { train: 4, val: 1 });
  const bad = join(root, 'JPEGImages', '2007_train_002.jpg');
  writeFileSync(bad, 'not a jpeg');
  const ds = openDataset({ type: 'voc', root }, 'train');
  const o = { shuffle: false, batchSize: 2 };
  for (const workers of [0, 2]) {
    await assert.rejects(
      batches({ ...o, workers, badSample: 'stop' }, 2, ds),
      (e: Error) => e instanceof BadSampleError && e.file === bad && e.kind === 'image' && e.message.includes(bad),
    );
    const seen: string[] = [];
    const got = await batches({ ...o, workers, badSample: 'skip', onBadSample: (f) => seen.push(f) }, 2, ds);
    assert.deepEqual(
      got.map((b) => b.names),
      [
        ['2007_train_000', '2007_train_001'],
        ['2007_train_003', '2007_train_000'],
      ],
    );
    assert.deepEqual(seen, [bad]);
  }
});

test('missing mask, size mismatch and out-of-range labels are bad samples naming the files', async () => {
  const root = await writeVoc(join(dir, 'bad'), { train: 3, val: 1 });
  rmSync(join(root, 'SegmentationClass', '2007_train_000.png'));
  await sharp({ create: { width: 10, height: 10, channels: 3, background: '#000' } })
    .jpeg()
    .toFile(join(root, 'JPEGImages', '2007_train_001.jpg'));
  const ds = openDataset({ type: 'voc', root }, 'train', { missingMask: 'keep' });
  const errors: BadSampleError[] = [];
  const loader = new DataLoader(ds, {
    ...base,
    batchSize: 1,
    shuffle: false,
    badSample: 'skip',
    onBadSample: (_, e) => errors.push(e),
  });
  const b = await loader.next();
  await loader.close();
  assert.deepEqual(b.names, ['2007_train_002']);
  assert.deepEqual(
    errors.map((e) => e.kind),
    ['mask', 'size'],
  );
  assert.ok(errors[0].message.includes(join(root, 'SegmentationClass', '2007_train_000.png')));
  assert.ok(
    errors[1].message.includes(join(root, 'JPEGImages', '2007_train_001.jpg')) &&
      errors[1].message.includes(join(root, 'SegmentationClass', '2007_train_001.png')),
  );
  assert.ok(/10x10/.test(errors[1].message) && new RegExp(`${TINY_WIDTH}x${TINY_HEIGHT}`).test(errors[1].message));

  await assert.rejects(
    batches({ numClasses: 10, badSample: 'stop' }, 1),
    (e: Error) =>
      e instanceof BadSampleError &&
      e.kind === 'labels' &&
      /label values 12, 15/.test(e.message) &&
      e.message.includes(vocRoot),
  );
  await assert.rejects(batches({ numClasses: 10, badSample: 'skip' }, 1), /all 5 samples .* failed to load/);
});

test('Cityscapes labelIds become train ids in batches and in evaluation labels', async () => {
  const root = await writeCityscapes(join(dir, 'cs'), { labelIds: true, train: 2, val: 1 });
  const ds = openDataset({ type: 'cityscapes', root }, 'train');
  const trainIds = new Set(Object.values(TINY_CITYSCAPES_IDS));
  const [b] = await batches({ numClasses: 19, batchSize: 2 }, 1, ds);
  assert.ok(b.labels.every((v) => trainIds.has(v)));
  assert.ok(b.labels.some((v) => v === 13) && b.labels.some((v) => v === 0));
  const raw = await readMask(ds.samples[0].mask);
  for await (const s of iterateEval(ds, { scale: null }, { workers: 0 })) {
    assert.deepEqual(
      Array.from(s.label),
      Array.from(raw.data, (v) => TINY_CITYSCAPES_IDS[v]),
    );
    break;
  }
});

test('iterateEval: dataset order, test-resized images, labels at the original size', async () => {
  const adeRoot = await writeAde20k(join(dir, 'ade'), { train: 1, val: 3 });
  const ade = openDataset({ type: 'ade20k', root: adeRoot }, 'val');
  for (const workers of [0, 1]) {
    const got = [];
    for await (const s of iterateEval(ade, { scale: [120, 120] }, { workers })) got.push(s);
    assert.deepEqual(
      got.map((s) => s.name),
      ade.samples.map((s) => s.name),
    );
    for (const s of got) {
      assert.deepEqual([s.image.width, s.image.height], [TINY_WIDTH, TINY_HEIGHT]);
      assert.deepEqual([s.resized.width, s.resized.height], [120, 80]);
      // the workers' resize is OpenCV's, bit for bit (data/geometry.ts)
      assert.deepEqual(s.resized.data, resizeBilinear(s.image, 120, 80).data);
      assert.equal(s.label.length, TINY_WIDTH * TINY_HEIGHT);
      // ADE's reduce_zero_label: raw 0 (other) -> 255, 1 -> 0, 13 -> 12
      assert.ok(s.label.every((v) => [255, 0, 2, 4, 12].includes(v)));
    }
  }
  const same = [];
  for await (const s of iterateEval(ade, { scale: null })) {
    same.push(s.image.width);
    assert.equal(s.resized, s.image);
  }
  assert.deepEqual(same, [TINY_WIDTH, TINY_WIDTH, TINY_WIDTH]);
  // breaking out early closes the workers
  for await (const s of iterateEval(ade, { scale: null }, { workers: 2 })) {
    assert.ok(s.name);
    break;
  }
});
