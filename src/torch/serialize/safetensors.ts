// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
// padded with spaces to a multiple of 8, then the tensors' bytes, row-major, little-endian.
// No code, no pickle: the format we write our own weights in.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Tensor } from '../tensor.js';
import { tensor } from '../creation.js';
import { type DType, elementSize } from '../dtype.js';
import { bufferSource, fileSource, type ByteSource } from './bytes.js';
import { findDuplicateKey } from './json-keys.js';
import { checkBytes } from '../budget.js';

const CODES: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const DTYPES = new Map<string, DType>(Object.entries(CODES).map(([d, c]) => [c, d as DType]));

// The reference implementation refuses headers over 100 MB; so do we, before parsing them.
const MAX_HEADER = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** The tensors of a safetensors file, in file order, with its `__metadata__` alongside. */
export class SafetensorsMap extends Map<string, Tensor> {
  metadata: Record<string, string> = {};
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/**
 * Reads a .safetensors file (or its bytes). Dispose the tensors when done. A file is read piece by
 * piece (header, then one tensor at a time), so it is never held whole next to its tensors.
 */
export function readSafetensors(src: string | Uint8Array): SafetensorsMap {
  return withSource(src, (bytes, label) => readTensors(bytes, parseHeader(bytes, label)));
}

/** A safetensors file's `__metadata__`, its header checked as readSafetensors checks it; no tensor is read. */
export function readSafetensorsMetadata(src: string | Uint8Array): Record<string, string> {
  return withSource(src, (bytes, label) => parseHeader(bytes, label).metadata);
}

function withSource<T>(src: string | Uint8Array, fn: (bytes: ByteSource, label: string) => T): T {
  const label = typeof src === 'string' ? src : '<buffer>';
  let bytes: ByteSource;
  try {
    bytes = typeof src === 'string' ? fileSource(src) : bufferSource(src);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(
      code === 'ENOENT' ? `${label}: no such file` : `${label}: cannot read (${(e as Error).message})`,
      { cause: e },
    );
  }
  try {
    return fn(bytes, label);
  } finally {
    bytes.close();
  }
}

interface Header {
  metadata: Record<string, string>;
  /** [name, dtype, shape, begin, end], in layout order */
  entries: [string, DType, number[], number, number][];
  /** where the data buffer starts */
  headerEnd: number;
}

function parseHeader(bytes: ByteSource, label: string): Header {
  function fail(msg: string): never {
    throw new SafetensorsError(`${label}: ${msg}`);
  }
  if (bytes.length < 8) fail('not a safetensors file (shorter than its header length)');
  const head = bytes.read(0, 8);
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, bytes.length - 8)))
    fail(`not a safetensors file or truncated (header length ${n})`);
  const headerEnd = 8 + Number(n);

  let header: Record<string, unknown>;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.read(8, Number(n)));
    header = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    return fail(`not a safetensors file (bad JSON header: ${(e as Error).message})`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) fail(`the header names "${dup}" twice`);
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object');
  const dataLength = bytes.length - headerEnd;

  let metadata: Record<string, string> = {};
  const meta = header.__metadata__;
  if (meta !== undefined) {
    if (meta === null || typeof meta !== 'object' || Object.values(meta).some((v) => typeof v !== 'string'))
      fail('__metadata__ must map strings to strings');
    metadata = { ...(meta as Record<string, string>) };
  }

  // Validate every entry before allocating any tensor, as the reference implementation does:
  // sorted by offset, the tensors tile the data buffer exactly (each begins where the previous
  // ends, the last ends at the end of the file), so no tensor reads another's bytes and no
  // bytes are unaccounted for.
  const entries: [string, DType, number[], number, number][] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as HeaderEntry;
    const dtype = DTYPES.get(e?.dtype);
    if (!dtype) fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor "${name}" has a bad shape`);
    const [begin, end] = Array.isArray(e.data_offsets) ? e.data_offsets : [-1, -1];
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin)
      fail(`tensor "${name}" has bad data_offsets`);
    if (end > dataLength) fail(`truncated: tensor "${name}" ends at byte ${end} of a ${dataLength}-byte buffer`);
    const numel = e.shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel * elementSize(dtype)))
      fail(`tensor "${name}" has shape [${e.shape}], too large to hold`);
    if (end - begin !== numel * elementSize(dtype))
      fail(
        `tensor "${name}": data_offsets span ${end - begin} bytes, shape [${e.shape}] needs ${numel * elementSize(dtype)}`,
      );
    entries.push([name, dtype, e.shape, begin, end]);
  }
  // File order is layout order; JSON objects would put integer-like names first. Equal begins
  // (empty tensors) sort by end, so an empty tensor before a full one at the same offset tiles.
  entries.sort((a, b) => a[3] - b[3] || a[4] - b[4]);
  let covered = 0;
  for (const [name, , , begin, end] of entries) {
    if (begin !== covered) {
      fail(
        begin < covered
          ? `tensor "${name}" (bytes ${begin}-${end}) overlaps the tensor before it, which ends at byte ${covered}`
          : `bytes ${covered}-${begin} of the data buffer belong to no tensor (the next, "${name}", begins at ${begin})`,
      );
    }
    covered = end;
  }
  if (covered !== dataLength) fail(`bytes ${covered}-${dataLength} at the end of the data buffer belong to no tensor`);
  return { metadata, entries, headerEnd };
}

function readTensors(bytes: ByteSource, { metadata, entries, headerEnd }: Header): SafetensorsMap {
  const out = new SafetensorsMap();
  out.metadata = metadata;
  // Each tensor is copied into LibTorch; every one is checked before the first is made.
  for (const [name, , , begin, end] of entries) checkBytes(end - begin, `tensor "${name}"`);
  // One tensor at a time through one reusable buffer (tensor() copies it).
  const scratch = { buf: new Uint8Array(0) };
  try {
    for (const [name, dtype, shape, begin, end] of entries)
      out.set(name, tensor(bytes.readInto(headerEnd + begin, end - begin, scratch), { dtype, shape }));
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/**
 * Writes tensors (in the given order) to `path` atomically: the bytes go to a temporary file in
 * the same folder, which is fsynced and then renamed over `path`, so a crash leaves either the
 * old file or the complete new one, never a half-written file.
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  // The header is built by hand so its key order is exactly the layout order.
  const parts: string[] = [];
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`${path}: metadata value for "${k}" must be a string`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__') throw new SafetensorsError(`${path}: "__metadata__" cannot name a tensor`);
    const nbytes = t.numel * elementSize(t.dtype);
    parts.push(
      `${JSON.stringify(name)}:${JSON.stringify({ dtype: CODES[t.dtype], shape: t.shape, data_offsets: [offset, offset + nbytes] })}`,
    );
    offset += nbytes;
  }
  let header = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(header.length / 8) * 8;
  header = Buffer.concat([header, Buffer.alloc(padded - header.length, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined = openSync(tmp, 'wx');
  try {
    writeAll(fd, prefix);
    writeAll(fd, header);
    // One tensor at a time, so at most one tensor's bytes are held in JS memory.
    for (const [name, t] of list) {
      const d = t.data();
      if (d.byteLength !== t.numel * elementSize(t.dtype))
        throw new SafetensorsError(`${path}: tensor "${name}" changed while writing`);
      writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  // Make the rename itself durable; some file systems do not allow fsync on a folder.
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* best effort */
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
}
