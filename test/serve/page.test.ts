// The web page in headless Chromium (Debian's, driven by playwright-core): upload an image, and
// the overlay it draws equals the library's overlay pixel for pixel (at opacity 0.5, and the
// colour mask at 1), the legend lists the library's classes and shares, the pointer readout and
// the downloaded label mask match, a bad file shows the server's error; a screenshot is written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode as decodePng } from 'fast-png';
import { chromium, type Browser } from 'playwright-core';
import { load, type Segmenter } from '../../src/index.js';
import { colorize, overlay } from '../../src/data/image.js';
import { ModelThread } from '../../src/serve/model-thread.js';
import { exportPresetOnnx, writeOnnxFile } from '../../src/export/export.js';
import type { BatchRunner } from '../../src/serve/model-thread.js';
import { loadForInference } from '../../src/inference/load.js';
import { findPreset } from '../../src/models/zoo.js';
import { paletteFor, type Palette } from '../../src/data/palettes.js';
import { writeSafetensors } from '../../src/torch/serialize/index.js';
import * as torch from '../../src/torch/index.js';
import { repoRoot, tempDir } from '../helpers/paths.js';
import { MODEL, PRESET, startServer, testImage, weights } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const W = 96,
  H = 64;
let thread: ModelThread;
let seg: Segmenter;
let server: Awaited<ReturnType<typeof startServer>>;
let browser: Browser;
const dir = tempDir('deeplab-page-');

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`bash scripts/setup.sh --python\``);
  [thread, seg, browser] = await Promise.all([
    ModelThread.start(PRESET, { weights: weights() }),
    load(PRESET, { weights: weights() }),
    // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] }),
  ]);
  // dist/web is what scripts/setup.sh builds, whichever folder these tests were compiled to
  server = await startServer({ runner: thread, model: MODEL, webDir: join(repoRoot, 'dist/web') });
});

after(async () => {
  await browser?.close();
  await server?.app.close();
  await thread?.close();
  seg?.dispose();
});

/** The canvas' pixels as RGB. */
const canvasRgb = `(() => {
  const c = document.getElementById('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  return Array.from(d).filter((_, i) => i % 4 !== 3);
})()`;

test('upload in the page: overlay pixels, legend, pointer, download and screenshot match the library', async () => {
  const { png, rgb } = await testImage(W, H, 3);
  const file = join(dir, 'scene.png');
  writeFileSync(file, png);
  const want = await seg.segment(png);
  const color = colorize(want.labels, MODEL.palette.colors);

  const page = await browser.newPage({ acceptDownloads: true });
  await page.goto(server.url);
  await page.waitForSelector('body[data-state=ready]');
  assert.match((await page.textContent('#model'))!, new RegExp(`^${PRESET} · fp32 · 21 classes$`));
  await page.setInputFiles('#file', file);
  await page.waitForSelector('body[data-state=done]', { timeout: 30_000 });

  const shown = await page.evaluate<number[]>(canvasRgb);
  assert.deepEqual(Uint8Array.from(shown), overlay({ width: W, height: H, data: rgb }, color));
  await page.fill('#opacity', '100');
  await page.dispatchEvent('#opacity', 'input');
  assert.deepEqual(Uint8Array.from(await page.evaluate<number[]>(canvasRgb)), color);

  const legend = await page.$$eval('#legend li', (lis: any[]) =>
    lis.map((li) => [
      Number(li.dataset.id),
      li.querySelector('.name').textContent,
      li.querySelector('.share').textContent,
    ]),
  );
  assert.deepEqual(
    legend,
    want.legend.map((l) => [l.id, l.name, `${((100 * l.pixels) / (W * H)).toFixed(1)}%`]),
  );

  // the class under the pointer, at image pixel (10, 20) of the scaled canvas
  const box = (await page.locator('#canvas').boundingBox())!;
  await page.mouse.move(box.x + ((10 + 0.5) * box.width) / W, box.y + ((20 + 0.5) * box.height) / H);
  assert.equal(await page.textContent('#under'), `${MODEL.palette.classes[want.labels[20 * W + 10]]} (x 10, y 20)`);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), 'scene_labels.png');
  const saved = join(dir, 'labels.png');
  await download.saveAs(saved);
  const labels = decodePng(readFileSync(saved));
  assert.deepEqual([labels.width, labels.height, labels.channels], [W, H, 1]);
  assert.deepEqual(new Uint8Array(labels.data), want.labels);

  const shot = await page.screenshot({ path: join(dir, 'page.png'), fullPage: true });
  assert.deepEqual([...shot.subarray(1, 4)], [...Buffer.from('PNG')]);
  await page.close();
});

test('a file that is not an image: the page shows the server JSON error', async () => {
  const file = join(dir, 'notes.png');
  writeFileSync(file, 'not an image at all');
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('body[data-state=ready]');
  await page.setInputFiles('#file', file);
  await page.waitForSelector('body[data-state=error]', { timeout: 30_000 });
  assert.equal(
    await page.textContent('#status'),
    'notes.png: 415 the body is not an image this server reads (JPEG, PNG, WebP, TIFF or GIF)',
  );
  await page.close();
});

/**
 * Exports a preset's weights and checks the page's in-browser labels against the library's. A
 * static export at the test image's size: one trace instead of the three a dynamic export takes.
 */
async function inBrowser(
  preset: string,
  weightsFile: string,
  runner: BatchRunner,
  palette: Palette,
  lib: Segmenter,
): Promise<void> {
  const onnx = join(dir, `${preset}.onnx`);
  const exported = exportPresetOnnx(preset, { weights: weightsFile, size: [H, W] });
  exported.logits.dispose();
  exported.input.dispose();
  writeOnnxFile(onnx, exported.bytes);
  const model = {
    name: preset,
    numClasses: palette.classes.length,
    precision: 'fp32',
    palette,
    normalization: findPreset(preset).normalization,
  };
  const s = await startServer({ runner, model, onnxFile: onnx, webDir: join(repoRoot, 'dist/web') });
  try {
    const { png } = await testImage(W, H, 5);
    const file = join(dir, 'here.png');
    writeFileSync(file, png);
    const want = colorize((await lib.segment(png)).labels, palette.colors);
    const page = await browser.newPage();
    await page.goto(s.url);
    await page.waitForSelector('body[data-state=ready]');
    await page.selectOption('#mode', 'browser');
    await page.fill('#opacity', '100');
    await page.setInputFiles('#file', file);
    await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: 60_000 });
    const status = (await page.textContent('#status'))!;
    // The server's COOP/COEP headers isolate the page, so onnxruntime-web runs on threads.
    assert.equal(await page.evaluate<boolean>('self.crossOriginIsolated'), true);
    const threads = Math.min(4, await page.evaluate<number>('navigator.hardwareConcurrency'));
    assert.match(
      status,
      /^here\.png: 96x64 segmented in \d+ ms in this browser \(onnxruntime-web, wasm, \d+ threads?\)$/,
    );
    assert.ok(status.endsWith(`wasm, ${threads} thread${threads === 1 ? '' : 's'})`), status);
    const have = await page.evaluate<number[]>(canvasRgb);
    let same = 0;
    for (let i = 0; i < W * H; i++)
      same += Number(
        have[i * 3] === want[i * 3] && have[i * 3 + 1] === want[i * 3 + 1] && have[i * 3 + 2] === want[i * 3 + 2],
      );
    assert.ok(same / (W * H) >= 0.999, `${preset}: ${same} of ${W * H} pixels have the library's class`);
    await page.close();
  } finally {
    await s.app.close();
  }
}

test('in-browser mode, deeplabv3_mobilenet_v3_large: the ONNX export in onnxruntime-web labels as the library', async () => {
  await inBrowser(PRESET, weights(), thread, MODEL.palette, seg);
});

test('in-browser mode, deeplabv3_r18-d8 (a ResNet, seeded random weights): labels as the library', async () => {
  const preset = 'deeplabv3_r18-d8';
  const file = join(dir, 'r18.safetensors');
  torch.manualSeed(0);
  const { model } = loadForInference(preset, { fast: false });
  writeSafetensors(file, model.stateDict());
  model.dispose();
  const palette = paletteFor('cityscapes', 19);
  const [r18, lib] = await Promise.all([
    ModelThread.start(preset, { weights: file }),
    load(preset, { weights: file, palette }),
  ]);
  try {
    await inBrowser(preset, file, r18, palette, lib);
  } finally {
    lib.dispose();
    await r18.close();
  }
});
