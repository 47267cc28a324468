// PASCAL-Context (VOCdevkit/VOC2010 with SegmentationClassContext written by mmseg's converter):
// 60 classes with 0 = background, or 59 when background is ignored (reduce_zero_label), as mmseg's
// PascalContextDataset and PascalContextDataset59 define them.
import { join } from 'node:path';
import { PALETTES, type RGB } from '../palettes.js';
import { findRoot, pairSamples, readSplitFile, requireDir, requireSamples, type Where } from './common.js';
import type { Dataset, OpenOptions } from './types.js';

const LAYOUT = 'VOC2010/{JPEGImages, SegmentationClassContext, ImageSets/SegmentationContext/{train,val}.txt}';

const CLASSES_59 = [
  'aeroplane',
  'bag',
  'bed',
  'bedclothes',
  'bench',
  'bicycle',
  'bird',
  'boat',
  'book',
  'bottle',
  'building',
  'bus',
  'cabinet',
  'car',
  'cat',
  'ceiling',
  'chair',
  'cloth',
  'computer',
  'cow',
  'cup',
  'curtain',
  'dog',
  'door',
  'fence',
  'floor',
  'flower',
  'food',
  'grass',
  'ground',
  'horse',
  'keyboard',
  'light',
  'motorbike',
  'mountain',
  'mouse',
  'person',
  'plate',
  'platform',
  'pottedplant',
  'road',
  'rock',
  'sheep',
  'shelves',
  'sidewalk',
  'sign',
  'sky',
  'snow',
  'sofa',
  'table',
  'track',
  'train',
  'tree',
  'truck',
  'tvmonitor',
  'wall',
  'water',
  'window',
  'wood',
];

// mmseg's Pascal Context palette is the first 60 colours of its ADE20K palette.
const PALETTE_60: RGB[] = PALETTES.ade20k.colors.slice(0, 60);

export const PASCAL_CONTEXT_60 = { classes: ['background', ...CLASSES_59], colors: PALETTE_60 };
/** mmseg's 59-class palette is the 60-class one without background's grey. */
export const PASCAL_CONTEXT_59 = { classes: CLASSES_59, colors: PALETTE_60.slice(1) };

export function openPascalContext(
  type: 'pascal-context' | 'pascal-context-59',
  rootIn: string,
  split: string,
  o: OpenOptions,
): Dataset {
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
    samples: requireSamples(
      pairSamples(
        {
          imageDir,
          maskDir,
          imageSuffix: '.jpg',
          maskSuffix: '.png',
          stems,
          splitFile: file,
          missingMask: o.missingMask ?? 'error',
        },
        w,
      ),
      w,
    ),
  };
}
