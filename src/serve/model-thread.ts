// The server's handle on its model thread (worker.ts): start it, wait for the model to load, run
// batches, stop it. One batch at a time: the thread's forward pass already uses every core
// (LibTorch's intra-op threads), so a second concurrent batch would only slow both.
import { Worker } from 'node:worker_threads';
import type { InferenceModelOptions } from '../inference/load.js';
import type { BatchRequest, ModelInfo, WorkerInit, WorkerMessage } from './worker.js';

export type { ModelInfo } from './worker.js';

/** Runs one batch of same-size images; what the batcher needs (tests wrap it). */
export interface BatchRunner {
  /** whether it can still run batches (default: yes) */
  readonly alive?: boolean;
  /** the model thread's live tensors after its last batch, when known */
  readonly liveTensors?: number;
  run(b: Omit<BatchRequest, 'id'>): Promise<{ labels: Uint8Array | Uint16Array; ms: number }>;
}

interface Pending {
  resolve: (r: { labels: Uint8Array | Uint16Array; ms: number }) => void;
  reject: (e: Error) => void;
}

export class ModelThread implements BatchRunner {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private exited: Error | null = null;
  /** the model thread's live tensors after its last batch (a leak check: it must not grow) */
  liveTensors = 0;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type !== 'done' && m.type !== 'failed') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'done') {
        this.liveTensors = m.live;
        p.resolve({ labels: m.labels, ms: m.ms });
      } else p.reject(new Error(m.message));
    });
    const fail = (e: Error) => {
      this.exited = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the model thread exited (code ${code})`)));
  }

  /** Starts the thread and resolves once the model is loaded (rejects with the loader's error). */
  static start(preset: string, options: InferenceModelOptions, scale = 1): Promise<ModelThread> {
    const workerData: WorkerInit = { deeplabServe: true, preset, options, scale };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the model thread exited (code ${code}) while loading`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (m: WorkerMessage) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve(new ModelThread(worker, m.info));
        else {
          reject(new Error(m.type === 'load-failed' ? m.message : `unexpected first message ${m.type}`));
          void worker.terminate();
        }
      });
    });
  }

  /** false once the thread has died (readiness then answers 503) */
  get alive(): boolean {
    return this.exited === null;
  }

  run(b: Omit<BatchRequest, 'id'>): Promise<{ labels: Uint8Array | Uint16Array; ms: number }> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...b, id } satisfies BatchRequest);
    });
  }

  /** Stops the thread (its tensors are freed with it). */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
