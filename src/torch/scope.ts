// Deterministic release of native memory. A scope frees every tensor created inside it when it
// ends, except those in the value it returns, which move to the enclosing scope (tf.tidy,
// TorchSharp's DisposeScope). Tensors outside every scope are freed by dispose(), `using`, or,
// as a last resort, the garbage collector through a FinalizationRegistry.
import { native, type Handle } from './native.js';

/** What a scope tracks: anything holding a native handle. */
export interface Disposable {
  readonly handle: Handle;
  _registered: boolean;
}

// Open scopes, innermost last.
const open: Disposable[][] = [];
let current: Disposable[] | null = null;

// The GC backstop, only for tensors that live outside any scope.
const finalizer = new FinalizationRegistry<Handle>((h) => {
  native.dispose(h);
});

// Tensors made outside any scope are registered with the backstop in a microtask, so one that
// is disposed at once (a temporary in a loop) never pays for registering (~0.3 us).
let pending: Disposable[] = [];
let flushQueued = false;

function flushPending(): void {
  const list = pending;
  pending = [];
  flushQueued = false;
  for (const t of list) if (!native.isDisposed(t.handle)) register(t);
}

function register(t: Disposable): void {
  if (t._registered) return;
  finalizer.register(t, t.handle, t);
  t._registered = true;
}

/** Called by every new tensor. */
export function track(t: Disposable): void {
  if (current) {
    current.push(t);
    return;
  }
  pending.push(t);
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flushPending);
  }
}

/** Forget a disposed tensor so the GC backstop does not hold it. */
export function untrack(t: Disposable): void {
  if (t._registered) {
    finalizer.unregister(t);
    t._registered = false;
  }
}

/** Runs fn; frees every tensor created during it except those reachable in its result. */
export function scope<T>(fn: () => T): T {
  const parent = current;
  const mine: Disposable[] = [];
  open.push(mine);
  current = mine;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    open.pop();
    current = parent;
    for (const t of mine) native.dispose(t.handle);
    throw e;
  }
  open.pop();
  current = parent;
  if (result instanceof Promise) {
    for (const t of mine) native.dispose(t.handle);
    throw new Error('scope(fn): fn returned a Promise; scopes are synchronous. Use `using` or dispose() across await.');
  }
  const kept = new Set<Disposable>();
  collect(result, kept, 0);
  for (const t of mine) {
    if (kept.has(t)) track(t);
    else native.dispose(t.handle);
  }
  return result;
}

/** Moves t out of every scope: it lives until disposed (or collected). Module parameters use this. */
export function keep<T extends Disposable>(t: T): T {
  for (let s = open.length - 1; s >= 0; s--) {
    const list = open[s];
    const i = list.lastIndexOf(t);
    if (i >= 0) {
      list.splice(i, 1);
      register(t);
      return t;
    }
  }
  return t; // not in a scope: the backstop has it, or will after this job (pending)
}

/** Live tensors in this thread's table: what leak tests watch. */
export function liveTensors(): number {
  return native.liveCount();
}

function collect(v: unknown, out: Set<Disposable>, depth: number): void {
  if (v === null || typeof v !== 'object' || depth > 4) return;
  if ('handle' in v && typeof (v as Disposable).handle === 'number') {
    out.add(v as Disposable);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, depth + 1);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, depth + 1);
}
