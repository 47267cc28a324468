// Tiny synthetic datasets in each official layout (a few 60x40 images with blocky masks), for the
// data tests and for end-to-end training tests. Each image's colour follows its label (plus a
// little deterministic noise), so a small model can learn them in a few iterations.
//
//   const root = await writeVoc(tmp);          // tmp/VOCdevkit/VOC2012
//   const ds = openDataset({ type: 'voc', root }, 'train');
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { encode as encodePng } from 'fast-png';
import { vocColormap } from '../../src/data/palettes.js';

export interface TinyOptions {
  /** samples per split (default train 4, val 2) */
  train?: number;
  val?: number;
  width?: number;
  height?: number;
}

export const TINY_WIDTH = 60;
export const TINY_HEIGHT = 40;

/** A 4 x 4 grid of blocks, each one of `values` (picked by sample and block), with a 1-pixel 255 seam if asked. */
export function blockyMask(i: number, w: number, h: number, values: readonly number[], seam?: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const by = Math.floor((y * 4) / h);
      const bx = Math.floor((x * 4) / w);
      const onSeam =
        seam !== undefined &&
        ((y > 0 && Math.floor(((y - 1) * 4) / h) !== by) || (x > 0 && Math.floor(((x - 1) * 4) / w) !== bx));
      m[y * w + x] = onSeam ? seam : values[(i * 7 + by * 3 + bx * 5 + by * bx) % values.length];
    }
  }
  return m;
}

/** An RGB image whose colour at each pixel is that of `labelOf(raw mask value)`, with noise. */
export function imageFor(mask: Uint8Array, w: number, h: number, colourKey: (raw: number) => number): Uint8Array {
  const colours = vocColormap(256);
  const img = new Uint8Array(w * h * 3);
  for (let p = 0; p < w * h; p++) {
    const c = colours[colourKey(mask[p]) & 255];
    for (let ch = 0; ch < 3; ch++) {
      const noise = ((p * 31 + ch * 17) % 11) - 5;
      img[p * 3 + ch] = Math.max(0, Math.min(255, Math.round(c[ch] * 0.8 + 24 + noise)));
    }
  }
  return img;
}

async function writeImage(file: string, rgb: Uint8Array, w: number, h: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const img = sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } });
  await (file.endsWith('.jpg') ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

/** A single-channel 8-bit PNG of raw indices; `palette` makes it an indexed PNG as VOC's. */
export function writeMaskPng(file: string, mask: Uint8Array, w: number, h: number, palette?: number[][]): void {
  mkdirSync(dirname(file), { recursive: true });
  const png = encodePng({ width: w, height: h, data: mask, channels: 1, depth: 8, ...(palette ? { palette } : {}) });
  writeFileSync(file, png);
}

function writeLines(file: string, lines: string[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, lines.map((l) => `${l}\n`).join(''));
}

interface SplitPlan {
  split: 'train' | 'val';
  stems: string[];
}

function plan(o: TinyOptions, stem: (split: string, i: number) => string): SplitPlan[] {
  return [
    { split: 'train', stems: Array.from({ length: o.train ?? 4 }, (_, i) => stem('train', i)) },
    { split: 'val', stems: Array.from({ length: o.val ?? 2 }, (_, i) => stem('val', i)) },
  ];
}

interface SampleSpec {
  image: string;
  mask: string;
  values: readonly number[];
  seam?: number;
  colourKey: (raw: number) => number;
  palette?: number[][];
  /** distinct per sample, so masks differ */
  seed: number;
}

async function writeSample(s: SampleSpec, w: number, h: number): Promise<void> {
  const mask = blockyMask(s.seed, w, h, s.values, s.seam);
  await writeImage(s.image, imageFor(mask, w, h, s.colourKey), w, h);
  writeMaskPng(s.mask, mask, w, h, s.palette);
}

const identity = (v: number) => v;
const VOC_PALETTE = vocColormap(256).map((c) => [...c]);

/** VOCdevkit/VOC2012 with palette-PNG masks (classes 0, 8, 12, 15 and 255 seams). Returns VOC2012. */
export async function writeVoc(dir: string, o: TinyOptions = {}): Promise<string> {
  const root = join(dir, 'VOCdevkit', 'VOC2012');
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  let seed = 0;
  for (const p of plan(o, (s, i) => `2007_${s}_${String(i).padStart(3, '0')}`)) {
    writeLines(join(root, 'ImageSets', 'Segmentation', `${p.split}.txt`), p.stems);
    for (const stem of p.stems) {
      await writeSample(
        {
          image: join(root, 'JPEGImages', `${stem}.jpg`),
          mask: join(root, 'SegmentationClass', `${stem}.png`),
          values: [0, 8, 12, 15],
          seam: 255,
          colourKey: identity,
          palette: VOC_PALETTE,
          seed: seed++,
        },
        w,
        h,
      );
    }
  }
  return root;
}

/** VOC plus SegmentationClassAug (gray PNGs) listed in ImageSets/Segmentation/aug.txt. */
export async function writeVocAug(dir: string, o: TinyOptions & { aug?: number } = {}): Promise<string> {
  const root = await writeVoc(dir, o);
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  const stems = Array.from({ length: o.aug ?? 3 }, (_, i) => `2008_aug_${String(i).padStart(3, '0')}`);
  writeLines(join(root, 'ImageSets', 'Segmentation', 'aug.txt'), stems);
  let seed = 100;
  for (const stem of stems) {
    await writeSample(
      {
        image: join(root, 'JPEGImages', `${stem}.jpg`),
        mask: join(root, 'SegmentationClassAug', `${stem}.png`),
        values: [0, 1, 15],
        seam: 255,
        colourKey: identity,
        seed: seed++,
      },
      w,
      h,
    );
  }
  return root;
}

/** Raw Cityscapes label ids used by the tiny masks and their train ids (0 unlabeled -> 255). */
export const TINY_CITYSCAPES_IDS: Readonly<Record<number, number>> = {
  0: 255,
  7: 0,
  8: 1,
  11: 2,
  21: 8,
  23: 10,
  26: 13,
};

/**
 * Cityscapes with two cities per split. With `labelIds: true` only *_gtFine_labelIds.png exist
 * (raw ids, mapped at load time); otherwise only *_gtFine_labelTrainIds.png. Returns the root.
 */
export async function writeCityscapes(dir: string, o: TinyOptions & { labelIds?: boolean } = {}): Promise<string> {
  const root = join(dir, 'cityscapes');
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  const ids = Object.keys(TINY_CITYSCAPES_IDS).map(Number);
  const trainIds = [...new Set(Object.values(TINY_CITYSCAPES_IDS).filter((v) => v !== 255))];
  let seed = 0;
  for (const p of plan(
    o,
    (s, i) =>
      `${s === 'train' ? ['aachen', 'bochum'][i % 2] : ['frankfurt', 'lindau'][i % 2]}/${s === 'train' ? ['aachen', 'bochum'][i % 2] : ['frankfurt', 'lindau'][i % 2]}_000000_${String(i).padStart(6, '0')}`,
  )) {
    for (const stem of p.stems) {
      const image = join(root, 'leftImg8bit', p.split, `${stem}_leftImg8bit.png`);
      const mask = join(
        root,
        'gtFine',
        p.split,
        o.labelIds ? `${stem}_gtFine_labelIds.png` : `${stem}_gtFine_labelTrainIds.png`,
      );
      await writeSample(
        o.labelIds
          ? { image, mask, values: ids, colourKey: (v) => TINY_CITYSCAPES_IDS[v] ?? 255, seed: seed++ }
          : { image, mask, values: trainIds, seam: 255, colourKey: identity, seed: seed++ },
        w,
        h,
      );
    }
  }
  return root;
}

/** ADEChallengeData2016 with raw labels 0 (other), 1, 3, 5, 13. Returns the ADEChallengeData2016 folder. */
export async function writeAde20k(dir: string, o: TinyOptions = {}): Promise<string> {
  const root = join(dir, 'ADEChallengeData2016');
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  let seed = 0;
  for (const p of plan(o, (s, i) => `ADE_${s}_${String(i + 1).padStart(8, '0')}`)) {
    const folder = p.split === 'train' ? 'training' : 'validation';
    for (const stem of p.stems) {
      await writeSample(
        {
          image: join(root, 'images', folder, `${stem}.jpg`),
          mask: join(root, 'annotations', folder, `${stem}.png`),
          values: [0, 1, 3, 5, 13],
          colourKey: identity,
          seed: seed++,
        },
        w,
        h,
      );
    }
  }
  return root;
}

/** VOCdevkit/VOC2010 with SegmentationClassContext (labels 0..59; 0 = background). Returns VOC2010. */
export async function writePascalContext(dir: string, o: TinyOptions = {}): Promise<string> {
  const root = join(dir, 'VOCdevkit', 'VOC2010');
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  let seed = 0;
  for (const p of plan(o, (s, i) => `2008_${s}_${String(i).padStart(4, '0')}`)) {
    writeLines(join(root, 'ImageSets', 'SegmentationContext', `${p.split}.txt`), p.stems);
    for (const stem of p.stems) {
      await writeSample(
        {
          image: join(root, 'JPEGImages', `${stem}.jpg`),
          mask: join(root, 'SegmentationClassContext', `${stem}.png`),
          values: [0, 2, 25, 59],
          colourKey: identity,
          seed: seed++,
        },
        w,
        h,
      );
    }
  }
  return root;
}

/** COCO-Stuff 164k (train ids 0..170, 255 unlabelled) or 10k (1..171, 0 unlabelled). Returns the root. */
export async function writeCocoStuff(dir: string, variant: '164k' | '10k', o: TinyOptions = {}): Promise<string> {
  const root = join(dir, `coco_stuff${variant}`);
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  const folders = variant === '164k' ? { train: 'train2017', val: 'val2017' } : { train: 'train2014', val: 'test2014' };
  const values = variant === '164k' ? [0, 5, 100, 170, 255] : [0, 1, 6, 101, 171];
  let seed = 0;
  for (const p of plan(o, (s, i) => `${String(i + (s === 'train' ? 9 : 139)).padStart(12, '0')}`)) {
    const folder = folders[p.split];
    for (const stem of p.stems) {
      await writeSample(
        {
          image: join(root, 'images', folder, `${stem}.jpg`),
          mask: join(root, 'annotations', folder, `${stem}_labelTrainIds.png`),
          values,
          colourKey: identity,
          seed: seed++,
        },
        w,
        h,
      );
    }
  }
  return root;
}

/**
 * A custom dataset described by meta.yaml: classes [background, leaf, stem], PNG images under
 * img/, masks under ann/ with suffix _mask.png, split files splits/{train,val}.txt. Returns the root.
 */
export async function writeCustom(dir: string, o: TinyOptions = {}): Promise<string> {
  const root = join(dir, 'plants');
  const w = o.width ?? TINY_WIDTH;
  const h = o.height ?? TINY_HEIGHT;
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'meta.yaml'),
    [
      'classes: [background, leaf, stem]',
      'palette: [[0, 0, 0], [0, 200, 0], [120, 80, 0]]',
      'images: img',
      'masks: ann',
      'imageSuffix: .png',
      'maskSuffix: _mask.png',
      'splits: { train: splits/train.txt, val: splits/val.txt }',
      '',
    ].join('\n'),
  );
  let seed = 0;
  for (const p of plan(o, (s, i) => `${s}_plant${i}`)) {
    writeLines(join(root, 'splits', `${p.split}.txt`), p.stems);
    for (const stem of p.stems) {
      await writeSample(
        {
          image: join(root, 'img', `${stem}.png`),
          mask: join(root, 'ann', `${stem}_mask.png`),
          values: [0, 1, 2],
          seam: 255,
          colourKey: identity,
          seed: seed++,
        },
        w,
        h,
      );
    }
  }
  return root;
}
