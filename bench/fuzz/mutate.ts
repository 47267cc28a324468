// Mutations of a seed file: generic byte-level ones, and structure-aware ones for zip archives,
// pickles, safetensors headers, PNG and JPEG files and config text, which get past the first
// checks of a parser (a magic number, a CRC) to the code behind them.
import { crc32 } from 'node:zlib';
import type { Rng } from './rng.js';

export type Mutator = (buf: Uint8Array, rng: Rng, corpus: readonly Uint8Array[]) => Uint8Array;

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff];
const INTERESTING_32 = [0, 1, 2, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 20, 1 << 30, 0xfffffffe];

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function writeLE(buf: Uint8Array, at: number, width: number, v: number): void {
  for (let i = 0; i < width && at + i < buf.length; i++) buf[at + i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
}
function writeBE(buf: Uint8Array, at: number, width: number, v: number): void {
  for (let i = 0; i < width && at + i < buf.length; i++)
    buf[at + i] = Math.floor(v / 2 ** (8 * (width - 1 - i))) & 0xff;
}
function readLE(buf: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + (buf[at + i] ?? 0);
  return v;
}

/** An interesting replacement for an integer field that holds `old`. */
function interestingInt(rng: Rng, old: number, width: number): number {
  const max = 2 ** (8 * width) - 1;
  const choices = [
    0,
    1,
    old + 1,
    old - 1,
    old * 2,
    Math.floor(old / 2),
    max,
    Math.floor(max / 2),
    max - 1,
    ...INTERESTING_32,
  ];
  return Math.min(max, Math.max(0, rng.pick(choices)));
}

// ---- generic ---------------------------------------------------------------------------------

export const bitFlip: Mutator = (b, rng) => {
  const out = b.slice();
  for (let n = 1 + rng.int(8); n > 0 && out.length; n--) out[rng.int(out.length)] ^= 1 << rng.int(8);
  return out;
};
export const byteSet: Mutator = (b, rng) => {
  const out = b.slice();
  if (out.length) out[rng.int(out.length)] = rng.pick(INTERESTING_8);
  return out;
};
export const intSet: Mutator = (b, rng) => {
  const out = b.slice();
  if (out.length >= 4) writeLE(out, rng.int(out.length - 3), 4, rng.pick(INTERESTING_32));
  return out;
};
export const insertBytes: Mutator = (b, rng) => {
  const at = rng.int(b.length + 1);
  return concat(b.subarray(0, at), rng.bytes(1 + rng.int(64)), b.subarray(at));
};
export const deleteRange: Mutator = (b, rng) => {
  const at = rng.int(b.length);
  return concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64))));
};
export const truncate: Mutator = (b, rng) => b.slice(0, rng.int(b.length));
export const duplicateRange: Mutator = (b, rng) => {
  const at = rng.int(b.length);
  const chunk = b.subarray(at, at + 1 + rng.int(256));
  const to = rng.int(b.length + 1);
  return concat(b.subarray(0, to), chunk, b.subarray(to));
};
export const splice: Mutator = (b, rng, corpus) => {
  const other = rng.pick(corpus);
  return concat(b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1)));
};

export const GENERIC: Mutator[] = [
  bitFlip,
  byteSet,
  intSet,
  insertBytes,
  deleteRange,
  truncate,
  duplicateRange,
  splice,
];

// ---- zip -------------------------------------------------------------------------------------

// Field offsets and widths of the zip records torch.save archives use.
const ZIP_FIELDS: Record<number, [number, number][]> = {
  0x04034b50: [
    [8, 2],
    [18, 4],
    [22, 4],
    [26, 2],
    [28, 2],
  ], // local: method, sizes, name and extra lengths
  0x02014b50: [
    [10, 2],
    [20, 4],
    [24, 4],
    [28, 2],
    [30, 2],
    [32, 2],
    [42, 4],
  ], // central: ... local header offset
  0x06054b50: [
    [8, 2],
    [10, 2],
    [12, 4],
    [16, 4],
    [20, 2],
  ], // end record: counts, directory size and offset
};

export const zipField: Mutator = (b, rng) => {
  const records: [number, number][] = [];
  for (let i = 0; i + 4 <= b.length; i++) {
    if (b[i] !== 0x50 || b[i + 1] !== 0x4b) continue;
    const sig = readLE(b, i, 4);
    if (ZIP_FIELDS[sig]) records.push([i, sig]);
  }
  if (!records.length) return bitFlip(b, rng, []);
  const out = b.slice();
  const [at, sig] = rng.pick(records);
  const [off, width] = rng.pick(ZIP_FIELDS[sig]);
  writeLE(out, at + off, width, interestingInt(rng, readLE(out, at + off, width), width));
  return out;
};

// ---- pickle ----------------------------------------------------------------------------------

// Opcodes with a fixed-width integer operand: BININT, BININT1, BININT2, BINPUT, BINGET,
// LONG_BINPUT/GET, SHORT_BINUNICODE/BINUNICODE lengths, LONG1 length, FRAME.
const PICKLE_INT_OPS: Record<number, number> = {
  0x4a: 4,
  0x4b: 1,
  0x4d: 2,
  0x71: 1,
  0x68: 1,
  0x72: 4,
  0x6a: 4,
  0x8c: 1,
  0x58: 4,
  0x8a: 1,
  0x95: 8,
};
const PICKLE_OPS = [
  0x28, 0x29, 0x2e, 0x30, 0x4e, 0x5d, 0x61, 0x65, 0x6c, 0x74, 0x73, 0x75, 0x7d, 0x85, 0x86, 0x87, 0x52, 0x51, 0x62,
  0x81, 0x94, 0x93,
];

export const pickleInt: Mutator = (b, rng) => {
  const at: number[] = [];
  for (let i = 0; i < b.length; i++) if (PICKLE_INT_OPS[b[i]] !== undefined) at.push(i);
  if (!at.length) return byteSet(b, rng, []);
  const out = b.slice();
  const p = rng.pick(at);
  const width = Math.min(PICKLE_INT_OPS[out[p]], 4);
  writeLE(out, p + 1, width, interestingInt(rng, readLE(out, p + 1, width), width));
  return out;
};

export const pickleOp: Mutator = (b, rng) => {
  const at: number[] = [];
  for (let i = 0; i < b.length; i++) if (PICKLE_OPS.includes(b[i])) at.push(i);
  if (!at.length) return byteSet(b, rng, []);
  const out = b.slice();
  const p = rng.pick(at);
  if (rng.chance(0.5)) out[p] = rng.pick(PICKLE_OPS);
  else return concat(out.subarray(0, p), Uint8Array.of(rng.pick(PICKLE_OPS)), out.subarray(p));
  return out;
};

/**
 * A size or stride of a tensor: a run of BININT1 ints closed by a tuple opcode (TUPLE1-3, or
 * TUPLE after a MARK), one of them rewritten as a BININT with a 32-bit value: 0 (an expand),
 * -1, or large (2^20, 2^31-1), which reach the view and allocation paths of the reader.
 */
export const pickleShape: Mutator = (b, rng) => {
  const ints: number[] = [];
  for (let i = 0; i + 2 < b.length; i++) {
    if (b[i] !== 0x4b) continue;
    let j = i;
    while (b[j] === 0x4b) j += 2;
    if ([0x85, 0x86, 0x87, 0x74].includes(b[j])) for (let k = i; k < j; k += 2) ints.push(k);
    i = j - 1;
  }
  if (!ints.length) return pickleInt(b, rng, []);
  const at = rng.pick(ints);
  const v = new Uint8Array(5);
  v[0] = 0x4a; // BININT
  writeLE(v, 1, 4, rng.pick([0, 0xffffffff, 1 << 20, 0x7fffffff, 1 << 16, 0xfffffffe]));
  return concat(b.subarray(0, at), v, b.subarray(at + 2));
};

// ---- safetensors -----------------------------------------------------------------------------

export const safetensorsHeader: Mutator = (b, rng) => {
  if (b.length < 8) return bitFlip(b, rng, []);
  const n = readLE(b, 0, 8);
  if (n > b.length - 8) return intSet(b, rng, []);
  let text = new TextDecoder().decode(b.subarray(8, 8 + n));
  const data = b.subarray(8 + n);
  let header: Record<string, any>;
  try {
    header = JSON.parse(text);
  } catch {
    return bitFlip(b, rng, []);
  }
  const keys = Object.keys(header).filter((k) => k !== '__metadata__');
  const k = keys.length ? rng.pick(keys) : undefined;
  const e = k ? header[k] : undefined;
  switch (rng.int(8)) {
    case 0:
      if (e) e.data_offsets[rng.int(2)] = interestingInt(rng, e.data_offsets[0], 4);
      break;
    case 1:
      if (e && e.shape.length)
        e.shape[rng.int(e.shape.length)] = rng.pick([0, -1, 1.5, 2 ** 31, 2 ** 53, 1e300, e.shape[0] * 2]);
      break;
    case 2:
      if (e) e.dtype = rng.pick(['F32', 'F64', 'I64', 'BOOL', 'F8_E4M3', 'X', 42]);
      break;
    case 3:
      if (k) delete header[k];
      break;
    case 4:
      if (e) header[`${k}_copy`] = structuredClone(e);
      break;
    case 5:
      if (e) e.shape = rng.chance(0.5) ? [] : [...e.shape, 1];
      break;
    case 6:
      header.__metadata__ = rng.pick([{ a: 1 }, 'x', null, { format: 'pt' }, []]);
      break;
    default:
      if (e) e.data_offsets = [e.data_offsets[1], e.data_offsets[0]];
  }
  text = JSON.stringify(header);
  // Sometimes a key twice, which a JSON object cannot say.
  if (k && rng.chance(0.2)) text = text.replace('{', `{${JSON.stringify(k)}:${JSON.stringify(e)},`);
  const head = new TextEncoder().encode(text);
  const len = new Uint8Array(8);
  writeLE(len, 0, 8, rng.chance(0.1) ? interestingInt(rng, head.length, 4) : head.length);
  const tail = rng.chance(0.2) ? rng.bytes(1 + rng.int(16)) : new Uint8Array(0);
  return concat(len, head, data, tail);
};

// ---- PNG (chunks re-checksummed, so the decoder reads past the CRC) ---------------------------

export const pngChunk: Mutator = (b, rng) => {
  if (b.length < 33) return bitFlip(b, rng, []);
  const out = b.slice();
  const chunks: { at: number; len: number; type: string }[] = [];
  for (let p = 8; p + 12 <= out.length;) {
    const len = readLE(Uint8Array.from(out.subarray(p, p + 4)).reverse(), 0, 4);
    chunks.push({ at: p, len, type: String.fromCharCode(...out.subarray(p + 4, p + 8)) });
    p += 12 + len;
  }
  const ihdr = chunks.find((c) => c.type === 'IHDR');
  const c = rng.chance(0.6) && ihdr ? ihdr : rng.pick(chunks);
  if (!c) return bitFlip(b, rng, []);
  const data = c.at + 8;
  if (c.type === 'IHDR') {
    const field = rng.pick([
      [0, 4],
      [4, 4],
      [8, 1],
      [9, 1],
      [10, 1],
      [11, 1],
      [12, 1],
    ] as const);
    const vals =
      field[1] === 4 ? [0, 1, 65535, 65536, 100000, 0x7fffffff, 0xffffffff] : [0, 1, 2, 3, 4, 6, 7, 8, 16, 255];
    writeBE(out, data + field[0], field[1], rng.pick(vals));
  } else if (c.len > 0 && data + c.len <= out.length) {
    for (let n = 1 + rng.int(4); n > 0; n--) out[data + rng.int(c.len)] ^= 1 << rng.int(8);
  } else {
    writeBE(out, c.at, 4, interestingInt(rng, c.len, 4));
    return out;
  }
  if (data + c.len + 4 <= out.length) writeBE(out, data + c.len, 4, crc32(out.subarray(c.at + 4, data + c.len)));
  return out;
};

// ---- JPEG ------------------------------------------------------------------------------------

export const jpegSegment: Mutator = (b, rng) => {
  const sof: number[] = [];
  for (let i = 0; i + 9 < b.length; i++)
    if (
      b[i] === 0xff &&
      (b[i + 1] === 0xc0 || b[i + 1] === 0xc2 || b[i + 1] === 0xc4 || b[i + 1] === 0xdb || b[i + 1] === 0xda)
    )
      sof.push(i);
  if (!sof.length) return bitFlip(b, rng, []);
  const out = b.slice();
  const at = rng.pick(sof);
  // Segment length, precision, height, width, component count (SOF); table bytes otherwise.
  const field = rng.pick([
    [2, 2],
    [4, 1],
    [5, 2],
    [7, 2],
    [9, 1],
  ] as const);
  writeBE(out, at + field[0], field[1], rng.pick([0, 1, 255, 65535, 65500, 3, 4, 16]));
  return out;
};

// ---- config text -----------------------------------------------------------------------------

export const configText: Mutator = (b, rng) => {
  let text = new TextDecoder().decode(b);
  const lines = text.split('\n');
  switch (rng.int(7)) {
    case 0: {
      // a number replaced by an extreme one
      const nums = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/gi)];
      if (nums.length) {
        const m = rng.pick(nums);
        text =
          text.slice(0, m.index) +
          rng.pick([
            '-1',
            '0',
            '1e309',
            '-1e309',
            '1e-400',
            '9007199254740993',
            '4294967296',
            '0.5',
            '"x"',
            'null',
            '[]',
            '{}',
          ]) +
          text.slice(m.index + m[0].length);
      }
      break;
    }
    case 1: {
      const i = rng.int(lines.length);
      lines.splice(i, 0, lines[rng.int(lines.length)]);
      text = lines.join('\n');
      break;
    } // a line twice
    case 2: {
      lines.splice(rng.int(lines.length), 1 + rng.int(3));
      text = lines.join('\n');
      break;
    }
    case 3: {
      // deep nesting where a value was
      const d = rng.pick([100, 10_000, 100_000]);
      text = text.replace(/: ?[^,\n{[]+/, `: ${'['.repeat(d)}${']'.repeat(d)}`);
      break;
    }
    case 4: // YAML aliases that expand exponentially (a "billion laughs")
      text =
        `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n` +
        text;
      break;
    case 5:
      text = text.replace(/"([a-zA-Z]+)":/, rng.pick(['"__proto__":', '"constructor":', '"":', '"$1$1":']));
      break;
    default:
      text =
        text.slice(0, rng.int(text.length)) +
        rng.pick(['{', '}', '[', ']', ':', ',', '"', '\\', '\u0000', '\t', '&', '*', '!!binary ', '<<: ']) +
        text.slice(rng.int(text.length));
  }
  return new TextEncoder().encode(text);
};
