// Test-time inference as mmseg runs it: the whole image at once, sliding windows whose raw
// logits are averaged where they overlap, and test-time augmentation (scales x flips) whose
// softmax probabilities are averaged at the original size. Every function runs in inference
// mode inside a scope: only its result survives.
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import type { Normalization, Segmentor } from '../models/segmentor.js';
import type { RgbImage } from '../data/image.js';
import { resizeBilinear, sizeForScaleFactor } from '../data/geometry.js';
import { toInputTensor } from '../data/to-tensor.js';
import { forwardLogits, PLAIN, type InferenceSettings } from './fast-path.js';

export type Pair = [number, number];

/** The device the model's weights are on (inputs must go there). */
export function modelDevice(model: Segmentor): torch.Device {
  const p = model.parameters()[0];
  return p === undefined ? 'cpu' : p.device;
}

/**
 * mmseg's whole_inference: logits N x C x H x W at the input's resolution (float32, contiguous).
 * `settings` says how the model runs (see fast-path.ts; default plain fp32).
 */
export function inferWhole(model: Segmentor, x: torch.Tensor, settings: InferenceSettings = PLAIN): torch.Tensor {
  return forwardLogits(model, x, settings);
}

/**
 * mmseg's slide_inference (EncoderDecoder.slide_inference): windows of `crop` (h, w) every
 * `stride` (h, w); the last window of a row or column is moved back to end at the border; each
 * window's raw logits are added into a zero accumulator and divided by how many windows covered
 * each pixel. A window is fed as it is: when the image is smaller than the crop, the window is
 * the whole (smaller) image, unpadded, exactly as mmseg ("the small patch will be used to decode
 * without padding").
 */
export function inferSlide(
  model: Segmentor,
  x: torch.Tensor,
  crop: Pair,
  stride: Pair,
  numClasses: number,
  settings: InferenceSettings = PLAIN,
): torch.Tensor {
  const [hCrop, wCrop] = crop;
  const [hStride, wStride] = stride;
  for (const [name, v] of [
    ['crop', crop],
    ['stride', stride],
  ] as const) {
    if (!v.every((d) => Number.isInteger(d) && d > 0))
      throw new RangeError(`inferSlide: expected ${name} as two positive integers (h, w) but received [${v}]`);
  }
  const [n, , H, W] = x.shape;
  const hGrids = Math.floor(Math.max(H - hCrop + hStride - 1, 0) / hStride) + 1;
  const wGrids = Math.floor(Math.max(W - wCrop + wStride - 1, 0) / wStride) + 1;
  return torch.scope(() =>
    torch.inferenceMode(() => {
      const sum = torch.zeros([n, numClasses, H, W], { device: x.device });
      const count = torch.zeros([n, 1, H, W], { device: x.device });
      for (let i = 0; i < hGrids; i++) {
        for (let j = 0; j < wGrids; j++) {
          const y2 = Math.min(i * hStride + hCrop, H);
          const x2 = Math.min(j * wStride + wCrop, W);
          const y1 = Math.max(y2 - hCrop, 0);
          const x1 = Math.max(x2 - wCrop, 0);
          // One window's activations are freed before the next runs.
          torch.scope(() => {
            const logits = forwardLogits(model, x.slice(2, y1, y2).slice(3, x1, x2), settings);
            if (logits.size(1) !== numClasses)
              throw new RangeError(
                `inferSlide: the model gives ${logits.size(1)} classes, expected numClasses = ${numClasses}`,
              );
            // Adding into the window's view equals mmseg's `preds += F.pad(window)`: the pad adds zeros.
            sum.slice(2, y1, y2).slice(3, x1, x2).add_(logits);
            count.slice(2, y1, y2).slice(3, x1, x2).add_(1);
          });
        }
      }
      return sum.div(count);
    }),
  );
}

export interface AugOptions {
  /** ratios of the original image size (mmseg 1.x tta_pipeline) */
  scales: readonly number[];
  /** also run each scale mirrored left-right */
  flip: boolean;
  mode: 'whole' | 'slide';
  crop?: Pair;
  stride?: Pair;
  /** the model's align_corners, used to resize logits back to the original size (mmseg postprocess) */
  alignCorners?: boolean;
  /** how the model runs (default plain fp32 NCHW) */
  settings?: InferenceSettings;
}

/** Logits of one view, un-flipped and resized to (H, W): mmseg's inference + postprocess_result. */
export function inferView(
  model: Segmentor,
  x: torch.Tensor,
  o: Omit<AugOptions, 'scales' | 'flip'> & { flip?: boolean; size: Pair },
): torch.Tensor {
  return torch.scope(() =>
    torch.inferenceMode(() => {
      const input = o.flip ? x.flip(3) : x;
      let logits: torch.Tensor;
      if (o.mode === 'slide') {
        if (!o.crop || !o.stride) throw new TypeError('slide inference needs crop and stride (h, w)');
        logits = inferSlide(model, input, o.crop, o.stride, model.numClasses, o.settings);
      } else {
        logits = inferWhole(model, input, o.settings);
      }
      if (o.flip) logits = logits.flip(3);
      const [h, w] = o.size;
      if (logits.size(2) === h && logits.size(3) === w) return logits;
      return F.interpolate(logits, { size: [h, w], mode: 'bilinear', alignCorners: o.alignCorners ?? false });
    }),
  );
}

/**
 * Test-time augmentation as mmseg's SegTTAModel: for each ratio the ORIGINAL image is resized
 * (mmcv rounding, see sizeForScaleFactor), optionally mirrored, run whole or slide; logits are
 * un-mirrored, resized bilinear to the original size and softmaxed; the probabilities of all
 * views are averaged. Returns the mean probabilities, 1 x C x H x W.
 */
export function inferAug(model: Segmentor, img: RgbImage, norm: Normalization, o: AugOptions): torch.Tensor {
  if (o.scales.length === 0) throw new RangeError('inferAug: expected at least one scale');
  const device = modelDevice(model);
  const size: Pair = [img.height, img.width];
  return torch.scope(() =>
    torch.inferenceMode(() => {
      let sum: torch.Tensor | null = null;
      let views = 0;
      for (const r of o.scales) {
        const [width, height] = sizeForScaleFactor(img.width, img.height, r);
        const x0 = toInputTensor(
          resizeBilinear(img, width, height),
          norm,
          o.settings?.channelsLast ? 'channels_last' : 'contiguous',
        );
        const x = device === 'cpu' ? x0 : x0.to(device);
        for (const flip of o.flip ? [false, true] : [false]) {
          // Scoped per view so each view's logits are freed once added.
          const next: torch.Tensor = torch.scope(() => {
            const probs = F.softmax(inferView(model, x, { ...o, flip, size }), 1);
            return sum === null ? probs : sum.add(probs);
          });
          sum?.dispose();
          sum = next;
          views++;
        }
        x.dispose();
        x0.dispose();
      }
      return sum!.div(views);
    }),
  );
}
