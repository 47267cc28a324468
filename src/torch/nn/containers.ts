// Sequential, ModuleList and ModuleDict: children named "0", "1", ... or by key, in order.
import type { Tensor } from '../tensor.js';
import { Module, type Layer } from './module.js';

export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  declare protected readonly items: M[];

  constructor(modules: Iterable<M> = []) {
    super();
    Object.defineProperty(this, 'items', { value: [...modules], enumerable: false });
  }
  override namedChildren(): [string, Module][] {
    return this.items.map((m, i) => [String(i), m]);
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items.at(i);
    if (!m) throw new RangeError(`index ${i} is out of range for a container of ${this.items.length} modules`);
    return m;
  }
  push(m: M): void {
    this.items.push(m);
  }
  map<T>(fn: (m: M, i: number) => T): T[] {
    return this.items.map(fn);
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/**
 * x through each step in turn (layers or tensor functions), each intermediate freed as soon as the
 * next step has read it, as PyTorch's refcounting frees it, instead of when the enclosing module's
 * scope ends: a ResNet block or a Sequential then holds one or two activations, not all of them.
 * x itself belongs to the caller and is never freed. (The autograd graph keeps what backward needs.)
 */
export function pipe(x: Tensor, ...steps: (Layer | ((t: Tensor) => Tensor))[]): Tensor {
  let y = x;
  for (const s of steps) {
    const next = typeof s === 'function' ? s(y) : s.forward(y);
    if (y !== x && next !== y) y.dispose();
    y = next;
  }
  return y;
}

/** Runs its layers in order. Index-named, like torch.nn.Sequential, so keys read `4.1.weight`. */
export class Sequential extends ModuleList<Module & Layer> implements Layer {
  constructor(...modules: (Module & Layer)[]) {
    super(modules);
  }
  forward(x: Tensor): Tensor {
    // ResNet-101's layer3 would otherwise hold all 23 block outputs until it returns.
    return pipe(x, ...this.items);
  }
}

export class ModuleDict<M extends Module = Module> extends Module {
  declare private readonly entries: Map<string, M>;

  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const entries = new Map<string, M>(Symbol.iterator in modules ? modules : Object.entries(modules));
    Object.defineProperty(this, 'entries', { value: entries, enumerable: false });
  }
  override namedChildren(): [string, Module][] {
    return [...this.entries];
  }
  get(key: string): M {
    const m = this.entries.get(key);
    if (!m) throw new RangeError(`ModuleDict has no module "${key}" (has: ${[...this.entries.keys()].join(', ')})`);
    return m;
  }
  set(key: string, m: M): void {
    this.entries.set(key, m);
  }
  keys(): string[] {
    return [...this.entries.keys()];
  }
}
