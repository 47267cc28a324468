// PASCAL VOC 2012 (VOCdevkit/VOC2012) and its SBD-augmented training set. mmseg's
// pascal_voc12_aug config trains on a ConcatDataset of (SegmentationClass, train.txt) and
// (SegmentationClassAug, aug.txt). mmseg's voc_aug.py writes aug.txt as SBD minus VOC train and
// val, so the parts are disjoint: 1,464 + 9,118 = the 10,582 "trainaug" images. Validation is the
// 1,449 images of val.txt with SegmentationClass masks.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PALETTES } from '../palettes.js';
import { describe, findRoot, pairSamples, readSplitFile, requireDir, requireSamples, type Where } from './common.js';
import { DatasetError, type Dataset, type OpenOptions } from './types.js';

const LAYOUT =
  'VOC2012/{JPEGImages, SegmentationClass, SegmentationClassAug, ImageSets/Segmentation/{train,val,aug}.txt}';

function vocPart(root: string, maskFolder: string, splitFile: string, w: Where, o: OpenOptions) {
  const imageDir = join(root, 'JPEGImages');
  const maskDir = join(root, maskFolder);
  requireDir(imageDir, w, LAYOUT);
  requireDir(maskDir, w, LAYOUT);
  const file = join(root, 'ImageSets', 'Segmentation', splitFile);
  if (splitFile === 'aug.txt' && !existsSync(file)) {
    throw new DatasetError(
      `${describe(w)}: missing split file ${file} (mmseg's tools/dataset_converters/voc_aug.py writes it with SegmentationClassAug)`,
    );
  }
  return pairSamples(
    {
      imageDir,
      maskDir,
      imageSuffix: '.jpg',
      maskSuffix: '.png',
      stems: readSplitFile(file, w),
      splitFile: file,
      missingMask: o.missingMask ?? 'error',
    },
    w,
  );
}

export function openVoc(
  type: 'voc' | 'voc-aug',
  rootIn: string,
  split: string,
  isTrain: boolean,
  o: OpenOptions,
): Dataset {
  const root = findRoot(type, rootIn, 'JPEGImages', ['VOC2012', 'VOCdevkit/VOC2012']);
  const w: Where = { type, root, split };
  const samples = vocPart(root, 'SegmentationClass', `${split}.txt`, w, o);
  if (type === 'voc-aug' && isTrain) samples.push(...vocPart(root, 'SegmentationClassAug', 'aug.txt', w, o));
  return {
    name: type,
    root,
    split,
    classes: PALETTES.voc.classes,
    palette: PALETTES.voc.colors,
    reduceZeroLabel: false,
    ignoreIndex: 255,
    samples: requireSamples(samples, w),
  };
}
