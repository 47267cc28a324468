// Reading torch.save checkpoints without Python: the zip format (PyTorch >= 1.6) and the legacy
// format older open-mmlab checkpoints use. The pickle is decoded by our restricted unpickler;
// tensors stay as lazy references until we know which dict is the state dict, so optimizer
// buffers and other metadata tensors are never copied into LibTorch.
import { Tensor, callT, op } from '../tensor.js';
import { tensor } from '../creation.js';
import { isZip, readZip, type ZipEntry } from './zip.js';
import { bufferSource, fileSource, type ByteSource } from './bytes.js';
import { unpickle, globalName, PickledObject, StorageRef, StorageType, TensorRef } from './pickle.js';
import { checkBytes } from '../budget.js';
import { toJS } from './pickle-js.js';

export type StateDictSource = 'top' | 'state_dict' | 'model';

export interface Checkpoint {
  /**
   * The state dict's tensors, in the order they were saved. Each owns its memory, except a view
   * that repeats elements (an expand: more elements than its storage holds), which stays a view
   * of the storage as torch.load keeps it; copy it with contiguous() where that is wanted.
   */
  tensors: Map<string, Tensor>;
  /**
   * The other top-level entries as plain JS values (tensors left out): dicts with string keys
   * become objects, other dicts Maps, tuples arrays, classes outside the allow-list
   * `{ __class__, args?, state?, items? }`. For source 'top', the state dict's non-tensor entries.
   */
  meta: Record<string, unknown>;
  /** Where the state dict was found. */
  source: StateDictSource;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

// torch/serialization.py: the legacy format starts with these two pickled ints.
const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001;

/** A parsed checkpoint: the unpickled object and access to the raw bytes of each storage. */
interface Archive {
  root: unknown;
  /**
   * A storage's bytes: valid until the next call (they are copied into a tensor at once).
   * `nbytes` is what the pickle says the storage holds; a zip entry declaring more is refused.
   */
  storageBytes(key: string, nbytes: number): Uint8Array;
}

/**
 * Reads a torch.save file (or its bytes) and returns its state dict's tensors and metadata. A zip
 * file is read piece by piece (directory, pickle, then one storage at a time), so the peak is the
 * tensors alone, not the file and the tensors; legacy files are read whole.
 */
export function readCheckpoint(src: string | Uint8Array): Checkpoint {
  const label = typeof src === 'string' ? src : '<buffer>';
  const bytes = typeof src === 'string' ? openFile(src) : bufferSource(src);
  try {
    const archive = isZip(bytes.read(0, Math.min(4, bytes.length))) ? parseZip(bytes) : parseLegacy(readWhole(bytes));
    const { dict, source } = findStateDict(archive.root, label);
    // meta: every other top-level entry (for 'top', the state dict's own non-tensor entries).
    // Converted before any tensor is made, so an error here has nothing to free.
    const rest =
      source === 'top' ? dict : new Map([...(archive.root as Map<unknown, unknown>)].filter(([k]) => k !== source));
    const meta = asRecord(toJS(rest));
    // materialize frees its own tensors when it fails.
    const tensors = materialize(dict, archive, label);
    return { tensors, meta, source };
  } catch (e) {
    // Every error names the file, whichever layer raised it (zip, pickle, LibTorch, the budget).
    if (e instanceof CheckpointError && e.message.startsWith(`${label}: `)) throw e;
    throw new CheckpointError(`${label}: ${(e as Error).message}`, { cause: e });
  } finally {
    bytes.close();
  }
}

/** Just the state dict's tensors. */
export function readStateDict(src: string | Uint8Array): Map<string, Tensor> {
  return readCheckpoint(src).tensors;
}

/** A legacy checkpoint is parsed from memory, so the whole file counts against the budget. */
function readWhole(bytes: ByteSource): Uint8Array {
  checkBytes(bytes.length, 'a legacy-format checkpoint (read whole)');
  return bytes.read(0, bytes.length);
}

function openFile(path: string): ByteSource {
  try {
    return fileSource(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CheckpointError(`${path}: no such file`);
    throw new CheckpointError(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
}

// ---- the two file formats ------------------------------------------------------------------

function storageId(pid: unknown): { type: StorageType; key: string; numel: number; view: unknown } {
  // ('storage', storage_type, key, location, numel[, view_metadata]); py2 files may hold bytes.
  if (!Array.isArray(pid) || pid.length < 5 || asText(pid[0]) !== 'storage') {
    throw new CheckpointError(`unsupported persistent id ${JSON.stringify(asText(Array.isArray(pid) ? pid[0] : pid))}`);
  }
  const [, type, key, , numel, view] = pid as unknown[];
  if (!(type instanceof StorageType))
    throw new CheckpointError(`unsupported storage class ${globalName(type) ?? String(type)}`);
  if (typeof numel !== 'number') throw new CheckpointError('storage size is not an int');
  return { type, key: asText(key), numel, view };
}

function asText(v: unknown): string {
  return v instanceof Uint8Array ? new TextDecoder('latin1').decode(v) : String(v);
}

function parseZip(src: ByteSource): Archive {
  const entries = readZip(src);
  // The top folder is named after the file torch.save was given; find it from data.pkl.
  let prefix: string | undefined;
  for (const name of entries.keys()) {
    const m = /^([^/]*\/)?data\.pkl$/.exec(name);
    if (m) {
      prefix = m[1] ?? '';
      break;
    }
  }
  if (prefix === undefined) throw new CheckpointError('not a PyTorch checkpoint (zip archive without data.pkl)');
  const pkl = entries.get(`${prefix}data.pkl`)!;
  // The pickle is held whole (unpickled from memory), so its size counts against the budget.
  checkBytes(pkl.size, `${prefix}data.pkl`);
  const order = entries.get(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order.data()).trim() === 'big') {
    throw new CheckpointError('big-endian checkpoints are not supported');
  }
  const root = unpickle(pkl.data(), 0, (pid) => {
    const { type, key, numel } = storageId(pid);
    return new StorageRef(key, type, numel);
  }).value;
  // One storage at a time, read into one reusable buffer; the last one is kept because tensors that
  // share a storage are usually saved one after the other (and DEFLATE entries inflate on each read).
  const scratch = { buf: new Uint8Array(0) };
  let last: { key: string; bytes: Uint8Array } | undefined;
  return {
    root,
    storageBytes(key, nbytes) {
      if (last?.key === key) return last.bytes;
      const entry: ZipEntry | undefined = entries.get(`${prefix}data/${key}`);
      if (!entry) throw new CheckpointError(`storage data/${key} is missing from the archive`);
      // torch.save writes each storage's bytes exactly; an entry declaring more is damaged, and
      // refusing it before reading keeps a small DEFLATE entry from inflating to gigabytes.
      last = { key, bytes: entry.data(scratch, nbytes) };
      return last.bytes;
    },
  };
}

function parseLegacy(buf: Uint8Array): Archive {
  // _legacy_save: magic number, protocol version, sys_info, the object, the sorted storage keys,
  // then per storage an int64 element count and the raw bytes. Everything little-endian.
  let head;
  try {
    head = buf[0] === 0x80 ? unpickle(buf, 0) : undefined;
  } catch {
    head = undefined;
  }
  if (head?.value !== MAGIC_NUMBER) {
    const tar = buf.length > 262 && new TextDecoder().decode(buf.subarray(257, 262)) === 'ustar';
    throw new CheckpointError(
      tar
        ? 'legacy tar-format checkpoints (PyTorch < 0.4) are not supported'
        : 'not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save pickle)',
    );
  }
  const version = unpickle(buf, head.end);
  if (version.value !== PROTOCOL_VERSION)
    throw new CheckpointError(`unsupported legacy protocol version ${String(version.value)}`);
  const sysInfo = unpickle(buf, version.end);
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw new CheckpointError('big-endian checkpoints are not supported');
  }

  const types = new Map<string, StorageType>();
  const main = unpickle(buf, sysInfo.end, (pid) => {
    if (Array.isArray(pid) && asText(pid[0]) === 'module') return pid[1]; // an nn.Module class: opaque
    const { type, key, numel, view } = storageId(pid);
    types.set(key, type);
    // Very old files saved storage views: (view_key, offset, size) into the root storage.
    if (Array.isArray(view)) return new StorageRef(key, type, Number(view[2]), Number(view[1]));
    return new StorageRef(key, type, numel);
  });
  const keys = unpickle(buf, main.end);
  if (!Array.isArray(keys.value)) throw new CheckpointError('corrupt legacy checkpoint (no storage key list)');

  const bytes = new Map<string, Uint8Array>();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = keys.end;
  for (const k of keys.value) {
    const key = asText(k);
    const type = types.get(key);
    if (!type) throw new CheckpointError(`storage ${key} is listed but never used`);
    if (p + 8 > buf.length) throw new CheckpointError(`truncated storage ${key} (file ends before its size)`);
    const nbytes = Number(dv.getBigUint64(p, true)) * type.elementSize;
    if (p + 8 + nbytes > buf.length) {
      throw new CheckpointError(
        `truncated storage ${key}: needs ${nbytes} bytes, the file has ${Math.max(0, buf.length - p - 8)}`,
      );
    }
    bytes.set(key, buf.subarray(p + 8, p + 8 + nbytes));
    p += 8 + nbytes;
  }
  return {
    root: main.value,
    storageBytes(key) {
      const b = bytes.get(key);
      if (!b) throw new CheckpointError(`storage ${key} is missing from the file`);
      return b;
    },
  };
}

// ---- finding the state dict ----------------------------------------------------------------

function findStateDict(root: unknown, label: string): { dict: Map<unknown, unknown>; source: StateDictSource } {
  if (!(root instanceof Map)) {
    const what = root instanceof PickledObject ? `a pickled ${root.className} object` : describeJS(root);
    throw new CheckpointError(
      `${label}: the checkpoint holds ${what}, not a dict of tensors (save model.state_dict() instead)`,
    );
  }
  for (const source of ['state_dict', 'model'] as const) {
    const v: unknown = root.get(source);
    if (v instanceof Map) return { dict: v, source };
    if (v instanceof PickledObject) {
      throw new CheckpointError(`${label}: '${source}' holds a pickled ${v.className} object, not a state dict`);
    }
  }
  return { dict: root, source: 'top' };
}

function describeJS(v: unknown): string {
  if (v instanceof TensorRef) return 'a single tensor';
  if (Array.isArray(v)) return 'a list';
  return v === null ? 'None' : `a ${typeof v}`;
}

/** A value in a state dict that is a tensor we cannot rebuild (quantized, sparse, subclass...). */
function unsupportedTensor(v: unknown): string | undefined {
  if (!(v instanceof PickledObject)) return undefined;
  const byTorch = v.className.startsWith('torch.') && /rebuild|Tensor|Parameter/.test(v.className);
  const onStorage = v.args.some((a) => a instanceof StorageRef || a instanceof TensorRef);
  return byTorch || onStorage ? v.className : undefined;
}

// ---- tensors ---------------------------------------------------------------------------------

function materialize(dict: Map<unknown, unknown>, archive: Archive, label: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const flats = new Map<string, Tensor>(); // one flat tensor per storage, only for strided views
  try {
    for (const [k, v] of dict) {
      const name = String(k);
      if (v instanceof TensorRef) {
        let t: Tensor;
        try {
          t = build(v, archive, flats, name, label);
        } catch (e) {
          // LibTorch's and the budget's messages do not know the key; say which tensor it was.
          if (e instanceof CheckpointError) throw e;
          throw new CheckpointError(`${label}: tensor "${name}": ${(e as Error).message}`, { cause: e });
        }
        out.set(name, t);
      } else {
        const cls = unsupportedTensor(v);
        if (cls)
          throw new CheckpointError(`${label}: state dict entry "${name}" is built by ${cls}, which is not supported`);
        // Other non-tensor entries (ints, strings, nested dicts) are not weights: skipped.
      }
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e instanceof CheckpointError ? e : new CheckpointError(`${label}: ${(e as Error).message}`, { cause: e });
  } finally {
    for (const t of flats.values()) t.dispose();
  }
  return out;
}

function build(ref: TensorRef, archive: Archive, flats: Map<string, Tensor>, name: string, label: string): Tensor {
  const { storage, size, stride } = ref;
  const bad = (what: string): never => {
    throw new CheckpointError(`${label}: tensor "${name}" ${what}`);
  };
  const dtype = storage.type.dtype;
  if (dtype === null) bad(`has unsupported storage type ${storage.type.name}`);
  if (stride.length !== size.length) bad(`has ${size.length} sizes but ${stride.length} strides`);
  if (!size.every((d) => Number.isSafeInteger(d) && d >= 0)) bad(`has a bad size [${size.join(', ')}]`);
  if (stride.some((d) => d < 0)) bad('has a negative stride');
  if (!stride.every((d) => Number.isSafeInteger(d))) bad(`has a bad stride [${stride.join(', ')}]`);
  if (!Number.isSafeInteger(storage.numel) || storage.numel < 0) bad(`has a bad storage size ${storage.numel}`);
  const es = storage.type.elementSize;
  const numel = size.reduce((a, b) => a * b, 1);
  if (numel === 0) return tensor(new Uint8Array(0), { dtype: dtype!, shape: size });

  let bytes: Uint8Array;
  try {
    // The storage is read whole (and copied once into LibTorch), so it counts against the budget.
    checkBytes((storage.offset + storage.numel) * es, `storage ${storage.key}`);
    bytes = archive.storageBytes(storage.key, (storage.offset + storage.numel) * es);
  } catch (e) {
    throw new CheckpointError(`${label}: tensor "${name}": ${(e as Error).message}`, { cause: e });
  }
  // Elements available to this tensor: the storage from its (legacy view) offset on.
  const available = Math.min(storage.numel, Math.floor(bytes.length / es) - storage.offset);
  const start = storage.offset + ref.storageOffset;
  let last = ref.storageOffset;
  for (let d = 0; d < size.length; d++) last += (size[d] - 1) * stride[d];
  if (ref.storageOffset < 0 || last >= available) {
    throw new CheckpointError(
      `${label}: truncated storage ${storage.key} for tensor "${name}": it reaches element ${last}, the storage holds ${Math.max(0, available)}`,
    );
  }

  if (isContiguous(size, stride)) {
    // The common case: the tensor's bytes are one run of the storage; copy them once.
    return tensor(bytes.subarray(start * es, (start + numel) * es), { dtype: dtype!, shape: size });
  }
  // A strided view (a transpose, a column, an expand): view the whole storage.
  let flat = flats.get(storage.key + '@' + storage.offset);
  if (!flat) {
    flat = tensor(bytes.subarray(storage.offset * es, (storage.offset + available) * es), {
      dtype: dtype!,
      shape: [available],
    });
    flats.set(storage.key + '@' + storage.offset, flat);
  }
  const view = callT(op('aten::as_strided'), flat.handle, size, stride, ref.storageOffset);
  // A view with more elements than its storage holds repeats elements (stride 0, overlapping
  // strides): it stays a view, as torch.load keeps it, since a copy could be any size at all (a
  // 511-byte file held a [2^20, 2^20] expand of one float). Others are copied, so each tensor
  // owns its memory as one read from a contiguous storage does; the copy is no larger than the
  // storage the file holds.
  if (numel > available) return view;
  try {
    return callT(op('aten::clone'), view.handle, 'contiguous');
  } finally {
    view.dispose();
  }
}

function isContiguous(size: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) return false;
    expected *= size[d];
  }
  return true;
}

// ---- metadata as JS values -------------------------------------------------------------------

/** Top-level keys are nearly always strings; any others are named by their string form. */
function asRecord(js: unknown): Record<string, unknown> {
  return js instanceof Map
    ? Object.fromEntries([...js].map(([k, v]) => [String(k), v]))
    : (js as Record<string, unknown>);
}
