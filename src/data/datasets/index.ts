// Opening a dataset from the config: a plain switch over the official layouts.
import { resolve } from 'node:path';
import type { Config, DatasetConfig } from '../../config/schema.js';
import { openAde20k } from './ade20k.js';
import { openCityscapes } from './cityscapes.js';
import { openCocoStuff } from './coco-stuff.js';
import { openCustom } from './custom.js';
import { openPascalContext } from './pascal-context.js';
import { openVoc } from './voc.js';
import type { Dataset, OpenOptions } from './types.js';

export type { Dataset, Sample, OpenOptions } from './types.js';
export { DatasetError } from './types.js';
export { PASCAL_CONTEXT_59, PASCAL_CONTEXT_60 } from './pascal-context.js';
export { COCO_STUFF_CLASSES, COCO_STUFF_PALETTE } from './coco-stuff.js';
export { CustomMeta, readCustomMeta } from './custom.js';

/** One split of a dataset: its classes, palette, label rules and (image, mask) pairs. */
export function openDataset(
  cfg: Pick<DatasetConfig, 'type' | 'root'> & Partial<DatasetConfig>,
  split: 'train' | 'val',
  o: OpenOptions = {},
): Dataset {
  const name = split === 'train' ? (cfg.trainSplit ?? 'train') : (cfg.valSplit ?? 'val');
  const root = resolve(cfg.root);
  const isTrain = split === 'train';
  switch (cfg.type) {
    case 'voc':
    case 'voc-aug':
      return openVoc(cfg.type, root, name, isTrain, o);
    case 'cityscapes':
      return openCityscapes(root, name, o);
    case 'ade20k':
      return openAde20k(root, name, o);
    case 'pascal-context':
    case 'pascal-context-59':
      return openPascalContext(cfg.type, root, name, o);
    case 'coco-stuff164k':
    case 'coco-stuff10k':
      return openCocoStuff(cfg.type, root, name, o);
    case 'custom':
      return openCustom(root, cfg.meta, name, o);
  }
}

/** The config's split; a run that skips bad samples keeps samples whose mask is missing (and skips them when read). */
export function openSplit(cfg: Config, split: 'train' | 'val'): Dataset {
  return openDataset(cfg.data.dataset, split, { missingMask: cfg.train.badSample === 'skip' ? 'keep' : 'error' });
}
