// Writes configs/: one explicit JSON config per row of the seed tables (mmseg's DeepLabV3 model
// zoo), the DeepLabV3+ rows we reproduce, the DeepLab-v2 VOC recipe and torchvision's reference
// recipe, and configs/README.md with the table of them all. Nothing inherits: every file is the
// config after `parseConfig`, defaults written out, so what a run uses is what the file says.
//
//   node node_modules/typescript/bin/tsc -p tsconfig.json && node dist/scripts/make-configs.js
//
// (tsconfig.json's include has no scripts/: this file is compiled because
// test/config/configs.test.ts imports it.)
//
// Values follow mmseg 1.x's files (configs/deeplabv3/*.py, configs/_base_/{datasets,schedules,
// models}/*.py); where a value is ours rather than theirs, the comment next to it says so and the
// README lists it under "Values chosen here".
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ModelConfig } from '../src/config/schema.js';
import { parseConfig } from '../src/config/load.js';
import type { Config, ConfigInput } from '../src/config/schema.js';

// ---------------------------------------------------------------------------------------------
// The seed tables: ../shared/seeds/000_1dd6f5204d32a33f.txt (mmseg configs/deeplabv3/README.md),
// in its order. That text has no table headings; the order of its seven tables is the README's
// (Cityscapes, ADE20K, Pascal VOC 2012 + Aug, Pascal Context, Pascal Context 59, COCO-Stuff 10k,
// COCO-Stuff 164k), which mmseg's configs/deeplabv3/metafile.yaml confirms row by row.

export type SeedTable =
  'cityscapes' | 'ade20k' | 'voc12aug' | 'pascal-context' | 'pascal-context-59' | 'coco-stuff10k' | 'coco-stuff164k';

export const SEED_TABLE_ORDER: readonly SeedTable[] = [
  'cityscapes',
  'ade20k',
  'voc12aug',
  'pascal-context',
  'pascal-context-59',
  'coco-stuff10k',
  'coco-stuff164k',
];

export const SEED_TABLE_TITLES: Record<SeedTable, string> = {
  cityscapes: 'Cityscapes',
  ade20k: 'ADE20K',
  voc12aug: 'Pascal VOC 2012 + Aug',
  'pascal-context': 'Pascal Context',
  'pascal-context-59': 'Pascal Context 59',
  'coco-stuff10k': 'COCO-Stuff 10k',
  'coco-stuff164k': 'COCO-Stuff 164k',
};

export interface SeedRow {
  table: SeedTable;
  /** 'DeepLabV3' or 'DeepLabV3 (FP16)' */
  method: string;
  /** as the table writes it: R-50-D8, R-18b-D8, R-101-D16-MG124 */
  backbone: string;
  /** H x W, as the table writes it */
  crop: string;
  /** the "Lr schd" column */
  iters: number;
  mIoU: number;
  mIoUmsFlip: number | null;
}

const r = (
  table: SeedTable,
  method: string,
  backbone: string,
  crop: string,
  iters: number,
  mIoU: number,
  mIoUmsFlip: number | null,
): SeedRow => ({ table, method, backbone, crop, iters, mIoU, mIoUmsFlip });
const V3 = 'DeepLabV3';

/** Every row of the seed tables, in the seed's order (Mem and fps columns left out). */
export const SEED_ROWS: readonly SeedRow[] = [
  r('cityscapes', V3, 'R-50-D8', '512x1024', 40000, 79.09, 80.45),
  r('cityscapes', V3, 'R-101-D8', '512x1024', 40000, 77.12, 79.61),
  r('cityscapes', V3, 'R-50-D8', '769x769', 40000, 78.58, 79.89),
  r('cityscapes', V3, 'R-101-D8', '769x769', 40000, 79.27, 80.11),
  r('cityscapes', V3, 'R-18-D8', '512x1024', 80000, 76.7, 78.27),
  r('cityscapes', V3, 'R-50-D8', '512x1024', 80000, 79.32, 80.57),
  r('cityscapes', V3, 'R-101-D8', '512x1024', 80000, 80.2, 81.21),
  r('cityscapes', 'DeepLabV3 (FP16)', 'R-101-D8', '512x1024', 80000, 80.48, null),
  r('cityscapes', V3, 'R-18-D8', '769x769', 80000, 76.6, 78.26),
  r('cityscapes', V3, 'R-50-D8', '769x769', 80000, 79.89, 81.06),
  r('cityscapes', V3, 'R-101-D8', '769x769', 80000, 79.67, 80.81),
  r('cityscapes', V3, 'R-101-D16-MG124', '512x1024', 40000, 76.71, 78.63),
  r('cityscapes', V3, 'R-101-D16-MG124', '512x1024', 80000, 78.36, 79.84),
  r('cityscapes', V3, 'R-18b-D8', '512x1024', 80000, 76.26, 77.88),
  r('cityscapes', V3, 'R-50b-D8', '512x1024', 80000, 79.63, 80.98),
  r('cityscapes', V3, 'R-101b-D8', '512x1024', 80000, 80.01, 81.21),
  r('cityscapes', V3, 'R-18b-D8', '769x769', 80000, 75.63, 77.51),
  r('cityscapes', V3, 'R-50b-D8', '769x769', 80000, 78.8, 80.27),
  r('cityscapes', V3, 'R-101b-D8', '769x769', 80000, 79.41, 80.73),
  r('ade20k', V3, 'R-50-D8', '512x512', 80000, 42.42, 43.28),
  r('ade20k', V3, 'R-101-D8', '512x512', 80000, 44.08, 45.19),
  r('ade20k', V3, 'R-50-D8', '512x512', 160000, 42.66, 44.09),
  r('ade20k', V3, 'R-101-D8', '512x512', 160000, 45.0, 46.66),
  r('voc12aug', V3, 'R-50-D8', '512x512', 20000, 76.17, 77.42),
  r('voc12aug', V3, 'R-101-D8', '512x512', 20000, 78.7, 79.95),
  r('voc12aug', V3, 'R-50-D8', '512x512', 40000, 77.68, 78.78),
  r('voc12aug', V3, 'R-101-D8', '512x512', 40000, 77.92, 79.18),
  r('pascal-context', V3, 'R-101-D8', '480x480', 40000, 46.55, 47.81),
  r('pascal-context', V3, 'R-101-D8', '480x480', 80000, 46.42, 47.53),
  r('pascal-context-59', V3, 'R-101-D8', '480x480', 40000, 52.61, 54.28),
  r('pascal-context-59', V3, 'R-101-D8', '480x480', 80000, 52.46, 54.09),
  r('coco-stuff10k', V3, 'R-50-D8', '512x512', 20000, 34.66, 36.08),
  r('coco-stuff10k', V3, 'R-101-D8', '512x512', 20000, 37.3, 38.42),
  r('coco-stuff10k', V3, 'R-50-D8', '512x512', 40000, 35.73, 37.09),
  r('coco-stuff10k', V3, 'R-101-D8', '512x512', 40000, 37.81, 38.8),
  r('coco-stuff164k', V3, 'R-50-D8', '512x512', 80000, 39.38, 40.03),
  r('coco-stuff164k', V3, 'R-101-D8', '512x512', 80000, 40.87, 41.5),
  r('coco-stuff164k', V3, 'R-50-D8', '512x512', 160000, 41.09, 41.69),
  r('coco-stuff164k', V3, 'R-101-D8', '512x512', 160000, 41.82, 42.49),
  r('coco-stuff164k', V3, 'R-50-D8', '512x512', 320000, 41.37, 42.22),
  r('coco-stuff164k', V3, 'R-101-D8', '512x512', 320000, 42.61, 43.42),
];

/** Where the seed text lives relative to the repository root (absent outside the project). */
export const SEED_FILE = '../shared/seeds/000_1dd6f5204d32a33f.txt';
/** The committed copy of the rows parsed from it, for checkouts without ../shared. */
export const SEED_FIXTURE = 'test/fixtures/seed_rows.json';

const SEED_HEADER =
  /Method \| Backbone \| Crop Size \| Lr schd \| Mem \(GB\) \| Inf time \(fps\) \| mIoU \| mIoU\(ms\+flip\) \| config \| download \|/;

/**
 * The rows of the seed text, one table cell a line ("R-50-D8 |"), a row ending "model | log |".
 * Tables are told apart by their header only, so they are named by position (SEED_TABLE_ORDER).
 */
export function parseSeedText(text: string): SeedRow[] {
  const flat = text.replace(/[ \t]*\r?\n[ \t]*/g, ' ');
  const tables = flat.split(SEED_HEADER).slice(1);
  if (tables.length !== SEED_TABLE_ORDER.length)
    throw new Error(`seed text: ${tables.length} tables, expected ${SEED_TABLE_ORDER.length}`);
  const num = (s: string) => (s === '-' ? null : Number(s));
  return tables.flatMap((chunk, t) =>
    chunk
      .split('model | log |')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DeepLab'))
      .map((s) => {
        const cells = s
          .split('|')
          .map((c) => c.trim())
          .filter(Boolean);
        if (cells.length !== 9 || cells[8] !== 'config') throw new Error(`seed text: cannot read row "${s}"`);
        const [method, backbone, crop, iters, , , mIoU, ms] = cells;
        const m = num(mIoU);
        if (m === null || !Number.isFinite(m) || !/^\d+$/.test(iters))
          throw new Error(`seed text: bad numbers in "${s}"`);
        return {
          table: SEED_TABLE_ORDER[t],
          method,
          backbone,
          crop,
          iters: Number(iters),
          mIoU: m,
          mIoUmsFlip: num(ms),
        };
      }),
  );
}

/**
 * DeepLabV3+ rows reproduced here (mmseg configs/deeplabv3plus/README.md, numbers as its
 * metafile.yaml). Not seed rows: the seed tables are DeepLabV3's.
 */
export const V3PLUS_ROWS: readonly SeedRow[] = [
  r('cityscapes', 'DeepLabV3+', 'R-50-D8', '512x1024', 40000, 79.61, 81.01),
  r('cityscapes', 'DeepLabV3+', 'R-101-D8', '512x1024', 40000, 80.21, 81.82),
  r('cityscapes', 'DeepLabV3+', 'R-50-D8', '512x1024', 80000, 80.09, 81.13),
  r('cityscapes', 'DeepLabV3+', 'R-101-D8', '512x1024', 80000, 80.97, 82.03),
  r('ade20k', 'DeepLabV3+', 'R-50-D8', '512x512', 80000, 42.72, 43.75),
  // metafile.yaml lists this row under the name "..._4xb4-160k_ade20k-512x512" (a duplicate of
  // the 160k row's name) but its weights are the 80k run's: 44.60 / 46.06 is the 80k number.
  r('ade20k', 'DeepLabV3+', 'R-101-D8', '512x512', 80000, 44.6, 46.06),
  r('voc12aug', 'DeepLabV3+', 'R-50-D8', '512x512', 20000, 75.93, 77.5),
  r('voc12aug', 'DeepLabV3+', 'R-101-D8', '512x512', 20000, 77.22, 78.59),
  r('voc12aug', 'DeepLabV3+', 'R-50-D8', '512x512', 40000, 76.81, 77.57),
  r('voc12aug', 'DeepLabV3+', 'R-101-D8', '512x512', 40000, 78.62, 79.53),
];

// ---------------------------------------------------------------------------------------------
// mmseg's dataset configs (configs/_base_/datasets/*.py) and the per-dataset overrides of the
// deeplabv3 configs (num_classes, test_cfg, the Pascal Context optimizer).

interface DatasetSpec {
  /** the config stem's dataset part */
  stem: string;
  type:
    'cityscapes' | 'ade20k' | 'voc-aug' | 'pascal-context' | 'pascal-context-59' | 'coco-stuff10k' | 'coco-stuff164k';
  /** mmseg's data_root */
  root: string;
  numClasses: number;
  /** RandomResize scale (W, H), ratio 0.5-2.0 */
  scale: [number, number];
  /** RandomCrop (H, W) */
  crop: [number, number];
  /** test Resize (W, H) */
  testScale: [number, number];
  /** train_dataloader batch_size (per GPU; 4 GPUs) */
  perGpu: number;
  slide?: { crop: [number, number]; stride: [number, number] };
  /** the 769x769 configs set align_corners=True on both heads */
  alignCorners?: boolean;
  /** the schedule's SGD unless the config overrides it */
  lr: number;
  weightDecay: number;
  /** the file this spec was read from */
  source: string;
}

const CITYSCAPES: DatasetSpec = {
  stem: 'cityscapes-512x1024',
  type: 'cityscapes',
  root: 'data/cityscapes',
  numClasses: 19,
  scale: [2048, 1024],
  crop: [512, 1024],
  testScale: [2048, 1024],
  perGpu: 2,
  lr: 0.01,
  weightDecay: 5e-4,
  source: '_base_/datasets/cityscapes.py',
};
const CITYSCAPES_769: DatasetSpec = {
  ...CITYSCAPES,
  stem: 'cityscapes-769x769',
  scale: [2049, 1025],
  crop: [769, 769],
  testScale: [2049, 1025],
  slide: { crop: [769, 769], stride: [513, 513] },
  alignCorners: true,
  source: '_base_/datasets/cityscapes_769x769.py',
};
const ADE20K: DatasetSpec = {
  stem: 'ade20k-512x512',
  type: 'ade20k',
  root: 'data/ade/ADEChallengeData2016',
  numClasses: 150,
  scale: [2048, 512],
  crop: [512, 512],
  testScale: [2048, 512],
  perGpu: 4,
  lr: 0.01,
  weightDecay: 5e-4,
  source: '_base_/datasets/ade20k.py',
};
const VOC12AUG: DatasetSpec = {
  stem: 'voc12aug-512x512',
  type: 'voc-aug',
  root: 'data/VOCdevkit/VOC2012',
  numClasses: 21,
  scale: [2048, 512],
  crop: [512, 512],
  testScale: [2048, 512],
  perGpu: 4,
  lr: 0.01,
  weightDecay: 5e-4,
  source: '_base_/datasets/pascal_voc12_aug.py',
};
const PASCAL_CONTEXT: DatasetSpec = {
  stem: 'pascal-context-480x480',
  type: 'pascal-context',
  root: 'data/VOCdevkit/VOC2010',
  numClasses: 60,
  scale: [520, 520],
  crop: [480, 480],
  testScale: [520, 520],
  perGpu: 4,
  slide: { crop: [480, 480], stride: [320, 320] },
  lr: 0.004,
  weightDecay: 1e-4,
  source: '_base_/datasets/pascal_context.py',
};
const PASCAL_CONTEXT_59: DatasetSpec = {
  ...PASCAL_CONTEXT,
  stem: 'pascal-context-59-480x480',
  type: 'pascal-context-59',
  numClasses: 59,
  source: '_base_/datasets/pascal_context_59.py',
};
const COCO_STUFF10K: DatasetSpec = {
  stem: 'coco-stuff10k-512x512',
  type: 'coco-stuff10k',
  root: 'data/coco_stuff10k',
  numClasses: 171,
  scale: [2048, 512],
  crop: [512, 512],
  testScale: [2048, 512],
  perGpu: 4,
  lr: 0.01,
  weightDecay: 5e-4,
  source: '_base_/datasets/coco-stuff10k.py',
};
const COCO_STUFF164K: DatasetSpec = {
  ...COCO_STUFF10K,
  stem: 'coco-stuff164k-512x512',
  type: 'coco-stuff164k',
  root: 'data/coco_stuff164k',
  source: '_base_/datasets/coco-stuff164k.py',
};

function datasetOf(row: SeedRow): DatasetSpec {
  switch (row.table) {
    case 'cityscapes':
      if (row.crop === '512x1024') return CITYSCAPES;
      if (row.crop === '769x769') return CITYSCAPES_769;
      break;
    case 'ade20k':
      return ADE20K;
    case 'voc12aug':
      return VOC12AUG;
    case 'pascal-context':
      return PASCAL_CONTEXT;
    case 'pascal-context-59':
      return PASCAL_CONTEXT_59;
    case 'coco-stuff10k':
      return COCO_STUFF10K;
    case 'coco-stuff164k':
      return COCO_STUFF164K;
  }
  throw new Error(`no dataset config for ${row.table} ${row.crop}`);
}

/** R-50-D8 -> r50-d8, R-18b-D8 -> r18b-d8, R-101-D16-MG124 -> r101-d16-mg124 */
export function backboneStem(backbone: string): string {
  const m = /^R-(\d+)(b?)-(D8|D16-MG124)$/.exec(backbone);
  if (!m) throw new Error(`unknown backbone "${backbone}"`);
  return `r${m[1]}${m[2]}-${m[3].toLowerCase()}`;
}

/** The zoo preset a row's backbone builds: deeplabv3_r50-d8, deeplabv3plus_r101-d8 ... */
export function presetOf(row: SeedRow): string {
  return `${row.method.startsWith('DeepLabV3+') ? 'deeplabv3plus' : 'deeplabv3'}_${backboneStem(row.backbone)}`;
}

/** The mmseg 1.x config stem, e.g. deeplabv3_r101-d8_4xb2-amp-80k_cityscapes-512x1024. */
export function stemOf(row: SeedRow): string {
  const ds = datasetOf(row);
  const amp = row.method.includes('FP16') ? '-amp' : '';
  return `${presetOf(row)}_4xb${ds.perGpu}${amp}-${row.iters / 1000}k_${ds.stem}`;
}

/** The schema has no align_corners key yet; emit it only once it does. */
const HAS_ALIGN_CORNERS = 'alignCorners' in ModelConfig.shape;

function withAlignCorners(model: Record<string, unknown>, value: boolean | undefined): Record<string, unknown> {
  return HAS_ALIGN_CORNERS && value !== undefined ? { ...model, alignCorners: value } : model;
}

function mmsegConfig(row: SeedRow): ConfigInput {
  const ds = datasetOf(row);
  const name = stemOf(row);
  const os = row.backbone.includes('D16') ? 16 : 8;
  const interval = row.iters / 10;
  const model = withAlignCorners(
    {
      preset: presetOf(row),
      numClasses: ds.numClasses,
      aux: true,
      outputStride: { train: os, eval: os },
      batchNorm: 'train',
      // mmseg's norm_cfg = dict(type='SyncBN', requires_grad=True)
      syncBN: true,
    },
    ds.alignCorners ? true : undefined,
  );
  return {
    name,
    reference: {
      table: `mmseg ${row.method.replace(' (FP16)', '')} README: ${SEED_TABLE_TITLES[row.table]}`,
      mIoU: row.mIoU,
      mIoUmsFlip: row.mIoUmsFlip,
    },
    model: model as ConfigInput['model'],
    data: {
      dataset: { type: ds.type, root: ds.root, trainSplit: 'train', valSplit: 'val' },
      train: {
        scale: ds.scale,
        ratioRange: [0.5, 2.0],
        crop: ds.crop,
        catMaxRatio: 0.75,
        flipProb: 0.5,
        photometric: true,
      },
      test: { scale: ds.testScale },
    },
    train: {
      iters: row.iters,
      batchSize: 4 * ds.perGpu,
      accumulate: 1,
      optimizer: { type: 'sgd', lr: ds.lr, momentum: 0.9, weightDecay: ds.weightDecay, nesterov: false },
      schedule: { type: 'poly', power: 0.9, minLr: 1e-4, warmupIters: 0, warmupRatio: 0.1 },
      lrMult: [],
      loss: {
        avgNonIgnore: false,
        auxWeight: 0.4,
        ignoreIndex: 255,
        // deeplabv3_r101-d16-mg124_*: decode_head sampler=OHEMPixelSampler(min_kept=100000), no thresh
        ...(row.backbone.includes('MG124') ? { ohem: { minKept: 100000 } } : {}),
      },
      precision: row.method.includes('FP16') ? 'bf16' : 'fp32',
      checkpointInterval: interval,
      evalInterval: interval,
      logInterval: 50,
    },
    evaluation: ds.slide
      ? { mode: 'slide', crop: ds.slide.crop, stride: ds.slide.stride, metric: 'mmseg' }
      : { mode: 'whole', metric: 'mmseg' },
    workDir: `work_dirs/${name}`,
  };
}

// ---------------------------------------------------------------------------------------------
// DeepLab-v2 on VOC12 aug (ANCHORS b.10; speedinghzl/Pytorch-Deeplab train.py and datasets.py).

const V2_NAME = 'deeplabv2_resnet101_voc12aug-321x321';

function v2Config(): ConfigInput {
  const model = withAlignCorners(
    {
      preset: 'deeplabv2_resnet101',
      numClasses: 21,
      aux: false,
      outputStride: { train: 8, eval: 8 },
      // the Caffe original (use_global_stats) and isht7: BN statistics and affine fixed
      batchNorm: 'frozen',
    },
    true, // nn.Upsample(mode='bilinear') of PyTorch 0.3: align_corners=True
  );
  return {
    name: V2_NAME,
    reference: {
      table: 'Pytorch-Deeplab README (seed 003): VOC12 val, single scale, no CRF',
      mIoU: 74.0,
      mIoUmsFlip: null,
    },
    model: model as ConfigInput['model'],
    data: {
      dataset: { type: 'voc-aug', root: 'data/VOCdevkit/VOC2012', trainSplit: 'train', valSplit: 'val' },
      train: {
        // the port scales the image itself by f = 0.5 + random.randint(0, 11) / 10 (Python's
        // randint includes 11: f in 0.5..1.6 by 0.1). VOC images have a 500-pixel long side, so
        // a (500, 500) keep-ratio target times f is the image times f.
        scale: [500, 500],
        ratioRange: [0.5, 1.6],
        crop: [321, 321],
        catMaxRatio: 1, // no category-ratio check in the port
        flipProb: 0.5,
        photometric: false,
      },
      test: { scale: null }, // evaluate.py: the image as it is, padded to 505x505
    },
    train: {
      iters: 20000,
      batchSize: 10,
      accumulate: 1,
      optimizer: { type: 'sgd', lr: 2.5e-4, momentum: 0.9, weightDecay: 5e-4, nesterov: false },
      schedule: { type: 'poly', power: 0.9, minLr: 0, warmupIters: 0, warmupRatio: 0.1 },
      lrMult: [{ prefix: 'layer5.', mult: 10 }],
      loss: { avgNonIgnore: true, auxWeight: 0, ignoreIndex: 255 },
      precision: 'fp32',
      checkpointInterval: 1000, // SAVE_PRED_EVERY
      evalInterval: 2000, // the port does not evaluate while training: T/10, as the mmseg configs
      logInterval: 50,
    },
    evaluation: { mode: 'whole', metric: 'v2' },
    workDir: `work_dirs/${V2_NAME}`,
  };
}

// ---------------------------------------------------------------------------------------------
// torchvision references/segmentation for deeplabv3_resnet50 (ANCHORS b.6): README recipe
// 8 GPUs x 4 images, lr 0.02, --aux-loss, 30 epochs, wd 1e-4.

const TV_NAME = 'deeplabv3_resnet50_voc12aug';
export const TV_TRAIN_IMAGES = 10582;
export const TV_BATCH = 32;
export const TV_EPOCHS = 30;
/** DistributedSampler over 8 GPUs + drop_last: floor(ceil(10582 / 8) / 4) = 330 = floor(10582 / 32) */
export const TV_ITERS_PER_EPOCH = Math.floor(Math.ceil(TV_TRAIN_IMAGES / 8) / 4);

function torchvisionConfig(): ConfigInput {
  return {
    name: TV_NAME,
    reference: {
      table: 'torchvision references/segmentation: no VOC-trained number published',
      mIoU: null,
      mIoUmsFlip: null,
    },
    model: {
      preset: 'deeplabv3_resnet50',
      numClasses: 21,
      aux: true,
      outputStride: { train: 8, eval: 8 },
      batchNorm: 'train',
    },
    data: {
      dataset: { type: 'voc-aug', root: 'data/VOCdevkit/VOC2012', trainSplit: 'train', valSplit: 'val' },
      train: {
        // presets.py: RandomResize(260, 1040) of the short side, i.e. 520 x U(0.5, 2.0); a (W, H)
        // keep-ratio target of (2080, 520) binds on the short side for any aspect up to 4:1
        scale: [2080, 520],
        ratioRange: [0.5, 2.0],
        crop: [480, 480],
        catMaxRatio: 1, // torchvision's RandomCrop has no category-ratio check
        flipProb: 0.5,
        photometric: false,
      },
      test: { scale: [2080, 520] }, // eval preset: short side 520
    },
    train: {
      iters: TV_EPOCHS * TV_ITERS_PER_EPOCH,
      batchSize: TV_BATCH,
      accumulate: 1,
      optimizer: { type: 'sgd', lr: 0.02, momentum: 0.9, weightDecay: 1e-4, nesterov: false },
      schedule: { type: 'poly', power: 0.9, minLr: 0, warmupIters: 0, warmupRatio: 0.1 },
      // train.py's param groups: backbone and classifier at lr, aux_classifier at lr x 10
      lrMult: [{ prefix: 'aux_classifier.', mult: 10 }],
      loss: { avgNonIgnore: true, auxWeight: 0.5, ignoreIndex: 255 },
      precision: 'fp32',
      checkpointInterval: TV_ITERS_PER_EPOCH, // a checkpoint and an evaluation every epoch
      evalInterval: TV_ITERS_PER_EPOCH,
      logInterval: 50,
    },
    evaluation: { mode: 'whole', metric: 'torchvision' },
    workDir: `work_dirs/${TV_NAME}`,
  };
}

// ---------------------------------------------------------------------------------------------

export interface GeneratedConfig {
  /** path under configs/, e.g. deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.json */
  path: string;
  config: Config;
  /** the seed row it reproduces (deeplabv3/ only) */
  seed?: { row: SeedRow; index: number; tableRow: number };
  /** the DeepLabV3+ row (deeplabv3plus/ only) */
  plus?: SeedRow;
}

/** Every config, validated. Throws a ConfigError naming the config if one does not parse. */
export function generateConfigs(): GeneratedConfig[] {
  const out: GeneratedConfig[] = [];
  const perTable = new Map<SeedTable, number>();
  SEED_ROWS.forEach((row, index) => {
    const tableRow = (perTable.get(row.table) ?? 0) + 1;
    perTable.set(row.table, tableRow);
    const raw = mmsegConfig(row);
    out.push({
      path: `deeplabv3/${raw.name}.json`,
      config: parseConfig(raw, `configs/deeplabv3/${raw.name}.json`),
      seed: { row, index, tableRow },
    });
  });
  for (const row of V3PLUS_ROWS) {
    const raw = mmsegConfig(row);
    out.push({
      path: `deeplabv3plus/${raw.name}.json`,
      config: parseConfig(raw, `configs/deeplabv3plus/${raw.name}.json`),
      plus: row,
    });
  }
  const v2 = v2Config();
  out.push({ path: `deeplabv2/${v2.name}.json`, config: parseConfig(v2, `configs/deeplabv2/${v2.name}.json`) });
  const tv = torchvisionConfig();
  out.push({ path: `torchvision/${tv.name}.json`, config: parseConfig(tv, `configs/torchvision/${tv.name}.json`) });
  const demo = demoConfig();
  out.push({ path: `demo/${demo.name}.json`, config: parseConfig(demo, `configs/demo/${demo.name}.json`) });
  const names = new Set(out.map((g) => g.path));
  if (names.size !== out.length) throw new Error('two configs share a name');
  return out;
}

export const CONFIG_DIRS = ['deeplabv3', 'deeplabv3plus', 'deeplabv2', 'torchvision', 'demo'] as const;

/**
 * The README demo (`deeplab demo`): DeepLabV3+ R-18-D8 from scratch on Fashion-MNIST scenes
 * (src/data/fashion-scenes.ts, 128x128, at their own size), after a short item pre-training of its
 * backbone (DEMO_ITEM_PRETRAIN, src/training/item-pretrain.ts); trained and evaluated at OS32,
 * sized so the whole demo runs in about six minutes on 2 cores. The demo command sets the dataset
 * root and work dir and generates training scenes of 2-5 items.
 */
function demoConfig(): ConfigInput {
  return {
    name: 'fashion-scenes_deeplabv3plus_r18-d8',
    model: {
      // DeepLabV3+ over V3: its stride-4 decoder drew the small items' outlines, 33.1 against 31.9
      // (PyTorch, same recipe). Output stride 32 (no atrous convolution; the decoder adds the
      // stride-4 detail): at 128x128 an iteration costs 1.5x one at OS16 on 64x64 scenes, not the
      // 4x of OS16 at 128x128, and the items keep their pixels. 1,150 iterations: 49.9 mIoU against
      // 42.4 at OS16 on half-size scenes (96x96 at OS32: 45.2), 2026-12-04. Evaluated at OS32, as
      // trained: the paper's OS8/OS16 evaluation gain needs a model trained long enough to carry its
      // rates over (OS8 scored 39.4 against 42.3 for the half-scale model).
      preset: 'deeplabv3plus_r18-d8',
      numClasses: 11,
      aux: true,
      outputStride: {
        train: 32,
        eval: 32,
      },
      pretrainedPrefix: '',
      alignCorners: false,
      batchNorm: 'train',
    },
    data: {
      dataset: {
        type: 'custom',
        root: '.cache/fashion-scenes',
        meta: '.cache/fashion-scenes/meta.json',
        trainSplit: 'train',
        valSplit: 'val',
      },
      // The 128x128 scenes at their own size: the items' detail is what tells a shirt from a
      // T-shirt or a coat (half size with OS16 ran more iterations and scored 42.4). Each of the
      // 9,200 training scenes (2-5 items, see src/cli/demo.ts) is seen twice, flipped at random.
      // Fresh scenes did better than 2,000 scenes seen 2.8 times with rescaled crops and
      // photometric noise (33.1 against 27.8 mIoU in PyTorch).
      train: {
        scale: [128, 128],
        ratioRange: [1.0, 1.0],
        crop: [128, 128],
        catMaxRatio: 1.0,
        flipProb: 0.5,
        photometric: false,
      },
      // No test resize: the scenes are tested at their own size, as trained.
      test: {
        scale: null,
      },
    },
    train: {
      // 1,150 iterations (4 a second here with train.preload, below) keep the whole demo under six
      // minutes; 800 scored 46.0 in as long before preloading, when the loader's decoding slowed
      // every step by a fifth. Batch 16: on half-size scenes batch 8 scored 39.2 against 40.0 for
      // the same scenes, batch 32 41.8 for fewer, larger steps.
      iters: 1150,
      batchSize: 16,
      accumulate: 1,
      // AdamW rather than mmseg's SGD: from scratch in 1,000 iterations it reached mIoU 22.50
      // against SGD (lr 0.02, momentum 0.9, wd 5e-4) 20.68, same everything else. lr 0.004: at
      // half size, 1,100 iterations, lr 0.002 gave 40.8, 0.004 44.0, 0.006 41.6; at 128x128, 890
      // iterations, 0.004 47.5 and 0.006 46.5.
      optimizer: {
        type: 'adamw',
        lr: 0.004,
        weightDecay: 0.01,
      },
      schedule: {
        type: 'poly',
        power: 0.9,
        minLr: 0.0001,
        warmupIters: 50,
        warmupRatio: 0.1,
      },
      lrMult: [],
      loss: {
        avgNonIgnore: false,
        auxWeight: 0.4,
        ignoreIndex: 255,
        // Background is ~70% of the pixels: weighted 0.3 so that the items' pixels carry most of
        // the loss (at half scale 1.0 scored the same, 42.2 against 42.3). Shirt 1.25, the rest 1:
        // shirt is the class the model gives up on (all 1: shirt 18.4 and 18.7 IoU at 1,100 and
        // 1,200 iterations), and a heavier one draws T-shirts, pullovers and coats into shirt (800
        // iterations: shirt 1.5 gave 43.6 with coat at 2.9).
        classWeights: [0.3, 1, 1, 1, 1, 1, 1, 1.25, 1, 1, 1],
      },
      // bf16 autocast and channels_last: 1.75x the fp32 speed on this AVX512-BF16 CPU (the earlier
      // DeepLabV3 demo model, 3.28 against 1.87 iterations a second), so more iterations fit in the
      // demo's minutes. Not measured on a CPU without AVX512-BF16: train.precision=fp32 there.
      precision: 'bf16',
      channelsLast: true,
      checkpointInterval: 575,
      evalInterval: 1150,
      logInterval: 25,
      badSample: 'stop',
      seed: 0,
      workers: 1,
      // The 9,200 scenes decoded once (600 MB) and read from the file the generator writes: the
      // worker's decoding took a fifth of every step on 2 cores (282-286 against 227-246 ms).
      preload: true,
    },
    evaluation: {
      mode: 'whole',
      // Flip alone: at OS32 the seed tables' ratios (0.75, 1, 1.25) cost a point (an item rescaled
      // is a different size against the stride: 47.0 against 47.5 single scale, flip alone 48.5).
      tta: {
        scales: [1],
        flip: true,
      },
      metric: 'mmseg',
    },
    workDir: 'work_dirs/fashion-scenes_deeplabv3plus_r18-d8',
  };
}

/** JSON with two-space indents, arrays of numbers and strings on one line ([512, 1024]). */
export function configText(c: Config): string {
  const text = JSON.stringify(c, null, 2).replace(
    /\[\s*([^[\]{}]*?)\s*\]/g,
    (_, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`,
  );
  return `${text}\n`;
}

// ---------------------------------------------------------------------------------------------
// configs/README.md

const fmt = (x: number | null) => (x === null ? '-' : x.toFixed(2));
const pair = (p: readonly number[] | null | undefined) => (p ? p.join('x') : 'as is');

/** The ImageNet weights mmseg starts each backbone from (model.pretrained / init_cfg). */
function mmsegInit(preset: string): string {
  const m = /_r(\d+)(b?)-/.exec(preset);
  if (!m) return '';
  return m[2] ? `torchvision://resnet${m[1]}` : `open-mmlab://resnet${m[1]}_v1c`;
}

export function readmeText(all: GeneratedConfig[]): string {
  const seedRows = all.filter((g) => g.seed);
  const plusRows = all.filter((g) => g.plus);
  const v2 = all.find((g) => g.path.startsWith('deeplabv2/'))!;
  const tv = all.find((g) => g.path.startsWith('torchvision/'))!;
  const L: string[] = [];
  L.push('# Configs');
  L.push('');
  L.push('One explicit JSON file per training recipe: no inheritance, every default written out. They are');
  L.push('generated, with this README, by `scripts/make-configs.ts`; change the script, not the files:');
  L.push('');
  L.push('```');
  L.push('node node_modules/typescript/bin/tsc -p tsconfig.json && node dist/scripts/make-configs.js');
  L.push('```');
  L.push('');
  L.push(
    `${all.length} configs: ${seedRows.length} in \`deeplabv3/\` (one per row of the seed tables, mmseg's DeepLabV3 model zoo),`,
  );
  L.push(
    `${plusRows.length} in \`deeplabv3plus/\`, the DeepLab-v2 VOC recipe in \`deeplabv2/\` and torchvision's reference recipe in`,
  );
  L.push(
    '`torchvision/`, and the README demo in `demo/`. `test/config/configs.test.ts` checks that each parses, that each seed row has exactly one',
  );
  L.push(
    'config (dataset, backbone preset, crop, iterations, precision) and that the files are what the script writes.',
  );
  L.push('');
  L.push('## Using them');
  L.push('');
  L.push("`data.dataset.root` is mmseg's default root (`data/cityscapes`, `data/ade/ADEChallengeData2016`,");
  L.push(
    '`data/VOCdevkit/VOC2012`, `data/VOCdevkit/VOC2010`, `data/coco_stuff10k`, `data/coco_stuff164k`), relative to',
  );
  L.push('the working directory, with the dataset in its official layout below it. Either link your copy there');
  L.push('(`mkdir -p data && ln -s /datasets/cityscapes data/cityscapes`) or override the key on the command line;');
  L.push('every command that takes a config takes `--set key=value` (any number of them, applied in order by');
  L.push('`loadConfig` before validation; values are parsed as JSON when they can be):');
  L.push('');
  L.push('```');
  L.push('deeplab train configs/deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.json \\');
  L.push('  --set data.dataset.root=/datasets/cityscapes \\');
  L.push('  --set model.pretrained=weights/resnet50_v1c.pth --set model.pretrainedPrefix=backbone. \\');
  L.push('  --set train.batchSize=4 --set train.accumulate=2 \\');
  L.push('  --set data.train.crop=[256,512] --set train.optimizer.lr=0.02');
  L.push('```');
  L.push('');
  L.push('A mistyped key (`train.optimiser`), a wrong type (`train.iters="40k"`) or a `--set` path through a');
  L.push('value that is not an object is an error naming the file and the key.');
  L.push('');
  L.push('The configs name no initial weights: mmseg starts every backbone from ImageNet weights');
  L.push('(`open-mmlab://resnet{18,50,101}_v1c` for R-xx-D8 and D16-MG124, `torchvision://resnet{18,50,101}` for the');
  L.push('R-xxb-D8 rows; column "init" below), the DeepLab-v2 port from `MS_DeepLab_resnet_pretrained_COCO_init.pth`,');
  L.push('torchvision from `ResNet50_Weights.IMAGENET1K_V1`. Convert or download them and pass');
  L.push('`--set model.pretrained=<file> --set model.pretrainedPrefix=backbone.` (no prefix for a whole-model file).');
  L.push('');
  L.push('## Conventions of the mmseg configs');
  L.push('');
  L.push("* `model.outputStride` is the row's D value for training **and** evaluation: mmseg trains and tests");
  L.push("  its D8 models at output stride 8 (and the D16-MG124 ones at 16), unlike the paper's train-16 / eval-8.");
  L.push('* `train.batchSize` is the total batch, GPUs x per GPU: 8 for `4xb2` (Cityscapes), 16 for `4xb4`; one');
  L.push('  process here, `accumulate` 1. Lower `batchSize` and raise `accumulate` to fit a smaller GPU.');
  L.push('* SGD lr 0.01, momentum 0.9, weight decay 5e-4 (`schedule_*k.py`); Pascal Context and Context-59 lr 0.004,');
  L.push('  weight decay 1e-4. Poly power 0.9 down to `minLr` 1e-4 (`eta_min`), no warm-up.');
  L.push('* Checkpoint and evaluation every iters/10 (`val_interval`, `CheckpointHook interval`).');
  L.push("* Loss: cross-entropy averaged over all pixels, ignored ones included (`avgNonIgnore: false`, mmseg's");
  L.push('  `avg_non_ignore=False`), auxiliary FCN head weight 0.4; D16-MG124 rows add OHEM (`min_kept=100000`).');
  L.push('* FP16 rows (`-amp-`, mmseg\'s `AmpOptimWrapper`) train in bf16 here (`train.precision: "bf16"`).');
  L.push('* Evaluation `whole`, except Cityscapes 769x769 (slide 769, stride 513) and Pascal Context (slide 480,');
  L.push('  stride 320); metric `mmseg` (nanmean of per-class IoU over the dataset).');
  L.push(
    `* 769x769 rows: mmseg sets \`align_corners=True\` on both heads. ${HAS_ALIGN_CORNERS ? 'Written as `model.alignCorners: true`.' : 'The config schema has no such key yet, so these files do not carry it; the script writes `model.alignCorners: true` once `ModelConfig` has the key.'}`,
  );
  L.push('');
  L.push('## DeepLabV3 (seed tables)');
  L.push('');
  L.push('Seed: `../shared/seeds/000_1dd6f5204d32a33f.txt` (mmseg `configs/deeplabv3/README.md`), tables in the');
  L.push('README\'s order; "row" counts within the table. mIoU and ms+flip mIoU are the table\'s.');
  L.push('');
  L.push('| config | seed row | method | backbone | crop | iters | batch | eval | init | mIoU | ms+flip |');
  L.push('|---|---|---|---|---|---:|---:|---|---|---:|---:|');
  for (const g of seedRows) {
    const { row, tableRow } = g.seed!;
    const c = g.config;
    const ev =
      c.evaluation.mode === 'slide' ? `slide ${pair(c.evaluation.crop)}/${pair(c.evaluation.stride)}` : 'whole';
    L.push(
      `| [${c.name}](${g.path}) | ${SEED_TABLE_TITLES[row.table]} #${tableRow} | ${row.method} | ${row.backbone} | ${row.crop} | ${row.iters} | ${c.train.batchSize} | ${ev} | \`${mmsegInit(c.model.preset)}\` | ${fmt(row.mIoU)} | ${fmt(row.mIoUmsFlip)} |`,
    );
  }
  L.push('');
  L.push('Notes on single rows:');
  L.push('');
  L.push("* `deeplabv3_r101-d8_4xb2-amp-80k_cityscapes-512x1024`: mmseg 1.x's file inherits from the **40k** R-101");
  L.push("  config although its name says 80k; the table's 80000 and the 0.x original (`..._fp16_512x1024_80k_...`,");
  L.push('  based on the 80k config) are followed: 80000 iterations.');
  L.push(
    "* R-18b-D8 769x769: the seed's 75.63 is used (mmseg's 0.x README once printed 76.63; the 1.x metafile says 75.63).",
  );
  L.push('');
  L.push('## DeepLabV3+ (mmseg)');
  L.push('');
  L.push(
    'Reference numbers from mmseg `configs/deeplabv3plus/README.md` / `metafile.yaml`; same conventions as above.',
  );
  L.push('');
  L.push('| config | dataset | backbone | crop | iters | batch | init | mIoU | ms+flip |');
  L.push('|---|---|---|---|---:|---:|---|---:|---:|');
  for (const g of plusRows) {
    const row = g.plus!;
    L.push(
      `| [${g.config.name}](${g.path}) | ${SEED_TABLE_TITLES[row.table]} | ${row.backbone} | ${row.crop} | ${row.iters} | ${g.config.train.batchSize} | \`${mmsegInit(g.config.model.preset)}\` | ${fmt(row.mIoU)} | ${fmt(row.mIoUmsFlip)} |`,
    );
  }
  L.push('');
  L.push("* R-101-D8 ADE20K 80k: mmseg's metafile files this row under a duplicate `..._4xb4-160k_...` name; its");
  L.push("  weights are the 80k run, and 44.60 / 46.06 is the README's 80k number.");
  L.push('');
  L.push('## DeepLab-v2 (VOC12 aug)');
  L.push('');
  const v = v2.config;
  L.push(
    `[${v.name}](${v2.path}): the training recipe of the PyTorch ports (ANCHORS b.10; speedinghzl/Pytorch-Deeplab`,
  );
  L.push(
    `\`train.py\`): SGD lr ${v.train.optimizer.lr}, momentum 0.9, weight decay 5e-4, the classifier \`layer5\` at 10x`,
  );
  L.push(
    `(\`lrMult\`), poly 0.9 to 0, ${v.train.iters} iterations of batch ${v.train.batchSize}, crop ${pair(v.data.train.crop)}, random scale`,
  );
  L.push('and mirror, BN frozen, cross-entropy over non-ignored pixels, no auxiliary head, `v2` metric (mean over all');
  L.push("classes). Reference: the port's README, 74.0 mIoU on VOC12 val, single scale, no CRF.");
  L.push('');
  L.push("* Random scale: the port draws `0.5 + random.randint(0, 11) / 10` with Python's `random`, whose `randint`");
  L.push('  includes both ends, so 0.5 to **1.6** in steps of 0.1; here `ratioRange [0.5, 1.6]`, continuous, on a');
  L.push(
    '  (500, 500) keep-ratio target (VOC images have a 500-pixel long side, so this is the image times the ratio).',
  );
  L.push("* `batchNorm: \"frozen\"` is the Caffe original's `use_global_stats` (and isht7's port); speedinghzl's port");
  L.push('  freezes only the affine parameters and lets the running statistics update (`model.train()`).');
  L.push('* Checkpoints every 1000 iterations (`SAVE_PRED_EVERY`); the port does not evaluate while training, the');
  L.push('  evaluation every 2000 is ours.');
  L.push(
    `* Logits are upsampled with \`align_corners=True\` in the port. ${HAS_ALIGN_CORNERS ? 'Written as `model.alignCorners: true`.' : 'Not expressible in the schema yet (see above).'}`,
  );
  L.push('');
  L.push('## torchvision reference recipe (VOC12 aug)');
  L.push('');
  const t = tv.config;
  L.push(
    `[${t.name}](${tv.path}): \`references/segmentation/train.py\` as its README runs deeplabv3_resnet50 (8 GPUs x 4,`,
  );
  L.push(
    `lr ${t.train.optimizer.lr}, \`--aux-loss\`, 30 epochs, weight decay 1e-4): total batch ${t.train.batchSize}, aux weight 0.5, the`,
  );
  L.push(
    "`aux_classifier` at 10x lr (train.py's third param group; backbone and classifier at the base lr), poly 0.9 to 0,",
  );
  L.push('cross-entropy over non-ignored pixels, train transform short side 520 x U(0.5, 2.0), flip, crop 480; eval');
  L.push('short side 520; `torchvision` metric (plain mean of per-class IoU).');
  L.push('');
  L.push(
    `* **Epochs to iterations**: 30 epochs over the ${TV_TRAIN_IMAGES.toLocaleString('en-US')}-image VOC12 train_aug set at batch ${TV_BATCH}`,
  );
  L.push(
    `  (DistributedSampler over 8 GPUs, \`drop_last\`): floor(ceil(${TV_TRAIN_IMAGES} / 8) / 4) = ${TV_ITERS_PER_EPOCH} iterations per epoch,`,
  );
  L.push(
    `  **${t.train.iters} iterations**; a checkpoint and an evaluation every epoch (${TV_ITERS_PER_EPOCH} iterations).`,
  );
  L.push("* torchvision's own `--dataset voc_aug` is SBD's `train` split (8,498 images, evaluated on SBD `val`); this");
  L.push("  config uses mmseg's VOC12 aug (10,582 train_aug images, VOC12 val 1,449) like the others.");
  L.push("* No VOC-trained number is published (torchvision's 66.4 mIoU is its COCO-trained weights on COCO val2017");
  L.push('  restricted to the VOC classes), so the reference is empty.');
  L.push('');
  L.push('## Values chosen here');
  L.push('');
  L.push('Values the sources do not fix, and what these files use:');
  L.push('');
  L.push('* `data.dataset.trainSplit` / `valSplit`: `train` / `val` everywhere, as logical names; the dataset type');
  L.push("  is what knows mmseg's folders and lists (VOC aug's train + aug lists, COCO-Stuff 10k's test2014,");
  L.push("  COCO-Stuff 164k's val2017, ADE20K's validation).");
  L.push(
    '* `train.workers` 2, `train.seed` 0, `train.badSample` "stop", `train.logInterval` 50, `evaluation.tta` mmseg\'s',
  );
  L.push("  ratios 0.5-1.75 with flip: the schema defaults, not the sources'.");
  L.push(
    '* DeepLab-v2 `evalInterval` 2000, `catMaxRatio` 1 (off), `photometric` false; torchvision `catMaxRatio` 1 (off),',
  );
  L.push('  `photometric` false: neither source has these transforms, and 1 / false switch them off.');
  L.push('* torchvision and DeepLab-v2 resize targets (2080, 520) and (500, 500): keep-ratio targets that reproduce');
  L.push('  "short side 520 x ratio" and "image x ratio" for VOC\'s image sizes.');
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------------------------------------

/** The repository root: the nearest folder above this file with a package.json. */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
}

function main(): void {
  const root = repoRoot();
  const configsDir = join(root, 'configs');
  const all = generateConfigs();
  const written = new Set<string>();
  for (const g of all) {
    const file = join(configsDir, g.path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, configText(g.config));
    written.add(file);
  }
  // The generator owns these folders: a JSON file it did not write is a stale config.
  for (const d of CONFIG_DIRS) {
    for (const f of readdirSync(join(configsDir, d))) {
      const file = join(configsDir, d, f);
      if (f.endsWith('.json') && !written.has(file)) {
        rmSync(file);
        console.log(`removed stale ${relative(root, file)}`);
      }
    }
  }
  writeFileSync(join(configsDir, 'README.md'), readmeText(all));
  const seed = join(root, SEED_FILE);
  if (existsSync(seed)) {
    const rows = parseSeedText(readFileSync(seed, 'utf8'));
    writeFileSync(join(root, SEED_FIXTURE), `${JSON.stringify(rows, null, 1)}\n`);
    console.log(`wrote ${SEED_FIXTURE} (${rows.length} rows of ${SEED_FILE})`);
  }
  console.log(`wrote ${all.length} configs and README.md under ${relative(process.cwd(), configsDir) || '.'}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();

// Reading a committed file back, for the test's up-to-date check.
export function readCommitted(root: string, path: string): string | null {
  const file = join(root, 'configs', path);
  return existsSync(file) ? readFileSync(file, 'utf8') : null;
}
