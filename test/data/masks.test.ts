// Masks as mmseg reads them (palette PNGs give indices), reduce_zero_label and label maps exactly
// as LoadAnnotations, the Cityscapes id -> train id table, and out-of-range errors with hints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { encode as encodePng } from 'fast-png';
import {
  CITYSCAPES_ID_TO_TRAIN_ID,
  LabelError,
  MaskError,
  labelLookup,
  prepareLabels,
  readMask,
} from '../../src/data/masks.js';
import { writeMaskPng } from '../helpers/tiny-datasets.js';
import { vocColormap } from '../../src/data/palettes.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-masks-');

test('8-bit gray and palette PNGs read as raw indices (not colours)', async () => {
  const values = new Uint8Array([0, 1, 15, 255, 20, 0]);
  writeMaskPng(join(dir, 'gray.png'), values, 3, 2);
  writeMaskPng(
    join(dir, 'pal.png'),
    values,
    3,
    2,
    vocColormap(256).map((c) => [...c]),
  );
  for (const f of ['gray.png', 'pal.png']) {
    const m = await readMask(join(dir, f));
    assert.deepEqual([m.width, m.height], [3, 2]);
    assert.deepEqual(Array.from(m.data), Array.from(values), f);
  }
  // A gray PNG written by sharp (libvips) reads the same.
  await sharp(Buffer.from(values), { raw: { width: 3, height: 2, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(join(dir, 'vips.png'));
  assert.deepEqual(Array.from((await readMask(join(dir, 'vips.png'))).data), Array.from(values));
});

test('4-bit palette, 16-bit and gray-as-RGB masks; colour masks and >255 labels are errors', async () => {
  // 4-bit indexed: two pixels per byte, rows padded to a byte.
  const idx = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]; // 5 x 3
  const packed = new Uint8Array(3 * 3);
  idx.forEach((v, i) => {
    const y = Math.floor(i / 5);
    const x = i % 5;
    packed[y * 3 + (x >> 1)] |= v << (x % 2 ? 0 : 4);
  });
  writeFileSync(
    join(dir, 'p4.png'),
    encodePng({
      width: 5,
      height: 3,
      data: packed,
      channels: 1,
      depth: 4,
      palette: vocColormap(16).map((c) => [...c]),
    }),
  );
  assert.deepEqual(Array.from((await readMask(join(dir, 'p4.png'))).data), idx);

  writeFileSync(
    join(dir, 'g16.png'),
    encodePng({ width: 2, height: 1, data: new Uint16Array([3, 200]), channels: 1, depth: 16 }),
  );
  assert.deepEqual(Array.from((await readMask(join(dir, 'g16.png'))).data), [3, 200]);
  writeFileSync(
    join(dir, 'g16big.png'),
    encodePng({ width: 2, height: 1, data: new Uint16Array([3, 300]), channels: 1, depth: 16 }),
  );
  await assert.rejects(
    readMask(join(dir, 'g16big.png')),
    (e: Error) => e instanceof MaskError && /g16big\.png/.test(e.message) && /300/.test(e.message),
  );

  writeFileSync(
    join(dir, 'rgbgray.png'),
    encodePng({ width: 2, height: 1, data: new Uint8Array([4, 4, 4, 9, 9, 9]), channels: 3, depth: 8 }),
  );
  assert.deepEqual(Array.from((await readMask(join(dir, 'rgbgray.png'))).data), [4, 9]);
  writeFileSync(
    join(dir, 'colour.png'),
    encodePng({ width: 2, height: 1, data: new Uint8Array([128, 0, 0, 0, 128, 0]), channels: 3, depth: 8 }),
  );
  await assert.rejects(
    readMask(join(dir, 'colour.png')),
    (e: Error) => e instanceof MaskError && /colour\.png/.test(e.message) && /class indices/.test(e.message),
  );
});

test('missing and corrupt masks are MaskErrors naming the file', async () => {
  await assert.rejects(
    readMask(join(dir, 'nope.png')),
    (e: Error) => e instanceof MaskError && e.message.includes('nope.png') && /no such file/.test(e.message),
  );
  writeFileSync(join(dir, 'junk.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
  await assert.rejects(
    readMask(join(dir, 'junk.png')),
    (e: Error) => e instanceof MaskError && e.message.includes('junk.png'),
  );
});

test('reduce_zero_label is mmseg uint8 arithmetic: 0 -> 255, x -> x-1, 255 stays 255', () => {
  const lut = labelLookup(true);
  for (let v = 0; v < 256; v++) {
    // loading.py on a uint8 array
    let x = v === 0 ? 255 : v;
    x = (x - 1) & 255;
    if (x === 254) x = 255;
    assert.equal(lut[v], x, `value ${v}`);
  }
  const out = prepareLabels(new Uint8Array([0, 1, 2, 150, 255]), {
    numClasses: 150,
    reduceZeroLabel: true,
    file: 'a.png',
  });
  assert.deepEqual(Array.from(out), [255, 0, 1, 149, 255]);
  assert.deepEqual(Array.from(labelLookup(false).slice(0, 4)), [0, 1, 2, 3]);
});

test('label maps apply after reduceZeroLabel, to the original values (no chaining)', () => {
  const map = { 1: 2, 2: 3, 255: 1 };
  assert.deepEqual(
    Array.from(
      prepareLabels(new Uint8Array([0, 1, 2, 255]), {
        numClasses: 4,
        reduceZeroLabel: false,
        labelMap: map,
        file: 'm.png',
      }),
    ),
    [0, 2, 3, 1],
  );
  // with reduceZeroLabel: 2 -> 1 first, then the map sends 1 -> 2
  assert.deepEqual(
    Array.from(
      prepareLabels(new Uint8Array([0, 2, 3]), {
        numClasses: 4,
        reduceZeroLabel: true,
        labelMap: { 1: 2 },
        file: 'm.png',
      }),
    ),
    [255, 2, 2],
  );
});

test('Cityscapes label ids map to the 19 train ids, everything else to 255', () => {
  const t = CITYSCAPES_ID_TO_TRAIN_ID;
  const expect: Record<number, number> = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
  };
  for (let id = 0; id < 256; id++) assert.equal(t[id], expect[id] ?? 255, `id ${id}`);
  const out = prepareLabels(new Uint8Array([0, 7, 9, 26, 33, 34, 255]), {
    numClasses: 19,
    reduceZeroLabel: false,
    labelMap: t,
    file: 'c.png',
  });
  assert.deepEqual(Array.from(out), [255, 0, 255, 13, 18, 255, 255]);
});

test('out-of-range labels name the file, the values and a hint', () => {
  const check = (
    raw: number[],
    o: { numClasses: number; reduceZeroLabel?: boolean; ignoreIndex?: number },
    bad: number[],
    hint: RegExp,
  ) =>
    assert.throws(
      () => prepareLabels(new Uint8Array(raw), { reduceZeroLabel: false, ...o, file: '/d/masks/x.png' }),
      (e: Error) =>
        e instanceof LabelError &&
        e.message.startsWith('/d/masks/x.png') &&
        JSON.stringify(e.badValues) === JSON.stringify(bad) &&
        hint.test(e.message),
    );
  check([0, 1, 2, 3, 7], { numClasses: 3 }, [3, 7], /numClasses/);
  check([0, 1, 150], { numClasses: 150 }, [150], /reduceZeroLabel: true/);
  check([0, 1], { numClasses: 1 }, [1], /numClasses 2/);
  check([0, 255, 254, 200, 128, 37], { numClasses: 2 }, [37, 128, 200, 254], /0\/255 binary mask/);
  check([0, 255], { numClasses: 2, ignoreIndex: 254 }, [255], /labelMap \{255: 1\}/);
  // 255 is the ignore index, never out of range
  assert.doesNotThrow(() =>
    prepareLabels(new Uint8Array([0, 1, 255]), { numClasses: 2, reduceZeroLabel: false, file: 'ok.png' }),
  );
});
