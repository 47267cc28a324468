// Running a model on a resized copy of the image: for weights trained on resized images (the
// demo's model learned its scenes at half their side, as its config's test resize says), the
// image is resized bilinear as the evaluation's test pipeline resizes it (mmcv rounding), and
// the logits are resized back to the image's size, so labels line up with the pixels given.
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import type { Normalization, Segmentor } from '../models/segmentor.js';
import { resizeBilinear, sizeForScaleFactor } from '../data/geometry.js';
import type { RgbImage } from '../data/image.js';
import { toInputTensor } from '../data/to-tensor.js';
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

/** Logits 1 x C x H x W at the image's own size, from the model run on the image resized by `scale`. */
export function logitsAtScale(
  model: Segmentor,
  img: RgbImage,
  norm: Normalization,
  settings: InferenceSettings,
  scale: number,
): torch.Tensor {
  return torch.scope(() =>
    torch.inferenceMode(() => {
      const x = toInputTensor(rescaled(img, scale), norm, settings.channelsLast ? 'channels_last' : 'contiguous');
      const out = forwardLogits(model, x, settings);
      if (scale === 1) return out;
      return F.interpolate(out, { size: [img.height, img.width], mode: 'bilinear', alignCorners: false });
    }),
  );
}
