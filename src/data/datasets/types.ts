// What opening a dataset gives: its classes and colours, how its masks become labels, and the
// (image, mask) pairs of one split.
import type { RGB } from '../palettes.js';

export interface Sample {
  /** the image's path under its folder, without the suffix (a prediction's file name) */
  name: string;
  image: string;
  mask: string;
}

export interface Dataset {
  /** the dataset type (voc, cityscapes, ...) */
  name: string;
  root: string;
  /** the split's name as configured (train, val, training, ...) */
  split: string;
  classes: readonly string[];
  palette: readonly RGB[];
  /** mmseg's reduce_zero_label: mask 0 is ignored and classes shift down by one */
  reduceZeroLabel: boolean;
  ignoreIndex: number;
  /** raw mask value -> label, after reduceZeroLabel (Cityscapes label ids -> train ids) */
  labelMap?: Readonly<Record<number, number>>;
  samples: Sample[];
}

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

export interface OpenOptions {
  /**
   * An image without its mask: 'error' (default) stops here naming it; 'keep' lists it anyway so
   * that the loader's badSample policy (skip or stop) decides when it is read.
   */
  missingMask?: 'error' | 'keep';
}
