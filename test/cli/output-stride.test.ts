// Output stride 32 (the demo's model, trained and evaluated without atrous convolution): the
// library builds it (no dilation in the backbone, ASPP rates 12/24/36 at stride 8 scaled to
// 3/6/9), and predict, serve, export and calibrate accept `--os 32`; other strides are refused by
// name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import sharp from 'sharp';
import * as torch from '../../src/torch/index.js';
import { load } from '../../src/index.js';
import type { ResNet } from '../../src/models/backbones/resnet.js';
import type { EncoderDecoder } from '../../src/models/segmentors/encoder-decoder.js';
import { cliMain, tempDir } from '../helpers/paths.js';

torch.setNumThreads(1);
const run = promisify(execFile);

test('load() at output stride 32: a plain ResNet, ASPP rates 3/6/9, logits at the input size', async () => {
  const seg = await load('deeplabv3plus_r18-d8', { numClasses: 11, outputStride: 32 });
  try {
    const model = seg.model as unknown as EncoderDecoder<ResNet> & { decode_head: { dilations: number[] } };
    assert.equal(model.outputStride, 32);
    assert.deepEqual(model.backbone.rates().flat(), Array<number>(8).fill(1));
    assert.deepEqual(model.decode_head.dilations, [1, 3, 6, 9]);
    const out = seg.segmentImage({ width: 40, height: 36, data: new Uint8Array(40 * 36 * 3).fill(90) });
    assert.deepEqual([out.width, out.height, out.labels.length], [40, 36, 40 * 36]);
  } finally {
    seg.dispose();
  }
});

test('CLI: predict --os 32 runs and writes labels at the image size; --os 12 is refused by name', async () => {
  const dir = tempDir('deeplab-os32-');
  const file = join(dir, 'pic.png');
  await sharp({ create: { width: 40, height: 36, channels: 3, background: { r: 100, g: 150, b: 20 } } })
    .png()
    .toFile(file);
  const env = { ...process.env, DEEPLAB_THREADS: '1' };
  const args = ['predict', file, '--model', 'deeplabv3plus_r18-d8', '--num-classes', '11', '--out', dir];
  const { stdout } = await run(process.execPath, [cliMain, ...args, '--os', '32'], { env });
  assert.match(stdout, /pic\.png: 40x36 in \d+ ms/);
  const meta = await sharp(join(dir, 'pic_labels.png')).metadata();
  assert.deepEqual([meta.width, meta.height], [40, 36]);
  for (const command of ['predict', 'serve', 'export', 'calibrate']) {
    await assert.rejects(
      run(process.execPath, [cliMain, command, '--model', 'deeplabv3plus_r18-d8', '--os', '12'], { env }),
      (e: { stderr: string }) =>
        /option '--os <stride>' argument '12' is invalid. expected 8, 16 or 32, got "12"/.test(e.stderr),
      command,
    );
  }
});
