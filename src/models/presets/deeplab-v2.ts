// DeepLab-v2 ResNet-101 in the layout of its PyTorch port (speedinghzl/Pytorch-Deeplab): caffe
// weights, so BGR input minus the caffe mean on 0-255, no scaling. The mean is in the channel
// order the model sees (B, G, R), as the port's IMG_MEAN.
import type { BuildOptions, Normalization, Preset } from '../segmentor.js';
import { DeepLabV2 } from '../segmentors/deeplab-v2.js';
import { DeepLabV2MSC } from '../segmentors/msc.js';

export const CAFFE_BGR: Normalization = {
  scale: 1,
  mean: [104.00699, 116.66877, 122.67891],
  std: [1, 1, 1],
  bgr: true,
};

const common = {
  source: 'deeplab-v2',
  numClasses: 21,
  outputStride: 8,
  aux: false,
  normalization: CAFFE_BGR,
  dataset: 'voc',
} as const;

function options(name: string, o: BuildOptions = {}) {
  if (o.aux) throw new Error(`${name} has no auxiliary head`);
  return { numClasses: o.numClasses ?? 21, outputStride: o.outputStride };
}

export const V2_PRESETS: Preset[] = [
  {
    ...common,
    name: 'deeplabv2_resnet101',
    description:
      'DeepLab-v2, caffe-style ResNet-101 at output stride 8, ASPP-L 6/12/18/24 summed (Pytorch-Deeplab port keys)',
    build: (o) => new DeepLabV2(options('deeplabv2_resnet101', o)),
  },
  {
    ...common,
    name: 'deeplabv2_resnet101_msc',
    description: "DeepLab-v2 ResNet-101 on inputs at 1, 0.75, 0.5 fused by max (the port's MS_Deeplab, keys Scale.*)",
    build: (o) => new DeepLabV2MSC(options('deeplabv2_resnet101_msc', o)),
  },
];
