// Evaluation of a config's validation split: the data layer's workers read each sample and apply
// the test pipeline's resize, the model runs as the settings say, and the config's metric
// formula turns the confusion matrix into figures. Shared by `deeplab eval`, the trainer's
// periodic evaluation and the demo.
import type { Config } from '../config/schema.js';
import type { Preset, Segmentor } from '../models/segmentor.js';
import type { Dataset } from '../data/datasets/index.js';
import { iterateEval, type BadSampleError } from '../data/loader.js';
import type { InferenceSettings } from '../inference/fast-path.js';
import { evaluate, type EvaluateResult } from './evaluate.js';
import { computeMetrics } from './metrics.js';
import type * as torch from '../torch/index.js';

export interface EvalRunOptions {
  augTest?: boolean;
  mode?: 'whole' | 'slide';
  onProgress?: (done: number, total: number) => void;
  /** how the model runs (prepareForInference's settings; default plain fp32 NCHW, as in training) */
  settings?: InferenceSettings;
  /** with the config's train.badSample = 'skip', each validation sample skipped is reported here */
  onBadSample?: (file: string, err: BadSampleError) => void;
  /**
   * Data-parallel evaluation: each rank evaluates its shard of the split and the confusion
   * matrices are summed, so every rank gets the metrics of the whole split (exactly the
   * one-process figures: the counts are integers).
   */
  group?: torch.distributed.ProcessGroup;
}

/** The figures the trainer logs and keeps (percent, NaN for classes with no IoU). */
export interface EvalSummary {
  mIoU: number;
  aAcc: number;
  mAcc: number;
  perClassIoU: number[];
}

/** Evaluates on the validation split with the config's test pipeline, metric and mode. */
export async function evaluateOnSplit(
  model: Segmentor,
  cfg: Config,
  preset: Preset,
  ds: Dataset,
  o: EvalRunOptions = {},
): Promise<EvaluateResult> {
  const group = o.group && o.group.size > 1 ? o.group : undefined;
  const shard = group ? { rank: group.rank, worldSize: group.size } : undefined;
  const total = shard ? Math.ceil((ds.samples.length - shard.rank) / shard.worldSize) : ds.samples.length;
  const augTest = o.augTest ?? false;
  // Test-time augmentation resizes the original image per scale; otherwise the workers apply the
  // test pipeline's resize while the model runs.
  const samples = iterateEval(
    ds,
    { scale: augTest ? null : cfg.data.test.scale },
    {
      workers: Math.max(1, Math.min(cfg.train.workers, 2)),
      numClasses: cfg.model.numClasses,
      badSample: cfg.train.badSample,
      onBadSample: o.onBadSample,
      shard,
    },
  );
  const r = await evaluate(model, samples, {
    norm: preset.normalization,
    numClasses: cfg.model.numClasses,
    ignoreIndex: cfg.train.loss.ignoreIndex,
    eval: { ...cfg.evaluation, mode: o.mode ?? cfg.evaluation.mode },
    augTest,
    alignCorners: cfg.model.alignCorners,
    onProgress: o.onProgress ? (p) => o.onProgress!(p.done, total) : undefined,
    settings: o.settings,
  });
  if (!group) return r;
  r.confusion.sumAcrossRanks(group);
  return { ...r, metrics: computeMetrics(r.confusion, cfg.evaluation.metric) };
}

export function summarize(r: EvaluateResult): EvalSummary {
  return {
    mIoU: r.metrics.mIoU,
    aAcc: r.metrics.aAcc,
    mAcc: r.metrics.mAcc,
    perClassIoU: r.metrics.perClass.map((c) => c.iou),
  };
}
