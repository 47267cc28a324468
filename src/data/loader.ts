// Batches for training and samples for evaluation. Decoding and augmentation run in worker
// threads (or in-process with workers: 0) and run ahead of the training thread, which only turns
// batches into tensors.
//
// Order, as mmseg's InfiniteSampler: an endless stream of per-epoch permutations, batches taken
// consecutively from it (a batch may span two epochs). Stream position k is sample
// perm(epoch)[position] with epoch = k / n, position = k % n; each sample's augmentation draws from
// (seed, epoch, sample index). So the batches depend on the seed alone (not on worker count or
// timing), and a loader started at state() = {epoch, position} gives exactly the batches that
// would have followed. A bad sample is skipped by taking the next one of the stream.
import { Worker } from 'node:worker_threads';
import { availableParallelism, totalmem } from 'node:os';
import type { TestPipelineConfig, TrainPipelineConfig } from '../config/schema.js';
import type { RgbImage } from './image.js';
import { epochPermutation } from './rng.js';
import {
  BadSampleError,
  runTask,
  type Decoded,
  type LoaderContext,
  type SampleResult,
  type SampleTask,
} from './loader-worker.js';
import { packDecoded, preloadCachePath, preloadKey, readPreloadCache, writePreloadCache } from './preload-cache.js';
import type { Dataset } from './datasets/types.js';
import { type Shard, SINGLE, shardPosition, shardStart } from '../distributed/sampler.js';

export { BadSampleError } from './loader-worker.js';

/** uint8 NHWC images and NHW labels of one batch (the trainer's Batch). */
export interface Batch {
  images: Uint8Array;
  labels: Uint8Array;
  height: number;
  width: number;
  names: string[];
}

export interface LoaderPosition {
  epoch: number;
  /** samples of this epoch already consumed */
  position: number;
}

export interface LoaderOptions {
  pipeline: TrainPipelineConfig;
  batchSize: number;
  seed: number;
  /** worker threads; 0 = in-process (same batches) */
  workers: number;
  /** the model's class count: labels must be below it or 255 */
  numClasses: number;
  /** a new permutation every epoch (default); false = dataset order */
  shuffle?: boolean;
  /** a sample that fails to load: 'skip' (call onBadSample, use the next) or 'stop' (reject next()) */
  badSample?: 'skip' | 'stop';
  onBadSample?: (file: string, err: BadSampleError) => void;
  /** batches decoded ahead (default 2) */
  prefetch?: number;
  /** resume: start at a position returned by state() */
  start?: LoaderPosition;
  /**
   * Data-parallel training: this rank's share of the stream (src/distributed/sampler.ts), as
   * mmengine's InfiniteSampler: rank r of W takes stream positions r, r + W, r + 2W, ... of the
   * same shuffled stream, so the ranks' batches never overlap and together are the batch of W x
   * batchSize one process would take. state() is then a position in the whole stream.
   */
  shard?: Shard;
  /**
   * Decode every sample of the split once, before the first batch, and keep the decoded pixels
   * and labels in memory; the augmentations still run for every batch. For a split that fits in
   * memory and whose decoding costs a real share of a step (the demo's 128x128 PNG scenes: a
   * fifth of each step on 2 cores). The decoding uses every core, as nothing else runs then.
   */
  preload?: boolean;
  /** refuse to preload more than this many bytes (default: half of this machine's memory) */
  preloadLimit?: number;
}

/** What preloading took: `DataLoader.ready()` resolves to it. */
export interface PreloadInfo {
  samples: number;
  bytes: number;
  seconds: number;
  /** the split's preload file (src/data/preload-cache.ts) */
  file: string;
  /** read from that file, or decoded (and the file written for next time) */
  from: 'file' | 'decoding';
  /** why the file was not written after decoding */
  notWritten?: string;
}

// ---- executors: where tasks run ----

interface Executor {
  run(task: SampleTask): Promise<SampleResult>;
  close(): Promise<void>;
}

/** In-process, a couple of tasks at a time so decoding (libuv threads) overlaps the JS work. */
class InlineExecutor implements Executor {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly ctx: LoaderContext,
    private readonly limit = 2,
  ) {}

  run(task: SampleTask): Promise<SampleResult> {
    return new Promise((resolve, reject) => {
      const go = () => {
        this.active++;
        runTask(task, this.ctx)
          .then(resolve, reject)
          .finally(() => {
            this.active--;
            this.waiting.shift()?.();
          });
      };
      if (this.active < this.limit) go();
      else this.waiting.push(go);
    });
  }

  async close(): Promise<void> {}
}

interface Pending {
  resolve: (r: SampleResult) => void;
  reject: (e: Error) => void;
}

/**
 * Worker threads, each given up to `perWorker` tasks at once. Tasks are handed out only when the
 * main thread's event loop runs, which it does not during a training step (LibTorch calls are
 * synchronous): so each worker must already hold the whole prefetch when the step starts. With two
 * tasks per worker, a worker finished them early in the step and sat idle, and six of the demo's
 * eight samples were made while the step waited.
 */
class WorkerExecutor implements Executor {
  private readonly workers: { w: Worker; pending: Map<number, Pending> }[] = [];
  private readonly waiting: { task: SampleTask; p: Pending }[] = [];
  private failure: Error | null = null;
  private closing = false;
  private keepAlive: NodeJS.Timeout | null = null;

  constructor(
    count: number,
    ctx: LoaderContext,
    private readonly perWorker = 2,
  ) {
    for (let i = 0; i < count; i++) {
      const w = new Worker(new URL('./loader-worker.js', import.meta.url), {
        workerData: { deeplabLoader: true, ctx },
      });
      const slot = { w, pending: new Map<number, Pending>() };
      w.on('message', (r: SampleResult) => {
        slot.pending.get(r.id)?.resolve(r);
        slot.pending.delete(r.id);
        this.pump();
      });
      w.on('error', (e) => this.fail(new Error(`data loader worker failed: ${e.message}`)));
      w.on('exit', (code) => {
        if (!this.closing) this.fail(new Error(`data loader worker exited (code ${code})`));
      });
      w.unref(); // a loader left open must not keep the process alive; see busy()
      this.workers.push(slot);
    }
  }

  run(task: SampleTask): Promise<SampleResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('data loader is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, p: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.waiting.length) {
      let best = this.workers[0];
      for (const s of this.workers) if (s.pending.size < best.pending.size) best = s;
      if (best.pending.size >= this.perWorker) break;
      const { task, p } = this.waiting.shift()!;
      best.pending.set(task.id, p);
      best.w.postMessage(task);
    }
    this.busy(this.waiting.length > 0 || this.workers.some((s) => s.pending.size > 0));
  }

  /**
   * Keeps the event loop alive while results are awaited. The workers stay unref'd and a timer
   * does this: toggling Worker.ref()/unref() let the loop exit while awaiting (Node 20).
   */
  private busy(on: boolean): void {
    if (on && !this.keepAlive) this.keepAlive = setInterval(() => undefined, 1 << 30);
    if (!on && this.keepAlive) {
      clearInterval(this.keepAlive);
      this.keepAlive = null;
    }
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const s of this.workers) {
      for (const p of s.pending.values()) p.reject(e);
      s.pending.clear();
    }
    for (const { p } of this.waiting.splice(0)) p.reject(e);
    this.busy(false);
  }

  async close(): Promise<void> {
    this.closing = true;
    const closed = new Error('data loader is closed');
    this.fail(closed);
    this.busy(true); // awaiting an unref'd worker's exit does not keep the loop alive either
    try {
      await Promise.all(this.workers.map((s) => s.w.terminate()));
    } finally {
      this.busy(false);
    }
  }
}

function makeExecutor(workers: number, ctx: LoaderContext, ahead = 2 * workers): Executor {
  return workers > 0
    ? new WorkerExecutor(workers, ctx, Math.max(2, Math.ceil(ahead / workers)))
    : new InlineExecutor(ctx);
}

function contextFor(
  dataset: Dataset,
  numClasses: number,
  seed: number,
  extra: Pick<LoaderContext, 'train' | 'test'>,
): LoaderContext {
  return {
    seed,
    numClasses,
    reduceZeroLabel: dataset.reduceZeroLabel,
    ...(dataset.labelMap ? { labelMap: dataset.labelMap } : {}),
    ignoreIndex: dataset.ignoreIndex,
    ...extra,
  };
}

function fatal(r: Extract<SampleResult, { bad: false }>): Error {
  const e = new Error(r.message);
  if (r.stack) e.stack = r.stack;
  return e;
}

// ---- training batches ----

export class DataLoader {
  private readonly n: number;
  private readonly ahead: number;
  private readonly executor: Executor;
  private readonly perms = new Map<number, Int32Array>();
  private readonly inflight = new Map<number, Promise<SampleResult>>();
  /** this rank's samples: next to consume, next to dispatch, and the end of the last returned batch */
  private cursor: number;
  private dispatched: number;
  private committed: number;
  /** the stream position this loader started (or was sought) at */
  private base: number;
  private readonly shard: Shard;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** train.preload: each sample decoded (or the reason it cannot be) by split index */
  private decoded: (Decoded | SampleResult)[] | null = null;
  private readonly preloading: Promise<PreloadInfo | null>;

  constructor(
    private readonly dataset: Dataset,
    private readonly o: LoaderOptions,
  ) {
    this.n = dataset.samples.length;
    if (this.n === 0) throw new Error(`data loader: split ${dataset.split} of ${dataset.name} has no samples`);
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
      throw new RangeError(`data loader: batchSize must be a positive integer, got ${o.batchSize}`);
    if (!Number.isInteger(o.workers) || o.workers < 0)
      throw new RangeError(`data loader: workers must be >= 0, got ${o.workers}`);
    this.shard = o.shard ?? SINGLE;
    this.base = this.streamIndex(o.start ?? { epoch: 0, position: 0 });
    this.cursor = this.dispatched = this.committed = 0;
    this.ahead = Math.max(1, o.prefetch ?? 2) * o.batchSize;
    const ctx = contextFor(dataset, o.numClasses, o.seed, { train: o.pipeline });
    this.executor = makeExecutor(o.workers, ctx, this.ahead);
    this.preloading = o.preload ? this.preload(ctx) : Promise.resolve(null);
    // Batches are dispatched once the samples are in memory (at once without preload).
    this.queue = this.preloading.then(() => this.fill()).catch(() => undefined);
    this.preloading.catch(() => undefined); // observed in ready() and in every next()
  }

  /** Resolves when batches can be dispatched: after preloading (its figures), or at once (null). */
  ready(): Promise<PreloadInfo | null> {
    return this.preloading;
  }

  /** Where the next batch starts: save it with a checkpoint, pass it back as `start` to resume. */
  state(): LoaderPosition {
    const k = shardPosition(this.base, this.committed, this.shard);
    return { epoch: Math.floor(k / this.n), position: k % this.n };
  }

  /** The next batch; calls queue, so batches come back in order even if not awaited one by one. */
  next(): Promise<Batch> {
    const run = this.queue.then(() => this.take());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Moves to a saved position; work prefetched for the old one is dropped. */
  seek(at: LoaderPosition): void {
    const k = this.streamIndex(at);
    this.queue = this.queue.then(() => {
      this.inflight.clear();
      this.base = k;
      this.cursor = this.dispatched = this.committed = 0;
      this.fill();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inflight.clear();
    await this.executor.close();
  }

  /**
   * Every sample decoded once: read from the split's preload file when it matches
   * (src/data/preload-cache.ts), else fanned out over one worker a core (or in-process with
   * workers: 0) and the file written for next time. A sample that cannot be read is kept as its
   * failure, so the badSample policy meets it when the stream reaches it, exactly as without
   * preloading (and no file is written then).
   */
  private async preload(ctx: LoaderContext): Promise<PreloadInfo> {
    const t0 = performance.now();
    const limit = this.o.preloadLimit ?? totalmem() / 2;
    const tooBig = (estimate: number) =>
      new Error(
        `train.preload: the ${this.n} samples of ${this.dataset.name} ${this.dataset.split} would take about ${(estimate / 2 ** 30).toFixed(1)} GiB decoded, more than ${(limit / 2 ** 30).toFixed(1)} GiB (half of this machine's memory); set train.preload to false`,
      );
    const file = preloadCachePath(this.dataset);
    const key = preloadKey(this.dataset, this.o.numClasses);
    // Refused from the file's header, before its data is read into memory.
    const cached = readPreloadCache(file, key, this.n, (b) => (b > limit ? tooBig(b) : null));
    if (cached) {
      const bytes = cached.reduce((n, d) => n + d.image.data.byteLength + d.label.byteLength, 0);
      this.decoded = cached;
      return { samples: this.n, bytes, seconds: (performance.now() - t0) / 1000, file, from: 'file' };
    }
    const threads = this.o.workers === 0 ? 0 : Math.max(this.o.workers, availableParallelism());
    const executor = makeExecutor(threads, ctx, 4 * Math.max(1, threads));
    const out = new Array<Decoded | SampleResult>(this.n);
    let bytes = 0;
    let next = 0;
    let failed = false;
    try {
      const lane = async (): Promise<void> => {
        while (next < this.n && !this.closed && !failed) {
          const i = next++;
          const r = await executor.run({ kind: 'decode', id: i, index: i, sample: this.dataset.samples[i] });
          if (!r.ok) {
            out[i] = r;
            continue;
          }
          bytes += r.image.data.byteLength + r.label.byteLength;
          // Checked as it grows (the first samples give the estimate): stops before memory runs out.
          const estimate = (bytes / (i + 1)) * this.n;
          if (estimate > limit) {
            failed = true;
            throw tooBig(estimate);
          }
          out[i] = { image: r.image, label: r.label };
        }
      };
      await Promise.all(Array.from({ length: Math.max(2, 3 * threads) }, lane));
    } finally {
      await executor.close();
    }
    if (this.closed)
      return { samples: 0, bytes, seconds: 0, file, from: 'decoding', notWritten: 'not written (closed)' };
    // One shared buffer: views of it go to the workers without a copy, and the GC sees one object.
    const good = out.filter((d): d is Decoded => !('ok' in d));
    const packed = packDecoded(good);
    let g = 0;
    this.decoded = out.map((d) => ('ok' in d ? d : packed[g++]));
    let written: string | undefined;
    if (good.length === this.n) {
      try {
        writePreloadCache(file, key, packed);
      } catch (e) {
        written = `not written (${(e as Error).message.split('\n')[0]})`;
      }
    } else written = `not written (${this.n - good.length} samples could not be read)`;
    return {
      samples: this.n,
      bytes,
      seconds: (performance.now() - t0) / 1000,
      file,
      from: 'decoding',
      ...(written ? { notWritten: written } : {}),
    };
  }

  private streamIndex(at: LoaderPosition): number {
    if (
      !Number.isInteger(at.epoch) ||
      at.epoch < 0 ||
      !Number.isInteger(at.position) ||
      at.position < 0 ||
      at.position > this.n
    ) {
      throw new RangeError(
        `data loader: invalid position epoch ${at.epoch}, position ${at.position} (the split has ${this.n} samples)`,
      );
    }
    return at.epoch * this.n + at.position;
  }

  private permutation(epoch: number): Int32Array {
    let p = this.perms.get(epoch);
    if (!p) {
      p = epochPermutation(this.o.seed, epoch, this.n, this.o.shuffle ?? true);
      this.perms.set(epoch, p);
      for (const e of this.perms.keys()) if (e < epoch - 1) this.perms.delete(e);
    }
    return p;
  }

  private fill(): void {
    while (!this.closed && this.dispatched < this.cursor + this.ahead) {
      const j = this.dispatched++;
      const k = shardStart(this.base, this.shard) + j * this.shard.worldSize;
      const epoch = Math.floor(k / this.n);
      const index = this.permutation(epoch)[k % this.n];
      const sample = this.dataset.samples[index];
      const d = this.decoded?.[index];
      const p =
        d && 'ok' in d
          ? Promise.resolve(d) // preloaded: it could not be read
          : this.executor.run({ kind: 'train', id: k, epoch, index, sample, ...(d ? { decoded: d } : {}) });
      p.catch(() => undefined); // observed in take(); dropped ones must not be "unhandled"
      this.inflight.set(j, p);
    }
  }

  private async take(): Promise<Batch> {
    if (this.closed) throw new Error('data loader is closed');
    await this.preloading; // a failed preload fails every batch

    const [h, w] = this.o.pipeline.crop;
    const size = this.o.batchSize;
    const images = new Uint8Array(size * h * w * 3);
    const labels = new Uint8Array(size * h * w);
    const names: string[] = [];
    let skippedInARow = 0;
    while (names.length < size) {
      this.fill();
      const k = this.cursor;
      const r = await this.inflight.get(k)!;
      this.inflight.delete(k);
      this.cursor++;
      if (r.ok) {
        images.set(r.image.data, names.length * h * w * 3);
        labels.set(r.label, names.length * h * w);
        names.push(r.name);
        skippedInARow = 0;
        continue;
      }
      if (!r.bad) throw fatal(r);
      const err = new BadSampleError(r.file, r.kind, r.message);
      if ((this.o.badSample ?? 'stop') === 'stop') throw err;
      this.o.onBadSample?.(r.file, err);
      if (++skippedInARow >= this.n)
        throw new Error(
          `data loader: all ${this.n} samples of ${this.dataset.name} ${this.dataset.split} failed to load; the last: ${r.message}`,
        );
    }
    this.committed = this.cursor;
    this.fill();
    return { images, labels, height: h, width: w, names };
  }
}

// ---- evaluation samples ----

/** A validation sample as evaluation reads it. */
export interface EvalSample {
  name: string;
  /** the original image (test-time augmentation resizes it per scale) */
  image: RgbImage;
  /** the image after the test pipeline's resize (the same object when the size is kept) */
  resized: RgbImage;
  /** H x W class indices at the original size (reduceZeroLabel / label map applied) */
  label: Uint8Array | Uint16Array;
}

export interface EvalOptions {
  /** labels are checked against it (default: the dataset's class count) */
  numClasses?: number;
  /** worker threads (default 1; 0 = in-process); samples are read this many ahead, at least one */
  workers?: number;
  badSample?: 'skip' | 'stop';
  onBadSample?: (file: string, err: BadSampleError) => void;
  /** data-parallel evaluation: rank r of W reads samples r, r + W, ... (every sample once in all) */
  shard?: Shard;
}

/** The split's samples in dataset order, each read while the previous one is being evaluated. */
export async function* iterateEval(
  dataset: Dataset,
  test: TestPipelineConfig,
  o: EvalOptions = {},
): AsyncGenerator<EvalSample> {
  const workers = o.workers ?? 1;
  const executor = makeExecutor(workers, contextFor(dataset, o.numClasses ?? dataset.classes.length, 0, { test }));
  const ahead = Math.max(1, workers);
  const inflight: Promise<SampleResult>[] = [];
  const { rank, worldSize } = o.shard ?? SINGLE;
  const n = dataset.samples.length;
  let dispatched = rank;
  const fill = () => {
    while (dispatched < n && inflight.length < ahead) {
      const i = dispatched;
      dispatched += worldSize;
      const p = executor.run({ kind: 'eval', id: i, index: i, sample: dataset.samples[i] });
      p.catch(() => undefined);
      inflight.push(p);
    }
  };
  try {
    fill();
    while (inflight.length) {
      const r = await inflight.shift()!;
      fill();
      if (r.ok) {
        yield { name: r.name, image: r.image, resized: r.resized ?? r.image, label: r.label };
        continue;
      }
      if (!r.bad) throw fatal(r);
      const err = new BadSampleError(r.file, r.kind, r.message);
      if ((o.badSample ?? 'stop') === 'stop') throw err;
      o.onBadSample?.(r.file, err);
    }
  } finally {
    await executor.close();
  }
}
