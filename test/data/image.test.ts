// Image decoding and encoding through sharp: formats, grayscale, alpha, 16-bit, corrupt files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readImage, writeLabelPng, colorize, overlay, ImageError } from '../../src/data/image.js';
import { encodeNpy } from '../../src/data/npy.js';
import { PALETTES, paletteFor, vocColormap } from '../../src/data/palettes.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-img-');
// A 4x3 RGB test card: pixel (x, y) = (10x, 20y, 7)
const W = 4,
  H = 3;
const rgb = Buffer.alloc(W * H * 3);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set([10 * x, 20 * y, 7], (y * W + x) * 3);
const raw = { raw: { width: W, height: H, channels: 3 as const } };

test('PNG and lossless WebP decode to the exact RGB pixels', async () => {
  for (const [name, enc] of [
    ['a.png', sharp(rgb, raw).png()],
    ['a.webp', sharp(rgb, raw).webp({ lossless: true })],
  ] as const) {
    await enc.toFile(join(dir, name));
    const img = await readImage(join(dir, name));
    assert.deepEqual([img.width, img.height], [W, H]);
    assert.deepEqual(Buffer.from(img.data), rgb, name);
  }
});

test('JPEG decodes to RGB of the right size', async () => {
  await sharp(rgb, raw).jpeg({ quality: 100 }).toFile(join(dir, 'a.jpg'));
  const img = await readImage(join(dir, 'a.jpg'));
  assert.equal(img.data.length, W * H * 3);
  assert.ok(Math.abs(img.data[3 * 3] - 30) < 12); // roughly the right colour
});

test('grayscale, alpha and 16-bit PNGs come out as 8-bit RGB', async () => {
  const gray = Buffer.from([0, 50, 100, 150, 200, 250]);
  await sharp(gray, { raw: { width: 3, height: 2, channels: 1 } })
    .png()
    .toFile(join(dir, 'g.png'));
  const g = await readImage(join(dir, 'g.png'));
  assert.deepEqual(Array.from(g.data.slice(0, 6)), [0, 0, 0, 50, 50, 50]);

  const rgba = Buffer.from([255, 0, 0, 0, 0, 255, 0, 128]);
  await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } })
    .png()
    .toFile(join(dir, 'alpha.png'));
  const a = await readImage(join(dir, 'alpha.png'));
  assert.deepEqual(Array.from(a.data), [255, 0, 0, 0, 255, 0]);

  const deep = new Uint16Array([0, 65535, 32896, 257]);
  await sharp(deep, { raw: { width: 4, height: 1, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toFile(join(dir, 'g16.png'));
  const d = await readImage(join(dir, 'g16.png'));
  assert.deepEqual([d.data[0], d.data[3], d.data[6], d.data[9]], [0, 255, 128, 1]);
});

test('missing, corrupt and unsupported files give an ImageError naming the file', async () => {
  await assert.rejects(
    readImage(join(dir, 'nope.png')),
    (e: Error) => e instanceof ImageError && e.message.includes('nope.png') && /no such file/.test(e.message),
  );
  writeFileSync(join(dir, 'junk.jpg'), Buffer.from('definitely not a jpeg'));
  await assert.rejects(
    readImage(join(dir, 'junk.jpg')),
    (e: Error) => e instanceof ImageError && e.message.includes('junk.jpg'),
  );
  const png = readFileSync(join(dir, 'a.png'));
  writeFileSync(join(dir, 'trunc.png'), png.subarray(0, png.length - 30));
  await assert.rejects(
    readImage(join(dir, 'trunc.png')),
    (e: Error) => e instanceof ImageError && e.message.includes('trunc.png'),
  );
});

test('label PNGs hold the class indices exactly (8-bit and 16-bit)', async () => {
  const labels = Uint8Array.from([0, 1, 2, 20, 255, 7]);
  await writeLabelPng(join(dir, 'l8.png'), labels, 3, 2);
  assert.equal((await sharp(join(dir, 'l8.png')).metadata()).channels, 1);
  const back = await sharp(join(dir, 'l8.png')).extractChannel(0).raw().toBuffer();
  assert.deepEqual(Array.from(back), Array.from(labels));
  const many = Uint16Array.from([0, 149, 300, 1000]);
  await writeLabelPng(join(dir, 'l16.png'), many, 2, 2);
  const meta = await sharp(join(dir, 'l16.png')).metadata();
  assert.equal(meta.depth, 'ushort');
  const b16 = await sharp(join(dir, 'l16.png')).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer();
  assert.deepEqual(Array.from(new Uint16Array(b16.buffer, b16.byteOffset, 4)), [0, 149, 300, 1000]);
});

test('palettes: VOC colour map, dataset sizes, padding for custom class counts', () => {
  assert.deepEqual(vocColormap(4), [
    [0, 0, 0],
    [128, 0, 0],
    [0, 128, 0],
    [128, 128, 0],
  ]);
  assert.deepEqual(vocColormap(21)[15], [192, 128, 128]); // person
  assert.equal(PALETTES.cityscapes.classes.length, 19);
  assert.equal(PALETTES.ade20k.colors.length, 150);
  const p = paletteFor('cityscapes', 21);
  assert.equal(p.classes[20], 'class 20');
  assert.equal(p.colors.length, 21);
  const c = colorize(Uint8Array.from([0, 1]), PALETTES.voc.colors);
  assert.deepEqual(Array.from(c), [0, 0, 0, 128, 0, 0]);
  assert.deepEqual(
    Array.from(
      overlay({ width: 1, height: 1, data: Uint8Array.from([100, 100, 100]) }, Uint8Array.from([200, 0, 100])),
    ),
    [150, 50, 100],
  );
});

test('.npy header is what NumPy writes', () => {
  const b = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [1, 2, 3]);
  assert.equal(b.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const hlen = b.readUInt16LE(8);
  assert.equal((10 + hlen) % 64, 0);
  assert.match(
    b.subarray(10, 10 + hlen).toString('latin1'),
    /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(1, 2, 3\), \} *\n$/,
  );
  assert.deepEqual(
    Array.from(new Float32Array(b.buffer.slice(b.byteOffset + 10 + hlen, b.byteOffset + b.length))),
    [1, 2, 3, 4, 5, 6],
  );
});
