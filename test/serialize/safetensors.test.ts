// safetensors: ours reads a file Python wrote by hand, round-trips through our writer, keeps
// tensor order, writes atomically, and rejects damaged files with the path in the message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, tensor, type Tensor } from '../../src/torch/index.js';
import {
  readCheckpoint,
  readSafetensors,
  writeSafetensors,
  SafetensorsError,
} from '../../src/torch/serialize/index.js';
import { checkpointFixture, expected, assertTensor, disposeAll } from './fixtures.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-st-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('reads the safetensors file Python wrote with struct + json', () => {
  const before = liveTensors();
  const exp = expected['python.safetensors'];
  const st = readSafetensors(checkpointFixture('python.safetensors'));
  try {
    assert.deepEqual([...st.keys()], exp.keys);
    for (const [k, t] of st) assertTensor(t, exp.tensors[k], k);
    assert.deepEqual(st.metadata, { format: 'pt', source: 'python' });
  } finally {
    disposeAll(st.values());
  }
  assert.equal(liveTensors(), before);
});

test('round trip: every dtype, views, 0-d and empty tensors, metadata', () => {
  const before = liveTensors();
  const exp = expected['state_zip.pth'];
  const src = readCheckpoint(checkpointFixture('state_zip.pth')).tensors;
  const path = join(dir, 'roundtrip.safetensors');
  let back: Map<string, Tensor> | undefined;
  try {
    writeSafetensors(path, src, { format: 'pt', note: 'deeplab' });
    back = readSafetensors(path);
    assert.deepEqual([...back.keys()], [...src.keys()]);
    for (const [k, t] of back) assertTensor(t, exp.tensors[k], k);
    assert.deepEqual((back as ReturnType<typeof readSafetensors>).metadata, { format: 'pt', note: 'deeplab' });

    // The layout follows the format: u64 LE header size, a multiple of 8, space padding.
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    assert.deepEqual(header['0.weight'], { dtype: 'F32', shape: [4, 3, 3, 3], data_offsets: [0, 432] });
    assert.equal(header['half.w'].dtype, 'F16');
    assert.equal(header['bf16.w'].dtype, 'BF16');
    assert.equal(header['flag.bool'].dtype, 'BOOL');
    const sizes = Object.values(header)
      .filter((e: any) => e.data_offsets)
      .map((e: any) => e.data_offsets[1] - e.data_offsets[0]);
    assert.equal(8 + n + sizes.reduce((a, b) => a + b, 0), bytes.length);
  } finally {
    disposeAll(src.values());
    if (back) disposeAll(back.values());
  }
  assert.equal(liveTensors(), before);
});

test('a Map keeps its order even for integer-like names; a Record works too', () => {
  const a = tensor([
    [1, 2],
    [3, 4],
  ]);
  const b = tensor(new Int32Array([7, 8, 9]));
  const c = tensor([true, false]);
  const path = join(dir, 'ordered.safetensors');
  // (A JS object would list '2' and '10' before 'z' by itself; a Map keeps what it was given.)
  writeSafetensors(
    path,
    new Map([
      ['z', a],
      ['10', b],
      ['2', c],
    ]),
  );
  const record = join(dir, 'record.safetensors');
  writeSafetensors(record, { w: b, v: a });
  const fromRecord = readSafetensors(record);
  assert.deepEqual([...fromRecord.keys()], ['w', 'v']);
  disposeAll(fromRecord.values());
  const back = readSafetensors(path);
  try {
    assert.deepEqual([...back.keys()], ['z', '10', '2']);
    assert.deepEqual(back.get('z')!.toArray(), [1, 2, 3, 4]);
    assert.deepEqual(back.get('10')!.toArray(), [7, 8, 9]);
    assert.equal(back.get('2')!.dtype, 'bool');
    assert.deepEqual(back.metadata, {});
  } finally {
    disposeAll([a, b, c, ...back.values()]);
  }
});

test('the atomic write leaves no temporary file behind, and a failed write leaves the old file', () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'w.safetensors');
  const a = tensor([1, 2, 3]);
  writeSafetensors(path, { a });
  assert.deepEqual(readdirSync(sub), ['w.safetensors']);
  const old = readFileSync(path);

  // Fails halfway, after the header and the first tensor's bytes went to the temporary file.
  const broken = {
    shape: [2],
    numel: 2,
    dtype: 'float32',
    data: () => {
      throw new Error('device lost');
    },
  } as unknown as Tensor;
  assert.throws(() => writeSafetensors(path, { a, broken }), /device lost/);
  assert.deepEqual(readdirSync(sub), ['w.safetensors']);
  assert.deepEqual(readFileSync(path), old);
  a.dispose();
});

test('errors name the file: missing, garbage, truncated', () => {
  const missing = join(dir, 'missing.safetensors');
  assert.throws(
    () => readSafetensors(missing),
    (e: Error) => e instanceof SafetensorsError && e.message.includes(missing) && /no such file/.test(e.message),
  );
  assert.equal(existsSync(missing), false);

  const garbage = join(dir, 'garbage.safetensors');
  writeFileSync(garbage, Buffer.from('definitely not safetensors'));
  assert.throws(
    () => readSafetensors(garbage),
    (e: Error) => e.message.includes(garbage) && /not a safetensors file/.test(e.message),
  );

  const truncated = join(dir, 'truncated.safetensors');
  const full = readFileSync(checkpointFixture('python.safetensors'));
  writeFileSync(truncated, full.subarray(0, full.length - 5));
  const before = liveTensors();
  assert.throws(
    () => readSafetensors(truncated),
    (e: Error) => e.message.includes(truncated) && /truncated/.test(e.message),
  );
  assert.equal(liveTensors(), before);
});
