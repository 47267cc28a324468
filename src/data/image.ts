// Image files in and out, through sharp (libvips): JPEG, PNG, WebP, TIFF, GIF in; grayscale,
// alpha, palette and 16-bit inputs all come out as 8-bit RGB; EXIF orientation is applied.
import { statSync } from 'node:fs';
import sharp from 'sharp';
export { colorize, overlay } from './blend.js';

export interface RgbImage {
  width: number;
  height: number;
  /** H x W x 3, row-major, 8-bit RGB */
  data: Uint8Array;
}

export class ImageError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ImageError';
  }
}

/** Raw pixels a caller already has (canvas ImageData, a video frame): 3 or 4 channels. */
export interface RawPixels {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 3 | 4;
}

export async function readImage(
  input: string | Buffer,
  name = typeof input === 'string' ? input : '<buffer>',
): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(input, { failOn: 'error' })
      .rotate() // EXIF orientation: predictions line up with what viewers show
      .toColourspace('srgb') // gray, CMYK and 16-bit inputs become 8-bit sRGB
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  } catch (e) {
    // Only on failure: sharp calls a folder an unsupported format, which would mislead.
    if (typeof input === 'string' && statSync(input, { throwIfNoEntry: false })?.isDirectory()) {
      throw new ImageError(name, 'is a folder, not an image');
    }
    const msg = (e as Error).message;
    if (/ENOENT|no such file|input file is missing/i.test(msg)) throw new ImageError(name, 'no such file');
    if (/unsupported image format/i.test(msg)) throw new ImageError(name, 'unsupported or unrecognised image format');
    throw new ImageError(name, `cannot decode image (${msg.split('\n')[0]})`);
  }
}

/** RGBA or RGB pixels to an RgbImage (drops alpha). */
export function fromRawPixels(p: RawPixels): RgbImage {
  const n = p.width * p.height;
  if (p.data.length !== n * p.channels) {
    throw new RangeError(
      `raw pixels: ${p.width}x${p.height}x${p.channels} needs ${n * p.channels} bytes, got ${p.data.length}`,
    );
  }
  if (p.channels === 3)
    return { width: p.width, height: p.height, data: new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.length) };
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = p.data[i * 4];
    rgb[i * 3 + 1] = p.data[i * 4 + 1];
    rgb[i * 3 + 2] = p.data[i * 4 + 2];
  }
  return { width: p.width, height: p.height, data: rgb };
}

/** A label map as a single-channel PNG of class indices (16-bit when there are > 256 classes). */
export async function writeLabelPng(
  file: string,
  labels: Uint8Array | Uint16Array,
  width: number,
  height: number,
): Promise<void> {
  await labelPng(labels, width, height).toFile(file);
}

/** The same PNG in memory (what the server sends). */
export function encodeLabelPng(labels: Uint8Array | Uint16Array, width: number, height: number): Promise<Buffer> {
  return labelPng(labels, width, height).toBuffer();
}

function labelPng(labels: Uint8Array | Uint16Array, width: number, height: number): sharp.Sharp {
  // sharp takes the sample depth of raw input from the typed array's type (ushort here).
  if (labels instanceof Uint16Array)
    return sharp(labels, { raw: { width, height, channels: 1 } })
      .toColourspace('grey16')
      .png();
  // b-w keeps it one channel (sharp would otherwise widen a single band to sRGB).
  return sharp(Buffer.from(labels.buffer, labels.byteOffset, labels.byteLength), {
    raw: { width, height, channels: 1 },
  })
    .toColourspace('b-w')
    .png();
}

export async function writeRgb(file: string, rgb: Uint8Array, width: number, height: number): Promise<void> {
  await rgbImage(rgb, width, height, file.endsWith('.jpg') || file.endsWith('.jpeg') ? 'jpeg' : 'png').toFile(file);
}

/** RGB pixels encoded in memory (what the server sends): PNG is lossless, JPEG quality 90 as predict's. */
export function encodeRgb(rgb: Uint8Array, width: number, height: number, format: 'png' | 'jpeg'): Promise<Buffer> {
  return rgbImage(rgb, width, height, format).toBuffer();
}

function rgbImage(rgb: Uint8Array, width: number, height: number, format: 'png' | 'jpeg'): sharp.Sharp {
  const img = sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width, height, channels: 3 } });
  return format === 'jpeg' ? img.jpeg({ quality: 90 }) : img.png();
}
