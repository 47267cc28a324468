// Hand-built torch.save files, for tests of damaged and hostile checkpoints that PyTorch itself
// would never write (a stride-0 tensor of 2^40 elements, a storage that inflates a thousandfold,
// metadata nested 100,000 deep). The layout is torch.save's zip format: <name>/data.pkl (a
// protocol-2 pickle whose tensors are torch._utils._rebuild_tensor_v2 calls on persistent-id
// storages) and <name>/data/<key> per storage.
import { deflateRawSync } from 'node:zlib';

/** A pickle written opcode by opcode. */
export class PickleWriter {
  private parts: number[] = [0x80, 0x02]; // PROTO 2

  op(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  /** LONG1: any integer, negative and beyond 2^31 included. */
  int(v: number | bigint): this {
    let x = BigInt(v);
    const out: number[] = [];
    if (x !== 0n) {
      for (;;) {
        out.push(Number(x & 0xffn));
        x >>= 8n;
        const sign = out[out.length - 1] & 0x80;
        if ((x === 0n && !sign) || (x === -1n && sign)) break;
      }
    }
    return this.op(0x8a, out.length, ...out);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(b.length);
    return this.op(0x58, ...n, ...b); // BINUNICODE
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  append(): this {
    return this.op(0x61);
  }
  appends(): this {
    return this.op(0x65);
  }
  setitems(): this {
    return this.op(0x75);
  }
  ints(xs: readonly number[]): this {
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  /** A tensor on storage `key` (torch.FloatStorage unless `storageClass`) of `numel` elements. */
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark()
      .str('storage')
      .global('torch', t.storageClass ?? 'FloatStorage')
      .str(t.key)
      .str('cpu')
      .int(t.numel)
      .tuple()
      .op(0x51); // BINPERSID
    this.int(t.offset ?? 0)
      .ints(t.size)
      .ints(t.stride)
      .bool(false)
      .global('collections', 'OrderedDict')
      .op(0x29, 0x52); // OrderedDict()
    return this.tuple().op(0x52); // REDUCE
  }
  /** `depth` lists, each the only element of the one before. */
  nestedList(depth: number): this {
    for (let i = 0; i < depth; i++) this.emptyList();
    for (let i = 1; i < depth; i++) this.append();
    return this;
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]);
  } // STOP
}

export interface TensorSpec {
  key: string;
  numel: number;
  size: number[];
  stride: number[];
  offset?: number;
  storageClass?: string;
}

export interface ZipFile {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  /** The uncompressed size the directory declares (default: the real one). */
  declaredSize?: number;
}

/** A plain zip (no zip64) with the given entries, STORED or DEFLATE. CRCs are left 0. */
export function zip(files: ZipFile[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name);
    const body = f.deflate ? deflateRawSync(f.data) : Buffer.from(f.data);
    const size = f.declaredSize ?? f.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(f.deflate ? 8 : 0, 8);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(f.deflate ? 8 : 0, 10);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/** A torch.save zip archive: data.pkl plus one entry per storage (float32 values or raw bytes). */
export function torchZip(
  pickle: Uint8Array,
  storages: Record<string, Float32Array | Omit<ZipFile, 'name'>> = {},
  name = 'archive',
): Buffer {
  const files: ZipFile[] = [{ name: `${name}/data.pkl`, data: pickle }];
  for (const [key, s] of Object.entries(storages)) {
    files.push(
      s instanceof Float32Array
        ? { name: `${name}/data/${key}`, data: new Uint8Array(s.buffer, s.byteOffset, s.byteLength) }
        : { name: `${name}/data/${key}`, ...s },
    );
  }
  files.push({ name: `${name}/version`, data: Buffer.from('3\n') });
  return zip(files);
}

/** {key: tensor, ...} as the pickle of a plain state dict. */
export function stateDictPickle(tensors: Record<string, TensorSpec>, extra?: (p: PickleWriter) => void): Uint8Array {
  const p = new PickleWriter().emptyDict().mark();
  for (const [k, t] of Object.entries(tensors)) p.str(k).tensor(t);
  extra?.(p);
  return p.setitems().bytes();
}
