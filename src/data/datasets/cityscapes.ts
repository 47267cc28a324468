// Cityscapes: leftImg8bit/{split}/{city}/*_leftImg8bit.png with gtFine/{split}/{city}/
// *_gtFine_labelTrainIds.png (cityscapesScripts' createTrainIdLabelImgs, mmseg's converter). When a
// split has no labelTrainIds files, the raw *_gtFine_labelIds.png are used and mapped to the 19
// train ids with the official table, so the dataset works straight from the download.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PALETTES } from '../palettes.js';
import { CITYSCAPES_ID_TO_TRAIN_ID } from '../masks.js';
import { findRoot, listFiles, pairSamples, requireDir, requireSamples, type Where } from './common.js';
import type { Dataset, OpenOptions } from './types.js';

const LAYOUT =
  'leftImg8bit/{split}/{city}/*_leftImg8bit.png and gtFine/{split}/{city}/*_gtFine_labelTrainIds.png (or _labelIds.png)';
const TRAIN_IDS = '_gtFine_labelTrainIds.png';
const IDS = '_gtFine_labelIds.png';

export function openCityscapes(rootIn: string, split: string, o: OpenOptions): Dataset {
  const root = findRoot('cityscapes', rootIn, 'leftImg8bit', ['cityscapes']);
  const w: Where = { type: 'cityscapes', root, split };
  const imageDir = join(root, 'leftImg8bit', split);
  const maskDir = join(root, 'gtFine', split);
  requireDir(imageDir, w, LAYOUT);
  requireDir(maskDir, w, LAYOUT);
  const hasTrainIds = existsSync(maskDir) && listFiles(maskDir, TRAIN_IDS).length > 0;
  const spec = {
    imageDir,
    maskDir,
    imageSuffix: '_leftImg8bit.png',
    maskSuffix: hasTrainIds ? TRAIN_IDS : IDS,
    missingMask: o.missingMask ?? 'error',
  };
  return {
    name: 'cityscapes',
    root,
    split,
    classes: PALETTES.cityscapes.classes,
    palette: PALETTES.cityscapes.colors,
    reduceZeroLabel: false,
    ignoreIndex: 255,
    ...(hasTrainIds ? {} : { labelMap: CITYSCAPES_ID_TO_TRAIN_ID }),
    samples: requireSamples(pairSamples(spec, w), w),
  };
}
