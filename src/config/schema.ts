// The training/evaluation config: typed at compile time for our own configs, validated at run
// time for a user's JSON or YAML. Every object is strict, so a mistyped key is an error that
// names its path (model.decode_head, train.optimizer.lrr). Configs are explicit files with no
// inheritance: configs/ holds one per row of the seed tables, written by scripts/make-configs.ts.
import { z } from 'zod';

const OS = z.union([z.literal(8), z.literal(16), z.literal(32)]);
const Pair = z.tuple([z.number().int().positive(), z.number().int().positive()]);

export const ModelConfig = z
  .object({
    /** a preset from `deeplab models` */
    preset: z.string(),
    numClasses: z.number().int().positive(),
    /** train the auxiliary head (mmseg FCNHead, torchvision aux_classifier) */
    aux: z.boolean().default(true),
    /** output stride while training and while evaluating (the paper: 16 and 8) */
    outputStride: z.object({ train: OS, eval: OS }).strict(),
    /** initial weights: a whole-model checkpoint, or an ImageNet backbone (see pretrainedPrefix) */
    pretrained: z.string().optional(),
    /** prefix to put before the keys of `pretrained` (an ImageNet ResNet .pth -> "backbone.") */
    pretrainedPrefix: z.string().default(''),
    /** bilinear resizes with align_corners (mmseg's 769x769 configs; presets that support it) */
    alignCorners: z.boolean().default(false),
    /** batch norm: trained (mmseg default), norm_eval (statistics frozen), frozen (statistics and affine) */
    batchNorm: z.enum(['train', 'eval', 'frozen']).default('train'),
    /**
     * With several processes, trained batch norms use the statistics of all ranks' batches
     * (mmseg's norm_cfg SyncBN, torch.nn.SyncBatchNorm); one process: plain batch norm.
     */
    syncBN: z.boolean().default(false),
  })
  .strict();

export const DatasetConfig = z
  .object({
    type: z.enum([
      'voc',
      'voc-aug',
      'cityscapes',
      'ade20k',
      'pascal-context',
      'pascal-context-59',
      'coco-stuff164k',
      'coco-stuff10k',
      'custom',
    ]),
    /** the dataset's root folder, in its official layout */
    root: z.string(),
    trainSplit: z.string().default('train'),
    valSplit: z.string().default('val'),
    /** custom layout: a JSON or YAML file with classes, palette, folders and suffixes */
    meta: z.string().optional(),
  })
  .strict();

export const TrainPipelineConfig = z
  .object({
    /** RandomResize scale (W, H) with keep_ratio, times a ratio drawn from ratioRange */
    scale: Pair,
    ratioRange: z.tuple([z.number().positive(), z.number().positive()]).default([0.5, 2.0]),
    /** RandomCrop (H, W); images are padded with 0 and labels with 255 up to it */
    crop: Pair,
    catMaxRatio: z.number().positive().max(1).default(0.75),
    flipProb: z.number().min(0).max(1).default(0.5),
    photometric: z.boolean().default(true),
  })
  .strict();

export const TestPipelineConfig = z
  .object({
    /** Resize (W, H) with keep_ratio; null keeps the image size */
    scale: Pair.nullable(),
  })
  .strict();

export const OptimizerConfig = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('sgd'),
      lr: z.number().positive(),
      momentum: z.number().min(0).default(0.9),
      weightDecay: z.number().min(0).default(5e-4),
      nesterov: z.boolean().default(false),
    })
    .strict(),
  z
    .object({
      type: z.literal('adamw'),
      lr: z.number().positive(),
      weightDecay: z.number().min(0).default(0.01),
      betas: z.tuple([z.number(), z.number()]).default([0.9, 0.999]),
    })
    .strict(),
]);

export const ScheduleConfig = z
  .object({
    type: z.literal('poly').default('poly'),
    power: z.number().positive().default(0.9),
    /** the floor: mmseg's eta_min (1e-4); torchvision, TF and DeepLab-v2 decay to 0 */
    minLr: z.number().min(0).default(1e-4),
    warmupIters: z.number().int().min(0).default(0),
    /** warm-up starts at lr x warmupRatio, linearly */
    warmupRatio: z.number().positive().max(1).default(0.1),
  })
  .strict();

export const LossConfig = z
  .object({
    /** per-class weights (length numClasses) */
    classWeights: z.array(z.number().min(0)).optional(),
    /** true: mean over non-ignored pixels (PyTorch, TF); false: over all pixels (mmseg's default) */
    avgNonIgnore: z.boolean().default(false),
    auxWeight: z.number().min(0).default(0.4),
    ignoreIndex: z.number().int().default(255),
    /** mmseg's OHEMPixelSampler: keep at least minKept hardest pixels (thresh on GT-class prob, optional) */
    ohem: z
      .object({ thresh: z.number().min(0).max(1).optional(), minKept: z.number().int().positive() })
      .strict()
      .optional(),
  })
  .strict();

export const TrainConfig = z
  .object({
    iters: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    /** gradient accumulation: one optimizer step per this many batches */
    accumulate: z.number().int().positive().default(1),
    optimizer: OptimizerConfig,
    schedule: ScheduleConfig.default({ type: 'poly', power: 0.9, minLr: 1e-4, warmupIters: 0, warmupRatio: 0.1 }),
    /** learning-rate multipliers by parameter-name prefix (DeepLab-v2: the classifier at 10x) */
    lrMult: z.array(z.object({ prefix: z.string(), mult: z.number().positive() }).strict()).default([]),
    loss: LossConfig.default({ avgNonIgnore: false, auxWeight: 0.4, ignoreIndex: 255 }),
    precision: z.enum(['fp32', 'bf16']).default('fp32'),
    /**
     * weights and batches in channels_last: faster with bf16, slower in fp32 (oneDNN's backward;
     * figures in bench/README.md), hence off by default. Checkpoints are the same.
     */
    channelsLast: z.boolean().default(false),
    checkpointInterval: z.number().int().positive(),
    evalInterval: z.number().int().positive(),
    logInterval: z.number().int().positive().default(50),
    /** a sample that fails to load: skip it (and log) or stop the run */
    badSample: z.enum(['skip', 'stop']).default('stop'),
    seed: z.number().int().min(0).default(0),
    /** data loading workers (threads), 0 = on the main thread */
    workers: z.number().int().min(0).default(2),
    /**
     * decode every training sample once before the first step and keep it in memory (the
     * augmentations still run every step): for small datasets whose decoding is a real share of
     * a step; refused when it would take more than half of the machine's memory
     */
    preload: z.boolean().default(false),
  })
  .strict();

export const EvalConfig = z
  .object({
    mode: z.enum(['whole', 'slide']).default('whole'),
    /** slide window (H, W) and stride (H, W) */
    crop: Pair.optional(),
    stride: Pair.optional(),
    /** test-time augmentation for --aug-test: scales relative to the image, and flips */
    tta: z
      .object({ scales: z.array(z.number().positive()).min(1), flip: z.boolean() })
      .strict()
      .default({ scales: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], flip: true }),
    /** whose formula: mmseg (nanmean over present classes), torchvision (plain mean), tf, v2 */
    metric: z.enum(['mmseg', 'torchvision', 'tf', 'v2']).default('mmseg'),
  })
  .strict();

export const Config = z
  .object({
    /** the config's name (mmseg's file stem) */
    name: z.string(),
    /** the seed-table row this config reproduces, for the README and reports */
    reference: z
      .object({ table: z.string(), mIoU: z.number().nullable(), mIoUmsFlip: z.number().nullable() })
      .strict()
      .optional(),
    model: ModelConfig,
    data: z.object({ dataset: DatasetConfig, train: TrainPipelineConfig, test: TestPipelineConfig }).strict(),
    train: TrainConfig,
    evaluation: EvalConfig.default({
      mode: 'whole',
      tta: { scales: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], flip: true },
      metric: 'mmseg',
    }),
    /** where checkpoints, logs and reports go */
    workDir: z.string(),
  })
  .strict();

export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;
export type ModelConfig = z.infer<typeof ModelConfig>;
export type DatasetConfig = z.infer<typeof DatasetConfig>;
export type TrainPipelineConfig = z.infer<typeof TrainPipelineConfig>;
export type TestPipelineConfig = z.infer<typeof TestPipelineConfig>;
export type TrainConfig = z.infer<typeof TrainConfig>;
export type EvalConfig = z.infer<typeof EvalConfig>;
export type LossConfig = z.infer<typeof LossConfig>;
export type ScheduleConfig = z.infer<typeof ScheduleConfig>;
