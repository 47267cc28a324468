// The web page in headless Chromium (Debian's, driven by playwright-core): upload an image, and
// the overlay it draws equals the library's overlay pixel for pixel (at opacity 0.5, and the
// colour mask at 1), the legend lists the library's classes and shares, the pointer readout and
// the downloaded label mask match, a bad file shows the server's error; a screenshot is written.
// The in-browser mode (the ONNX export in onnxruntime-web) on two presets labels as the library
// on WASM, in plain Chromium (no WebGPU adapter: the page says so), and on WebGPU, in a second
// Chromium with --enable-unsafe-webgpu (SwiftShader's adapter); its fallbacks to WASM are forced.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode as decodePng } from 'fast-png';
import { chromium, type Browser, type Page } from 'playwright-core';
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

/** Chromium's flag for WebGPU here: with it, headless Chromium 156 offers SwiftShader's adapter. */
const WEBGPU_ARGS = ['--enable-unsafe-webgpu'];
let gpuBrowser: Promise<Browser> | undefined;
/** A second Chromium, with WebGPU (launched by the first test that needs it). */
const withWebGpu = () =>
  (gpuBrowser ??= chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', ...WEBGPU_ARGS],
  }));
after(async () => {
  await (await gpuBrowser)?.close();
});

/** What the page's navigator.gpu offers: the adapter's vendor and architecture, or null. */
const adapterOf = `(async () => {
  const a = await navigator.gpu?.requestAdapter();
  return a ? { vendor: a.info.vendor, architecture: a.info.architecture } : null;
})()`;

const onnxFiles = new Map<string, string>();
/** A static ONNX export of a preset at the test image's size (one trace instead of a dynamic export's three). */
function exportOnce(preset: string, weightsFile: string): string {
  const key = `${preset} ${weightsFile}`;
  if (!onnxFiles.has(key)) {
    const onnx = join(dir, `${preset}-${onnxFiles.size}.onnx`);
    const exported = exportPresetOnnx(preset, { weights: weightsFile, size: [H, W] });
    exported.logits.dispose();
    exported.input.dispose();
    writeOnnxFile(onnx, exported.bytes);
    onnxFiles.set(key, onnx);
  }
  return onnxFiles.get(key)!;
}

interface InBrowser {
  preset: string;
  weightsFile: string;
  runner: BatchRunner;
  palette: Palette;
  lib: Segmenter;
  browser: Browser;
  /** the page's query string, e.g. '?ep=wasm' */
  query?: string;
  /** the status line's provider part, after "(onnxruntime-web, " */
  provider: RegExp;
  /** the provider the page reports in body[data-ep] */
  ep: 'webgpu' | 'wasm';
  /** set up the page before it loads (e.g. requests that fail) */
  prepare?: (page: Page) => Promise<unknown>;
  timeout?: number;
}

/**
 * Serves a preset's export and checks the page's in-browser labels against the library's: the
 * provider the page says it ran on, and at least 99.9% of the pixels with the library's class.
 */
async function inBrowser(t: TestContext, o: InBrowser): Promise<string> {
  const model = {
    name: o.preset,
    numClasses: o.palette.classes.length,
    precision: 'fp32',
    palette: o.palette,
    normalization: findPreset(o.preset).normalization,
  };
  const onnxFile = exportOnce(o.preset, o.weightsFile);
  const s = await startServer({ runner: o.runner, model, onnxFile, webDir: join(repoRoot, 'dist/web') });
  const page = await o.browser.newPage();
  try {
    const { png } = await testImage(W, H, 5);
    const file = join(dir, 'here.png');
    writeFileSync(file, png);
    const want = colorize((await o.lib.segment(png)).labels, o.palette.colors);
    await o.prepare?.(page);
    await page.goto(s.url + (o.query ?? ''));
    await page.waitForSelector('body[data-state=ready]');
    await page.selectOption('#mode', 'browser');
    await page.fill('#opacity', '100');
    await page.setInputFiles('#file', file);
    await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: o.timeout ?? 60_000 });
    const status = (await page.textContent('#status'))!;
    assert.equal(await page.getAttribute('body', 'data-state'), 'done', status);
    // The server's COOP/COEP headers isolate the page, so onnxruntime-web can run on threads.
    assert.equal(await page.evaluate<boolean>('self.crossOriginIsolated'), true);
    const m = /^here\.png: 96x64 segmented in \d+ ms in this browser \(onnxruntime-web, (.*)\)$/.exec(status);
    assert.ok(m, status);
    assert.match(m[1], o.provider);
    assert.equal(await page.getAttribute('body', 'data-ep'), o.ep);
    const have = await page.evaluate<number[]>(canvasRgb);
    let same = 0;
    for (let i = 0; i < W * H; i++)
      same += Number(
        have[i * 3] === want[i * 3] && have[i * 3 + 1] === want[i * 3 + 1] && have[i * 3 + 2] === want[i * 3 + 2],
      );
    assert.ok(same / (W * H) >= 0.999, `${o.preset}: ${same} of ${W * H} pixels have the library's class`);
    t.diagnostic(`${o.preset}: ${m[1]}; ${same} of ${W * H} pixels have the library's class`);
    return m[1];
  } finally {
    await page.close();
    await s.app.close();
  }
}

/** The suite's model: deeplabv3_mobilenet_v3_large, its model thread and library segmenter. */
const mobilenet = () => ({
  preset: PRESET,
  weightsFile: weights(),
  runner: thread,
  palette: MODEL.palette,
  lib: seg,
});

/** "wasm, N threads" for this browser: min(4, cores), the page's choice when cross-origin isolated. */
async function wasmThreads(b: Browser): Promise<string> {
  const page = await b.newPage();
  const n = Math.min(4, await page.evaluate<number>('navigator.hardwareConcurrency'));
  await page.close();
  return `wasm, ${n} thread${n === 1 ? '' : 's'}`;
}
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('in-browser mode, deeplabv3_mobilenet_v3_large, no WebGPU adapter: wasm on threads, says so, labels as the library', async (t) => {
  // Chromium without --enable-unsafe-webgpu: navigator.gpu is there, its adapter is null
  const page = await browser.newPage();
  await page.goto(server.url);
  assert.equal(await page.evaluate(adapterOf), null);
  await page.close();
  const wasm = await wasmThreads(browser);
  await inBrowser(t, {
    ...mobilenet(),
    browser,
    provider: new RegExp(`^${escape(wasm)}; no WebGPU adapter$`),
    ep: 'wasm',
  });
});

test('in-browser mode, ?ep=webgpu without an adapter: the page says so and does not run', async () => {
  const s = await startServer({
    runner: thread,
    model: MODEL,
    onnxFile: exportOnce(PRESET, weights()),
    webDir: join(repoRoot, 'dist/web'),
  });
  const page = await browser.newPage();
  try {
    const { png } = await testImage(W, H, 5);
    const file = join(dir, 'forced.png');
    writeFileSync(file, png);
    await page.goto(`${s.url}?ep=webgpu`);
    await page.waitForSelector('body[data-state=ready]');
    await page.selectOption('#mode', 'browser');
    await page.setInputFiles('#file', file);
    await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: 60_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'error');
    assert.equal(
      await page.textContent('#status'),
      'forced.png: WebGPU (forced by ?ep=webgpu): this browser offers no WebGPU adapter',
    );
  } finally {
    await page.close();
    await s.app.close();
  }
});

test(`in-browser mode with WebGPU (Chromium ${WEBGPU_ARGS.join(' ')}, SwiftShader), deeplabv3_mobilenet_v3_large: webgpu, labels as the library`, async (t) => {
  const b = await withWebGpu();
  const page = await b.newPage();
  await page.goto(server.url);
  const adapter = await page.evaluate<{ vendor: string; architecture: string } | null>(adapterOf);
  await page.close();
  assert.ok(adapter, `Chromium with ${WEBGPU_ARGS.join(' ')} offers no WebGPU adapter`);
  const provider = await inBrowser(t, {
    ...mobilenet(),
    browser: b,
    provider: new RegExp(`^webgpu on ${escape(`${adapter.vendor} ${adapter.architecture}`)}$`),
    ep: 'webgpu',
    timeout: 120_000,
  });
  assert.equal(provider, 'webgpu on google swiftshader');
});

test('in-browser mode with WebGPU, ?ep=wasm: the page runs on wasm when asked', async (t) => {
  const b = await withWebGpu();
  await inBrowser(t, {
    ...mobilenet(),
    browser: b,
    query: '?ep=wasm',
    provider: new RegExp(`^${escape(await wasmThreads(b))}$`),
    ep: 'wasm',
  });
});

test('in-browser mode with WebGPU whose build fails to load: falls back to wasm, says why, labels as the library', async (t) => {
  const b = await withWebGpu();
  await inBrowser(t, {
    ...mobilenet(),
    browser: b,
    // the WebGPU build's WebAssembly is missing: its session cannot be created
    prepare: (page) => page.route('**/ort/ort-wasm-simd-threaded.asyncify.wasm', (r) => r.fulfill({ status: 404 })),
    provider: new RegExp(
      `^${escape(await wasmThreads(b))}; WebGPU failed: no available backend found\\. ERR: \\[webgpu\\] .*fetching of the wasm failed`,
    ),
    ep: 'wasm',
  });
});

test('in-browser mode, onnxruntime-web drops its WebGPU provider (no adapter for it): the page does not claim webgpu', async (t) => {
  const b = await withWebGpu();
  await inBrowser(t, {
    ...mobilenet(),
    browser: b,
    // The page's own requestAdapter() gets SwiftShader's adapter, onnxruntime-web's gets null: it
    // then removes "webgpu" from the session's providers with a console warning and runs on CPU.
    prepare: (page) =>
      page.addInitScript(() => {
        const gpu = (globalThis as any).GPU.prototype;
        const real = gpu.requestAdapter;
        let calls = 0;
        gpu.requestAdapter = function (...a: unknown[]) {
          return calls++ === 0 ? real.apply(this, a) : Promise.resolve(null);
        };
      }),
    provider: new RegExp(
      `^${escape(await wasmThreads(b))}; WebGPU failed: onnxruntime-web did not start its WebGPU provider \\(its console warning says why\\)$`,
    ),
    ep: 'wasm',
  });
});

/** deeplabv3_r18-d8 with seeded random weights (written as safetensors), served and loaded. */
async function r18(): Promise<{
  preset: string;
  weightsFile: string;
  runner: ModelThread;
  palette: Palette;
  lib: Segmenter;
}> {
  const preset = 'deeplabv3_r18-d8';
  const file = join(dir, 'r18.safetensors');
  if (!existsSync(file)) {
    torch.manualSeed(0);
    const { model } = loadForInference(preset, { fast: false });
    writeSafetensors(file, model.stateDict());
    model.dispose();
  }
  const palette = paletteFor('cityscapes', 19);
  const [runner, lib] = await Promise.all([
    ModelThread.start(preset, { weights: file }),
    load(preset, { weights: file, palette }),
  ]);
  return { preset, weightsFile: file, runner, palette, lib };
}

test('in-browser mode, deeplabv3_r18-d8 (a ResNet, seeded random weights), ?ep=wasm: labels as the library', async (t) => {
  const r = await r18();
  try {
    await inBrowser(t, {
      ...r,
      browser,
      query: '?ep=wasm',
      provider: new RegExp(`^${escape(await wasmThreads(browser))}$`),
      ep: 'wasm',
    });
  } finally {
    r.lib.dispose();
    await r.runner.close();
  }
});

test('in-browser mode with WebGPU, deeplabv3_r18-d8: webgpu, labels as the library', async (t) => {
  const [b, r] = await Promise.all([withWebGpu(), r18()]);
  try {
    await inBrowser(t, {
      ...r,
      browser: b,
      provider: /^webgpu on google swiftshader$/,
      ep: 'webgpu',
      timeout: 300_000,
    });
  } finally {
    r.lib.dispose();
    await r.runner.close();
  }
});
