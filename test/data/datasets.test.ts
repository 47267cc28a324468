// Each official layout opens with the right samples, classes and label rules; errors name paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { openDataset, DatasetError, type Dataset } from '../../src/data/datasets/index.js';
import { CITYSCAPES_ID_TO_TRAIN_ID } from '../../src/data/masks.js';
import { PALETTES } from '../../src/data/palettes.js';
import {
  writeAde20k,
  writeCityscapes,
  writeCocoStuff,
  writeCustom,
  writePascalContext,
  writeVoc,
  writeVocAug,
} from '../helpers/tiny-datasets.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-datasets-');
const roots = {
  voc: await writeVocAug(join(dir, 'voc')),
  cityscapes: await writeCityscapes(join(dir, 'cs')),
  cityscapesIds: await writeCityscapes(join(dir, 'cs-ids'), { labelIds: true }),
  ade: await writeAde20k(join(dir, 'ade')),
  context: await writePascalContext(join(dir, 'ctx')),
  coco164k: await writeCocoStuff(join(dir, 'coco'), '164k'),
  coco10k: await writeCocoStuff(join(dir, 'coco'), '10k'),
  custom: await writeCustom(join(dir, 'custom')),
};

function assertFiles(ds: Dataset): void {
  for (const s of ds.samples) assert.ok(existsSync(s.image) && existsSync(s.mask), `${s.image} / ${s.mask}`);
}

test('VOC 2012: split files, 21 classes, SegmentationClass masks', () => {
  const train = openDataset({ type: 'voc', root: roots.voc }, 'train');
  assert.equal(train.samples.length, 4);
  assert.deepEqual(
    train.samples.map((s) => s.name),
    ['2007_train_000', '2007_train_001', '2007_train_002', '2007_train_003'],
  );
  assert.equal(train.samples[0].image, join(roots.voc, 'JPEGImages', '2007_train_000.jpg'));
  assert.equal(train.samples[0].mask, join(roots.voc, 'SegmentationClass', '2007_train_000.png'));
  assert.equal(train.classes.length, 21);
  assert.deepEqual(train.palette, PALETTES.voc.colors);
  assert.equal(train.reduceZeroLabel, false);
  assert.equal(train.ignoreIndex, 255);
  assertFiles(train);
  assert.equal(openDataset({ type: 'voc', root: roots.voc }, 'val').samples.length, 2);
  // the VOCdevkit parent folder works too
  assert.equal(openDataset({ type: 'voc', root: join(dir, 'voc', 'VOCdevkit') }, 'train').root, roots.voc);
});

test('voc-aug: train concatenates (SegmentationClass, train.txt) and (SegmentationClassAug, aug.txt); val is plain VOC', () => {
  const train = openDataset({ type: 'voc-aug', root: roots.voc }, 'train');
  assert.equal(train.samples.length, 4 + 3);
  assert.deepEqual(
    train.samples.slice(4).map((s) => s.mask),
    [0, 1, 2].map((i) => join(roots.voc, 'SegmentationClassAug', `2008_aug_00${i}.png`)),
  );
  const val = openDataset({ type: 'voc-aug', root: roots.voc }, 'val');
  assert.deepEqual(
    val.samples.map((s) => s.name),
    ['2007_val_000', '2007_val_001'],
  );
  assert.ok(val.samples.every((s) => s.mask.includes(`${'SegmentationClass'}/`)));
});

test('Cityscapes: cities under leftImg8bit/gtFine, labelTrainIds or labelIds mapped to train ids', () => {
  const ds = openDataset({ type: 'cityscapes', root: roots.cityscapes }, 'train');
  assert.equal(ds.samples.length, 4);
  assert.deepEqual(
    ds.samples.map((s) => s.name),
    [
      'aachen/aachen_000000_000000',
      'aachen/aachen_000000_000002',
      'bochum/bochum_000000_000001',
      'bochum/bochum_000000_000003',
    ],
  );
  assert.ok(
    ds.samples[0].mask.endsWith(join('gtFine', 'train', 'aachen', 'aachen_000000_000000_gtFine_labelTrainIds.png')),
  );
  assert.equal(ds.classes.length, 19);
  assert.equal(ds.labelMap, undefined);
  assertFiles(ds);
  const ids = openDataset({ type: 'cityscapes', root: roots.cityscapesIds }, 'val');
  assert.equal(ids.samples.length, 2);
  assert.ok(ids.samples.every((s) => s.mask.endsWith('_gtFine_labelIds.png')));
  assert.equal(ids.labelMap, CITYSCAPES_ID_TO_TRAIN_ID);
});

test('ADE20K: training/validation folders, 150 classes, reduce_zero_label', () => {
  for (const root of [roots.ade, join(dir, 'ade')]) {
    const ds = openDataset({ type: 'ade20k', root }, 'val');
    assert.deepEqual(
      ds.samples.map((s) => s.name),
      ['ADE_val_00000001', 'ADE_val_00000002'],
    );
    assert.ok(ds.samples[0].image.endsWith(join('images', 'validation', 'ADE_val_00000001.jpg')));
    assert.equal(ds.classes.length, 150);
    assert.equal(ds.reduceZeroLabel, true);
  }
  assert.equal(openDataset({ type: 'ade20k', root: roots.ade, trainSplit: 'training' }, 'train').samples.length, 4);
});

test('Pascal Context 60 and 59', () => {
  const c60 = openDataset({ type: 'pascal-context', root: roots.context }, 'train');
  assert.equal(c60.samples.length, 4);
  assert.equal(c60.classes.length, 60);
  assert.equal(c60.palette.length, 60);
  assert.equal(c60.classes[0], 'background');
  assert.equal(c60.reduceZeroLabel, false);
  const c59 = openDataset({ type: 'pascal-context-59', root: join(dir, 'ctx', 'VOCdevkit') }, 'val');
  assert.equal(c59.samples.length, 2);
  assert.equal(c59.classes.length, 59);
  assert.deepEqual(c59.palette, c60.palette.slice(1));
  assert.equal(c59.classes[0], 'aeroplane');
  assert.equal(c59.reduceZeroLabel, true);
});

test('COCO-Stuff 164k and 10k: 171 classes, *_labelTrainIds.png', () => {
  const big = openDataset({ type: 'coco-stuff164k', root: roots.coco164k }, 'train');
  assert.equal(big.samples.length, 4);
  assert.ok(big.samples[0].mask.endsWith(join('annotations', 'train2017', '000000000009_labelTrainIds.png')));
  assert.equal(big.classes.length, 171);
  assert.equal(big.palette.length, 171);
  assert.equal(big.reduceZeroLabel, false);
  const small = openDataset({ type: 'coco-stuff10k', root: roots.coco10k }, 'val');
  assert.ok(small.samples[0].image.includes(join('images', 'test2014')));
  assert.equal(small.reduceZeroLabel, true);
});

test('custom: classes, palette, folders, suffixes and split files from meta.yaml', () => {
  const ds = openDataset({ type: 'custom', root: roots.custom }, 'train');
  assert.deepEqual(ds.classes, ['background', 'leaf', 'stem']);
  assert.deepEqual(ds.palette, [
    [0, 0, 0],
    [0, 200, 0],
    [120, 80, 0],
  ]);
  assert.deepEqual(
    ds.samples.map((s) => s.name),
    ['train_plant0', 'train_plant1', 'train_plant2', 'train_plant3'],
  );
  assert.equal(ds.samples[0].mask, join(roots.custom, 'ann', 'train_plant0_mask.png'));
  assertFiles(ds);
  assert.equal(
    openDataset({ type: 'custom', root: roots.custom, meta: join(roots.custom, 'meta.yaml') }, 'val').samples.length,
    2,
  );

  // JSON meta, per-split folders, no split files, a label map, the VOC colour map by default
  const root = join(dir, 'custom2');
  mkdirSync(join(root, 'images', 'val'), { recursive: true });
  cpSync(join(roots.custom, 'img'), join(root, 'images', 'val'), { recursive: true });
  cpSync(join(roots.custom, 'ann'), join(root, 'masks', 'val'), { recursive: true });
  writeFileSync(
    join(root, 'meta.json'),
    JSON.stringify({ classes: ['bg', 'fg'], imageSuffix: '.png', maskSuffix: '_mask.png', labelMap: { '2': 1 } }),
  );
  const v = openDataset({ type: 'custom', root }, 'val');
  assert.equal(v.samples.length, 6);
  assert.deepEqual(v.labelMap, { 2: 1 });
  assert.deepEqual(v.palette, [
    [0, 0, 0],
    [128, 0, 0],
  ]);

  writeFileSync(join(root, 'bad.yaml'), 'classes: [a]\nimagez: x\n');
  assert.throws(
    () => openDataset({ type: 'custom', root, meta: join(root, 'bad.yaml') }, 'val'),
    (e: Error) => e instanceof DatasetError && /bad\.yaml/.test(e.message) && /imagez/.test(e.message),
  );
  assert.throws(
    () => openDataset({ type: 'custom', root: join(dir, 'voc') }, 'val'),
    (e: Error) => /no meta file/.test(e.message),
  );
});

test('errors name the path: missing root, missing folder, image without mask, empty split', async () => {
  assert.throws(
    () => openDataset({ type: 'voc', root: join(dir, 'nowhere') }, 'train'),
    (e: Error) =>
      e instanceof DatasetError && e.message.includes(join(dir, 'nowhere')) && /does not exist/.test(e.message),
  );

  const broken = await writeVoc(join(dir, 'broken'), { train: 2, val: 1 });
  mkdirSync(join(broken, 'SegmentationClassAug'));
  assert.throws(
    () => openDataset({ type: 'voc-aug', root: broken }, 'train'),
    (e: Error) =>
      e.message.includes(join(broken, 'ImageSets', 'Segmentation', 'aug.txt')) && /voc_aug\.py/.test(e.message),
  );
  rmSync(join(broken, 'SegmentationClass', '2007_train_001.png'));
  assert.throws(
    () => openDataset({ type: 'voc', root: broken }, 'train'),
    (e: Error) =>
      e instanceof DatasetError &&
      e.message.includes(join(broken, 'JPEGImages', '2007_train_001.jpg')) &&
      e.message.includes('has no mask') &&
      e.message.includes(join(broken, 'SegmentationClass', '2007_train_001.png')),
  );
  // 'keep' lists it anyway so the loader's badSample policy decides
  assert.equal(openDataset({ type: 'voc', root: broken }, 'train', { missingMask: 'keep' }).samples.length, 2);

  writeFileSync(join(broken, 'ImageSets', 'Segmentation', 'val.txt'), '\n');
  assert.throws(
    () => openDataset({ type: 'voc', root: broken }, 'val'),
    (e: Error) => e.message === `split val of voc at ${broken} has no samples`,
  );
  assert.throws(
    () => openDataset({ type: 'voc', root: broken, valSplit: 'trainval' }, 'val'),
    (e: Error) => /missing split file/.test(e.message) && e.message.includes('trainval.txt'),
  );
  writeFileSync(join(broken, 'ImageSets', 'Segmentation', 'val.txt'), 'ghost\n');
  assert.throws(
    () => openDataset({ type: 'voc', root: broken }, 'val'),
    (e: Error) => e.message.includes(join(broken, 'JPEGImages', 'ghost.jpg')) && /does not exist/.test(e.message),
  );

  rmSync(join(broken, 'SegmentationClass'), { recursive: true });
  assert.throws(
    () => openDataset({ type: 'voc', root: broken }, 'train'),
    (e: Error) => /missing folder/.test(e.message) && e.message.includes(join(broken, 'SegmentationClass')),
  );
  assert.throws(
    () => openDataset({ type: 'cityscapes', root: roots.cityscapes, valSplit: 'test' }, 'val'),
    (e: Error) => e.message.includes(join(roots.cityscapes, 'leftImg8bit', 'test')),
  );
});
