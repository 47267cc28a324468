// train.preload: the same batches as reading every sample each time (0 or 2 workers), the preload
// file read back on the next run and written again when a file or the label rules change, a
// damaged preload file ignored, bad samples meeting the badSample policy as without preloading,
// and the memory limit refused with the key's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrainPipelineConfig } from '../../src/config/schema.js';
import { openDataset } from '../../src/data/datasets/index.js';
import { BadSampleError, DataLoader, type Batch, type LoaderOptions, type PreloadInfo } from '../../src/data/loader.js';
import { readSample } from '../../src/data/loader-worker.js';
import { preloadCachePath, preloadKey, readPreloadCache } from '../../src/data/preload-cache.js';
import { writeVoc } from '../helpers/tiny-datasets.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-preload-');
const pipeline = TrainPipelineConfig.parse({ scale: [120, 40], ratioRange: [0.5, 2], crop: [32, 48] });
const base: LoaderOptions = { pipeline, batchSize: 3, seed: 42, workers: 0, numClasses: 21 };

async function run(
  root: string,
  o: Partial<LoaderOptions>,
  n: number,
  ds = openDataset({ type: 'voc', root }, 'train'),
): Promise<{ batches: Batch[]; info: PreloadInfo | null }> {
  const loader = new DataLoader(ds, { ...base, ...o });
  try {
    const info = await loader.ready();
    const batches: Batch[] = [];
    for (let i = 0; i < n; i++) batches.push(await loader.next());
    return { batches, info };
  } finally {
    await loader.close();
  }
}

function sameBatches(a: Batch[], b: Batch[], what: string): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.deepEqual(a[i].names, b[i].names, `${what}: batch ${i} names`);
    assert.ok(Buffer.from(a[i].images).equals(Buffer.from(b[i].images)), `${what}: batch ${i} images`);
    assert.ok(Buffer.from(a[i].labels).equals(Buffer.from(b[i].labels)), `${what}: batch ${i} labels`);
  }
}

test('preloaded batches equal read-every-time batches; the next run reads the preload file', async () => {
  const root = await writeVoc(join(dir, 'voc'), { train: 5, val: 1 });
  const ds = openDataset({ type: 'voc', root }, 'train');
  const file = preloadCachePath(ds);
  assert.equal(file, join(root, '.deeplab-preload', 'train.bin'));
  const plain = await run(root, { workers: 0 }, 4); // 12 samples: two epoch boundaries
  assert.equal(plain.info, null);
  assert.equal(existsSync(file), false, 'no file without preload');

  const first = await run(root, { workers: 2, preload: true }, 4);
  assert.equal(first.info?.from, 'decoding');
  assert.equal(first.info?.samples, 5);
  assert.equal(first.info?.notWritten, undefined);
  assert.ok(existsSync(file));
  sameBatches(first.batches, plain.batches, 'decoded, 2 workers');

  for (const workers of [0, 2]) {
    const again = await run(root, { workers, preload: true }, 4);
    assert.equal(again.info?.from, 'file', `workers ${workers}`);
    assert.equal(again.info?.file, file);
    sameBatches(again.batches, plain.batches, `from the file, ${workers} workers`);
  }
  // The file holds each sample as a fresh read gives it, at its own size.
  const cached = readPreloadCache(file, preloadKey(ds, 21), 5)!;
  const ctx = { seed: 0, numClasses: 21, reduceZeroLabel: false, ignoreIndex: 255 };
  for (let i = 0; i < 5; i++) {
    const fresh = await readSample(ds.samples[i], ctx);
    assert.deepEqual([cached[i].image.width, cached[i].image.height], [fresh.image.width, fresh.image.height]);
    assert.ok(Buffer.from(cached[i].image.data).equals(Buffer.from(fresh.image.data)), `sample ${i} pixels`);
    assert.ok(Buffer.from(cached[i].label).equals(Buffer.from(fresh.label)), `sample ${i} labels`);
  }
  assert.ok(cached[0].image.data.buffer instanceof SharedArrayBuffer, 'one shared buffer for the workers');
});

test('a changed mask, other label rules or a damaged file are decoded again', async () => {
  const root = await writeVoc(join(dir, 'change'), { train: 3, val: 1 });
  const ds = openDataset({ type: 'voc', root }, 'train');
  const file = preloadCachePath(ds);
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'decoding');
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'file');

  // Another class count: the labels are checked against it, so another key.
  assert.notEqual(preloadKey(ds, 21), preloadKey(ds, 22));
  assert.equal((await run(root, { preload: true, numClasses: 22 }, 1)).info?.from, 'decoding');

  // A mask touched after the file was written: decoded again, then read from the new file.
  const later = new Date(Date.now() + 5_000);
  utimesSync(ds.samples[1].mask, later, later);
  const touched = await run(root, { preload: true }, 1);
  assert.equal(touched.info?.from, 'decoding');
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'file');

  // Cut short, or not ours at all: ignored and rewritten.
  const bytes = readFileSync(file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 10));
  assert.equal(readPreloadCache(file, preloadKey(ds, 21), 3), null);
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'decoding');
  writeFileSync(file, 'not a preload file');
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'decoding');
  assert.equal((await run(root, { preload: true }, 1)).info?.from, 'file');
});

test('with preload, bad samples meet the badSample policy as without, and no file is written', async () => {
  const root = await writeVoc(join(dir, 'bad'), { train: 3, val: 1 });
  rmSync(join(root, 'SegmentationClass', '2007_train_000.png'));
  const ds = openDataset({ type: 'voc', root }, 'train', { missingMask: 'keep' });
  const errors: string[] = [];
  const skip = { batchSize: 1, shuffle: false, badSample: 'skip' as const, onBadSample: (f: string) => errors.push(f) };
  const r = await run(root, { ...skip, preload: true }, 2, ds);
  assert.deepEqual(
    r.batches.map((b) => b.names),
    [['2007_train_001'], ['2007_train_002']],
  );
  assert.deepEqual(errors, [join(root, 'SegmentationClass', '2007_train_000.png')]);
  assert.match(r.info?.notWritten ?? '', /1 samples could not be read/);
  assert.equal(existsSync(preloadCachePath(ds)), false);
  await assert.rejects(
    run(root, { batchSize: 1, shuffle: false, badSample: 'stop', preload: true }, 1, ds),
    (e: Error) => e instanceof BadSampleError && e.kind === 'mask' && e.message.includes('2007_train_000.png'),
  );
});

test('preloading more than the memory limit is refused, naming train.preload', async () => {
  const root = await writeVoc(join(dir, 'limit'), { train: 3, val: 1 });
  for (const attempt of ['decoding', 'file']) {
    await assert.rejects(
      run(root, { preload: true, preloadLimit: 1000 }, 1),
      /train\.preload: the 3 samples of voc train would take about .* GiB decoded.*set train\.preload to false/,
      attempt,
    );
    if (attempt === 'decoding') await run(root, { preload: true }, 1); // now the file exists
  }
});

test('a preload file that cannot be written is reported, and the run goes on from memory', async () => {
  const root = await writeVoc(join(dir, 'readonly'), { train: 3, val: 1 });
  writeFileSync(join(root, '.deeplab-preload'), 'a file where the folder would go');
  const plain = await run(root, {}, 2);
  const r = await run(root, { preload: true }, 2);
  assert.equal(r.info?.from, 'decoding');
  assert.match(r.info?.notWritten ?? '', /^not written \(.*(EEXIST|ENOTDIR)/);
  sameBatches(r.batches, plain.batches, 'unwritable');
});
