// From a validated config to what a training run needs: the model at its training output stride
// with its initial weights, the batch source, and the resolved config written next to the run.
import { writeFileSync } from 'node:fs';
import { ensureDir } from '../data/output-dir.js';
import { join } from 'node:path';
import { totalmem } from 'node:os';
import * as torch from '../torch/index.js';
import type { Config } from '../config/schema.js';
import { findPreset } from '../models/zoo.js';
import type { Preset, Segmentor } from '../models/segmentor.js';
import type { Dataset } from '../data/datasets/index.js';
import { DataLoader, type BadSampleError } from '../data/loader.js';
import { readWeights } from '../inference/weights.js';
import type { BatchSource } from './trainer.js';
import type { Shard } from '../distributed/sampler.js';

export interface TrainingModel {
  preset: Preset;
  model: Segmentor;
}

/** Builds the config's model at its training output stride, with its initial weights if any. */
export function buildForTraining(cfg: Config, o: { aux?: boolean; log?: (s: string) => void } = {}): TrainingModel {
  const preset = findPreset(cfg.model.preset);
  // Seed before building, as mmseg does: the initial weights are part of a reproducible run.
  torch.manualSeed(cfg.train.seed);
  const model = preset.build({
    numClasses: cfg.model.numClasses,
    aux: o.aux ?? (cfg.model.aux && preset.aux),
    alignCorners: cfg.model.alignCorners,
    outputStride: cfg.model.outputStride.train,
  });
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
      throw new Error(
        `${file}: no key matches the model (first keys after prefix "${prefix}": ${sample}); set model.pretrainedPrefix`,
      );
    }
    log?.(
      `initialised ${loaded} tensors from ${file}` +
        (r.unexpected.length ? `; ${r.unexpected.length} not in the model (e.g. ${r.unexpected[0]})` : '') +
        (r.mismatched.length
          ? `; ${r.mismatched.length} of another shape kept fresh (e.g. ${r.mismatched[0].key})`
          : '') +
        (r.missing.length ? `; ${r.missing.length} model tensors start fresh` : ''),
    );
  } finally {
    for (const t of raw.values()) t.dispose();
  }
}

/**
 * One batch's input (uint8 pixels, then float32 NCHW) must fit in this machine's memory before the
 * network has used any: a crop or batch size past that is a config error, named as such, not an
 * allocation failure deep in the loader.
 */
export function checkBatchFits(cfg: Config, memory = totalmem()): void {
  const [h, w] = cfg.data.train.crop;
  const bytes = cfg.train.batchSize * h * w * 3 * (1 + 4);
  if (bytes > memory) {
    const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
    throw new RangeError(
      `data.train.crop [${h}, ${w}] with train.batchSize ${cfg.train.batchSize}: one input batch needs ${gb(bytes)}, more than this machine's ${gb(memory)} of memory`,
    );
  }
}

/** Batches of `cfg.train.batchSize` (per process, as mmseg's 4xb2), of this rank's shard if given. */
export function makeBatchSource(
  cfg: Config,
  ds: Dataset,
  onBadSample?: (file: string, err: BadSampleError) => void,
  shard?: Shard,
) {
  checkBatchFits(cfg);
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
      shard,
      preload: cfg.train.preload,
    });
}

/** The resolved config next to the run's outputs: what was really run. */
export function writeResolvedConfig(cfg: Config): void {
  ensureDir(cfg.workDir, 'work dir');
  writeFileSync(
    join(cfg.workDir, 'config.json'),
    JSON.stringify({ ...cfg, resolvedAt: new Date().toISOString(), torch: torch.buildInfo().torchVersion }, null, 2),
  );
}
