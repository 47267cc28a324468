// The ONNX export of every preset against onnxruntime-node, and DeepLab-v2 MSC's dynamic export.
// Skipped in `node --test dist/test/` unless DEEPLAB_ONNX_ALL=1: the ResNet-50/101 presets carry
// 160-340 MB of weights each, which take 10-25 s apiece to build, serialise and load on a busy
// 2-core machine (about 6 minutes in all). Run it after touching src/export:
//   DEEPLAB_ONNX_ALL=1 node --test dist/test/export/onnx-all-presets.js
// test/export/onnx.test.ts (always run) covers the light presets, which use the same operators.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { PRESETS } from '../../src/models/zoo.js';
import { dynamicExportErrors, FP32_TOL, staticExportError } from '../helpers/onnx.js';

torch.setNumThreads(1);
const skip = process.env.DEEPLAB_ONNX_ALL !== '1' && 'every preset: set DEEPLAB_ONNX_ALL=1 (about 7 minutes)';

for (const preset of PRESETS) {
  test(`${preset.name}: static ONNX export agrees with our forward in onnxruntime`, { skip }, async (t) => {
    const err = await staticExportError(preset.name);
    t.diagnostic(`max abs diff / logit scale ${err.toExponential(2)}`);
    assert.ok(err < FP32_TOL, `max abs diff / logit scale = ${err}`);
  });
}

test(
  'deeplabv2_resnet101_msc: a dynamic export agrees at 64x96 and 2 x 77x111 (scaled inputs floor(side*s)+1, max fusion)',
  { skip },
  async (t) => {
    const errors = await dynamicExportErrors('deeplabv2_resnet101_msc', {}, [
      [1, 3, 64, 96],
      [2, 3, 77, 111],
    ]);
    t.diagnostic(`max abs diff / logit scale ${errors.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errors) assert.ok(e < FP32_TOL, `max abs diff / logit scale = ${e}`);
  },
);
