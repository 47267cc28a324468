// ADE20K as the SceneParsing challenge ships it: ADEChallengeData2016/images/{training,validation}
// (*.jpg) and annotations/{training,validation} (*.png, 0 = "other", classes 1..150), hence
// reduce_zero_label as in mmseg's ADE20KDataset.
import { join } from 'node:path';
import { PALETTES } from '../palettes.js';
import { findRoot, pairSamples, requireDir, requireSamples, type Where } from './common.js';
import type { Dataset, OpenOptions } from './types.js';

const LAYOUT = 'ADEChallengeData2016/{images,annotations}/{training,validation}';
const FOLDERS: Record<string, string> = { train: 'training', val: 'validation' };

export function openAde20k(rootIn: string, split: string, o: OpenOptions): Dataset {
  const root = findRoot('ade20k', rootIn, 'images', ['ADEChallengeData2016', 'ade/ADEChallengeData2016']);
  const w: Where = { type: 'ade20k', root, split };
  const folder = FOLDERS[split] ?? split;
  const imageDir = join(root, 'images', folder);
  const maskDir = join(root, 'annotations', folder);
  requireDir(imageDir, w, LAYOUT);
  requireDir(maskDir, w, LAYOUT);
  return {
    name: 'ade20k',
    root,
    split,
    classes: PALETTES.ade20k.classes,
    palette: PALETTES.ade20k.colors,
    reduceZeroLabel: true,
    ignoreIndex: 255,
    samples: requireSamples(
      pairSamples(
        { imageDir, maskDir, imageSuffix: '.jpg', maskSuffix: '.png', missingMask: o.missingMask ?? 'error' },
        w,
      ),
      w,
    ),
  };
}
