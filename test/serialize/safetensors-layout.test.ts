// safetensors headers that tile the data buffer wrongly (issue 12): overlapping offsets, a key
// given twice, bytes no tensor covers. Each used to load, giving a tensor other tensors' bytes;
// now each is refused as the reference implementation refuses it, naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { liveTensors } from '../../src/torch/index.js';
import { readSafetensors, SafetensorsError } from '../../src/torch/serialize/index.js';
import { findDuplicateKey } from '../../src/torch/serialize/json-keys.js';
import { disposeAll } from './fixtures.js';

/** A safetensors file from a header written as text (so keys can repeat) and raw data. */
function file(header: string, data: Uint8Array): Buffer {
  const h = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([n, h, data]);
}

const f32 = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const entry = (begin: number, end: number, shape = [(end - begin) / 4]) =>
  JSON.stringify({ dtype: 'F32', shape, data_offsets: [begin, end] });

function rejects(bytes: Buffer, pattern: RegExp): void {
  const before = liveTensors();
  assert.throws(
    () => readSafetensors(bytes),
    (e: Error) => {
      assert.ok(e instanceof SafetensorsError, `${e}`);
      assert.ok(e.message.startsWith('<buffer>: '), e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
  assert.equal(liveTensors(), before);
}

test('a well-tiled file reads, empty tensors included, in layout order', () => {
  const st = readSafetensors(file(`{"b":${entry(8, 12)},"e":${entry(8, 8, [0])},"a":${entry(0, 8)}}`, f32(1, 2, 3)));
  try {
    assert.deepEqual([...st.keys()], ['a', 'e', 'b']);
    assert.deepEqual(st.get('a')!.toArray(), [1, 2]);
    assert.deepEqual(st.get('b')!.toArray(), [3]);
    assert.deepEqual(st.get('e')!.shape, [0]);
  } finally {
    disposeAll(st.values());
  }
});

test('overlapping data_offsets are refused', () => {
  rejects(
    file(`{"a":${entry(0, 8)},"b":${entry(4, 12, [2])}}`, f32(1, 2, 3)),
    /tensor "b" \(bytes 4-12\) overlaps the tensor before it, which ends at byte 8/,
  );
  // Two names for the same bytes.
  rejects(file(`{"a":${entry(0, 8)},"b":${entry(0, 8)}}`, f32(1, 2)), /tensor "[ab]" \(bytes 0-8\) overlaps/);
});

test('bytes no tensor covers are refused: a gap, a hole at the start, trailing bytes', () => {
  rejects(
    file(`{"a":${entry(0, 4)},"b":${entry(8, 12)}}`, f32(1, 2, 3)),
    /bytes 4-8 of the data buffer belong to no tensor \(the next, "b", begins at 8\)/,
  );
  rejects(file(`{"a":${entry(4, 8)}}`, f32(1, 2)), /bytes 0-4 of the data buffer belong to no tensor/);
  rejects(file(`{"a":${entry(0, 4)}}`, f32(1, 2)), /bytes 4-8 at the end of the data buffer belong to no tensor/);
});

test('a key given twice is refused (JSON.parse would keep the last silently)', () => {
  rejects(file(`{"a":${entry(0, 4)},"a":${entry(4, 8)}}`, f32(1, 2)), /the header names "a" twice/);
  // The same key spelled with an escape is the same key.
  rejects(file(`{"a":${entry(0, 4)},"\\u0061":${entry(4, 8)}}`, f32(1, 2)), /names "a" twice/);
  rejects(file(`{"__metadata__":{"k":"1","k":"2"},"a":${entry(0, 4)}}`, f32(1)), /names "__metadata__\.k" twice/);
});

test('findDuplicateKey: strings that look like keys, escapes, arrays and nesting', () => {
  assert.equal(findDuplicateKey('{"a":1,"b":{"a":2}}'), undefined);
  assert.equal(findDuplicateKey('{"a":"\\"a\\":","b":["a","a"]}'), undefined);
  assert.equal(findDuplicateKey('{"a":1,"b":[{"x":1,"x":2}]}'), 'b.[].x');
  assert.equal(findDuplicateKey('{"a" : 1, "a" : 2}'), 'a');
});

test('a shape whose byte size is not the span of its offsets is refused', () => {
  rejects(file(`{"a":${entry(0, 8, [3])}}`, f32(1, 2)), /tensor "a": data_offsets span 8 bytes, shape \[3\] needs 12/);
});
