// train.preload's file: one split's decoded samples (RGB pixels and checked labels) in one file
// under the dataset root, so that the next run reads them in about a second instead of decoding
// every image again (the demo's 9,200 PNG scenes: 15-30 s of decoding on 2 cores). The file is
// keyed by what decoding depends on: every image and mask file's path under the root, size and
// modification time, and the label rules (class count, reduceZeroLabel, label map, ignore index).
// Any change there gives another key, and the file is decoded and written again; a file that is
// not ours, cut short or written for another key is never used.
//
// Layout: "DLPRELD1", a uint32 LE header length, the header (JSON: key, each sample's width and
// height), then each sample's H x W x 3 pixels followed by its H x W labels. It is read into one
// SharedArrayBuffer: the loader's worker threads then receive views into it, not copies.
import { closeSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import type { Dataset } from './datasets/types.js';
import type { Decoded } from './loader-worker.js';

const MAGIC = 'DLPRELD1';

/** Where a split's file lives: `<root>/.deeplab-preload/<split>.bin`. */
export function preloadCachePath(dataset: Dataset): string {
  return join(dataset.root, '.deeplab-preload', `${dataset.split.replace(/[^\w.-]/g, '_')}.bin`);
}

/** What the decoded samples depend on, hashed (stats every image and mask file once). */
export function preloadKey(dataset: Dataset, numClasses: number): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      version: 1,
      numClasses,
      reduceZeroLabel: dataset.reduceZeroLabel,
      labelMap: dataset.labelMap ?? null,
      ignoreIndex: dataset.ignoreIndex,
    }),
  );
  const stamp = (f: string) => {
    const s = statSync(f, { throwIfNoEntry: false });
    return s ? `${s.size}:${s.mtimeMs}` : 'missing';
  };
  // Paths relative to the root: the same dataset opened through a relative or an absolute root
  // (the demo's generator and the trainer) has one key.
  const at = (f: string) => relative(dataset.root, f);
  for (const s of dataset.samples)
    h.update(`\n${s.name}\0${at(s.image)}\0${stamp(s.image)}\0${at(s.mask)}\0${stamp(s.mask)}`);
  return h.digest('hex');
}

type Size = readonly [width: number, height: number];

/** Bytes of the samples' data: each H x W x 3 pixels, then H x W labels. */
function dataBytes(sizes: readonly Size[]): number {
  return sizes.reduce((n, [w, h]) => n + w * h * 4, 0);
}

/** Views of each sample's pixels and labels in `all`, laid out as the file holds them. */
function carve(all: Uint8Array, sizes: readonly Size[]): Decoded[] {
  let at = 0;
  return sizes.map(([width, height]) => {
    const data = all.subarray(at, (at += width * height * 3));
    const label = all.subarray(at, (at += width * height));
    return { image: { width, height, data }, label };
  });
}

/** The samples copied into one SharedArrayBuffer (views into it come back, in the same order). */
export function packDecoded(samples: readonly Decoded[]): Decoded[] {
  const sizes = samples.map((s): Size => [s.image.width, s.image.height]);
  const views = carve(new Uint8Array(new SharedArrayBuffer(dataBytes(sizes))), sizes);
  views.forEach((v, i) => {
    v.image.data.set(samples[i].image.data);
    v.label.set(samples[i].label);
  });
  return views;
}

/** Writes the file atomically (a killed run leaves the old file or none, never half of one). */
export function writePreloadCache(file: string, key: string, samples: readonly Decoded[]): void {
  for (const s of samples) {
    const { width: w, height: h } = s.image;
    if (s.image.data.byteLength !== w * h * 3 || s.label.byteLength !== w * h)
      throw new RangeError(`preload cache: a ${w}x${h} sample needs ${w * h * 3} + ${w * h} bytes`);
  }
  const header = Buffer.from(JSON.stringify({ key, sizes: samples.map((s) => [s.image.width, s.image.height]) }));
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(header.byteLength, 8);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const put = (b: Uint8Array) => {
      for (let off = 0; off < b.byteLength;) off += writeSync(fd, b, off);
    };
    put(head);
    put(header);
    for (const s of samples) {
      put(s.image.data);
      put(s.label);
    }
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, file);
}

/**
 * The samples from the file when it holds exactly `count` samples for `key`; null otherwise.
 * `refuse` sees the data's size before anything is allocated; an error it returns is thrown.
 */
export function readPreloadCache(
  file: string,
  key: string,
  count: number,
  refuse?: (bytes: number) => Error | null,
): Decoded[] | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(12);
    if (size < 12 || readSync(fd, head, 0, 12, 0) !== 12 || head.toString('latin1', 0, 8) !== MAGIC) return null;
    const length = head.readUInt32LE(8);
    if (12 + length > size) return null;
    const text = Buffer.alloc(length);
    if (readSync(fd, text, 0, length, 12) !== length) return null;
    let header: { key?: unknown; sizes?: unknown };
    try {
      header = JSON.parse(text.toString('utf8')) as typeof header;
    } catch {
      return null;
    }
    if (header.key !== key || !Array.isArray(header.sizes) || header.sizes.length !== count) return null;
    const sizes = header.sizes as Size[];
    const bytes = dataBytes(sizes);
    if (12 + length + bytes !== size) return null;
    const refused = refuse?.(bytes);
    if (refused) throw refused;
    const all = new Uint8Array(new SharedArrayBuffer(bytes));
    for (let off = 0; off < bytes;) {
      const n = readSync(fd, all, off, Math.min(bytes - off, 1 << 30), 12 + length + off);
      if (n <= 0) return null;
      off += n;
    }
    return carve(all, sizes);
  } finally {
    closeSync(fd);
  }
}
