// Decoded pixels to the normalised float tensor a preset expects: x' = (x * scale - mean) / std
// per channel, channels flipped to BGR for caffe models. One place for training batches and
// inference images, so the two can never normalise differently.
import * as torch from '../torch/index.js';
import type { Normalization } from '../models/segmentor.js';
import type { RgbImage } from './image.js';
import type { Batch } from './loader.js';

type MemoryFormat = 'contiguous' | 'channels_last';

/** N x H x W x 3 uint8 pixels -> N x 3 x H x W normalised float32 in `memoryFormat`. */
export function pixelsToTensor(
  pixels: Uint8Array,
  n: number,
  height: number,
  width: number,
  norm: Normalization,
  memoryFormat: MemoryFormat = 'contiguous',
): torch.Tensor {
  return torch.scope(() => {
    const nhwc = torch.tensor(pixels, { dtype: 'uint8', shape: [n, height, width, 3] });
    let x = nhwc.permute(0, 3, 1, 2).float();
    if (norm.bgr) x = x.flip(1);
    // mean and std are given in the order the model sees channels (BGR for caffe models).
    const mean = torch.tensor([...norm.mean]).reshape(1, 3, 1, 1);
    const std = torch.tensor([...norm.std]).reshape(1, 3, 1, 1);
    return x.mul(norm.scale).sub(mean).div(std).contiguous(memoryFormat);
  });
}

/**
 * One image as a 1 x 3 x H x W batch. 'channels_last' is the layout the inference fast path runs
 * in; the HWC pixels already are in that order, so it also saves the transposing copy.
 */
export function toInputTensor(
  img: RgbImage,
  norm: Normalization,
  memoryFormat: MemoryFormat = 'contiguous',
): torch.Tensor {
  return pixelsToTensor(img.data, 1, img.height, img.width, norm, memoryFormat);
}

/** A training batch (uint8 NHWC) as the model's input. */
export function batchToTensor(b: Batch, norm: Normalization, channelsLast = false): torch.Tensor {
  const n = b.images.length / (b.height * b.width * 3);
  return pixelsToTensor(b.images, n, b.height, b.width, norm, channelsLast ? 'channels_last' : 'contiguous');
}
