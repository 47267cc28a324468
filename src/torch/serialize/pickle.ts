// A restricted unpickler: it understands the opcodes that torch.save and plain Python data
// produce (protocols 2-5 plus the binary protocol-1 forms) and never runs code. A GLOBAL
// resolves only through an allow-list of pure data constructors (OrderedDict, torch storage
// classes, torch's tensor rebuild functions, ...); any other class or function becomes an
// opaque PickledObject that records its arguments and state, so checkpoint metadata written
// by argparse, numpy or mmcv loads without error and without being executed.
//
// Python values map to JS as: None -> null, bool -> boolean, int -> number (bigint beyond
// 2^53), float -> number, str -> string, bytes -> Uint8Array, list/tuple -> array,
// dict/OrderedDict -> Map (insertion order kept, keys of any type), set -> Set.
// Tensors stay lazy: _rebuild_tensor_v2 gives a TensorRef naming its storage, so the caller
// decides which tensors to materialize (a state dict, not the optimizer's buffers).

/** A persistent id resolved by the caller: torch's ('storage', type, key, location, numel). */
export type PersistentLoad = (pid: unknown) => unknown;

/** A torch storage class such as torch.FloatStorage. dtype is null for kinds we cannot hold. */
export class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: StorageDType | null,
    readonly elementSize: number,
  ) {}
}

export type StorageDType =
  'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** What persistentLoad returns for a storage: its key in the archive, from an element offset. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly type: StorageType,
    /** The storage length in elements, as the pickle states it. */
    readonly numel: number,
    /** Elements to skip (legacy storage views); 0 otherwise. */
    readonly offset = 0,
  ) {}
}

/** A tensor described by torch._utils._rebuild_tensor_v2; no data is read until materialized. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly size: number[],
    readonly stride: number[],
    readonly requiresGrad: boolean,
  ) {}
}

/** An instance of a class outside the allow-list: recorded, never constructed. */
export class PickledObject {
  /** Set by BUILD (an object's __dict__ or __setstate__ argument). */
  state: unknown = undefined;
  /** Filled by SETITEM(S) when the class is a dict subclass (e.g. mmcv ConfigDict). */
  dictItems: Map<unknown, unknown> | undefined;
  /** Filled by APPEND(S) when the class is a list subclass. */
  listItems: unknown[] | undefined;
  constructor(
    readonly className: string,
    readonly args: unknown[],
  ) {}
}

/** A global that is not on the allow-list; calling it yields a PickledObject. */
class OpaqueGlobal {
  constructor(readonly className: string) {}
}

/** A global on the allow-list: a pure function of its (already unpickled) arguments. */
class SafeGlobal {
  constructor(
    readonly className: string,
    readonly call: (args: unknown[]) => unknown,
  ) {}
}

/** The dotted name when `v` is a class or function reference (a GLOBAL not called); else undefined. */
export function globalName(v: unknown): string | undefined {
  if (v instanceof OpaqueGlobal || v instanceof SafeGlobal) return v.className;
  if (v instanceof StorageType) return v.name;
  return undefined;
}

export class UnpicklingError extends Error {
  override name = 'UnpicklingError';
}

// torch names storage classes FloatStorage etc. (also under torch.cuda in old GPU checkpoints).
const STORAGE_TYPES: Record<string, [StorageDType | null, number]> = {
  FloatStorage: ['float32', 4],
  DoubleStorage: ['float64', 8],
  HalfStorage: ['float16', 2],
  BFloat16Storage: ['bfloat16', 2],
  LongStorage: ['int64', 8],
  IntStorage: ['int32', 4],
  ShortStorage: ['int16', 2],
  CharStorage: ['int8', 1],
  ByteStorage: ['uint8', 1],
  BoolStorage: ['bool', 1],
  UntypedStorage: ['uint8', 1],
  // Kinds we cannot make tensors of, listed so legacy files can still skip over their bytes.
  ComplexFloatStorage: [null, 8],
  ComplexDoubleStorage: [null, 16],
  QInt8Storage: [null, 1],
  QUInt8Storage: [null, 1],
  QInt32Storage: [null, 4],
  QUInt4x2Storage: [null, 1],
  QUInt2x4Storage: [null, 1],
};

function asInt(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new UnpicklingError(`${what}: expected an int, got ${describe(v)}`);
}

function asIntList(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new UnpicklingError(`${what}: expected a tuple of ints, got ${describe(v)}`);
  return v.map((x) => asInt(x, what));
}

export function describe(v: unknown): string {
  if (v instanceof PickledObject) return v.className;
  if (v instanceof OpaqueGlobal || v instanceof SafeGlobal) return `global ${v.className}`;
  if (v instanceof StorageType) return `global ${v.name}`;
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'tuple/list';
  if (v instanceof Map) return 'dict';
  return v?.constructor?.name ?? typeof v;
}

function rebuildTensor(args: unknown[]): TensorRef | PickledObject {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  const [storage, offset, size, stride, requiresGrad] = args;
  // Anything but a storage we know stays opaque; the caller rejects it if a tensor was expected there.
  if (!(storage instanceof StorageRef)) return new PickledObject('torch._utils._rebuild_tensor_v2', args);
  return new TensorRef(
    storage,
    asInt(offset, 'storage offset'),
    asIntList(size, 'size'),
    asIntList(stride, 'stride'),
    requiresGrad === true,
  );
}

function rebuildParameter(args: unknown[]): unknown {
  // (data, requires_grad, backward_hooks[, state]): a Parameter is its data for our purposes.
  const data = args[0];
  if (data instanceof TensorRef)
    return new TensorRef(data.storage, data.storageOffset, data.size, data.stride, args[1] === true);
  return data;
}

function latin1(s: unknown): Uint8Array {
  if (typeof s !== 'string') throw new UnpicklingError(`_codecs.encode: expected a str, got ${describe(s)}`);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new UnpicklingError('_codecs.encode: character outside latin1');
    out[i] = c;
  }
  return out;
}

function toMap(v: unknown): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (v instanceof Map) for (const [k, x] of v) m.set(k, x);
  else if (Array.isArray(v))
    for (const pair of v) if (Array.isArray(pair) && pair.length === 2) m.set(pair[0], pair[1]);
  return m;
}

/** The allow-list. Everything here builds data from data; nothing imports or runs Python. */
function resolveGlobal(module: string, name: string): SafeGlobal | OpaqueGlobal | StorageType {
  const full = `${module}.${name}`;
  if ((module === 'torch' || module === 'torch.cuda' || module === 'torch.storage') && name in STORAGE_TYPES) {
    const [dtype, size] = STORAGE_TYPES[name];
    return new StorageType(full, dtype, size);
  }
  switch (full) {
    case 'collections.OrderedDict':
      return new SafeGlobal(full, (a) => toMap(a[0]));
    case 'torch._utils._rebuild_tensor_v2':
      return new SafeGlobal(full, rebuildTensor);
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return new SafeGlobal(full, rebuildParameter);
    case 'torch._tensor._rebuild_from_type_v2':
      // (func, new_type, args, state): torch 2 wraps tensors with Python state this way.
      return new SafeGlobal(full, (a) => {
        const [fn, , inner] = a;
        if (fn instanceof SafeGlobal && Array.isArray(inner)) return fn.call(inner);
        return new PickledObject(full, a);
      });
    case 'torch.Size':
      return new SafeGlobal(full, (a) => (Array.isArray(a[0]) ? [...(a[0] as unknown[])] : []));
    case '_codecs.encode':
      return new SafeGlobal(full, (a) => latin1(a[0]));
    case '__builtin__.bytes':
    case 'builtins.bytes':
      return new SafeGlobal(full, (a) =>
        a.length === 0 ? new Uint8Array(0) : Array.isArray(a[0]) ? Uint8Array.from(a[0] as number[]) : latin1(a[0]),
      );
    case '__builtin__.set':
    case 'builtins.set':
    case '__builtin__.frozenset':
    case 'builtins.frozenset':
      return new SafeGlobal(full, (a) => new Set(Array.isArray(a[0]) ? a[0] : []));
    default:
      return new OpaqueGlobal(full);
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * Unpickles one pickle starting at `offset`. Returns the value and the offset just past STOP,
 * so consecutive pickles in one buffer (the legacy torch format) can be read in turn.
 */
export function unpickle(
  buf: Uint8Array,
  offset = 0,
  persistentLoad?: PersistentLoad,
): { value: unknown; end: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let p = offset;

  const need = (n: number) => {
    if (n < 0 || p + n > buf.length) throw new UnpicklingError(`truncated pickle at byte ${p}`);
  };
  const bytes = (n: number) => {
    need(n);
    const b = buf.subarray(p, p + n);
    p += n;
    return b;
  };
  const u8 = () => {
    need(1);
    return buf[p++];
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(p, true);
    p += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = dv.getInt32(p, true);
    p += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(buf.length)) throw new UnpicklingError(`truncated pickle at byte ${p - 8}`);
    return Number(v);
  };
  const line = () => {
    const nl = buf.indexOf(10, p);
    if (nl < 0) throw new UnpicklingError(`truncated pickle at byte ${p}`);
    const s = new TextDecoder('latin1').decode(buf.subarray(p, nl));
    p = nl + 1;
    return s;
  };
  const str = (n: number) => utf8.decode(bytes(n));
  const copy = (n: number) => new Uint8Array(bytes(n)); // a copy, so values never pin the file's buffer
  const pop = () => {
    if (stack.length === 0) throw new UnpicklingError(`pickle stack underflow at byte ${p - 1}`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new UnpicklingError(`pickle stack underflow at byte ${p - 1}`);
    return stack[stack.length - 1];
  };
  // Items pushed since the last MARK, and the stack restored to what it was before it.
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) throw new UnpicklingError('pickle MARK missing');
    stack = prev;
    return items;
  };
  const long = (b: Uint8Array): number | bigint => {
    // Little-endian two's complement of any width. Through one hex string: shifting a BigInt in
    // byte by byte is quadratic, and a 160 KB LONG4 took minutes.
    let hex = '';
    for (let i = b.length - 1; i >= 0; i--) hex += HEX[b[i]];
    let v = b.length ? BigInt('0x' + hex) : 0n;
    if (b.length > 0 && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    const list = Array.isArray(args) ? args : [];
    if (fn instanceof SafeGlobal) return fn.call(list);
    if (fn instanceof OpaqueGlobal) return new PickledObject(fn.className, list);
    if (fn instanceof StorageType) return new PickledObject(fn.name, list);
    throw new UnpicklingError(`cannot call ${describe(fn)}`);
  };
  const setItems = (target: unknown, kv: unknown[]) => {
    let m: Map<unknown, unknown>;
    if (target instanceof Map) m = target;
    else if (target instanceof PickledObject) m = target.dictItems ??= new Map();
    else throw new UnpicklingError(`SETITEM on ${describe(target)}`);
    for (let i = 0; i + 1 < kv.length; i += 2) m.set(kv[i], kv[i + 1]);
  };
  // One push per item: push(...xs) passes every item as an argument, and an APPENDS of a few
  // hundred thousand items overflows the call stack.
  const append = (target: unknown, xs: unknown[]) => {
    if (Array.isArray(target)) for (const x of xs) target.push(x);
    else if (target instanceof Set) for (const x of xs) target.add(x);
    else if (target instanceof PickledObject) {
      const l = (target.listItems ??= []);
      for (const x of xs) l.push(x);
    } else throw new UnpicklingError(`APPEND on ${describe(target)}`);
  };
  const getMemo = (i: number) => {
    if (!memo.has(i)) throw new UnpicklingError(`pickle memo ${i} missing`);
    return memo.get(i);
  };
  const persistent = (pid: unknown) => {
    if (!persistentLoad) throw new UnpicklingError('pickle holds a persistent id but no loader was given');
    return persistentLoad(pid);
  };

  for (;;) {
    const at = p;
    const code = u8();
    switch (code) {
      case 0x80:
        u8();
        break; // PROTO
      case 0x95:
        u64();
        break; // FRAME: a length hint; the opcodes follow inline
      case 0x2e: // STOP
        return { value: pop(), end: p };
      case 0x28:
        metastack.push(stack);
        stack = [];
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP

      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(long(bytes(u8())));
        break; // LONG1
      case 0x8b: {
        const n = i32();
        if (n < 0) throw new UnpicklingError('negative LONG4 length');
        stack.push(long(bytes(n)));
        break;
      }
      case 0x47:
        need(8);
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break; // BINFLOAT (big-endian)
      case 0x49: {
        // INT (protocol 0): also spells True/False as 01/00
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: {
        const s = line().replace(/L$/, '');
        const v = BigInt(s);
        stack.push(Number.isSafeInteger(Number(v)) ? Number(v) : v);
        break;
      } // LONG
      case 0x46:
        stack.push(Number.parseFloat(line()));
        break; // FLOAT

      case 0x8c:
        stack.push(str(u8()));
        break; // SHORT_BINUNICODE
      case 0x58:
        stack.push(str(u32()));
        break; // BINUNICODE
      case 0x8d:
        stack.push(str(u64()));
        break; // BINUNICODE8
      case 0x55:
        stack.push(new TextDecoder('latin1').decode(bytes(u8())));
        break; // SHORT_BINSTRING (py2 str)
      case 0x54:
        stack.push(new TextDecoder('latin1').decode(bytes(i32())));
        break; // BINSTRING
      case 0x43:
        stack.push(copy(u8()));
        break; // SHORT_BINBYTES
      case 0x42:
        stack.push(copy(u32()));
        break; // BINBYTES
      case 0x8e:
        stack.push(copy(u64()));
        break; // BINBYTES8
      case 0x96:
        stack.push(copy(u64()));
        break; // BYTEARRAY8

      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      // popMark() replaces `stack`, so it must run before `stack.push` is looked up.
      case 0x74:
      case 0x6c: {
        const items = popMark();
        stack.push(items);
        break;
      } // TUPLE, LIST
      case 0x91: {
        const items = popMark();
        stack.push(new Set(items));
        break;
      } // FROZENSET
      case 0x64: {
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      } // DICT
      case 0x61: {
        const x = pop();
        append(top(), [x]);
        break;
      } // APPEND
      case 0x65: {
        const xs = popMark();
        append(top(), xs);
        break;
      } // APPENDS
      case 0x90: {
        const xs = popMark();
        append(top(), xs);
        break;
      } // ADDITEMS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const kv = popMark();
        setItems(top(), kv);
        break;
      } // SETITEMS

      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x70:
        memo.set(Number.parseInt(line(), 10), top());
        break; // PUT
      case 0x68:
        stack.push(getMemo(u8()));
        break; // BINGET
      case 0x6a:
        stack.push(getMemo(u32()));
        break; // LONG_BINGET
      case 0x67:
        stack.push(getMemo(Number.parseInt(line(), 10)));
        break; // GET

      case 0x63: {
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw new UnpicklingError('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: {
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ
      case 0x92: {
        pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ_EX (kwargs dropped)
      case 0x6f: {
        const items = popMark();
        const cls = items.shift();
        stack.push(call(cls, items));
        break;
      } // OBJ
      case 0x69: {
        // INST: class named inline, arguments since MARK
        const cls = resolveGlobal(line(), line());
        const obj = call(cls, popMark());
        stack.push(obj);
        break;
      }
      case 0x62: {
        // BUILD: __setstate__ / __dict__ update
        const state = pop();
        const obj = top();
        if (obj instanceof PickledObject) obj.state = state;
        // Anything else (an OrderedDict's `_metadata`, a tensor's hooks) carries state we do not need.
        break;
      }
      case 0x51:
        stack.push(persistent(pop()));
        break; // BINPERSID
      case 0x50:
        stack.push(persistent(line()));
        break; // PERSID

      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4
        throw new UnpicklingError('pickle uses the copyreg extension registry, which is not supported');
      case 0x97:
      case 0x98: // NEXT_BUFFER / READONLY_BUFFER
        throw new UnpicklingError('pickle uses out-of-band buffers, which are not supported');
      default:
        throw new UnpicklingError(`unsupported pickle opcode 0x${code.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }
}
