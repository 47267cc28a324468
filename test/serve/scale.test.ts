// `deeplab serve --scale`: the model thread runs each image of a batch resized by the factor and
// returns labels at the image's size, the same labels as `deeplab predict --scale`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelThread } from '../../src/serve/model-thread.js';
import { load } from '../../src/index.js';
import { generatedFixture } from '../helpers/paths.js';

const PRESET = 'deeplabv3_mobilenet_v3_large';

test("serve --scale 0.5: a batch of two gives the Segmenter's labels at scale 0.5, at the images' size", async () => {
  const weights = generatedFixture('torchvision', `${PRESET}.pth`);
  const [thread, seg] = await Promise.all([ModelThread.start(PRESET, { weights }, 0.5), load(PRESET, { weights })]);
  try {
    const [w, h] = [70, 46];
    const pixels = new Uint8Array(2 * w * h * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + ((i / 211) | 0) * 91) % 256;
    const { labels } = await thread.run({ n: 2, width: w, height: h, pixels });
    assert.equal(labels.length, 2 * w * h);
    for (let k = 0; k < 2; k++) {
      const img = { width: w, height: h, data: pixels.subarray(k * w * h * 3, (k + 1) * w * h * 3) };
      const own = seg.segmentImage(img, { scale: 0.5 }).labels;
      const mine = labels.subarray(k * w * h, (k + 1) * w * h);
      // Equal but for a near tie or two (a batch of two may take other kernels than one image).
      const same = mine.filter((v, i) => v === own[i]).length;
      assert.ok(same >= 0.998 * w * h, `image ${k}: ${same} of ${w * h} labels equal`);
    }
  } finally {
    await thread.close();
    seg.dispose();
  }
});
