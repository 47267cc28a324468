// No input from JS can abort the process: the addon turns every misuse into a JS Error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';

test('fromBuffer checks byte length, dtype and shape', () => {
  assert.throws(() => native.fromBuffer(new Float32Array(3), 'float32', [2, 2]), /needs 16 bytes, the buffer has 12/);
  assert.throws(() => native.fromBuffer(new Float32Array(4), 'complex7', [4]), /unknown dtype 'complex7'/);
  assert.throws(() => native.fromBuffer(new Float32Array(4), 'float32', [-1, -4]), /negative dimension/);
  assert.throws(() => native.fromBuffer('hello' as never, 'float32', [1]), /expected a TypedArray/);
});

test('operators reject bad arguments with messages, never a crash', () => {
  torch.scope(() => {
    const x = torch.ones([2, 3]);
    const add = torch.op('aten::add', 'Tensor');
    assert.throws(() => native.call(add, x.handle, 'not a tensor', 1), /tensor/);
    assert.throws(() => native.call(add, x.handle), /argument 'other' is required/);
    assert.throws(() => native.call(add, x.handle, x.handle, 1, 2, 3), /expected at most 3 arguments/);
    assert.throws(() => native.call(99999, x.handle), /unknown operator id/);
    assert.throws(() => torch.op('aten::no_such_op', ''), /no_such_op/);
    assert.throws(() => native.call(add, 123456789, x.handle, 1), /tensor used after dispose|expected a tensor/);
    assert.throws(() => x.select(0, 5), /out of range|index 5/);
    assert.throws(() => x.reshape(4, 4), /shape '\[4, 4\]' is invalid for input of size 6/);
    assert.throws(
      () => torch.F.conv2d(torch.ones([1, 3, 8, 8]), torch.ones([4, 2, 3, 3])),
      /expected input\[1, 3, 8, 8\] to have 2 channels/,
    );
    assert.throws(() => x.item(), /6 elements cannot be converted/);
    // Every native function called with nothing at all.
    for (const [name, fn] of Object.entries(native)) {
      if (
        typeof fn !== 'function' ||
        [
          'liveCount',
          'buildInfo',
          'getNumThreads',
          'isGradEnabled',
          'isInferenceMode',
          'inferenceEnter',
          'inferenceExit',
          'getRngState',
        ].includes(name)
      )
        continue;
      try {
        (fn as (...a: unknown[]) => unknown)();
      } catch (e) {
        assert.ok(e instanceof Error, `${name} threw a non-Error`);
      }
    }
    // Still working afterwards.
    assert.equal(x.sum().item(), 6);
  });
});
