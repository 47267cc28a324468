// The page `deeplab serve` hands out at /: pick or drop an image, the server segments it (its
// label PNG), and the page draws the overlay with the library's own colorize/overlay code at the
// chosen opacity, lists the classes found with their shares, names the class under the pointer
// and offers the label mask for download. With the server's --onnx, the mode switch offers an
// in-browser mode: the ONNX export in onnxruntime-web, on WebGPU where the browser gives an
// adapter, else on WebAssembly (SIMD, threads); `?ep=webgpu|wasm` forces one.
import { colorize, overlay } from '../src/data/blend.js';
import type { RGB } from '../src/data/palettes.js';

interface Health {
  model: string;
  precision: string;
  classes: { id: number; name: string; color: RGB }[];
  onnx: string | null;
  normalization: { scale: number; mean: number[]; std: number[]; bgr: boolean } | null;
}

/** The part of onnxruntime-web's API the in-browser mode uses (loaded from /ort/ on demand). */
interface OrtTensor {
  dims: readonly number[];
  data: Float32Array;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  // webgpu.device: set by the WebGPU build once its provider has a device (asyncify build)
  env: { wasm: { wasmPaths: string; numThreads: number }; webgpu: { device?: unknown } };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, o: { executionProviders: string[] }): Promise<OrtSession> };
}

/** The part of WebGPU the page asks for (TypeScript 5.9's DOM types have none of it). */
interface Gpu {
  requestAdapter(): Promise<{ info: { vendor: string; architecture: string } } | null>;
}

/** The segmented image on screen. */
interface Shown {
  width: number;
  height: number;
  rgb: Uint8Array;
  labels: Uint8Array;
  color: Uint8Array;
}

const el = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const canvas = el<HTMLCanvasElement>('canvas');
const opacity = el<HTMLInputElement>('opacity');
const statusLine = el<HTMLParagraphElement>('status');
let health: Health;
let shown: Shown | null = null;
let downloadUrl: string | null = null;

function say(text: string, error = false): void {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', error);
}

/** Decoded pixels as they are in the file: no colour management, no premultiplied alpha. */
async function pixels(blob: Blob): Promise<ImageData> {
  const bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const c = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = c.getContext('2d')!;
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  return ctx.getImageData(0, 0, c.width, c.height);
}

/** The first `count` channels of RGBA pixels (1: R, 3: RGB). */
function channels(rgba: Uint8ClampedArray, count: 1 | 3): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * count);
  for (let i = 0, j = 0; i < rgba.length; i += 4) for (let k = 0; k < count; k++) out[j++] = rgba[i + k];
  return out;
}

type Ep = 'webgpu' | 'wasm';

/** The in-browser model: the onnxruntime-web build, its session, the provider it runs on. */
interface Engine {
  ort: Ort;
  session: OrtSession;
  ep: Ep;
  /** what the status line says about the provider, e.g. "wasm, 4 threads; no WebGPU adapter" */
  label: string;
}

/**
 * `?ep=webgpu` or `?ep=wasm` forces a provider (a forced one that fails is an error, not a
 * fallback); without it the page takes WebGPU where the browser offers an adapter, else WASM.
 */
function wantedEp(): Ep | 'auto' {
  const ep = new URLSearchParams(location.search).get('ep') ?? 'auto';
  if (ep !== 'auto' && ep !== 'webgpu' && ep !== 'wasm')
    throw new Error(`?ep= must be webgpu, wasm or auto; got "${ep}"`);
  return ep;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Loads a build of onnxruntime-web (a variable URL: served by the server at /ort/, not bundled)
 * and opens the model in it. WebGPU: ort.webgpu.min.mjs (the asyncify WebAssembly build with the
 * WebGPU provider; nodes that provider lacks run on the CPU one in the same session). WASM:
 * ort.wasm.min.mjs, SIMD, on threads when the page is cross-origin isolated (the server's
 * COOP/COEP headers).
 */
async function open(ep: Ep, model: Uint8Array): Promise<{ ort: Ort; session: OrtSession }> {
  const url = `/ort/${ep === 'webgpu' ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'}`; // not a literal: not bundled
  const ort = (await import(url)) as Ort;
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ep === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'],
  });
  // onnxruntime-web drops a requested provider that does not start with only a console warning
  if (ep === 'webgpu' && !ort.env.webgpu.device) {
    await session.release();
    throw new Error('onnxruntime-web did not start its WebGPU provider (its console warning says why)');
  }
  return { ort, session };
}

const threads = (ort: Ort) => `${ort.env.wasm.numThreads} thread${ort.env.wasm.numThreads === 1 ? '' : 's'}`;

/**
 * The engine and its first output. The first run is part of the start: a WebGPU session that
 * opens but fails to run also falls back to WASM (unless ?ep=webgpu forced it).
 */
async function startEngine(
  x: Float32Array,
  dims: number[],
): Promise<{ engine: Engine; out: Record<string, OrtTensor> }> {
  const want = wantedEp();
  const model = new Uint8Array(await (await fetch(health.onnx!)).arrayBuffer());
  let why = '';
  if (want !== 'wasm') {
    const gpu = (navigator as Navigator & { gpu?: Gpu }).gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    if (adapter) {
      try {
        const { ort, session } = await open('webgpu', model);
        const out = await session.run({ input: new ort.Tensor('float32', x, dims) }).catch(async (e: unknown) => {
          await session.release().catch(() => {});
          throw e;
        });
        const info = adapter.info;
        const on = [info.vendor, info.architecture].filter(Boolean).join(' ') || 'an unnamed adapter';
        return { engine: { ort, session, ep: 'webgpu', label: `webgpu on ${on}` }, out };
      } catch (e) {
        if (want === 'webgpu') throw new Error(`WebGPU (forced by ?ep=webgpu) failed: ${message(e)}`);
        why = `WebGPU failed: ${message(e)}`;
      }
    } else if (want === 'webgpu') {
      throw new Error('WebGPU (forced by ?ep=webgpu): this browser offers no WebGPU adapter');
    } else {
      why = 'no WebGPU adapter';
    }
  }
  const { ort, session } = await open('wasm', model);
  const out = await session.run({ input: new ort.Tensor('float32', x, dims) });
  return { engine: { ort, session, ep: 'wasm', label: `wasm, ${threads(ort)}${why ? `; ${why}` : ''}` }, out };
}

let engine: Promise<Engine> | null = null;

/** The model's ONNX export in this browser (onnxruntime-web): labels for the pixels. */
async function segmentHere(img: ImageData): Promise<{ labels: Uint8Array; engine: Engine }> {
  const { width: w, height: h } = img;
  const n = health.normalization!;
  // x' = (x * scale - mean) / std per channel, NCHW; BGR for caffe models (data/to-tensor.ts)
  const x = new Float32Array(3 * w * h);
  for (let c = 0; c < 3; c++) {
    const src = n.bgr ? 2 - c : c;
    for (let i = 0; i < w * h; i++) x[c * w * h + i] = (img.data[i * 4 + src] * n.scale - n.mean[c]) / n.std[c];
  }
  const dims = [1, 3, h, w];
  let e: Engine;
  let out: Record<string, OrtTensor>;
  if (!engine) {
    const started = startEngine(x, dims);
    engine = started.then((s) => s.engine);
    engine.catch(() => (engine = null)); // a failed start lets the next image try again
    ({ engine: e, out } = await started);
  } else {
    e = await engine;
    out = await e.session.run({ input: new e.ort.Tensor('float32', x, dims) });
  }
  const logits = out.logits.data;
  const classes = out.logits.dims[1];
  const labels = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (logits[k * w * h + i] > logits[best * w * h + i]) best = k;
    labels[i] = best;
  }
  return { labels, engine: e };
}

async function segment(file: File): Promise<void> {
  document.body.dataset.state = 'busy';
  say(`segmenting ${file.name}…`);
  if (el<HTMLSelectElement>('mode').value === 'browser') {
    const t = performance.now();
    const img = await pixels(file);
    const { labels, engine: e } = await segmentHere(img);
    const ms = performance.now() - t;
    show(img, labels);
    el<HTMLAnchorElement>('download').hidden = true;
    document.body.dataset.ep = e.ep;
    say(
      `${file.name}: ${img.width}x${img.height} segmented in ${ms.toFixed(0)} ms in this browser (onnxruntime-web, ${e.label})`,
    );
    document.body.dataset.state = 'done';
    return;
  }
  const t0 = performance.now();
  const res = await fetch(`/v2/models/${encodeURIComponent(health.model)}/segment?format=labels`, {
    method: 'POST',
    body: file,
    headers: { 'Content-Type': file.type || 'application/octet-stream' },
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({ error: res.statusText }))) as { error: string };
    say(`${file.name}: ${res.status} ${body.error}`, true);
    document.body.dataset.state = 'error';
    return;
  }
  const labelPng = await res.blob();
  const ms = performance.now() - t0;
  const [img, lab] = await Promise.all([pixels(file), pixels(labelPng)]);
  if (img.width !== lab.width || img.height !== lab.height)
    throw new Error(`the label mask is ${lab.width}x${lab.height}, the image ${img.width}x${img.height}`);
  show(img, channels(lab.data, 1)); // a gray PNG decodes to R = G = B = the class index
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(labelPng);
  const link = el<HTMLAnchorElement>('download');
  link.href = downloadUrl;
  link.download = `${file.name.replace(/\.[^.]*$/, '')}_labels.png`;
  link.hidden = false;
  const timing = res.headers.get('Server-Timing') ?? '';
  say(`${file.name}: ${img.width}x${img.height} segmented in ${ms.toFixed(0)} ms on the server (${timing})`);
  document.body.dataset.state = 'done';
}

function show(img: ImageData, labels: Uint8Array): void {
  const colors = health.classes.map((c) => c.color);
  shown = { width: img.width, height: img.height, rgb: channels(img.data, 3), labels, color: colorize(labels, colors) };
  canvas.width = img.width;
  canvas.height = img.height;
  draw();
  showLegend(labels);
}

function draw(): void {
  if (!shown) return;
  const { width, height } = shown;
  const blended = overlay({ width, height, data: shown.rgb }, shown.color, Number(opacity.value) / 100);
  const out = new ImageData(width, height);
  for (let i = 0, j = 0; i < out.data.length; i += 4, j += 3) {
    out.data[i] = blended[j];
    out.data[i + 1] = blended[j + 1];
    out.data[i + 2] = blended[j + 2];
    out.data[i + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(out, 0, 0);
}

function showLegend(labels: Uint8Array): void {
  const counts = new Float64Array(health.classes.length);
  for (const l of labels) counts[l]++;
  const found = [...counts.keys()].filter((id) => counts[id] > 0).sort((a, b) => counts[b] - counts[a] || a - b);
  el('legend').replaceChildren(
    ...found.map((id) => {
      const c = health.classes[id];
      const li = document.createElement('li');
      li.dataset.id = String(id);
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = `rgb(${c.color.join(',')})`;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = c.name;
      const share = document.createElement('span');
      share.className = 'share';
      share.textContent = `${((100 * counts[id]) / labels.length).toFixed(1)}%`;
      li.append(swatch, name, share);
      return li;
    }),
  );
}

function showUnderPointer(e: PointerEvent): void {
  if (!shown) return;
  const r = canvas.getBoundingClientRect();
  const x = Math.min(shown.width - 1, Math.floor(((e.clientX - r.left) / r.width) * shown.width));
  const y = Math.min(shown.height - 1, Math.floor(((e.clientY - r.top) / r.height) * shown.height));
  el('under').textContent = `${health.classes[shown.labels[y * shown.width + x]].name} (x ${x}, y ${y})`;
}

function run(file: File | undefined): void {
  if (!file) return;
  segment(file).catch((e: Error) => {
    say(`${file.name}: ${e.message}`, true);
    document.body.dataset.state = 'error';
  });
}

async function start(): Promise<void> {
  const res = await fetch('/health');
  health = (await res.json()) as Health;
  el('model').textContent = `${health.model} · ${health.precision} · ${health.classes.length} classes`;
  const browser = el<HTMLSelectElement>('mode').querySelector<HTMLOptionElement>('option[value=browser]')!;
  if (health.onnx && health.normalization) {
    browser.disabled = false;
    browser.textContent = 'this browser (onnxruntime-web)';
  }
  const input = el<HTMLInputElement>('file');
  input.addEventListener('change', () => run(input.files?.[0]));
  const drop = el('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    run(e.dataTransfer?.files[0]);
  });
  opacity.addEventListener('input', draw);
  canvas.addEventListener('pointermove', showUnderPointer);
  document.body.dataset.state = 'ready';
}

start().catch((e: Error) => say(`cannot reach the server: ${e.message}`, true));
