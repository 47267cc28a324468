// What every backbone is to the segmentors, and the atrous-rate rules they share.
//  - forward() returns the stage outputs, shallow to deep, indexed by stage; only the stages in
//    `outIndices` (mmseg's out_indices, torchvision's return_layers) are there: the backbone frees
//    every other stage output as soon as the next stage has read it, so a segmentor never frees
//    anything by hand.
//  - the output stride (8, 16, 32) is changed at run time by rewriting strides, dilations and
//    paddings (Conv2d.setAtrous), never weights; heads rescale their rates with scaleRates().
import type { Tensor, nn } from '../torch/index.js';

export type OutputStride = 8 | 16 | 32;
export const OUTPUT_STRIDES: readonly OutputStride[] = [8, 16, 32];

/** Stage outputs by stage index; stages not in outIndices are absent. */
export type Features = readonly (Tensor | undefined)[];

export interface Backbone extends nn.Module {
  /** channels of each stage's output, shallow to deep */
  readonly channels: readonly number[];
  /** the stages forward() returns; set by the segmentor that owns the backbone (default: all) */
  outIndices: readonly number[];
  readonly outputStride: OutputStride;
  setOutputStride(os: OutputStride): void;
  forward(x: Tensor): Features;
}

/** The output of stage `i`, which the segmentor must have put in outIndices. */
export function featureAt(features: Features, i: number): Tensor {
  const f = features[i];
  if (!f) throw new RangeError(`backbone stage ${i} was not returned: add it to the backbone's outIndices`);
  return f;
}

/** Checks an output stride against the ones a model supports. */
export function checkOutputStride(
  os: number,
  who: string,
  allowed: readonly number[] = OUTPUT_STRIDES,
): asserts os is OutputStride {
  if (!allowed.includes(os))
    throw new RangeError(
      `${who}: output stride must be ${allowed.join(', ').replace(/, (\d+)$/, ' or $1')} (got ${os})`,
    );
}

/**
 * Atrous rates set for output stride `from`, at stride `to`: the field of view in input pixels
 * stays the same (12, 24, 36 at 8 are 6, 12, 18 at 16). A rate of 1 (a 1x1 branch) stays 1.
 */
export function scaleRates(rates: readonly number[], from: OutputStride, to: OutputStride, who: string): number[] {
  const out = rates.map((r) => (r === 1 ? 1 : (r * from) / to));
  if (out.some((r) => !Number.isInteger(r)))
    throw new RangeError(`${who}: atrous rates [${rates}] at output stride ${from} do not scale to stride ${to}`);
  return out;
}

/** Sets one rate per conv (padding follows: each keeps its map's size). */
export function setRates(convs: readonly nn.Conv2d[], rates: readonly number[], who: string): void {
  if (rates.length !== convs.length)
    throw new RangeError(`${who}: expected ${convs.length} atrous rates (got [${rates}])`);
  convs.forEach((c, i) => c.setAtrous(rates[i]));
}
