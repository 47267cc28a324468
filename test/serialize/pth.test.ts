// readCheckpoint against files torch.save wrote (zip and legacy formats, mmseg and torchvision
// layouts), compared element for element with what PyTorch itself loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveTensors } from '../../src/torch/index.js';
import { readCheckpoint, readStateDict, CheckpointError } from '../../src/torch/serialize/index.js';
import { checkpointFixture, expected, assertTensor, disposeAll } from './fixtures.js';
import { tempDir } from '../helpers/paths.js';

const PTH = Object.keys(expected).filter((f) => f.endsWith('.pth'));

for (const file of PTH) {
  test(`${file}: every tensor loads with PyTorch's values, dtype, shape and key order`, () => {
    const before = liveTensors();
    const exp = expected[file];
    const ckpt = readCheckpoint(checkpointFixture(file));
    try {
      assert.equal(ckpt.source, exp.source);
      assert.deepEqual([...ckpt.tensors.keys()], exp.keys);
      for (const [k, t] of ckpt.tensors) assertTensor(t, exp.tensors[k], `${file} ${k}`);
    } finally {
      disposeAll(ckpt.tensors.values());
    }
    // The flat storages and strided views made on the way are freed too.
    assert.equal(liveTensors(), before);
  });
}

test('views into one shared storage each hold their own values', () => {
  for (const file of ['state_zip.pth', 'state_legacy.pth']) {
    const sd = readStateDict(checkpointFixture(file));
    try {
      const base = Array.from({ length: 24 }, (_, i) => i);
      assert.deepEqual(sd.get('view.base')!.toArray(), base);
      assert.deepEqual(sd.get('view.rows')!.toArray(), base.slice(6, 18));
      assert.deepEqual(sd.get('view.t')!.shape, [6, 4]);
      assert.deepEqual(sd.get('view.t')!.toArray().slice(0, 4), [0, 6, 12, 18]);
      assert.deepEqual(sd.get('view.col')!.toArray(), [2, 8, 14, 20]);
      assert.deepEqual(sd.get('view.strided')!.toArray(), [1, 4, 13, 16]);
      assert.deepEqual(sd.get('view.expand')!.toArray(), [1.5, -2.5, 1.5, -2.5, 1.5, -2.5]);
      // Results are independent contiguous tensors, not aliases of one another (except an
      // expand, which stays a stride-0 view as torch.load keeps it: see hostile-pth.test.ts).
      assert.deepEqual(sd.get('view.expand')!.strides(), [0, 1]);
      assert.ok(sd.get('view.t')!.isContiguous());
      sd.get('view.rows')!.fill_(-1);
      assert.deepEqual(sd.get('view.base')!.toArray(), base);
    } finally {
      disposeAll(sd.values());
    }
  }
});

test('non-tensor entries of a state dict are skipped and reported in meta', () => {
  const ckpt = readCheckpoint(checkpointFixture('state_zip.pth'));
  disposeAll(ckpt.tensors.values());
  assert.equal(ckpt.tensors.has('extra.int'), false);
  assert.deepEqual(ckpt.meta, { 'extra.int': 5 });
});

for (const file of ['mmseg_zip.pth', 'mmseg_legacy.pth']) {
  test(`${file}: mmseg {meta, state_dict, optimizer} metadata reads as JS values`, () => {
    const ckpt = readCheckpoint(checkpointFixture(file));
    disposeAll(ckpt.tensors.values());
    assert.equal(ckpt.source, 'state_dict');
    const meta = ckpt.meta.meta as Record<string, any>;
    assert.equal(meta.mmseg_version, '0.30.0');
    assert.equal(meta.epoch, 3);
    assert.equal(meta.iter, 4000);
    assert.equal(meta.big, 2n ** 70n);
    assert.deepEqual(meta.CLASSES, ['road', 'sidewalk']);
    assert.deepEqual(meta.PALETTE, [
      [128, 64, 128],
      [244, 35, 232],
    ]);
    assert.deepEqual(meta.env, { nested: { a: 1.5, b: null, c: true } });
    assert.deepEqual(meta.blob, new Uint8Array([0, 1, 255]));
    assert.deepEqual(meta.tags, new Set([1, 2]));
    // A numpy scalar is recorded, not constructed.
    assert.equal(meta.seed.__class__, 'numpy.core.multiarray.scalar');
    assert.equal(meta.seed.args[0].__class__, 'numpy.dtype');
    // The optimizer: its tensors are left out, the rest kept (int keys stay a Map).
    const opt = ckpt.meta.optimizer as Record<string, any>;
    assert.deepEqual(opt.param_groups, [{ lr: 0.01, momentum: 0.9, params: [0, 1] }]);
    assert.ok(opt.state instanceof Map);
    assert.deepEqual(opt.state.get(0), {});
    assert.equal('state_dict' in ckpt.meta, false);
  });
}

test('torchvision {model, optimizer, epoch, args} loads via model; argparse.Namespace stays opaque', () => {
  const ckpt = readCheckpoint(checkpointFixture('torchvision.pth'));
  disposeAll(ckpt.tensors.values());
  assert.equal(ckpt.source, 'model');
  assert.equal(ckpt.meta.epoch, 3);
  assert.deepEqual(ckpt.meta.args, { __class__: 'argparse.Namespace', state: { lr: 0.01, data_path: '/data' } });
  assert.deepEqual(ckpt.meta.lr_scheduler, { last_epoch: 3 });
});

test('reads from a buffer as well as a path', () => {
  const sd = readStateDict(readFileSync(checkpointFixture('state_legacy.pth')));
  try {
    assertTensor(sd.get('bf16.w')!, expected['state_legacy.pth'].tensors['bf16.w'], 'bf16.w');
  } finally {
    disposeAll(sd.values());
  }
});

// ---- errors --------------------------------------------------------------------------------

const dir = tempDir('deeplab-pth-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

function rejects(src: string | Uint8Array, pattern: RegExp, path?: string): void {
  const before = liveTensors();
  assert.throws(
    () => readCheckpoint(src),
    (e: Error) => {
      assert.ok(e instanceof CheckpointError, `a CheckpointError, got ${e}`);
      assert.match(e.message, pattern);
      if (path) assert.ok(e.message.includes(path), `the message names the file: ${e.message}`);
      return true;
    },
  );
  assert.equal(liveTensors(), before, 'nothing leaks on error');
}

test('a missing file: the error names it', () => {
  const path = join(dir, 'nope.pth');
  rejects(path, /no such file/, path);
});

test('garbage bytes: "not a PyTorch checkpoint" and the path', () => {
  const path = join(dir, 'garbage.pth');
  writeFileSync(path, Buffer.from('this is certainly not a checkpoint, just some text'));
  rejects(path, /not a PyTorch checkpoint/, path);
  const pickle = join(dir, 'pickle.pth');
  writeFileSync(pickle, Buffer.from([0x80, 0x02, 0x4b, 0x07, 0x2e])); // pickle.dumps(7): no magic number
  rejects(pickle, /not a PyTorch checkpoint/, pickle);
  const empty = join(dir, 'empty.pth');
  writeFileSync(empty, Buffer.alloc(0));
  rejects(empty, /not a PyTorch checkpoint/, empty);
});

test('a truncated zip checkpoint', () => {
  const path = join(dir, 'truncated.pth');
  const full = readFileSync(checkpointFixture('state_zip.pth'));
  writeFileSync(path, full.subarray(0, full.length >> 1));
  rejects(path, /truncated/, path);
});

test('a truncated legacy checkpoint: the storage is named', () => {
  const path = join(dir, 'truncated_legacy.pth');
  const full = readFileSync(checkpointFixture('state_legacy.pth'));
  writeFileSync(path, full.subarray(0, full.length - 10));
  rejects(path, /truncated storage/, path);
});

test('a zip storage shorter than its tensor', () => {
  // Shrink the stored size of storage data/0 in the central directory: the entry reads short.
  const buf = Buffer.from(readFileSync(checkpointFixture('state_zip.pth')));
  const name = Buffer.from('state_zip/data/0');
  const sig = Buffer.from('PK\x01\x02', 'latin1');
  for (let p = buf.indexOf(sig); p >= 0; p = buf.indexOf(sig, p + 4)) {
    if (buf.subarray(p + 46, p + 46 + name.length).equals(name) && buf.readUInt16LE(p + 28) === name.length) {
      buf.writeUInt32LE(100, p + 20);
      buf.writeUInt32LE(100, p + 24);
    }
  }
  rejects(buf, /truncated storage 0 for tensor "0.weight"/, '<buffer>');
});

test('big-endian checkpoints are refused (zip byteorder record, legacy sys_info)', () => {
  rejects(checkpointFixture('bigendian.pth'), /big-endian/, 'bigendian.pth');
  // Flip little_endian=True to False in the legacy file's sys_info pickle.
  const buf = Buffer.from(readFileSync(checkpointFixture('state_legacy.pth')));
  const at = buf.indexOf(0x88, buf.indexOf('little_endian'));
  buf[at] = 0x89;
  rejects(buf, /big-endian/);
});

test('a tensor built by an unsupported global (a quantized tensor) is refused by name', () => {
  rejects(
    checkpointFixture('quantized.pth'),
    /state dict entry "q" is built by torch\._utils\._rebuild_qtensor/,
    'quantized.pth',
  );
});
