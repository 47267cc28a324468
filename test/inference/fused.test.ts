// Fused, prepacked convolutions (src/inference/fuse.ts, native/src/fused_conv.cc): on every
// torchvision preset the fused fp32 model gives the unfused (folded, channels_last) model's
// logits to 1e-4 of their scale, call after call (the residual adds written into block inputs touch
// nothing else); an epilogue is kept on the bf16 path, where the packed conv
// steps aside; packed weights are freed with the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { findPreset } from '../../src/index.js';
import { forwardLogits, prepareForInference } from '../../src/inference/fast-path.js';
import { fuseForInference, isFused, unfuse } from '../../src/inference/fuse.js';

// Small images: one thread avoids waiting on a second one at every operator on a busy machine.
torch.setNumThreads(1);
const available = torch.packedConvAvailable();
const skip = available ? false : 'this build of the addon has no fused convolution (libdnnl-dev)';

function relErr(a: torch.Tensor, b: torch.Tensor): number {
  return torch.scope(() => a.sub(b).abs().max().item() / b.abs().max().item());
}

for (const [preset, residuals] of [
  ['deeplabv3_resnet50', 16],
  ['deeplabv3_resnet101', 33],
  ['deeplabv3_mobilenet_v3_large', 10],
  ['deeplabv3_r18-d8', 8],
] as const) {
  test(`${preset}: fused fp32 logits equal the unfused ones within 1e-4 of their scale`, { skip }, () => {
    torch.manualSeed(0);
    using model = findPreset(preset).build({ aux: false });
    const { settings, fuse } = prepareForInference(model, { verifyFold: false, fuse: false });
    assert.equal(fuse, null);
    torch.manualSeed(3);
    using x = torch.randn([1, 3, 96, 128]);
    using plain = forwardLogits(model, x, settings);
    // The built-in check (a 128x128 forward each way) once, on the cheapest preset.
    const report = fuseForInference(model, { verify: preset === 'deeplabv3_mobilenet_v3_large' });
    if (preset === 'deeplabv3_mobilenet_v3_large') assert.ok(report.verifyError < 1e-4, String(report.verifyError));
    assert.ok(isFused(model));
    assert.equal(report.residuals, residuals);
    assert.ok(report.packed > 25 && report.activations > 20, JSON.stringify(report));
    using x0 = x.clone();
    using fused = forwardLogits(model, x, settings);
    const err = relErr(fused, plain);
    assert.ok(err < 1e-4, `relative error ${err}`);
    // Blocks after the first of a stage write their residual add into their input (no copy): that
    // touches only block outputs, so the model's input is unchanged and a second call is identical.
    using second = forwardLogits(model, x, settings);
    assert.ok(relErr(second, fused) === 0 && relErr(x, x0) === 0);
    // Something really changed: the packed convs ran (unfused again, the same logits).
    unfuse(model);
    assert.ok(!isFused(model));
    using again = forwardLogits(model, x, settings);
    assert.ok(relErr(again, plain) === 0);
  });
}

test('prepareForInference fuses fp32 by default; bf16 on a fused model equals bf16 unfused', { skip }, () => {
  torch.manualSeed(0);
  using fusedModel = findPreset('deeplabv3_mobilenet_v3_large').build({ aux: false });
  const p = prepareForInference(fusedModel, { verifyFold: false });
  assert.ok(p.fuse && p.fuse.packed > 50, JSON.stringify(p.fuse));
  torch.manualSeed(0);
  using plainModel = findPreset('deeplabv3_mobilenet_v3_large').build({ aux: false });
  const q = prepareForInference(plainModel, { fuse: false, verifyFold: false });
  torch.manualSeed(4);
  using x = torch.randn([1, 3, 64, 96]);
  const bf16 = { ...p.settings, precision: 'bf16' as const };
  using a = forwardLogits(fusedModel, x, bf16);
  using b = forwardLogits(plainModel, x, { ...q.settings, precision: 'bf16' });
  assert.ok(relErr(a, b) < 1e-6, `bf16 fused vs unfused: ${relErr(a, b)}`);
  // bf16 preparation packs nothing
  torch.manualSeed(0);
  using bfModel = findPreset('deeplabv3_mobilenet_v3_large').build({ aux: false });
  assert.equal(prepareForInference(bfModel, { precision: 'bf16', verifyFold: false }).fuse, null);
  assert.ok(!isFused(bfModel));
});

test('a packed conv is freed with its model and refuses use afterwards', { skip }, () => {
  const conv = new torch.nn.Conv2d(16, 8, 3, { padding: 1 });
  conv.eval();
  conv.packed = new torch.PackedConv2d(conv.weight, conv.bias, {
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
    act: 'relu',
  });
  const packed = conv.packed;
  torch.inferenceMode(() => {
    using x = torch.randn([1, 16, 5, 7]).contiguous('channels_last');
    using y = packed.run(x)!;
    using ref = torch.F.relu(torch.F.conv2d(x, conv.weight, conv.bias, { padding: 1 }));
    assert.ok(relErr(y, ref) < 1e-5);
    conv.dispose();
    assert.equal(conv.packed, null);
    assert.throws(() => packed.run(x), /used after dispose/);
  });
});

// 3x3 "same" convs run on oneDNN's Winograd kernel, dilated ones as their d x d phases batched
// (native/src/fused_conv.cc, winogradEntry): every phase must land where it belongs. Batch 2,
// sizes the dilation divides, and one it does not (the direct path), against F.conv2d.
test('packed 3x3 convs (Winograd, dilated through space-to-batch) equal F.conv2d', { skip }, () => {
  torch.manualSeed(3);
  for (const [d, h, w] of [
    [1, 12, 20],
    [2, 16, 24],
    [4, 32, 16],
    [3, 10, 14],
  ]) {
    torch.scope(() => {
      const weight = torch.randn([48, 32, 3, 3]);
      const bias = torch.randn([48]);
      const x = torch.randn([2, 32, h, w]).contiguous('channels_last');
      const o = {
        stride: [1, 1] as [number, number],
        padding: [d, d] as [number, number],
        dilation: [d, d] as [number, number],
        groups: 1,
      };
      const packed = new torch.PackedConv2d(weight, bias, { ...o, act: 'relu' });
      try {
        const y = torch.inferenceMode(() => packed.run(x, null)!);
        const want = torch.F.relu(torch.F.conv2d(x, weight, bias, o));
        const err = y.sub(want).abs().max().item() / want.abs().max().item();
        assert.deepEqual(y.shape, [2, 48, h, w]);
        assert.ok(err < 1e-5, `dilation ${d}, ${h}x${w}: max abs diff / max abs ${err}`);
      } finally {
        packed.dispose();
      }
    });
  }
});

// Multi-scale inference alternates input sizes: a packed conv packs Winograd weights for the first
// 4 sizes it sees and runs later ones on the direct kernel. Ten sizes, twice round, so both kinds
// of entry are made and then reused; every call must still equal F.conv2d.
test('a packed 3x3 conv run at ten alternating sizes stays equal to F.conv2d', { skip }, () => {
  torch.manualSeed(4);
  torch.scope(() => {
    const weight = torch.randn([32, 16, 3, 3]);
    const bias = torch.randn([32]);
    const o = { stride: [1, 1] as [number, number], padding: [2, 2] as [number, number] };
    const conv = { ...o, dilation: [2, 2] as [number, number], groups: 1 };
    const packed = new torch.PackedConv2d(weight, bias, { ...conv, act: null });
    try {
      for (let round = 0; round < 2; round++) {
        for (let k = 0; k < 10; k++) {
          const [h, w] = [8 + 2 * k, 12 + 2 * k];
          torch.scope(() => {
            const x = torch.randn([1, 16, h, w]).contiguous('channels_last');
            const y = torch.inferenceMode(() => packed.run(x, null)!);
            const want = torch.F.conv2d(x, weight, bias, conv);
            const err = y.sub(want).abs().max().item() / want.abs().max().item();
            assert.ok(err < 1e-5, `round ${round}, ${h}x${w}: max abs diff / max abs ${err}`);
          });
        }
      }
    } finally {
      packed.dispose();
    }
  });
});

// int8 packed convs (native/src/fused_conv.cc): the input goes to u8 with its scale and zero point
// (x / scale rounded, plus the zero point, saturated), the weights to 8 bits per output channel
// (7 without VNNI), and the sums come back through the scales. So the result must be F.conv2d on
// those same rounded values, up to float rounding of the rescale. The zero point must come off
// every sum, also where the kernel reads padding (which stands for x = 0); cases with signed input
// (zero point inside 0-255), never-negative input (0), strides, dilation, groups (depthwise) and a
// residual add with ReLU.
test(
  'packed int8 convs equal F.conv2d on the quantized input and weights (u8 with a zero point, padding, groups)',
  { skip },
  () => {
    torch.manualSeed(5);
    const wmax = torch.int8UsesVnni() ? 127 : 63;
    const cases = [
      { ic: 32, oc: 48, k: 3, stride: 1, pad: 1, dil: 1, groups: 1, lo: -0.375, hi: 6, residual: false },
      { ic: 32, oc: 32, k: 3, stride: 2, pad: 2, dil: 2, groups: 1, lo: -3, hi: 2, residual: true },
      { ic: 64, oc: 64, k: 5, stride: 1, pad: 2, dil: 1, groups: 64, lo: -0.375, hi: 9, residual: false },
      { ic: 48, oc: 16, k: 1, stride: 1, pad: 0, dil: 1, groups: 1, lo: -4, hi: 1, residual: true },
      { ic: 32, oc: 32, k: 3, stride: 1, pad: 1, dil: 1, groups: 1, lo: 0, hi: 5, residual: false },
    ];
    for (const c of cases) {
      torch.scope(() => {
        const what = `${c.ic}->${c.oc} k${c.k} s${c.stride} p${c.pad} d${c.dil} g${c.groups} [${c.lo}, ${c.hi}]`;
        const weight = torch.randn([c.oc, c.ic / c.groups, c.k, c.k]);
        const bias = torch.randn([c.oc]);
        // values over [lo, hi] and a little beyond (saturated), as calibrated ranges see
        const x = torch
          .rand([2, c.ic, 13, 17])
          .mul(1.1 * (c.hi - c.lo))
          .add(c.lo * 1.05)
          .contiguous('channels_last');
        const scale = (c.hi - c.lo) / 255;
        const zeroPoint = Math.round(-c.lo / scale);
        const o = {
          stride: [c.stride, c.stride] as [number, number],
          padding: [c.pad, c.pad] as [number, number],
          dilation: [c.dil, c.dil] as [number, number],
          groups: c.groups,
        };
        const act = c.residual ? ('relu' as const) : null;
        const packed = new torch.PackedConv2d(weight, bias, { ...o, act, int8: { inputScale: scale, zeroPoint } });
        try {
          const xq = x
            .mul(1 / scale)
            .round()
            .add(zeroPoint)
            .clamp(0, 255)
            .sub(zeroPoint)
            .mul(scale);
          const ws = weight.abs().amax([1, 2, 3], true).div(wmax);
          const wq = weight.div(ws).round().clamp(-wmax, wmax).mul(ws);
          let want = torch.F.conv2d(xq, wq, bias, o);
          const residual = c.residual ? torch.randn(want.shape).contiguous('channels_last') : null;
          if (residual) want = torch.F.relu(want.add(residual));
          const y = torch.inferenceMode(() => packed.run(x, residual)!);
          assert.deepEqual(y.shape, want.shape, what);
          const err = y.sub(want).abs().max().item() / want.abs().max().item();
          assert.ok(err < 1e-5, `${what}: max abs diff / max abs ${err}`);
          // and the quantization is not a no-op: the float conv differs by more
          let plain = torch.F.conv2d(x, weight, bias, o);
          if (residual) plain = torch.F.relu(plain.add(residual));
          const off = y.sub(plain).abs().max().item() / plain.abs().max().item();
          assert.ok(off > 10 * err, `${what}: int8 ${off} from fp32, ${err} from the quantized reference`);
        } finally {
          packed.dispose();
        }
      });
    }
  },
);
