// DeepLabV3+ in the layout of jfzhang95/pytorch-deeplab-xception (0-1 RGB with ImageNet
// statistics, as its transforms), and the paper's cascaded DeepLabV3 (our own layout; listed
// here as the other DeepLabV3-family model without a torchvision or mmseg source).
import { IMAGENET_01, type BuildOptions, type Preset } from '../segmentor.js';
import { deeplabv3plusMobileNetV2, deeplabv3plusXception65 } from '../segmentors/deeplabv3plus.js';
import { CascadeDeepLabV3 } from '../segmentors/cascade.js';

const common = {
  source: 'deeplabv3plus',
  numClasses: 21,
  outputStride: 16,
  aux: false,
  normalization: IMAGENET_01,
  dataset: 'voc',
} as const;

function options(name: string, o: BuildOptions = {}) {
  if (o.aux) throw new Error(`${name} has no auxiliary head`);
  return { numClasses: o.numClasses ?? 21, outputStride: o.outputStride ?? 16 };
}

export const V3PLUS_PRESETS: Preset[] = [
  {
    ...common,
    name: 'deeplabv3plus_xception65',
    description:
      'DeepLabV3+, aligned Xception-65 at output stride 16, ASPP 6/12/18, 48-channel decoder (jfzhang95 port keys)',
    build: (o) => {
      const { numClasses, outputStride } = options('deeplabv3plus_xception65', o);
      return deeplabv3plusXception65(numClasses, outputStride);
    },
  },
  {
    ...common,
    name: 'deeplabv3plus_mobilenetv2',
    description: 'DeepLabV3+, MobileNetV2 at output stride 16, ASPP 6/12/18, 48-channel decoder (jfzhang95 port keys)',
    build: (o) => {
      const { numClasses, outputStride } = options('deeplabv3plus_mobilenetv2', o);
      return deeplabv3plusMobileNetV2(numClasses, outputStride);
    },
  },
  {
    ...common,
    source: 'paper', // no published port: a layout of our own, from the paper
    name: 'deeplabv3_cascade_resnet50',
    description:
      'DeepLabV3 cascaded (paper sec. 3.2): ResNet-50 + block5-7 at doubling rates, Multi-Grid (1,2,4); own key layout',
    build: (o) => new CascadeDeepLabV3(options('deeplabv3_cascade_resnet50', o)),
  },
];
