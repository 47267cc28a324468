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

/** Runs its layers in order. Index-named, like torch.nn.Sequential, so keys read `4.1.weight`. */
export class Sequential extends ModuleList<Module & Layer> implements Layer {
  constructor(...modules: (Module & Layer)[]) {
    super(modules);
  }
  forward(x: Tensor): Tensor {
    for (const m of this.items) x = m.forward(x);
    return x;
  }
}

export class ModuleDict<M extends Module = Module> extends Module {
  declare private readonly entries: Map<string, M>;

  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const entries = new Map<string, M>(Symbol.iterator in modules ? (modules as Iterable<[string, M]>) : Object.entries(modules));
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
