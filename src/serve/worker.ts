// The model thread of `deeplab serve`: loads the model once and runs batches of same-size images
// through it, so the server's event loop (health checks, uploads, encoding) never waits for a
// forward pass. Started by model-thread.ts with workerData.deeplabServe set; every batch's tensors
// are freed by a scope before its labels go back.
import { parentPort, workerData } from 'node:worker_threads';
import * as torch from '../torch/index.js';
import { loadForInference, type InferenceModelOptions } from '../inference/load.js';
import type { Precision } from '../inference/fast-path.js';
import { logitsAtScale } from '../inference/scaled.js';
import type { Normalization } from '../models/segmentor.js';

export interface WorkerInit {
  deeplabServe: true;
  preset: string;
  options: InferenceModelOptions;
  /** the model runs on images resized by this factor (1: as they come); labels at their size */
  scale?: number;
}

/** What the model thread says once the model is loaded. */
export interface ModelInfo {
  preset: string;
  dataset: string;
  numClasses: number;
  precision: Precision;
  /** tensors loaded from the weights file */
  loadedTensors: number;
  /** how pixels become the model's input (the page's in-browser mode does the same) */
  normalization: Normalization;
}

/** n images of one size, H x W x 3 uint8 each, one after the other. */
export interface BatchRequest {
  id: number;
  n: number;
  width: number;
  height: number;
  pixels: Uint8Array;
}

export type WorkerMessage =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'load-failed'; message: string }
  /** live: this thread's tensors after the batch (the model's own; more would be a leak) */
  | { type: 'done'; id: number; labels: Uint8Array | Uint16Array; ms: number; live: number }
  | { type: 'failed'; id: number; message: string };

const init = workerData as WorkerInit | undefined;
if (parentPort && init?.deeplabServe) serve(init);

function serve(init: WorkerInit): void {
  const port = parentPort!;
  let loaded: ReturnType<typeof loadForInference>;
  try {
    loaded = loadForInference(init.preset, init.options);
  } catch (e) {
    port.postMessage({ type: 'load-failed', message: (e as Error).message } satisfies WorkerMessage);
    return;
  }
  const { preset, model, settings, weights } = loaded;
  const info: ModelInfo = {
    preset: preset.name,
    dataset: preset.dataset,
    numClasses: model.numClasses,
    precision: settings.precision,
    loadedTensors: weights?.loaded ?? 0,
    normalization: preset.normalization,
  };
  port.postMessage({ type: 'ready', info } satisfies WorkerMessage);
  port.on('message', (b: BatchRequest) => {
    const t0 = performance.now();
    try {
      const labels = runBatch(b);
      // Copied (not transferred): the addon's buffers are external memory; labels are 1 byte a pixel.
      const ms = performance.now() - t0;
      port.postMessage({ type: 'done', id: b.id, labels, ms, live: torch.liveTensors() } satisfies WorkerMessage);
    } catch (e) {
      port.postMessage({ type: 'failed', id: b.id, message: (e as Error).message } satisfies WorkerMessage);
    }
  });

  /** N x H x W class indices, as Segmenter computes them for one image. */
  function runBatch(b: BatchRequest): Uint8Array | Uint16Array {
    const n = model.numClasses;
    return torch.scope(() =>
      torch.inferenceMode(() => {
        // Resized one by one as the Segmenter (and the evaluation) resize them, logits back at the size sent.
        const out = logitsAtScale(model, b, preset.normalization, settings, init.scale ?? 1);
        const l = out
          .argmax(1)
          .to(n <= 256 ? 'uint8' : 'int32')
          .data();
        return n <= 256 ? (l as Uint8Array) : Uint16Array.from(l as Int32Array);
      }),
    );
  }
}
