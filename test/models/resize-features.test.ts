// resizeFeatures: the heads' bilinear resizes. Inference (no gradient) is the plain resize, bit for
// bit, in the map's dtype; a bf16 map that autograd records goes through float32 and comes back
// bf16, with the forward and the gradient of the float32 resize.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { resizeFeatures } from '../../src/models/segmentor.js';

const { F } = torch;
torch.setNumThreads(1);

const up = (t: torch.Tensor, alignCorners: boolean) =>
  F.interpolate(t, { size: [19, 23], mode: 'bilinear', alignCorners });

test('without a gradient: the plain bilinear resize, in the map dtype and layout', () => {
  torch.scope(() => {
    torch.manualSeed(0);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      for (const alignCorners of [false, true]) {
        const x = torch.randn([2, 8, 5, 7]).to(dtype).contiguous('channels_last');
        const y = torch.noGrad(() => resizeFeatures(x, [19, 23], alignCorners));
        assert.equal(y.dtype, dtype);
        assert.deepEqual(y.shape, [2, 8, 19, 23]);
        assert.ok(y.equal(up(x, alignCorners)), `${dtype} alignCorners=${alignCorners}`);
      }
    }
  });
});

test('a bf16 map with a gradient: resized in float32, bf16 out, the float32 gradient', () => {
  torch.scope(() => {
    torch.manualSeed(1);
    const base = torch.randn([2, 8, 4, 4]).to('bfloat16').contiguous('channels_last');
    const x = base.clone().requiresGrad_(true);
    const w = torch.randn([2, 8, 19, 23]);
    const y = resizeFeatures(x, [19, 23], false);
    assert.equal(y.dtype, 'bfloat16');
    y.float().mul(w).sum().backward();

    const ref = base.float().requiresGrad_(true);
    const yRef = up(ref, false);
    yRef.to('bfloat16').float().mul(w).sum().backward();
    assert.ok(y.equal(yRef.to('bfloat16')), 'forward: the float32 resize rounded to bf16');
    assert.equal(x.grad!.dtype, 'bfloat16');
    // the gradient is the float32 resize's, rounded to bf16 once at the cast back
    assert.ok(x.grad!.equal(ref.grad!.to('bfloat16')), 'backward: the float32 gradient rounded to bf16');
  });
});
