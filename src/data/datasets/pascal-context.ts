// PASCAL-Context (VOCdevkit/VOC2010 with SegmentationClassContext written by mmseg's converter):
// 60 classes with 0 = background, or 59 when background is ignored (reduce_zero_label), as mmseg's
// PascalContextDataset and PascalContextDataset59 define them.
import { join } from 'node:path';
import type { RGB } from '../palettes.js';
import { findRoot, pairSamples, readSplitFile, requireDir, requireSamples, type Where } from './common.js';
import type { Dataset, OpenOptions } from './types.js';

const LAYOUT = 'VOC2010/{JPEGImages, SegmentationClassContext, ImageSets/SegmentationContext/{train,val}.txt}';

const CLASSES_59 = [
  'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat', 'book', 'bottle', 'building', 'bus',
  'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog', 'door', 'fence',
  'floor', 'flower', 'food', 'grass', 'ground', 'horse', 'keyboard', 'light', 'motorbike', 'mountain', 'mouse',
  'person', 'plate', 'platform', 'pottedplant', 'road', 'rock', 'sheep', 'shelves', 'sidewalk', 'sign', 'sky', 'snow',
  'sofa', 'table', 'track', 'train', 'tree', 'truck', 'tvmonitor', 'wall', 'water', 'window', 'wood',
];

const PALETTE_60: RGB[] = [
  [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80], [140, 140, 140], [204, 5, 255],
  [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82],
  [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3], [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
  [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220], [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224],
  [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7],
  [255, 122, 8], [0, 255, 20], [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
  [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
  [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
];

export const PASCAL_CONTEXT_60 = { classes: ['background', ...CLASSES_59], colors: PALETTE_60 };
/** mmseg's 59-class palette is the 60-class one without background's grey. */
export const PASCAL_CONTEXT_59 = { classes: CLASSES_59, colors: PALETTE_60.slice(1) };

export function openPascalContext(type: 'pascal-context' | 'pascal-context-59', rootIn: string, split: string, o: OpenOptions): Dataset {
  const root = findRoot(type, rootIn, 'SegmentationClassContext', ['VOC2010', 'VOCdevkit/VOC2010']);
  const w: Where = { type, root, split };
  const imageDir = join(root, 'JPEGImages');
  const maskDir = join(root, 'SegmentationClassContext');
  requireDir(imageDir, w, LAYOUT);
  requireDir(maskDir, w, LAYOUT);
  const file = join(root, 'ImageSets', 'SegmentationContext', `${split}.txt`);
  const stems = readSplitFile(file, w);
  const is59 = type === 'pascal-context-59';
  const meta = is59 ? PASCAL_CONTEXT_59 : PASCAL_CONTEXT_60;
  return {
    name: type,
    root,
    split,
    classes: meta.classes,
    palette: meta.colors,
    reduceZeroLabel: is59,
    ignoreIndex: 255,
    samples: requireSamples(pairSamples({ imageDir, maskDir, imageSuffix: '.jpg', maskSuffix: '.png', stems, splitFile: file, missingMask: o.missingMask ?? 'error' }, w), w),
  };
}
