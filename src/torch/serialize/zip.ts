// A minimal zip reader: just enough for torch.save archives (STORED entries, 64-byte aligned)
// and for archives re-packed by other tools (DEFLATE, zip64). It reads the central directory,
// which is authoritative (local headers may hold zeros when a data descriptor follows). From a
// buffer it hands out views of the archive's bytes; from a file (ByteSource) it reads only the
// directory up front and each entry when asked, so a checkpoint is never held whole in memory.
import { inflateRawSync } from 'node:zlib';
import { bufferSource, type ByteSource } from './bytes.js';

export interface ZipEntry {
  readonly name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's local header in the archive. */
  readonly localHeaderOffset: number;
  /**
   * The entry's bytes: a view into the archive (buffer) or a new buffer (file) when STORED, a new
   * buffer when DEFLATE. With `scratch`, a STORED entry of a file is read into scratch.buf (grown
   * as needed) and the view is valid only until scratch is used again. With `maxSize`, an entry
   * that declares more bytes than that is refused before anything is read or inflated.
   */
  data(scratch?: { buf: Uint8Array }, maxSize?: number): Uint8Array;
}

export class ZipError extends Error {
  override name = 'ZipError';
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

/** True when the bytes start like a zip archive (a local header, or the end record of an empty one). */
export function isZip(buf: Uint8Array): boolean {
  if (buf.length < 4) return false;
  const sig = buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24);
  return sig >>> 0 === SIG_LOCAL || sig >>> 0 === SIG_EOCD;
}

/** A little-endian reader over a piece of the archive that starts at `base`. */
function reader(bytes: Uint8Array, base: number) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    bytes,
    u16: (o: number) => dv.getUint16(o - base, true),
    u32: (o: number) => dv.getUint32(o - base, true),
    u64: (o: number) => {
      const v = dv.getBigUint64(o - base, true);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError('zip64 value too large');
      return Number(v);
    },
  };
}

/** Parses the central directory; entries keep archive order. Throws ZipError on damage. */
export function readZip(archive: Uint8Array | ByteSource): Map<string, ZipEntry> {
  const src = archive instanceof Uint8Array ? bufferSource(archive) : archive;
  const size = src.length;
  const need = (o: number, n: number, what: string) => {
    if (o < 0 || o + n > size) throw new ZipError(`truncated zip archive (${what} out of range)`);
  };
  const at = (o: number, n: number, what: string) => {
    need(o, n, what);
    return reader(src.read(o, n), o);
  };

  // The end-of-central-directory record sits in the last 22 + up to 65535 (comment) bytes; the
  // zip64 locator (20 bytes) just before it.
  const tailStart = Math.max(0, size - 22 - U16_MAX - 20);
  const tail = reader(src.read(tailStart, size - tailStart), tailStart);
  let eocd = -1;
  for (let o = size - 22; o >= Math.max(tailStart, size - 22 - U16_MAX); o--) {
    if (tail.u32(o) === SIG_EOCD && o + 22 + tail.u16(o + 20) <= size) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('truncated zip archive (no end of central directory record)');

  let count = tail.u16(eocd + 10);
  let cdSize = tail.u32(eocd + 12);
  let cdOffset = tail.u32(eocd + 16);
  // Zip64: the real values live in the zip64 end record, found through the locator just before.
  if (
    (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) &&
    eocd - 20 >= tailStart &&
    tail.u32(eocd - 20) === SIG_ZIP64_LOCATOR
  ) {
    const recAt = tail.u64(eocd - 20 + 8);
    const rec = at(recAt, 56, 'zip64 end record');
    if (rec.u32(recAt) !== SIG_ZIP64_EOCD) throw new ZipError('corrupt zip64 end record');
    count = rec.u64(recAt + 32);
    cdSize = rec.u64(recAt + 40);
    cdOffset = rec.u64(recAt + 48);
  }
  const cd = at(cdOffset, cdSize, 'central directory');
  const { u16, u32, u64 } = cd;
  const cdNeed = (o: number, n: number, what: string) => {
    if (o + n > cdOffset + cdSize) throw new ZipError(`truncated zip archive (${what} out of range)`);
  };

  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    cdNeed(p, 46, 'central directory entry');
    if (u32(p) !== SIG_CENTRAL) throw new ZipError(`corrupt central directory entry ${i}`);
    const method = u16(p + 10);
    let compressedSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let localHeaderOffset = u32(p + 42);
    cdNeed(p + 46, nameLen + extraLen + commentLen, 'central directory entry');
    const name = decoder.decode(cd.bytes.subarray(p - cdOffset + 46, p - cdOffset + 46 + nameLen));

    // Zip64 extended information (id 1): only the fields whose 32-bit slot is saturated, in order.
    for (let e = p + 46 + nameLen, end = e + extraLen; e + 4 <= end;) {
      const id = u16(e);
      const len = u16(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        if (size === U32_MAX) {
          size = u64(f);
          f += 8;
        }
        if (compressedSize === U32_MAX) {
          compressedSize = u64(f);
          f += 8;
        }
        if (localHeaderOffset === U32_MAX) {
          localHeaderOffset = u64(f);
          f += 8;
        }
        if (f > e + 4 + len) throw new ZipError(`corrupt zip64 extra field for ${name}`);
      }
      e += 4 + len;
    }
    p += 46 + nameLen + extraLen + commentLen;

    entries.set(name, {
      name,
      method,
      compressedSize,
      size,
      localHeaderOffset,
      data: (scratch, maxSize) =>
        entryData(src, name, method, compressedSize, size, localHeaderOffset, need, scratch, maxSize),
    });
  }
  return entries;
}

function entryData(
  src: ByteSource,
  name: string,
  method: number,
  compressedSize: number,
  size: number,
  local: number,
  need: (o: number, n: number, what: string) => void,
  scratch?: { buf: Uint8Array },
  maxSize?: number,
): Uint8Array {
  if (maxSize !== undefined && size > maxSize)
    throw new ZipError(`${name} declares ${size} bytes, more than the ${maxSize} expected`);
  need(local, 30, `local header of ${name}`);
  const head = reader(src.read(local, 30), local);
  if (head.u32(local) !== SIG_LOCAL) throw new ZipError(`corrupt local header for ${name}`);
  // The data starts after the local header's own name and extra (torch pads the extra to align).
  const start = local + 30 + head.u16(local + 26) + head.u16(local + 28);
  need(start, compressedSize, `data of ${name}`);
  if (method === 0) return scratch ? src.readInto(start, compressedSize, scratch) : src.read(start, compressedSize);
  if (method === 8) {
    // Inflation stops at the declared size: a few kilobytes of DEFLATE data can expand a
    // thousandfold, and without a bound the whole output was made before its size was checked.
    let out: Buffer;
    try {
      out = inflateRawSync(src.read(start, compressedSize), { maxOutputLength: Math.max(1, size) });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new ZipError(`corrupt DEFLATE data for ${name}: it inflates to more than its declared ${size} bytes`);
      }
      throw new ZipError(`corrupt DEFLATE data for ${name} (${(e as Error).message})`);
    }
    if (out.length !== size)
      throw new ZipError(`corrupt DEFLATE data for ${name}: ${out.length} bytes, ${size} declared`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
  throw new ZipError(`unsupported zip compression method ${method} for ${name}`);
}
