// torchvision's DeepLabV3 builders. Their published weights (COCO with the 20 VOC classes) carry
// an auxiliary head, so aux is on by default; inputs are 0-1 RGB with ImageNet statistics.
import { IMAGENET_01, type BuildOptions, type Preset } from '../segmentor.js';
import { deeplabv3MobileNetV3Large, deeplabv3ResNet } from '../segmentors/torchvision.js';

const common = {
  source: 'torchvision',
  numClasses: 21,
  aux: true,
  normalization: IMAGENET_01,
  dataset: 'voc',
} as const;

const opts = (o: BuildOptions = {}) => ({
  numClasses: o.numClasses ?? 21,
  aux: o.aux ?? true,
  outputStride: o.outputStride,
});

export const TORCHVISION_PRESETS: Preset[] = [
  {
    ...common,
    name: 'deeplabv3_resnet50',
    description: 'DeepLabV3, ResNet-50 at output stride 8, ASPP rates 12/24/36, FCN aux head on layer3',
    outputStride: 8,
    build: (o) => deeplabv3ResNet(50, opts(o)),
  },
  {
    ...common,
    name: 'deeplabv3_resnet101',
    description: 'DeepLabV3, ResNet-101 at output stride 8, ASPP rates 12/24/36, FCN aux head on layer3',
    outputStride: 8,
    build: (o) => deeplabv3ResNet(101, opts(o)),
  },
  {
    ...common,
    name: 'deeplabv3_mobilenet_v3_large',
    description: 'DeepLabV3, MobileNetV3-Large at output stride 16, ASPP rates 12/24/36, FCN aux head on the C2 block',
    outputStride: 16,
    build: (o) => deeplabv3MobileNetV3Large(opts(o)),
  },
];
