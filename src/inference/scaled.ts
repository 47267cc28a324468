// Running a model on a resized copy of the image: for weights trained on resized images (a
// config whose data.test.scale resizes them), the image is resized bilinear as the evaluation's
// test pipeline resizes it (mmcv rounding), and the logits are resized back to the image's size,
// so labels line up with the pixels given.
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import type { Normalization, Segmentor } from '../models/segmentor.js';
import { resizeBilinear, sizeForScaleFactor } from '../data/geometry.js';
import type { RgbImage } from '../data/image.js';
import { pixelsToTensor } from '../data/to-tensor.js';
import { forwardLogits, type InferenceSettings } from './fast-path.js';

/** Checks a `--scale` factor: a positive finite number. */
export function checkScale(scale: number): number {
  if (!Number.isFinite(scale) || scale <= 0) throw new RangeError(`scale: expected a number > 0 but received ${scale}`);
  return scale;
}

/** The image resized by `scale` (itself when 1). */
export function rescaled(img: RgbImage, scale: number): RgbImage {
  if (checkScale(scale) === 1) return img;
  const [w, h] = sizeForScaleFactor(img.width, img.height, scale);
  return resizeBilinear(img, w, h);
}

/** n images of one size, H x W x 3 uint8 each, one after the other. */
export interface PixelBatch {
  n: number;
  width: number;
  height: number;
  pixels: Uint8Array;
}

/** The batch's images, each resized by `scale` as `rescaled` resizes one, one after the other. */
function rescaledBatch(b: PixelBatch, scale: number): PixelBatch {
  const one = b.width * b.height * 3;
  const imgs = Array.from({ length: b.n }, (_, i) =>
    rescaled({ width: b.width, height: b.height, data: b.pixels.subarray(i * one, (i + 1) * one) }, scale),
  );
  const { width, height } = imgs[0];
  const pixels = new Uint8Array(b.n * width * height * 3);
  imgs.forEach((img, i) => pixels.set(img.data, i * img.data.length));
  return { n: b.n, width, height, pixels };
}

/**
 * Logits n x C x H x W at the images' own size, from the model run on the images resized by
 * `scale` (the Segmenter passes one image, the serve worker a batch).
 */
export function logitsAtScale(
  model: Segmentor,
  b: PixelBatch,
  norm: Normalization,
  settings: InferenceSettings,
  scale: number,
): torch.Tensor {
  return torch.scope(() =>
    torch.inferenceMode(() => {
      const r = checkScale(scale) === 1 ? b : rescaledBatch(b, scale);
      const layout = settings.channelsLast ? 'channels_last' : 'contiguous';
      const out = forwardLogits(model, pixelsToTensor(r.pixels, r.n, r.height, r.width, norm, layout), settings);
      if (scale === 1) return out;
      return F.interpolate(out, { size: [b.height, b.width], mode: 'bilinear', alignCorners: false });
    }),
  );
}
