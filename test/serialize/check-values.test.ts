// nonFiniteTensors and negativeRunningVars: what the weight loader warns about (issue 12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors, tensor, type Tensor } from '../../src/torch/index.js';
import { nonFiniteTensors, negativeRunningVars, readCheckpoint } from '../../src/torch/serialize/index.js';
import { checkpointFixture, disposeAll } from './fixtures.js';

function dict(entries: Record<string, Tensor>): Map<string, Tensor> {
  return new Map(Object.entries(entries));
}

test('nonFiniteTensors counts NaN and Inf per floating tensor, in order; integer tensors are skipped', () => {
  const sd = dict({
    'conv.weight': tensor([1, NaN, Infinity, -Infinity, NaN]),
    'conv.bias': tensor([0, 1]),
    'bn.num_batches_tracked': tensor(new BigInt64Array([3n])),
    'half.w': tensor([1, Infinity]).to('float16'),
    'bf16.w': tensor([NaN]).to('bfloat16'),
    empty: tensor(new Float32Array(0)),
  });
  const before = liveTensors();
  try {
    assert.deepEqual(nonFiniteTensors(sd), [
      { key: 'conv.weight', nan: 2, inf: 2 },
      { key: 'half.w', nan: 0, inf: 1 },
      { key: 'bf16.w', nan: 1, inf: 0 },
    ]);
    assert.equal(liveTensors(), before, 'no temporaries left');
  } finally {
    disposeAll(sd.values());
  }
});

test('negativeRunningVars finds BatchNorm variances below zero, with count and minimum', () => {
  const sd = dict({
    'bn1.running_var': tensor([1, 0.5, 0]),
    'bn2.running_var': tensor([1, -0.25, -3]),
    'bn2.running_mean': tensor([-1, -2]),
    not_running_var: tensor([-1]),
    running_var: tensor([-2]).to('float16'),
  });
  try {
    assert.deepEqual(negativeRunningVars(sd), [
      { key: 'bn2.running_var', count: 2, min: -3 },
      { key: 'running_var', count: 1, min: -2 },
    ]);
  } finally {
    disposeAll(sd.values());
  }
});

test('a real checkpoint has nothing to report', () => {
  const sd = readCheckpoint(checkpointFixture('mmseg_zip.pth')).tensors;
  try {
    assert.deepEqual(nonFiniteTensors(sd), []);
    assert.deepEqual(negativeRunningVars(sd), []);
  } finally {
    disposeAll(sd.values());
  }
});
