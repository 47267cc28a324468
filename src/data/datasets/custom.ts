// A dataset in any layout, described by a meta file (YAML or JSON) beside or inside its root:
//
//   classes: [background, crack]          # required; the class count the model must have
//   palette: [[0, 0, 0], [255, 0, 0]]     # optional; the VOC colour map otherwise
//   images: images                        # folders under the root (defaults shown)
//   masks: masks
//   imageSuffix: .jpg
//   maskSuffix: .png
//   splits: { train: splits/train.txt, val: splits/val.txt }   # optional; one stem per line
//   reduceZeroLabel: false
//   labelMap: { 255: 1 }                  # optional; raw value -> label, after reduceZeroLabel
//
// A split without a split file takes every image under images/<split>/ (masks/<split>/) when that
// folder exists, as mmseg's img_dir/train layout, else every image under images/.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { describeIssues } from '../../config/load.js';
import { paletteFor, type RGB } from '../palettes.js';
import { pairSamples, readSplitFile, requireDir, requireRoot, requireSamples, type Where } from './common.js';
import { DatasetError, type Dataset, type OpenOptions } from './types.js';

const Channel = z.number().int().min(0).max(255);

export const CustomMeta = z
  .object({
    classes: z.array(z.string()).min(1),
    palette: z.array(z.tuple([Channel, Channel, Channel])).optional(),
    images: z.string().default('images'),
    masks: z.string().default('masks'),
    imageSuffix: z.string().default('.jpg'),
    maskSuffix: z.string().default('.png'),
    splits: z.record(z.string(), z.string()).optional(),
    reduceZeroLabel: z.boolean().default(false),
    labelMap: z.record(z.string().regex(/^\d+$/, 'keys must be label values 0..255'), Channel).optional(),
  })
  .strict();
export type CustomMeta = z.infer<typeof CustomMeta>;

const DEFAULT_META = ['meta.yaml', 'meta.yml', 'meta.json'];

function findMeta(root: string, meta: string | undefined): string {
  const tried = meta
    ? isAbsolute(meta)
      ? [meta]
      : [resolve(meta), join(root, meta)]
    : DEFAULT_META.map((m) => join(root, m));
  const found = tried.find((p) => existsSync(p) && statSync(p).isFile());
  if (!found)
    throw new DatasetError(
      `custom dataset at ${root}: no meta file (tried ${tried.join(', ')}); set data.dataset.meta`,
    );
  return found;
}

export function readCustomMeta(file: string): CustomMeta {
  let raw: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    raw = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new DatasetError(`${file}: cannot parse the dataset meta file (${(e as Error).message.split('\n')[0]})`);
  }
  const r = CustomMeta.safeParse(raw);
  if (!r.success)
    throw new DatasetError(
      `${file}: invalid dataset meta\n${describeIssues(r.error.issues)
        .map((p) => `  - ${p}`)
        .join('\n')}`,
    );
  const m = r.data;
  if (m.palette && m.palette.length !== m.classes.length) {
    throw new DatasetError(`${file}: palette has ${m.palette.length} colours for ${m.classes.length} classes`);
  }
  return m;
}

export function openCustom(root: string, metaPath: string | undefined, split: string, o: OpenOptions): Dataset {
  requireRoot('custom', root);
  const file = findMeta(root, metaPath);
  const m = readCustomMeta(file);
  const w: Where = { type: 'custom', root, split };
  const layout = `described by ${file}`;
  let imageDir = join(root, m.images);
  let maskDir = join(root, m.masks);
  requireDir(imageDir, w, layout);
  let stems: string[] | undefined;
  let splitFile: string | undefined;
  if (m.splits?.[split] !== undefined) {
    splitFile = join(root, m.splits[split]);
    stems = readSplitFile(splitFile, w);
  } else if (existsSync(join(imageDir, split))) {
    imageDir = join(imageDir, split);
    maskDir = join(maskDir, split);
  }
  requireDir(maskDir, w, layout);
  const palette: readonly RGB[] = m.palette ?? paletteFor(undefined, m.classes.length).colors;
  const labelMap = m.labelMap
    ? Object.fromEntries(Object.entries(m.labelMap).map(([k, v]) => [Number(k), v]))
    : undefined;
  const samples = pairSamples(
    {
      imageDir,
      maskDir,
      imageSuffix: m.imageSuffix,
      maskSuffix: m.maskSuffix,
      stems,
      splitFile,
      missingMask: o.missingMask ?? 'error',
    },
    w,
  );
  return {
    name: 'custom',
    root,
    split,
    classes: m.classes,
    palette,
    reduceZeroLabel: m.reduceZeroLabel,
    ignoreIndex: 255,
    ...(labelMap ? { labelMap } : {}),
    samples: requireSamples(samples, w),
  };
}
