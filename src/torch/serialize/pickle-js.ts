// Unpickled values to plain JS values, for a checkpoint's metadata: tensors and storages left
// out, shared and cyclic values kept so. Iterative (a work list, not recursion), so nesting
// cannot overflow the call stack; nesting deeper than Python's default recursion limit is
// refused, because Python's own pickler (torch.save) cannot write it and nothing downstream
// that walks the value recursively (printing, JSON) could handle it either.
import { globalName, PickledObject, StorageRef, TensorRef } from './pickle.js';

/** sys.getrecursionlimit() in CPython: pickle.dump raises RecursionError near this depth. */
export const MAX_METADATA_DEPTH = 1000;

export class MetadataError extends Error {
  override name = 'MetadataError';
}

const OMIT = Symbol('omit');

/**
 * dicts with string keys become objects, other dicts Maps, tuples/lists arrays, sets Sets,
 * classes outside the allow-list `{ __class__, args?, state?, items?, list? }`, bare globals
 * `{ __global__ }`. Tensors inside lists become null so positions keep their meaning.
 */
export function toJS(root: unknown): unknown {
  const seen = new Map<unknown, unknown>();
  // Containers made but not yet filled: each fill converts its children one level down.
  const work: (() => void)[] = [];

  // The JS value for v: a primitive, OMIT, or an empty container that a queued task fills.
  const shell = (v: unknown, depth: number): unknown => {
    if (v instanceof TensorRef || v instanceof StorageRef) return OMIT;
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
    if (seen.has(v)) return seen.get(v);
    if (depth > MAX_METADATA_DEPTH) {
      throw new MetadataError(
        `checkpoint metadata is nested more than ${MAX_METADATA_DEPTH} levels deep (deeper than Python's recursion limit lets torch.save write)`,
      );
    }
    const next = depth + 1;
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      seen.set(v, out);
      work.push(() => {
        for (const x of v) {
          const y = shell(x, next);
          out.push(y === OMIT ? null : y);
        }
      });
      return out;
    }
    if (v instanceof Map) {
      if ([...v.keys()].every((k) => typeof k === 'string')) {
        const obj: Record<string, unknown> = {};
        seen.set(v, obj);
        // defineProperty, so a key named "__proto__" stays an ordinary key.
        work.push(() => {
          for (const [k, x] of v) {
            const y = shell(x, next);
            if (y !== OMIT)
              Object.defineProperty(obj, k as string, {
                value: y,
                enumerable: true,
                writable: true,
                configurable: true,
              });
          }
        });
        return obj;
      }
      const map = new Map<unknown, unknown>();
      seen.set(v, map);
      work.push(() => {
        for (const [k, x] of v) {
          const y = shell(x, next);
          if (y !== OMIT) map.set(k, y);
        }
      });
      return map;
    }
    if (v instanceof Set) {
      const set = new Set<unknown>();
      seen.set(v, set);
      work.push(() => {
        for (const x of v) {
          const y = shell(x, next);
          if (y !== OMIT) set.add(y);
        }
      });
      return set;
    }
    if (v instanceof PickledObject) {
      const obj: Record<string, unknown> = { __class__: v.className };
      seen.set(v, obj);
      work.push(() => {
        const put = (field: string, x: unknown) => {
          const y = shell(x, next);
          if (y !== OMIT) obj[field] = y;
        };
        if (v.args.length) put('args', v.args);
        if (v.state !== undefined) put('state', v.state);
        if (v.dictItems) put('items', v.dictItems);
        if (v.listItems) put('list', v.listItems);
      });
      return obj;
    }
    const g = globalName(v);
    if (g !== undefined) return { __global__: g };
    return v;
  };

  const out = shell(root, 0);
  while (work.length) work.pop()!();
  return out;
}
