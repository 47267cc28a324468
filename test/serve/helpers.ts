// What the serve tests share: the model they serve (torchvision's MobileNetV3 DeepLabV3 with the
// generated seeded weights), test images, a server on a free loopback port, a runner that holds
// batches until released (so queueing and batching are tested without timing), and a metric reader.
import sharp from 'sharp';
import { crc32 } from 'node:zlib';
import { buildServer, type ServerOptions } from '../../src/serve/server.js';
import type { BatchRunner } from '../../src/serve/model-thread.js';
import { paletteFor } from '../../src/data/palettes.js';
import { findPreset } from '../../src/models/zoo.js';
import { generatedFixture } from '../helpers/paths.js';

export const PRESET = 'deeplabv3_mobilenet_v3_large';
export const weights = () => generatedFixture('torchvision', 'deeplabv3_mobilenet_v3_large.pth');
export const PALETTE = paletteFor('voc', 21);
export const MODEL = {
  name: PRESET,
  numClasses: 21,
  precision: 'fp32',
  palette: PALETTE,
  normalization: findPreset(PRESET).normalization,
};

/** A W x H RGB pattern (seeded by `k`), its PNG and its raw pixels. */
export async function testImage(width: number, height: number, k = 0): Promise<{ png: Buffer; rgb: Uint8Array }> {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const x = i % width,
      y = Math.floor(i / width);
    rgb.set([(x * 7 + k * 31) % 256, (y * 13 + k * 17) % 256, ((x + y) * 29 + k) % 256], i * 3);
  }
  const png = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return { png, rgb };
}

/** A real PNG whose header is rewritten to claim width x height (nothing else changes). */
export function pngClaiming(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  // IHDR: 8-byte signature, length (4), "IHDR" (4), width, height, ..., CRC over type + data.
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

export async function startServer(o: ServerOptions): Promise<ReturnType<typeof buildServer> & { url: string }> {
  const s = buildServer(o);
  const url = await s.app.listen({ port: 0, host: '127.0.0.1' });
  return { ...s, url };
}

/** Holds every batch until release(); records the batch sizes it was given. */
export class GatedRunner implements BatchRunner {
  readonly sizes: number[] = [];
  private open!: () => void;
  private gate = new Promise<void>((r) => (this.open = r));
  constructor(private readonly inner: BatchRunner) {}
  get liveTensors() {
    return this.inner.liveTensors;
  }
  async run(b: Parameters<BatchRunner['run']>[0]) {
    this.sizes.push(b.n);
    await this.gate;
    return this.inner.run(b);
  }
  release(): void {
    this.open();
  }
}

/** Polls `cond` every 10 ms, failing after `ms` (a bound on a wait, not a timing assertion). */
export async function waitFor(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The value of one sample of the Prometheus text, e.g. metric(text, 'deeplab_batch_size_count'). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)} in the metrics`);
}

export function post(url: string, body: Buffer | string, type = 'image/png', query = ''): Promise<Response> {
  return fetch(`${url}/v2/models/${PRESET}/segment${query}`, {
    method: 'POST',
    body,
    headers: { 'Content-Type': type },
  });
}
