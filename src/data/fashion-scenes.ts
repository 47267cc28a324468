// "Fashion-MNIST scenes": a segmentation dataset made deterministically from Debian's
// dataset-fashion-mnist. Each scene is a canvas with a textured background and one to four
// clothing items pasted at different scales and positions; every pixel is labelled with its
// item's class (1-10) or background (0). The train split draws items from the 60,000 training
// images, val from the 10,000 test images, so no item is in both.
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import sharp from 'sharp';
import { vocColormap, type RGB } from './palettes.js';
import { ensureDir } from './output-dir.js';
import { openCustom } from './datasets/custom.js';
import { preloadCachePath, preloadKey, writePreloadCache } from './preload-cache.js';
import type { Decoded } from './loader-worker.js';

export const FASHION_DIR = '/usr/share/datasets/fashion-mnist';
export const SCENE_CLASSES = [
  'background',
  't-shirt/top',
  'trouser',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'ankle boot',
];

export interface Items {
  count: number;
  pixels: Uint8Array; // count x 28 x 28
  labels: Uint8Array;
}

function readIdx(file: string): Buffer {
  if (!existsSync(file))
    throw new Error(`${file}: missing; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)`);
  return gunzipSync(readFileSync(file));
}

export function readFashionMnist(split: 'train' | 't10k', dir = FASHION_DIR): Items {
  const img = readIdx(join(dir, `${split}-images-idx3-ubyte.gz`));
  const lab = readIdx(join(dir, `${split}-labels-idx1-ubyte.gz`));
  // IDX: big-endian magic (2051 images, 2049 labels), counts, then dimensions.
  if (img.readUInt32BE(0) !== 2051 || lab.readUInt32BE(0) !== 2049)
    throw new Error(`${dir}: not Fashion-MNIST IDX files`);
  const count = img.readUInt32BE(4);
  return {
    count,
    pixels: new Uint8Array(img.buffer, img.byteOffset + 16, count * 784),
    labels: new Uint8Array(lab.buffer, lab.byteOffset + 8, count),
  };
}

/** mulberry32: tiny, fast, and the same numbers on every machine. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Scene {
  rgb: Uint8Array; // size x size x 3
  label: Uint8Array; // size x size
}

/**
 * One scene, fully determined by (items, size, seed, itemCount): `itemCount` [min, max] items
 * (default [1, 4], the validation scenes').
 */
export function makeScene(items: Items, size: number, seed: number, itemCount: [number, number] = [1, 4]): Scene {
  const r = rng(seed);
  const rgb = new Uint8Array(size * size * 3);
  const label = new Uint8Array(size * size);
  paintBackground(rgb, size, r);
  // Items: scale, place, tint; later items cover earlier ones.
  const n = itemCount[0] + Math.floor(r() * (itemCount[1] - itemCount[0] + 1));
  for (let k = 0; k < n; k++) {
    const idx = Math.floor(r() * items.count);
    const side = Math.round(28 * (1.25 + r() * 2.25)); // 35..98 px
    const ox = Math.floor(r() * (size - side * 0.5)) - Math.floor(side * 0.25);
    const oy = Math.floor(r() * (size - side * 0.5)) - Math.floor(side * 0.25);
    const tint = [0.4 + r() * 0.6, 0.4 + r() * 0.6, 0.4 + r() * 0.6];
    pasteItem(rgb, label, size, items, idx, { side, ox, oy, tint });
  }
  return { rgb, label };
}

/**
 * One item alone on a scene background, for classifier pre-training: `size` x `size` RGB, the
 * item 55-100% of the side, anywhere that keeps it whole; `cls` is its scene class (1-10).
 */
export function makeItemImage(items: Items, size: number, seed: number): { rgb: Uint8Array; cls: number } {
  const r = rng(seed);
  const rgb = new Uint8Array(size * size * 3);
  paintBackground(rgb, size, r);
  const idx = Math.floor(r() * items.count);
  const side = Math.round(size * (0.55 + r() * 0.45));
  const ox = Math.floor(r() * (size - side + 1));
  const oy = Math.floor(r() * (size - side + 1));
  const tint = [0.4 + r() * 0.6, 0.4 + r() * 0.6, 0.4 + r() * 0.6];
  pasteItem(rgb, new Uint8Array(size * size), size, items, idx, { side, ox, oy, tint });
  return { rgb, cls: items.labels[idx] + 1 };
}

/** Two random colours mixed by a sum of sinusoids (stripes, waves, checks) + noise. */
function paintBackground(rgb: Uint8Array, size: number, r: () => number): void {
  const c1 = [r() * 255, r() * 255, r() * 255];
  const c2 = [r() * 255, r() * 255, r() * 255];
  const [fx, fy, gx, gy] = [r() * 0.4, r() * 0.4, r() * 0.3, r() * 0.3];
  const [p1, p2] = [r() * 6.3, r() * 6.3];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const m = 0.5 + 0.25 * Math.sin(fx * x + fy * y + p1) + 0.25 * Math.sin(gx * x - gy * y + p2);
      const noise = (r() - 0.5) * 30;
      for (let c = 0; c < 3; c++) rgb[(y * size + x) * 3 + c] = clamp(c1[c] * m + c2[c] * (1 - m) + noise);
    }
  }
}

/** Item `idx` scaled (nearest) to `side` px at (ox, oy), tinted; its silhouette labelled. */
function pasteItem(
  rgb: Uint8Array,
  label: Uint8Array,
  size: number,
  items: Items,
  idx: number,
  at: { side: number; ox: number; oy: number; tint: number[] },
): void {
  const { side, ox, oy, tint } = at;
  const cls = items.labels[idx] + 1;
  for (let y = 0; y < side; y++) {
    const py = oy + y;
    if (py < 0 || py >= size) continue;
    const sy = Math.min(27, Math.floor((y * 28) / side));
    for (let x = 0; x < side; x++) {
      const px = ox + x;
      if (px < 0 || px >= size) continue;
      const v = items.pixels[idx * 784 + sy * 28 + Math.min(27, Math.floor((x * 28) / side))];
      if (v < 40) continue; // the item's silhouette
      label[py * size + px] = cls;
      for (let c = 0; c < 3; c++) rgb[(py * size + px) * 3 + c] = clamp(40 + v * tint[c] * 0.85);
    }
  }
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

export interface SceneDatasetOptions {
  root: string;
  trainCount: number;
  valCount: number;
  size: number;
  seed?: number;
  fashionDir?: string;
  /** items per training scene, [min, max] (default [1, 4]); validation scenes always [1, 4] */
  trainItems?: [number, number];
}

export const SCENE_PALETTE: RGB[] = vocColormap(11);

/**
 * Writes the dataset in the custom layout (images/<split>/NNNNN.png, masks/<split>/NNNNN.png,
 * <split>.txt and meta.json); skips the work when generator.json records the same options.
 */
export async function writeSceneDataset(o: SceneDatasetOptions): Promise<string> {
  const seed = o.seed ?? 0;
  const meta = {
    classes: SCENE_CLASSES,
    palette: SCENE_PALETTE,
    images: 'images',
    masks: 'masks',
    imageSuffix: '.png',
    maskSuffix: '.png',
    splits: { train: 'train.txt', val: 'val.txt' },
    reduceZeroLabel: false,
  };
  const generator = JSON.stringify({
    name: 'fashion-mnist-scenes',
    trainCount: o.trainCount,
    valCount: o.valCount,
    size: o.size,
    seed,
    ...(o.trainItems ? { trainItems: o.trainItems } : {}),
  });
  const metaFile = join(o.root, 'meta.json');
  const stamp = join(o.root, 'generator.json');
  if (existsSync(metaFile) && existsSync(stamp) && readFileSync(stamp, 'utf8') === generator) return metaFile;
  const trainScenes: Decoded[] = [];
  for (const [split, count, source, base] of [
    ['train', o.trainCount, 'train', 0],
    ['val', o.valCount, 't10k', 1_000_000],
  ] as const) {
    const items = readFashionMnist(source, o.fashionDir);
    ensureDir(join(o.root, 'images', split), 'dataset folder');
    ensureDir(join(o.root, 'masks', split), 'dataset folder');
    const names: string[] = [];
    // Scenes are painted here while sharp encodes earlier ones on its own threads; level 1 zlib
    // (pixels are the same at any level) and 16 scenes in flight took 5,800 scenes from 44 s to
    // 12-16 s on 2 cores, of which painting is about 9 s.
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < count; i++) {
      const name = String(i).padStart(5, '0');
      const s = makeScene(items, o.size, seed * 7_919 + base + i, split === 'train' ? o.trainItems : undefined);
      if (split === 'train')
        trainScenes.push({ image: { width: o.size, height: o.size, data: s.rgb }, label: s.label });
      const written = Promise.all([
        sharp(s.rgb, { raw: { width: o.size, height: o.size, channels: 3 } })
          .png({ compressionLevel: 1 })
          .toFile(join(o.root, 'images', split, `${name}.png`)),
        sharp(s.label, { raw: { width: o.size, height: o.size, channels: 1 } })
          .toColourspace('b-w')
          .png({ compressionLevel: 1 })
          .toFile(join(o.root, 'masks', split, `${name}.png`)),
      ]);
      written.catch(() => {}); // handled where it is awaited, below; not an unhandled rejection meanwhile
      inFlight.push(written);
      if (inFlight.length >= 16) await inFlight.shift();
      names.push(`${split}/${name}`);
    }
    await Promise.all(inFlight);
    writeFileSync(join(o.root, `${split}.txt`), names.join('\n') + '\n');
  }
  writeFileSync(metaFile, JSON.stringify(meta, null, 2));
  // The training split's train.preload file (src/data/preload-cache.ts), from the pixels just
  // painted: the PNGs hold exactly these, so the demo's first run need not decode 9,200 files.
  // Keyed for a model of this dataset's 11 classes, as the demo config has.
  const train = openCustom(o.root, metaFile, 'train', {});
  writePreloadCache(preloadCachePath(train), preloadKey(train, SCENE_CLASSES.length), trainScenes);
  writeFileSync(stamp, generator); // last: a partial dataset is regenerated next time
  return metaFile;
}
