// Evaluation over a dataset, as mmseg's test loop: each image through the test pipeline (the
// resize the data layer's workers applied, or the TTA views of the original), logits resized bilinear to the original
// size and argmaxed (postprocess_result), compared with the original-size label in one
// dataset-level confusion matrix.
import * as torch from '../torch/index.js';
import type { Normalization, Segmentor } from '../models/segmentor.js';
import type { EvalConfig } from '../config/schema.js';
import type { EvalSample } from '../data/loader.js';
import { toInputTensor } from '../data/to-tensor.js';
import { inferAug, inferView, modelDevice } from '../inference/modes.js';
import type { InferenceSettings } from '../inference/fast-path.js';
import { ConfusionMatrix, computeMetrics, type Metrics } from './metrics.js';

export interface EvalProgress {
  done: number;
  name: string;
  seconds: number;
}

export interface EvaluateOptions {
  norm: Normalization;
  numClasses: number;
  ignoreIndex: number;
  eval: EvalConfig;
  /** multi-scale + flip test (eval.tta) instead of the single test pipeline */
  augTest: boolean;
  /** the model's align_corners, for resizing logits to the original size */
  alignCorners?: boolean;
  onProgress?: (p: EvalProgress) => void;
  /** how the model runs (prepareForInference's settings; default plain fp32 NCHW) */
  settings?: InferenceSettings;
}

export interface EvaluateResult {
  metrics: Metrics;
  /** the caller owns it: dispose() when done (or merge it with other workers' first) */
  confusion: ConfusionMatrix;
  seconds: number;
}

/**
 * Predicted labels for one sample, 1 x H x W int64 at the original size: from the test-resized
 * image, or from the original's TTA views.
 */
export function predictLabels(
  model: Segmentor,
  s: Pick<EvalSample, 'image' | 'resized'>,
  o: Omit<EvaluateOptions, 'numClasses' | 'ignoreIndex' | 'onProgress'>,
): torch.Tensor {
  const image = s.image;
  const { mode, crop, stride, tta } = o.eval;
  if (mode === 'slide' && (!crop || !stride))
    throw new TypeError('evaluation mode "slide" needs eval.crop and eval.stride (h, w)');
  return torch.scope(() =>
    torch.inferenceMode(() => {
      if (o.augTest) {
        return inferAug(model, image, o.norm, {
          scales: tta.scales,
          flip: tta.flip,
          mode,
          crop,
          stride,
          alignCorners: o.alignCorners,
          settings: o.settings,
        }).argmax(1);
      }
      const device = modelDevice(model);
      const x0 = toInputTensor(s.resized, o.norm, o.settings?.channelsLast ? 'channels_last' : 'contiguous');
      const x = device === 'cpu' ? x0 : x0.to(device);
      return inferView(model, x, {
        mode,
        crop,
        stride,
        alignCorners: o.alignCorners,
        size: [image.height, image.width],
        settings: o.settings,
      }).argmax(1);
    }),
  );
}

export async function evaluate(
  model: Segmentor,
  samples: AsyncIterable<EvalSample>,
  o: EvaluateOptions,
): Promise<EvaluateResult> {
  const start = performance.now();
  const seconds = () => (performance.now() - start) / 1000;
  const confusion = new ConfusionMatrix(o.numClasses, o.ignoreIndex);
  let done = 0;
  try {
    for await (const s of samples) {
      const { width, height } = s.image;
      if (s.label.length !== width * height) {
        throw new RangeError(
          `${s.name}: the label has ${s.label.length} pixels but the image is ${width}x${height} (${width * height}); labels must be at the original size`,
        );
      }
      torch.scope(() => confusion.update(predictLabels(model, s, o), s.label));
      done++;
      o.onProgress?.({ done, name: s.name, seconds: seconds() });
    }
  } catch (e) {
    confusion.dispose();
    throw e;
  }
  return { metrics: computeMetrics(confusion, o.eval.metric), confusion, seconds: seconds() };
}
