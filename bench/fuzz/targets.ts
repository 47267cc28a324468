// The fuzz targets: which reader each runs, its seed files, the mutations that fit the format,
// and the error classes that count as a clean refusal. Seeds are the committed torch.save and
// safetensors fixtures, and small PNG, JPEG and config files made here.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as encodePng } from 'fast-png';
import sharp from 'sharp';
import { stringify as yaml } from 'yaml';
import * as M from './mutate.js';
import type { Mutator } from './mutate.js';

export interface Seed {
  name: string;
  bytes: Uint8Array;
}

export interface Target {
  name: string;
  /** The input file's extension (the config loader picks its parser by it). */
  ext: (seed: Seed) => string;
  seeds(): Promise<Seed[]>;
  /** Mutations for a seed; generic ones are always added. */
  mutators(seed: Seed): Mutator[];
  /** Error names that are the reader's own, clean refusals. */
  expectedErrors: string[];
}

/** The repository root, from dist/bench/fuzz or bench/fuzz. */
export const ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
})();

const CHECKPOINTS = join(ROOT, 'test/fixtures/checkpoints');
const isZip = (b: Uint8Array) => b[0] === 0x50 && b[1] === 0x4b;

function files(dir: string, pattern: RegExp): Seed[] {
  return readdirSync(dir)
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(join(dir, f))) }));
}

/** A gradient of labels, so decoders see every value in a small image. */
function labels(w: number, h: number, classes: number): Uint8Array {
  const d = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = (x + y * 3) % classes;
  return d;
}

async function pngSeeds(): Promise<Seed[]> {
  const gray = labels(16, 12, 21);
  const palette: [number, number, number][] = Array.from({ length: 21 }, (_, i) => [
    i * 12,
    255 - i * 12,
    (i * 40) % 256,
  ]);
  const rgb = new Uint8Array(16 * 12 * 3).map((_, i) => (i * 7) % 256);
  return [
    { name: 'gray8.png', bytes: encodePng({ width: 16, height: 12, data: gray, channels: 1, depth: 8 }) },
    { name: 'palette.png', bytes: encodePng({ width: 16, height: 12, data: gray, channels: 1, depth: 8, palette }) },
    {
      name: 'gray16.png',
      bytes: encodePng({ width: 16, height: 12, data: Uint16Array.from(gray), channels: 1, depth: 16 }),
    },
    { name: 'rgb.png', bytes: encodePng({ width: 16, height: 12, data: rgb, channels: 3, depth: 8 }) },
  ];
}

async function jpegSeeds(): Promise<Seed[]> {
  const rgb = Buffer.from(new Uint8Array(16 * 12 * 3).map((_, i) => (i * 7) % 256));
  const raw = { raw: { width: 16, height: 12, channels: 3 as const } };
  return [
    { name: 'base.jpg', bytes: new Uint8Array(await sharp(rgb, raw).jpeg({ quality: 80 }).toBuffer()) },
    { name: 'progressive.jpg', bytes: new Uint8Array(await sharp(rgb, raw).jpeg({ progressive: true }).toBuffer()) },
  ];
}

function configSeeds(): Seed[] {
  const dir = join(ROOT, 'configs');
  const out: Seed[] = [];
  for (const f of ['demo', 'deeplabv3plus']) {
    const sub = join(dir, f);
    if (!existsSync(sub)) continue;
    const json = readdirSync(sub)
      .filter((x) => x.endsWith('.json'))
      .sort()[0];
    if (!json) continue;
    const text = readFileSync(join(sub, json), 'utf8');
    out.push({ name: json, bytes: new TextEncoder().encode(text) });
    out.push({ name: json.replace(/\.json$/, '.yaml'), bytes: new TextEncoder().encode(yaml(JSON.parse(text))) });
  }
  return out;
}

async function ourSafetensors(): Promise<Seed> {
  const { readCheckpoint, writeSafetensors } = await import('../../src/torch/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-seed-'));
  const c = readCheckpoint(join(CHECKPOINTS, 'state_zip.pth'));
  try {
    writeSafetensors(join(dir, 's.safetensors'), c.tensors, { format: 'pt' });
    return { name: 'state_zip.safetensors', bytes: new Uint8Array(readFileSync(join(dir, 's.safetensors'))) };
  } finally {
    for (const t of c.tensors.values()) t.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const TARGETS: Record<string, Target> = {
  pth: {
    name: 'pth',
    ext: () => '.pth',
    seeds: async () => files(CHECKPOINTS, /\.pth$/),
    mutators: (s) =>
      isZip(s.bytes)
        ? [M.zipField, M.zipField, M.pickleInt, M.pickleOp, M.pickleShape, M.pickleShape, M.pickleShape]
        : [M.pickleInt, M.pickleInt, M.pickleOp, M.pickleShape, M.pickleShape, M.pickleShape],
    expectedErrors: ['CheckpointError'],
  },
  safetensors: {
    name: 'safetensors',
    ext: () => '.safetensors',
    // The fixture Python wrote, plus one of ours with every dtype (state_zip.pth rewritten).
    seeds: async () => [...files(CHECKPOINTS, /\.safetensors$/), await ourSafetensors()],
    mutators: () => [M.safetensorsHeader, M.safetensorsHeader, M.safetensorsHeader],
    expectedErrors: ['SafetensorsError'],
  },
  mask: {
    name: 'mask',
    ext: () => '.png',
    seeds: pngSeeds,
    mutators: () => [M.pngChunk, M.pngChunk, M.pngChunk],
    expectedErrors: ['MaskError', 'LabelError'],
  },
  image: {
    name: 'image',
    ext: (s) => s.name.slice(s.name.lastIndexOf('.')),
    seeds: async () => [...(await pngSeeds()), ...(await jpegSeeds())],
    mutators: (s) => (s.name.endsWith('.png') ? [M.pngChunk, M.pngChunk] : [M.jpegSegment, M.jpegSegment]),
    expectedErrors: ['ImageError'],
  },
  config: {
    name: 'config',
    ext: (s) => s.name.slice(s.name.lastIndexOf('.')),
    seeds: async () => configSeeds(),
    mutators: () => [M.configText, M.configText, M.configText, M.configText],
    expectedErrors: ['ConfigError'],
  },
};
