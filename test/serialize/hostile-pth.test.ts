// Small hostile .pth files (issue 12): each once took the machine down, crashed the process or
// leaked, and must now be read safely or refused with an error naming the file and the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors, scope, setMemoryBudget } from '../../src/torch/index.js';
import { readCheckpoint, CheckpointError } from '../../src/torch/serialize/index.js';
import { PickleWriter, stateDictPickle, torchZip } from '../helpers/torch-save.js';
import { disposeAll } from './fixtures.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('deeplab-hostile-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** readCheckpoint fails with a CheckpointError matching every pattern, and nothing leaks. */
function rejects(path: string, ...patterns: RegExp[]): void {
  const before = liveTensors();
  assert.throws(
    () => readCheckpoint(path),
    (e: Error) => {
      assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${e.name}: ${e.message}`);
      assert.ok(e.message.startsWith(`${path}: `), `the message names the file: ${e.message}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
  assert.equal(liveTensors(), before, 'no tensor leaks');
}

const ONE = new Float32Array([1.5]);

test('a stride-0 [2^20, 2^20] tensor over one float stays a view of that float (as torch.load keeps it)', () => {
  const n = 2 ** 20;
  const path = write(
    'expand.pth',
    torchZip(stateDictPickle({ w: { key: '0', numel: 1, size: [n, n], stride: [0, 0] } }), { 0: ONE }),
  );
  const before = liveTensors();
  const ckpt = readCheckpoint(path);
  try {
    const w = ckpt.tensors.get('w')!;
    assert.deepEqual(w.shape, [n, n]);
    assert.deepEqual(w.strides(), [0, 0]);
    assert.equal(
      scope(() => w.select(0, 12345).select(0, 678).item()),
      1.5,
    );
    // Copying it out would need 4 TiB: refused by the memory budget, naming the shape.
    assert.throws(
      () => w.data(),
      /data\(\): a float32 tensor of shape \[1048576, 1048576\] needs 4\.00 TiB, more than the memory budget/,
    );
    assert.equal(liveTensors(), before + 1, 'one tensor: the view (the flat storage tensor was freed)');
  } finally {
    disposeAll(ckpt.tensors.values());
  }
  assert.equal(liveTensors(), before);
});

test('a small expand stays a view with the right values; a transpose is still copied to its own memory', () => {
  const base = new Float32Array([1, 2, 3, 4, 5, 6]);
  const path = write(
    'views.pth',
    torchZip(
      stateDictPickle({
        e: { key: '0', numel: 2, size: [3, 2], stride: [0, 1] },
        t: { key: '1', numel: 6, size: [3, 2], stride: [1, 3] },
      }),
      { 0: new Float32Array([7, 8]), 1: base },
    ),
  );
  const sd = readCheckpoint(path).tensors;
  try {
    assert.deepEqual(sd.get('e')!.toArray(), [7, 8, 7, 8, 7, 8]);
    assert.deepEqual(sd.get('e')!.strides(), [0, 1]);
    assert.deepEqual(sd.get('t')!.toArray(), [1, 4, 2, 5, 3, 6]);
    assert.ok(sd.get('t')!.isContiguous());
  } finally {
    disposeAll(sd.values());
  }
});

test('a DEFLATE storage that inflates past its declared size stops there', () => {
  // 16 MiB of zeros deflate to about 16 KB; the directory says 4 bytes (the one float the
  // pickle names). Inflation used to run to the end before the size was compared.
  const bomb = new Uint8Array(16 << 20);
  const path = write(
    'bomb.pth',
    torchZip(stateDictPickle({ w: { key: '0', numel: 1, size: [1], stride: [1] } }), {
      0: { data: bomb, deflate: true, declaredSize: 4 },
    }),
  );
  rejects(
    path,
    /tensor "w"/,
    /corrupt DEFLATE data for archive\/data\/0: it inflates to more than its declared 4 bytes/,
  );
});

test('a storage entry declaring more bytes than its storage holds is refused before it is inflated', () => {
  const path = write(
    'declared.pth',
    torchZip(stateDictPickle({ w: { key: '0', numel: 1, size: [1], stride: [1] } }), {
      0: { data: new Uint8Array(4), deflate: true, declaredSize: 2 ** 30 },
    }),
  );
  rejects(path, /tensor "w"/, /archive\/data\/0 declares 1073741824 bytes, more than the 4 expected/);
});

test('a storage larger than the memory budget is refused before it is read, naming the tensor', () => {
  const numel = 4 << 20; // 16 MiB of float32
  const path = write(
    'large.pth',
    torchZip(stateDictPickle({ big: { key: '0', numel, size: [numel], stride: [1] } }), {
      0: { data: new Uint8Array(numel * 4), deflate: true },
    }),
  );
  const prev = setMemoryBudget(1 << 20);
  try {
    rejects(path, /tensor "big": storage 0 needs 16\.0 MiB, more than the memory budget of 1\.00 MiB/);
  } finally {
    setMemoryBudget(prev);
  }
});

test('metadata nested 100,000 deep: an error naming the file, and no tensor leaks', () => {
  const pickle = stateDictPickle(
    { a: { key: '0', numel: 1, size: [1], stride: [1] }, b: { key: '0', numel: 1, size: [], stride: [] } },
    (p) => p.str('meta').nestedList(100_000),
  );
  rejects(write('deep.pth', torchZip(pickle, { 0: ONE })), /nested more than 1000 levels deep/);
});

test('metadata nested 900 deep still reads', () => {
  const pickle = stateDictPickle({ a: { key: '0', numel: 1, size: [1], stride: [1] } }, (p) =>
    p.str('meta').nestedList(900),
  );
  const ckpt = readCheckpoint(write('deep-ok.pth', torchZip(pickle, { 0: ONE })));
  disposeAll(ckpt.tensors.values());
  let depth = 0;
  for (let v = ckpt.meta.meta; Array.isArray(v); v = v[0]) depth++;
  assert.equal(depth, 900);
});

test('one APPENDS of 300,000 items (a call-stack overflow when spread into push) reads', () => {
  const pickle = stateDictPickle({ a: { key: '0', numel: 1, size: [1], stride: [1] } }, (p) => {
    p.str('meta').emptyList().mark();
    for (let i = 0; i < 300_000; i++) p.op(0x4b, i & 0xff); // BININT1
    p.appends();
  });
  const ckpt = readCheckpoint(write('wide.pth', torchZip(pickle, { 0: ONE })));
  disposeAll(ckpt.tensors.values());
  assert.equal((ckpt.meta.meta as number[]).length, 300_000);
});

test("negative sizes: an error naming the file and the tensor, not LibTorch's bare message", () => {
  const path = write(
    'negative.pth',
    torchZip(
      stateDictPickle({
        ok: { key: '0', numel: 6, size: [6], stride: [1] },
        bad: { key: '0', numel: 6, size: [-2, -3], stride: [1, 2] },
      }),
      { 0: new Float32Array(6) },
    ),
  );
  rejects(path, /tensor "bad" has a bad size \[-2, -3\]/);
});

test('a LibTorch error while building a tensor names the file and the tensor', () => {
  // Each size is a safe integer, but 2^52 * 2^52 elements overflow int64 inside as_strided.
  const big = 2 ** 52;
  const path = write(
    'overflow.pth',
    torchZip(
      stateDictPickle({
        ok: { key: '0', numel: 1, size: [1], stride: [1] },
        huge: { key: '0', numel: 1, size: [big, big], stride: [0, 0] },
      }),
      { 0: ONE },
    ),
  );
  rejects(path, /: tensor "huge": numel: integer multiplication overflow$/);
});

test('a hand-built pickle with a non-list persistent id is refused with the file named', () => {
  const p = new PickleWriter().emptyDict().str('w').str('not a pid').op(0x51).op(0x73).bytes(); // SETITEM
  rejects(write('pid.pth', torchZip(p)), /unsupported persistent id/);
});
