// Loading one sample: decode the image and its mask, make the labels, check them, and run the
// train pipeline (or the test Resize). The DataLoader runs this in worker threads, or in-process
// with workers: 0; the result is the same either way because each sample's random stream comes
// from (seed, epoch, index) and nothing else. Imported as a worker (workerData.deeplabLoader set),
// this file serves tasks from the parent; imported normally it only exports the functions.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { TestPipelineConfig, TrainPipelineConfig } from '../config/schema.js';
import { readImage, ImageError, type RgbImage } from './image.js';
import { applyLabelLookup, labelLookup, readMask, LabelError, MaskError } from './masks.js';
import { sampleRng } from './rng.js';
import { trainTransform } from './transforms.js';
import { testResize } from './geometry.js';
import type { Sample } from './datasets/types.js';

/** A sample that cannot be used: a corrupt image, a missing or bad mask, sizes that differ, labels out of range. */
export class BadSampleError extends Error {
  constructor(
    readonly file: string,
    readonly kind: 'image' | 'mask' | 'size' | 'labels',
    message: string,
  ) {
    super(message);
    this.name = 'BadSampleError';
  }
}

/** What every task of one loader shares (sent once to each worker). */
export interface LoaderContext {
  seed: number;
  numClasses: number;
  reduceZeroLabel: boolean;
  labelMap?: Readonly<Record<number, number>>;
  ignoreIndex: number;
  train?: TrainPipelineConfig;
  test?: TestPipelineConfig;
}

export type SampleTask =
  /** `decoded`: the sample as a 'decode' task returned it (train.preload), so it is not read again */
  | { kind: 'train'; id: number; epoch: number; index: number; sample: Sample; decoded?: Decoded }
  | { kind: 'eval'; id: number; index: number; sample: Sample }
  /** read, labelled and checked, but not transformed: what train.preload keeps in memory */
  | { kind: 'decode'; id: number; index: number; sample: Sample };

export interface Decoded {
  image: RgbImage;
  label: Uint8Array;
}

export type SampleResult =
  | {
      id: number;
      ok: true;
      name: string;
      /** train: the transformed crop; eval: the original image */
      image: RgbImage;
      /** eval: the image after the test pipeline's resize (the same object when the size is kept) */
      resized?: RgbImage;
      /** train: crop-sized; eval: at the original size */
      label: Uint8Array;
    }
  | { id: number; ok: false; bad: true; file: string; kind: BadSampleError['kind']; message: string }
  | { id: number; ok: false; bad: false; message: string; stack?: string };

const lookups = new WeakMap<LoaderContext, Uint8Array>();

function lookupFor(ctx: LoaderContext): Uint8Array {
  let lut = lookups.get(ctx);
  if (!lut) lookups.set(ctx, (lut = labelLookup(ctx.reduceZeroLabel, ctx.labelMap)));
  return lut;
}

/** The decoded image and its labels (after reduceZeroLabel / label map, checked), same size. */
export async function readSample(sample: Sample, ctx: LoaderContext): Promise<Decoded> {
  const [img, mask] = await Promise.allSettled([readImage(sample.image), readMask(sample.mask)]);
  if (img.status === 'rejected') {
    const e = img.reason as Error;
    throw e instanceof ImageError ? new BadSampleError(sample.image, 'image', e.message) : e;
  }
  if (mask.status === 'rejected') {
    const e = mask.reason as Error;
    throw e instanceof MaskError ? new BadSampleError(sample.mask, 'mask', e.message) : e;
  }
  const image = img.value;
  const m = mask.value;
  if (m.width !== image.width || m.height !== image.height) {
    throw new BadSampleError(
      sample.mask,
      'size',
      `image ${sample.image} is ${image.width}x${image.height} but its mask ${sample.mask} is ${m.width}x${m.height}`,
    );
  }
  try {
    const label = applyLabelLookup(m.data, lookupFor(ctx), {
      numClasses: ctx.numClasses,
      reduceZeroLabel: ctx.reduceZeroLabel,
      labelMap: ctx.labelMap,
      ignoreIndex: ctx.ignoreIndex,
      file: sample.mask,
    });
    return { image, label };
  } catch (e) {
    if (e instanceof LabelError) throw new BadSampleError(sample.mask, 'labels', e.message);
    throw e;
  }
}

/** Runs one task; never rejects: failures come back as results. */
export async function runTask(task: SampleTask, ctx: LoaderContext): Promise<SampleResult> {
  try {
    const { image, label } = task.kind === 'train' && task.decoded ? task.decoded : await readSample(task.sample, ctx);
    if (task.kind === 'decode') return { id: task.id, ok: true, name: task.sample.name, image, label };
    if (task.kind === 'eval') {
      return {
        id: task.id,
        ok: true,
        name: task.sample.name,
        image,
        resized: testResize(image, ctx.test?.scale ?? null),
        label,
      };
    }
    if (!ctx.train) throw new Error('train task without a train pipeline');
    // trainTransform only reads its input (every step writes new arrays), so a preloaded sample
    // is never changed by the augmentation of one epoch.
    const out = trainTransform(
      { image, label },
      ctx.train,
      sampleRng(ctx.seed, task.epoch, task.index),
      ctx.ignoreIndex,
    );
    return { id: task.id, ok: true, name: task.sample.name, image: out.image, label: out.label };
  } catch (e) {
    if (e instanceof BadSampleError)
      return { id: task.id, ok: false, bad: true, file: e.file, kind: e.kind, message: e.message };
    const err = e as Error;
    return {
      id: task.id,
      ok: false,
      bad: false,
      message: `${task.sample.image}: ${err?.message ?? String(e)}`,
      stack: err?.stack,
    };
  }
}

/** Buffers a result can hand over without copying (whole, unshared ArrayBuffers only). */
export function transferables(r: SampleResult): ArrayBuffer[] {
  if (!r.ok) return [];
  const out: ArrayBuffer[] = [];
  for (const a of [r.image.data, r.resized?.data, r.label]) {
    if (!a) continue;
    if (
      a.buffer instanceof ArrayBuffer &&
      a.byteOffset === 0 &&
      a.byteLength === a.buffer.byteLength &&
      !out.includes(a.buffer)
    )
      out.push(a.buffer);
  }
  return out;
}

if (!isMainThread && parentPort && (workerData as { deeplabLoader?: boolean } | null)?.deeplabLoader) {
  const port = parentPort;
  const ctx = (workerData as { ctx: LoaderContext }).ctx;
  port.on('message', (task: SampleTask) => {
    void runTask(task, ctx).then((r) => {
      try {
        port.postMessage(r, transferables(r));
      } catch {
        // Some externally allocated buffers (from native decoders) cannot be detached: copy instead.
        port.postMessage(r);
      }
    });
  });
}
