// Folder scanning and (image, mask) pairing shared by the dataset layouts, as mmseg's
// BaseSegDataset does it: either the stems of a split file, or every image under a folder
// (recursively, sorted by path), the mask found by swapping the image suffix for the mask suffix.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError, type Sample } from './types.js';

/** Where a dataset is, for error messages: "voc at /data/VOC2012, split train". */
export interface Where {
  type: string;
  root: string;
  split: string;
}

export function describe(w: Where): string {
  return `${w.type} at ${w.root}, split ${w.split}`;
}

export function requireRoot(type: string, root: string): void {
  if (!existsSync(root)) throw new DatasetError(`${type} root ${root} does not exist`);
  if (!statSync(root).isDirectory()) throw new DatasetError(`${type} root ${root} is not a folder`);
}

/**
 * The dataset root: `root` itself, or `root/<nested>` when the user gave the parent folder
 * (VOCdevkit instead of VOCdevkit/VOC2012), recognised by a folder the layout must have.
 */
export function findRoot(type: string, root: string, marker: string, nested: readonly string[]): string {
  requireRoot(type, root);
  if (existsSync(join(root, marker))) return root;
  for (const n of nested) if (existsSync(join(root, n, marker))) return join(root, n);
  return root;
}

export function requireDir(dir: string, w: Where, layout: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new DatasetError(`${describe(w)}: missing folder ${dir} (the official layout is ${layout})`);
  }
}

/** Files under `dir` ending with `suffix`, recursively, as sorted '/'-separated relative paths. */
export function listFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  const walk = (sub: string) => {
    for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith(suffix) && (e.isFile() || e.isSymbolicLink())) out.push(rel);
    }
  };
  walk('');
  // Python's sorted() on str compares code points; so does this for anything but astral planes.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A split file: one stem per line (blank lines ignored). */
export function readSplitFile(file: string, w: Where): string[] {
  if (!existsSync(file)) throw new DatasetError(`${describe(w)}: missing split file ${file}`);
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

export interface PairSpec {
  imageDir: string;
  maskDir: string;
  imageSuffix: string;
  maskSuffix: string;
  /** stems from a split file (images named `stem + imageSuffix`); all images under imageDir when absent */
  stems?: string[];
  splitFile?: string;
  missingMask: 'error' | 'keep';
}

export function pairSamples(spec: PairSpec, w: Where): Sample[] {
  const stems =
    spec.stems ?? listFiles(spec.imageDir, spec.imageSuffix).map((f) => f.slice(0, f.length - spec.imageSuffix.length));
  const masks = new Set(existsSync(spec.maskDir) ? listFiles(spec.maskDir, spec.maskSuffix) : []);
  if (spec.stems) {
    const images = new Set(listFiles(spec.imageDir, spec.imageSuffix));
    const missing = spec.stems.filter((s) => !images.has(s + spec.imageSuffix));
    if (missing.length) {
      throw new DatasetError(
        `${describe(w)}: image ${join(spec.imageDir, missing[0] + spec.imageSuffix)} listed in ${spec.splitFile} does not exist` +
          (missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''),
      );
    }
  }
  const samples = stems.map((s) => ({
    name: s,
    image: join(spec.imageDir, s + spec.imageSuffix),
    mask: join(spec.maskDir, s + spec.maskSuffix),
  }));
  if (spec.missingMask === 'error') {
    const without = stems.filter((s) => !masks.has(s + spec.maskSuffix));
    if (without.length) {
      const s = without[0];
      throw new DatasetError(
        `${describe(w)}: image ${join(spec.imageDir, s + spec.imageSuffix)} has no mask (expected ${join(spec.maskDir, s + spec.maskSuffix)})` +
          (without.length > 1 ? `; ${without.length - 1} more images have no mask` : ''),
      );
    }
  }
  return samples;
}

export function requireSamples(samples: Sample[], w: Where): Sample[] {
  if (samples.length === 0) throw new DatasetError(`split ${w.split} of ${w.type} at ${w.root} has no samples`);
  return samples;
}
