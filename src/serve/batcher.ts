// Dynamic batching in front of the model thread: requests for images of one size that arrive
// while the model is busy (or within maxWaitMs of the first) run as one batch of up to maxBatch.
// The queue is bounded: when maxQueue images already wait, submit() throws QueueFullError at once
// (the server answers 503 with Retry-After) instead of letting latency grow without limit.
import type { RgbImage } from '../data/image.js';
import type { BatchRunner } from './model-thread.js';

export interface BatcherOptions {
  /** the most images in one forward pass */
  maxBatch: number;
  /** the most images waiting (not counting the batch being run) */
  maxQueue: number;
  /** how long the first image of a batch may wait for others when the model is idle */
  maxWaitMs: number;
  /** told each batch's size and forward time (metrics) */
  onBatch?: (size: number, ms: number) => void;
}

export interface BatchedResult {
  labels: Uint8Array | Uint16Array;
  /** time spent waiting in the queue, and in the forward pass of its batch */
  queueMs: number;
  inferMs: number;
  batchSize: number;
}

export class QueueFullError extends Error {
  constructor(readonly maxQueue: number) {
    super(`the server is busy: ${maxQueue} images already wait for the model; retry later`);
    this.name = 'QueueFullError';
  }
}

interface Job {
  img: RgbImage;
  queuedAt: number;
  resolve: (r: BatchedResult) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Batcher {
  private queue: Job[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly runner: BatchRunner,
    private readonly o: BatcherOptions,
  ) {
    if (!(o.maxBatch >= 1 && o.maxQueue >= 0 && o.maxWaitMs >= 0))
      throw new RangeError(`Expected maxBatch >= 1, maxQueue >= 0, maxWaitMs >= 0 but received ${JSON.stringify(o)}`);
  }

  /** images waiting for the model */
  get depth(): number {
    return this.queue.length;
  }

  /**
   * Segments one image in some batch. An abort (client gone, timeout) rejects at once with the
   * signal's reason; while the image still waits it also leaves the queue, and once its batch
   * runs the result is computed but nobody gets it.
   */
  submit(img: RgbImage, signal?: AbortSignal): Promise<BatchedResult> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.queue.length >= this.o.maxQueue) return Promise.reject(new QueueFullError(this.o.maxQueue));
    return new Promise((resolve, reject) => {
      const job: Job = { img, queuedAt: performance.now(), resolve, reject, signal };
      if (signal) {
        job.onAbort = () => {
          const i = this.queue.indexOf(job);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const head = this.queue[0];
    const same = this.queue.filter((j) => sameSize(j.img, head.img)).length;
    const waited = performance.now() - head.queuedAt;
    if (same >= this.o.maxBatch || waited >= this.o.maxWaitMs) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.dispatch();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.schedule();
    }, this.o.maxWaitMs - waited);
  }

  /** The oldest image and up to maxBatch - 1 more of its size, in arrival order, as one batch. */
  private dispatch(): void {
    const head = this.queue[0].img;
    const batch: Job[] = [];
    this.queue = this.queue.filter((j) => {
      if (batch.length < this.o.maxBatch && sameSize(j.img, head)) {
        batch.push(j);
        return false;
      }
      return true;
    });
    const { width, height } = head;
    const hw = width * height;
    const pixels = new Uint8Array(batch.length * hw * 3);
    batch.forEach((j, i) => pixels.set(j.img.data, i * hw * 3));
    const started = performance.now();
    this.running = true;
    this.runner
      .run({ n: batch.length, width, height, pixels })
      .then(
        ({ labels, ms }) => {
          this.o.onBatch?.(batch.length, ms);
          batch.forEach((j, i) =>
            j.resolve({
              labels: labels.subarray(i * hw, (i + 1) * hw),
              queueMs: started - j.queuedAt,
              inferMs: ms,
              batchSize: batch.length,
            }),
          );
        },
        (e: unknown) => batch.forEach((j) => j.reject(e)),
      )
      .finally(() => {
        // An abort during the forward pass has already rejected its job; later ones change nothing.
        for (const j of batch) if (j.onAbort) j.signal!.removeEventListener('abort', j.onAbort);
        this.running = false;
        this.schedule();
      });
  }
}

function abortReason(s: AbortSignal): Error {
  return s.reason instanceof Error ? s.reason : new Error(String(s.reason));
}

function sameSize(a: RgbImage, b: RgbImage): boolean {
  return a.width === b.width && a.height === b.height;
}
