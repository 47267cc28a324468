// The two places where F.conv2d does not hand a convolution to aten::conv2d as given:
//  - dilated (>= 8) depthwise convolutions on channels_last CPU input without gradients go to our
//    kernel (native/src/depthwise.cc), checked here against aten::conv2d on NCHW, fp32 and bf16;
//  - "same" atrous convolutions whose taps only ever read padding are narrowed to the taps that
//    can reach the input, checked against the full convolution, forward and gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F, type Tensor } from '../../src/torch/index.js';
import { callT, op } from '../../src/torch/tensor.js';
import { assertClose } from '../helpers/compare.js';

torch.setNumThreads(2);

type Pair = [number, number];
const atenConv = (
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  stride: Pair,
  padding: Pair,
  dilation: Pair,
  groups: number,
) => callT(op('aten::conv2d'), x.handle, w.handle, b?.handle ?? null, stride, padding, dilation, groups);
const ownDepthwise = (x: Tensor, w: Tensor, b: Tensor | null, stride: Pair, padding: Pair, dilation: Pair) =>
  callT(op('deeplab::depthwise_conv2d_nhwc'), x.handle, w.handle, b?.handle ?? null, stride, padding, dilation);

interface DwCase {
  shape: [number, number, number, number];
  k: Pair;
  stride: Pair;
  padding: Pair;
  dilation: Pair;
  bias: boolean;
}
// Channel counts that exercise the 64-wide blocks, the 16-wide remainder and single channels.
const DW_CASES: DwCase[] = [
  { shape: [2, 100, 23, 31], k: [3, 3], stride: [1, 1], padding: [12, 12], dilation: [12, 12], bias: true },
  { shape: [1, 256, 16, 20], k: [3, 3], stride: [1, 1], padding: [36, 36], dilation: [36, 36], bias: true },
  { shape: [1, 70, 19, 17], k: [3, 3], stride: [2, 2], padding: [8, 8], dilation: [8, 8], bias: false },
  { shape: [1, 33, 20, 26], k: [5, 3], stride: [1, 2], padding: [15, 9], dilation: [9, 8], bias: true },
  { shape: [3, 7, 20, 20], k: [3, 3], stride: [1, 1], padding: [0, 0], dilation: [8, 8], bias: true },
];

test('our dilated depthwise kernel equals aten::conv2d (fp32, NCHW reference) and F.conv2d uses it for channels_last input without grad', () => {
  torch.manualSeed(0);
  for (const c of DW_CASES) {
    torch.scope(() => {
      const [, C] = c.shape;
      const x = torch.randn(c.shape);
      const w = torch.randn([C, 1, ...c.k]);
      const b = c.bias ? torch.randn([C]) : null;
      const what = `C${C} ${c.shape.slice(2).join('x')} k${c.k} s${c.stride} p${c.padding} d${c.dilation}`;
      const expected = atenConv(x, w, b, c.stride, c.padding, c.dilation, C);
      const xc = x.contiguous('channels_last');
      const mine = ownDepthwise(xc, w, b, c.stride, c.padding, c.dilation);
      assert.ok(mine.isContiguous('channels_last'), `${what}: output channels_last`);
      assertClose(mine, expected, what, { rtol: 1e-5, atol: 1e-5, scaleAtol: true });
      // F.conv2d in inference mode takes our kernel: the same bits as calling it directly.
      const viaF = torch.inferenceMode(() =>
        F.conv2d(xc, w, b, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: C }),
      );
      assert.deepEqual(viaF.toArray(), mine.toArray(), `${what}: F.conv2d went to the depthwise kernel`);
    });
  }
});

test('bf16: under CPU autocast our kernel takes float32 input and returns bf16 like aten::conv2d; bf16 input works directly', () => {
  torch.manualSeed(1);
  torch.scope(() => {
    const x = torch.randn([1, 80, 18, 22]);
    const w = torch.randn([80, 1, 3, 3]);
    const b = torch.randn([80]);
    const expected = atenConv(x, w, b, [1, 1], [12, 12], [12, 12], 80);
    const xc = x.contiguous('channels_last');
    const auto = torch.inferenceMode(() =>
      torch.autocast('cpu', 'bfloat16', () => F.conv2d(xc, w, b, { padding: 12, dilation: 12, groups: 80 })),
    );
    assert.equal(auto.dtype, 'bfloat16');
    assertClose(auto.to('float32'), expected, 'autocast', { rtol: 2e-2, atol: 2e-2, scaleAtol: true });
    const direct = ownDepthwise(xc.to('bfloat16'), w, b, [1, 1], [12, 12], [12, 12]);
    assert.equal(direct.dtype, 'bfloat16');
    assert.deepEqual(direct.toArray(), auto.toArray(), 'autocast casts the input to bf16, nothing else');
  });
});

test('F.conv2d keeps aten::conv2d where gradients are wanted or the input is NCHW, with the same results', () => {
  torch.manualSeed(2);
  torch.scope(() => {
    const x = torch.randn([1, 40, 15, 15]).contiguous('channels_last').requiresGrad_();
    const w = torch.randn([40, 1, 3, 3]).requiresGrad_();
    const y = F.conv2d(x, w, null, { padding: 9, dilation: 9, groups: 40 });
    assert.ok(y.requiresGrad, 'autograd graph kept');
    y.sum().backward();
    const x2 = x.detach().contiguous().requiresGrad_();
    const w2 = w.detach().requiresGrad_();
    atenConv(x2, w2, null, [1, 1], [9, 9], [9, 9], 40).sum().backward();
    assertClose(x.grad!, x2.grad!, 'input gradient', { scaleAtol: true });
    assertClose(w.grad!, w2.grad!, 'weight gradient', { rtol: 1e-4, atol: 1e-4, scaleAtol: true });
    const nchw = torch.inferenceMode(() =>
      F.conv2d(x2.detach(), w2.detach(), null, { padding: 9, dilation: 9, groups: 40 }),
    );
    assert.ok(nchw.isContiguous() && !nchw.isContiguous('channels_last'), 'NCHW in, NCHW out (aten)');
  });
});

test('the depthwise kernel rejects what it cannot run, naming the problem', () => {
  torch.scope(() => {
    const x = torch.randn([1, 8, 10, 10]).contiguous('channels_last');
    assert.throws(
      () => ownDepthwise(x, torch.randn([8, 2, 3, 3]), null, [1, 1], [8, 8], [8, 8]),
      /weight of shape \[8, 2, 3, 3\] is not depthwise for 8 input channels/,
    );
    assert.throws(
      () => ownDepthwise(x.to('float64'), torch.randn([8, 1, 3, 3]), null, [1, 1], [8, 8], [8, 8]),
      /input must be float32 or bfloat16, got Double/,
    );
    assert.throws(
      () => ownDepthwise(x, torch.randn([8, 1, 3, 3]), torch.randn([5]), [1, 1], [8, 8], [8, 8]),
      /bias has 5 values for 8 channels/,
    );
    assert.throws(
      () => ownDepthwise(x, torch.randn([8, 1, 3, 3]), null, [1, 1], [0, 0], [8, 8]),
      /too small for the kernel/,
    );
  });
});

test('atrous taps that only read padding are dropped: same outputs and gradients as the full convolution', () => {
  torch.manualSeed(3);
  // [input H, W, kernel, dilation]: both directions trimmed (1x1), one direction (1x3 / 3x1), a
  // 5x5 kernel down to 3 taps, and one where every tap can reach the input (nothing trimmed).
  const cases: Array<[number, number, number, Pair]> = [
    [14, 14, 3, [36, 36]],
    [12, 30, 3, [24, 24]],
    [25, 9, 3, [10, 10]],
    [20, 20, 5, [12, 12]],
    [30, 30, 3, [12, 12]],
  ];
  for (const [h, w, k, d] of cases) {
    torch.scope(() => {
      const what = `${h}x${w} k${k} d${d}`;
      const x = torch.randn([2, 6, h, w]).requiresGrad_();
      const wt = torch.randn([5, 6, k, k]).requiresGrad_();
      const b = torch.randn([5]).requiresGrad_();
      const pad: Pair = [(d[0] * (k - 1)) / 2, (d[1] * (k - 1)) / 2];
      const g = torch.randn([2, 5, h, w]);
      const y = F.conv2d(x, wt, b, { padding: pad, dilation: d });
      y.mul(g).sum().backward();
      const x2 = x.detach().requiresGrad_(),
        w2 = wt.detach().requiresGrad_(),
        b2 = b.detach().requiresGrad_();
      const y2 = atenConv(x2, w2, b2, [1, 1], pad, d, 1);
      y2.mul(g).sum().backward();
      assertClose(y, y2, `${what} output`, { scaleAtol: true });
      assertClose(x.grad!, x2.grad!, `${what} input gradient`, { scaleAtol: true });
      assertClose(wt.grad!, w2.grad!, `${what} weight gradient`, { rtol: 1e-4, atol: 1e-4, scaleAtol: true });
      assertClose(b.grad!, b2.grad!, `${what} bias gradient`, { rtol: 1e-4, atol: 1e-4, scaleAtol: true });
      // In channels_last inference too (the fast path's case).
      const fast = torch.inferenceMode(() =>
        F.conv2d(x.detach().contiguous('channels_last'), wt.detach().contiguous('channels_last'), b.detach(), {
          padding: pad,
          dilation: d,
        }),
      );
      assertClose(fast, y2.detach(), `${what} channels_last`, { scaleAtol: true });
      // zero-sized batches still run (shape-only forwards)
      assert.deepEqual(F.conv2d(torch.zeros([0, 6, h, w]), wt.detach(), null, { padding: pad, dilation: d }).shape, [
        0,
        5,
        h,
        w,
      ]);
    });
  }
});
