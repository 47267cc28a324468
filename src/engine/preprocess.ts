// An RGB image to the normalised 1 x 3 x H x W float tensor a preset expects.
import * as torch from '../torch/index.js';
import type { Normalization } from '../models/segmentor.js';
import type { RgbImage } from '../data/image.js';

/**
 * memoryFormat 'channels_last' gives the layout the fast path runs in; the HWC pixels already are
 * in that order, so it also saves the transposing copy.
 */
export function toInputTensor(img: RgbImage, norm: Normalization, memoryFormat: 'contiguous' | 'channels_last' = 'contiguous'): torch.Tensor {
  return torch.scope(() => {
    const hwc = torch.tensor(img.data, { dtype: 'uint8', shape: [img.height, img.width, 3] });
    let x = hwc.permute(2, 0, 1).unsqueeze(0).float();
    if (norm.bgr) x = x.flip(1);
    // mean and std are given in the order the model sees channels (BGR for caffe models).
    const mean = torch.tensor([...norm.mean]).reshape(1, 3, 1, 1);
    const std = torch.tensor([...norm.std]).reshape(1, 3, 1, 1);
    return x.mul(norm.scale).sub(mean).div(std).contiguous(memoryFormat);
  });
}
