// Shared by the serialize tests: where the fixtures are, and an exact comparison of a tensor
// with the values PyTorch recorded in expected.json (written by test/fixtures/make_checkpoints.py).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Tensor } from '../../src/torch/index.js';
import { committedFixture } from '../helpers/paths.js';

/** A file of test/fixtures/checkpoints. */
export function checkpointFixture(file: string): string {
  return committedFixture('checkpoints', file);
}

export interface Expected {
  dtype: string;
  shape: number[];
  /** float16/bfloat16 as raw bit patterns, int64 as decimal strings, bool as 0/1. */
  values: (number | string)[];
}
export interface ExpectedFile {
  source: string;
  keys: string[];
  tensors: Record<string, Expected>;
}

export const expected: Record<string, ExpectedFile> = JSON.parse(
  readFileSync(checkpointFixture('expected.json'), 'utf8'),
);

/** Exact equality of dtype, shape and every element (bit patterns for 16-bit floats). */
export function assertTensor(t: Tensor, exp: Expected, what: string): void {
  assert.equal(t.dtype, exp.dtype, `${what}: dtype`);
  assert.deepEqual(t.shape, exp.shape, `${what}: shape`);
  const d = t.data();
  const got = d instanceof BigInt64Array ? Array.from(d, String) : Array.from(d as ArrayLike<number>);
  assert.deepEqual(got, exp.values, `${what}: values`);
}

export function disposeAll(tensors: Iterable<Tensor>): void {
  for (const t of tensors) t.dispose();
}
