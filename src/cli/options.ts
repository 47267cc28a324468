// Option parsers shared by the commands: each names the option and the bad value.
import { InvalidArgumentError } from 'commander';
import { OUTPUT_STRIDES, type OutputStride } from '../models/backbone.js';

export function parseIntOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${v}"`);
  return n;
}

/** 8 or 16 as the sources evaluate, or 32 (no atrous convolution; the demo's model). */
export function parseOutputStride(v: string): OutputStride {
  const os = OUTPUT_STRIDES.find((s) => String(s) === v);
  if (os === undefined)
    throw new InvalidArgumentError(`expected ${OUTPUT_STRIDES.join(', ').replace(/, (\d+)$/, ' or $1')}, got "${v}"`);
  return os;
}

export function parseNonNegativeIntOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError(`expected a non-negative integer, got "${v}"`);
  return n;
}

/** "HxW" (e.g. 512x512) as [height, width]. */
export function parseSizeOption(v: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(v);
  const size = m ? ([Number(m[1]), Number(m[2])] as [number, number]) : null;
  if (!size || size.some((s) => s < 16 || s > 8192))
    throw new InvalidArgumentError(`expected HEIGHTxWIDTH, each from 16 to 8192 (e.g. 512x512), got "${v}"`);
  return size;
}

/** A number from 0 to 1 (a share). */
export function parseShareOption(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1))
    throw new InvalidArgumentError(`expected a number from 0 to 1, got "${v}"`);
  return n;
}

/** A resize factor for the model's input: a number above 0, at most 8. */
export function parseScaleOption(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 8))
    throw new InvalidArgumentError(`expected a number above 0 and at most 8 (e.g. 0.5), got "${v}"`);
  return n;
}
