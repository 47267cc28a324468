// The zip reader on a hand-built zip64 archive (every size and offset in the zip64 extra field,
// the end record found through the zip64 locator) with a STORED and a DEFLATE entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { readZip, isZip, ZipError } from '../../src/torch/serialize/index.js';

function crc32(data: Uint8Array): number {
  let c = ~0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A zip whose every entry and end record uses zip64 fields, as tools do for files over 4 GB. */
function zip64(files: { name: string; data: Uint8Array; deflate?: boolean }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name);
    const body = f.deflate ? deflateRawSync(f.data) : Buffer.from(f.data);
    const extra = Buffer.alloc(28);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(24, 2);
    extra.writeBigUInt64LE(BigInt(f.data.length), 4);
    extra.writeBigUInt64LE(BigInt(body.length), 12);
    extra.writeBigUInt64LE(BigInt(offset), 20);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4);
    local.writeUInt16LE(f.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc32(f.data), 14);
    local.writeUInt32LE(0xffffffff, 18);
    local.writeUInt32LE(0xffffffff, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(20, 28); // sizes only in the local copy of the extra
    const localExtra = Buffer.from(extra.subarray(0, 20));
    localExtra.writeUInt16LE(16, 2);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(45, 4);
    central.writeUInt16LE(45, 6);
    central.writeUInt16LE(f.deflate ? 8 : 0, 10);
    central.writeUInt32LE(crc32(f.data), 16);
    central.writeUInt32LE(0xffffffff, 20);
    central.writeUInt32LE(0xffffffff, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(extra.length, 30);
    central.writeUInt32LE(0xffffffff, 42);
    locals.push(local, name, localExtra, body);
    centrals.push(central, name, extra);
    offset += 30 + name.length + 20 + body.length;
  }
  const cd = Buffer.concat(centrals);
  const rec = Buffer.alloc(56);
  rec.writeUInt32LE(0x06064b50, 0);
  rec.writeBigUInt64LE(44n, 4);
  rec.writeUInt16LE(45, 12);
  rec.writeUInt16LE(45, 14);
  rec.writeBigUInt64LE(BigInt(files.length), 24);
  rec.writeBigUInt64LE(BigInt(files.length), 32);
  rec.writeBigUInt64LE(BigInt(cd.length), 40);
  rec.writeBigUInt64LE(BigInt(offset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(offset + cd.length), 8);
  locator.writeUInt32LE(1, 16);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(0xffffffff, 12);
  eocd.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([...locals, cd, rec, locator, eocd]);
}

test('zip64 archive with STORED and DEFLATE entries', () => {
  const text = new TextEncoder().encode('hello, '.repeat(50));
  const bin = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);
  const buf = zip64([
    { name: 'top/a.txt', data: text },
    { name: 'top/data/0', data: bin, deflate: true },
  ]);
  assert.ok(isZip(buf));
  const entries = readZip(buf);
  assert.deepEqual([...entries.keys()], ['top/a.txt', 'top/data/0']);
  const a = entries.get('top/a.txt')!;
  assert.equal(a.method, 0);
  assert.equal(a.size, text.length);
  assert.deepEqual(new Uint8Array(a.data()), text);
  // STORED data is a view of the archive, not a copy.
  assert.equal(a.data().buffer, buf.buffer);
  const b = entries.get('top/data/0')!;
  assert.equal(b.method, 8);
  assert.deepEqual(new Uint8Array(b.data()), bin);
});

test('damaged archives', () => {
  const buf = zip64([{ name: 'x', data: new Uint8Array(10) }]);
  assert.throws(
    () => readZip(buf.subarray(0, buf.length - 30)),
    (e: Error) => e instanceof ZipError && /truncated/.test(e.message),
  );
  assert.throws(() => readZip(new Uint8Array(10)), /truncated/);
  assert.equal(isZip(new Uint8Array([1, 2, 3, 4])), false);
});
