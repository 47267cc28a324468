// From a validated config to the objects a run needs: the model (with its initial weights),
// the datasets, the training batch source and the evaluation function. Shared by
// `deeplab train`, `deeplab eval` and the demo.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import type { Config } from '../config/schema.js';
import { findPreset } from '../models/zoo.js';
import type { Preset, Segmentor } from '../models/segmentor.js';
import { openDataset, type Dataset } from '../data/datasets/index.js';
import { DataLoader, iterateEval, type BadSampleError } from '../data/loader.js';
import { rescaleSize } from '../data/transforms.js';
import { resizeImage } from './inference.js';
import { evaluate, type EvalSample, type EvaluateResult } from './evaluate.js';
import { readWeights } from './weights.js';
import type { BatchSource, EvalSummary } from './trainer.js';
import type { RgbImage } from '../data/image.js';
import type { InferenceSettings } from './fast-path.js';

export interface Run {
  preset: Preset;
  model: Segmentor;
}

/** Builds the config's model at its training output stride, with its initial weights if any. */
export function buildModel(cfg: Config, o: { aux?: boolean; log?: (s: string) => void } = {}): Run {
  const preset = findPreset(cfg.model.preset);
  // Seed before building, as mmseg does: the initial weights are part of a reproducible run.
  torch.manualSeed(cfg.train.seed);
  const model = preset.build({ numClasses: cfg.model.numClasses, aux: o.aux ?? (cfg.model.aux && preset.aux), alignCorners: cfg.model.alignCorners, outputStride: cfg.model.outputStride.train });
  if (cfg.model.pretrained) {
    try {
      loadPretrained(model, cfg.model.pretrained, cfg.model.pretrainedPrefix, o.log);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return { preset, model };
}

/**
 * Initial weights: every key of the file, with `prefix` put in front, that the model has with the
 * same shape is loaded (an ImageNet ResNet .pth into "backbone." skips its fc; a checkpoint for
 * another class count keeps fresh classifiers). Nothing matching at all is an error.
 */
export function loadPretrained(model: torch.nn.Module, file: string, prefix: string, log?: (s: string) => void): void {
  const raw = readWeights(file);
  const sd = new Map([...raw].map(([k, v]) => [prefix + k, v]));
  try {
    const r = model.loadStateDict(sd, { strict: false });
    const loaded = sd.size - r.unexpected.length - r.mismatched.length;
    if (loaded === 0) {
      const sample = [...sd.keys()].slice(0, 3).join(', ');
      throw new Error(`${file}: no key matches the model (first keys after prefix "${prefix}": ${sample}); set model.pretrainedPrefix`);
    }
    log?.(`initialised ${loaded} tensors from ${file}` + (r.unexpected.length ? `; ${r.unexpected.length} not in the model (e.g. ${r.unexpected[0]})` : '') + (r.mismatched.length ? `; ${r.mismatched.length} of another shape kept fresh (e.g. ${r.mismatched[0].key})` : '') + (r.missing.length ? `; ${r.missing.length} model tensors start fresh` : ''));
  } finally {
    for (const t of raw.values()) t.dispose();
  }
}

export function openSplit(cfg: Config, split: 'train' | 'val'): Dataset {
  const ds = { ...cfg.data.dataset, trainSplit: cfg.data.dataset.trainSplit, valSplit: cfg.data.dataset.valSplit };
  return openDataset(ds, split, { missingMask: cfg.train.badSample === 'skip' ? 'keep' : 'error' });
}

export function makeBatchSource(cfg: Config, ds: Dataset, onBadSample?: (file: string, err: BadSampleError) => void) {
  return (at: { epoch: number; position: number }): BatchSource =>
    new DataLoader(ds, {
      pipeline: cfg.data.train,
      batchSize: cfg.train.batchSize,
      seed: cfg.train.seed,
      workers: cfg.train.workers,
      numClasses: cfg.model.numClasses,
      badSample: cfg.train.badSample,
      onBadSample,
      start: at,
    });
}

/** Validation samples at their original size, read ahead by the data layer's workers. */
async function* originals(ds: Dataset, workers: number, numClasses: number): AsyncGenerator<EvalSample> {
  for await (const s of iterateEval(ds, { scale: null }, { workers: Math.max(1, Math.min(workers, 2)), numClasses })) {
    yield { name: s.name, image: s.image, label: s.label };
  }
}

/** mmseg's test Resize(scale, keep_ratio) with OpenCV's bilinear arithmetic. */
export function testResizer(scale: readonly [number, number] | null): ((img: RgbImage) => RgbImage) | undefined {
  if (!scale) return undefined;
  return (img) => {
    const [w, h] = rescaleSize(img.width, img.height, scale);
    return w === img.width && h === img.height ? img : resizeImage(img, w, h);
  };
}

export interface EvalRunOptions {
  augTest?: boolean;
  mode?: 'whole' | 'slide';
  onProgress?: (done: number, total: number) => void;
  /** how the model runs (prepareForInference's settings; default plain fp32 NCHW, as in training) */
  settings?: InferenceSettings;
}

/** Evaluates on the validation split with the config's test pipeline, metric and mode. */
export async function evaluateOnSplit(model: Segmentor, cfg: Config, preset: Preset, ds: Dataset, o: EvalRunOptions = {}): Promise<EvaluateResult> {
  const total = ds.samples.length;
  return evaluate(model, originals(ds, cfg.train.workers, cfg.model.numClasses), {
    norm: preset.normalization,
    numClasses: cfg.model.numClasses,
    ignoreIndex: cfg.train.loss.ignoreIndex,
    eval: { ...cfg.evaluation, mode: o.mode ?? cfg.evaluation.mode },
    augTest: o.augTest ?? false,
    testResize: testResizer(cfg.data.test.scale),
    alignCorners: cfg.model.alignCorners,
    onProgress: o.onProgress ? (p) => o.onProgress!(p.done, total) : undefined,
    settings: o.settings,
  });
}

/** The trainer's summary of a result (percent figures, NaN for classes with no IoU). */
export function summarize(r: EvaluateResult): EvalSummary {
  return { mIoU: r.metrics.mIoU, aAcc: r.metrics.aAcc, mAcc: r.metrics.mAcc, perClassIoU: r.metrics.perClass.map((c) => c.iou) };
}

/** The resolved config next to the run's outputs: what was really run. */
export function writeResolvedConfig(cfg: Config): void {
  mkdirSync(cfg.workDir, { recursive: true });
  writeFileSync(join(cfg.workDir, 'config.json'), JSON.stringify({ ...cfg, resolvedAt: new Date().toISOString(), torch: torch.buildInfo().torchVersion }, null, 2));
}
