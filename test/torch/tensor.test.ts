// Tensors to and from JS: every dtype, shapes, views, layout, devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

test('typed arrays round-trip for every dtype', () => {
  torch.scope(() => {
    const cases: [torch.DType, ArrayBufferView][] = [
      ['float32', new Float32Array([1.5, -2.25, 3e-8, 1e30])],
      ['float64', new Float64Array([Math.PI, -1e-300, 2 ** 60, 0])],
      ['int64', new BigInt64Array([2n ** 62n, -5n, 0n, 7n])],
      ['int32', new Int32Array([2 ** 31 - 1, -(2 ** 31), 0, 5])],
      ['uint8', new Uint8Array([0, 1, 128, 255])],
      ['bool', new Uint8Array([1, 0, 0, 1])],
      ['int16', new Int16Array([-32768, 32767, 1, 0])],
      ['int8', new Int8Array([-128, 127, 1, 0])],
    ];
    for (const [dtype, data] of cases) {
      const t = torch.tensor(data, { dtype, shape: [2, 2] });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 2]);
      assert.deepEqual(
        Array.from(t.data() as ArrayLike<unknown>),
        Array.from(data as unknown as ArrayLike<unknown>),
        dtype,
      );
    }
  });
});

test('bfloat16 and float16 travel as 16-bit patterns', () => {
  torch.scope(() => {
    // bf16 bit patterns of 1.0, -2.0, 0.5, 3.140625
    const bf = new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x4049]);
    const t = torch.tensor(bf, { dtype: 'bfloat16', shape: [4] });
    assert.deepEqual(t.toArray(), [0x3f80, 0xc000, 0x3f00, 0x4049]);
    assert.deepEqual(t.float().toArray(), [1, -2, 0.5, 3.140625]);
    assert.deepEqual(
      Array.from(torch.tensor([1, -2, 0.5]).to('bfloat16').data() as Uint16Array),
      [0x3f80, 0xc000, 0x3f00],
    );
    // fp16 bit patterns of 1.0 and -2.0
    assert.deepEqual(
      torch
        .tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: 'float16' })
        .float()
        .toArray(),
      [1, -2],
    );
  });
});

test('nested arrays, scalars and factories', () => {
  torch.scope(() => {
    const t = torch.tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.equal(torch.tensor([[true, false]]).dtype, 'bool');
    assert.throws(() => torch.tensor([[1, 2], [3]]), /ragged/);
    assert.deepEqual(torch.arange(5).toArray(), [0, 1, 2, 3, 4]);
    assert.equal(torch.arange(5).dtype, 'int64');
    assert.deepEqual(torch.full([2], 7, { dtype: 'int32' }).toArray(), [7, 7]);
    assert.equal(torch.scalarTensor(3, 'int64').item(), 3);
    torch.manualSeed(3);
    const a = torch.randn([5]).toArray();
    torch.manualSeed(3);
    assert.deepEqual(torch.randn([5]).toArray(), a);
  });
});

test('views and layout: reshape, permute, slice, narrow, contiguous, channels_last', () => {
  torch.scope(() => {
    const x = torch.arange(24).reshape(2, 3, 4);
    assert.deepEqual(x.permute(2, 0, 1).shape, [4, 2, 3]);
    assert.equal(x.permute(2, 0, 1).isContiguous(), false);
    assert.deepEqual(x.slice(2, 1, 4, 2).toArray(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]);
    assert.deepEqual(x.narrow(1, 1, 1).squeeze(1).toArray(), [4, 5, 6, 7, 16, 17, 18, 19]);
    const img = torch.randn([1, 3, 4, 5]);
    const cl = img.contiguous('channels_last');
    assert.equal(cl.isContiguous('channels_last'), true);
    assert.deepEqual(cl.strides(), [60, 1, 15, 3]);
    assert.deepEqual(cl.toArray(), img.toArray()); // data() is always row-major in logical order
  });
});

test('device and dtype conversion; an unavailable device is a clear error', () => {
  torch.scope(() => {
    const x = torch.tensor([1.7, -2.2]);
    assert.equal(x.device, 'cpu');
    assert.deepEqual(x.to('int64').toArray(), [1, -2]);
    assert.equal(torch.zeros([2], { device: 'cpu' }).device, 'cpu');
    if (!torch.buildInfo().cuda) {
      assert.throws(
        () => x.to('cuda:0'),
        (e: Error) => /CUDA|cuda/.test(e.message),
      );
    }
    assert.throws(() => x.to('tpu'), /device|Device|tpu/);
  });
});
