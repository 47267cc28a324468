// Module: parameters, buffers and children named by the object's own structure, so the dotted
// names are PyTorch's state_dict keys. A field holding a Module is a child; a tensor registered
// with param() or buffer() is a parameter or buffer; names are the field names, in the order the
// constructor assigned them (JavaScript keeps that order, like nn.Module's OrderedDicts).
import { Tensor, isDType, type Device } from '../tensor.js';
import { keep, scope } from '../scope.js';
import { noGrad } from '../autograd.js';
import { native } from '../native.js';
import { isFloating, type DType } from '../dtype.js';

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: { key: string; expected: number[]; got: number[] }[],
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

/** What Module.to() converts to: a floating dtype, a device, or a memory format for 4-D tensors. */
export type ModuleTarget = DType | Device | { memoryFormat: 'channels_last' | 'contiguous' };

/** A layer with one input and one output: what Sequential chains. */
export interface Layer {
  forward(x: Tensor): Tensor;
}

export abstract class Module {
  training = true;
  // Non-enumerable so that they never show up as children or state.
  declare private _params: Set<Tensor>;
  declare private _buffers: Set<Tensor>;
  declare private _nonPersistent: Set<Tensor>;

  constructor() {
    for (const k of ['_params', '_buffers', '_nonPersistent'] as const) {
      Object.defineProperty(this, k, { value: new Set<Tensor>(), enumerable: false, writable: false });
    }
    // Every forward runs in its own scope, so the intermediates of a module are freed as soon as
    // it returns (only its result escapes), as Python frees them by refcount. Without this, a
    // whole network's activations live until the caller's scope ends: eager peak memory was ~1.8x
    // PyTorch's. Autograd keeps its own references to what backward needs, so training is
    // unaffected. The method is looked up at call time, so prototype patches still apply.
    const proto = Object.getPrototypeOf(this) as { forward?: (...a: unknown[]) => unknown };
    if (typeof proto.forward === 'function') {
      Object.defineProperty(this, 'forward', {
        value: (...args: unknown[]) => scope(() => proto.forward!.apply(this, args)),
        enumerable: false,
        writable: true,
        configurable: true,
      });
    }
  }

  /** Registers t as a parameter: it requires grad and lives until the module is disposed. */
  protected param(t: Tensor, requiresGrad = true): Tensor {
    keep(t);
    if (requiresGrad && !t.requiresGrad) t.requiresGrad_(true);
    this._params.add(t);
    return t;
  }

  /** Registers t as a buffer (saved in the state dict unless persistent is false). */
  protected buffer(t: Tensor, persistent = true): Tensor {
    keep(t);
    this._buffers.add(t);
    if (!persistent) this._nonPersistent.add(t);
    return t;
  }

  /** Children in order: fields holding modules. Containers override this to name them 0, 1, ... */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  /** This module's own tensors (not its children's), in field order. */
  private ownTensors(): [string, Tensor, 'param' | 'buffer'][] {
    const out: [string, Tensor, 'param' | 'buffer'][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (!(v instanceof Tensor)) continue;
      if (this._params.has(v)) out.push([k, v, 'param']);
      else if (this._buffers.has(v)) out.push([k, v, 'buffer']);
    }
    return out;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, m] of this.namedChildren()) yield* m.namedModules(prefix ? `${prefix}.${k}` : k);
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [name, m] of this.namedModules(prefix)) {
      for (const [k, t, kind] of m.ownTensors()) if (kind === 'param') yield [name ? `${name}.${k}` : k, t];
    }
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const [name, m] of this.namedModules(prefix)) {
      for (const [k, t, kind] of m.ownTensors()) if (kind === 'buffer') yield [name ? `${name}.${k}` : k, t];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  /** Parameters and persistent buffers, in PyTorch's order (each module: params, then buffers). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, m] of this.namedModules()) {
      const own = m.ownTensors();
      for (const kind of ['param', 'buffer'] as const) {
        for (const [k, t, kd] of own) {
          if (kd === kind && !m._nonPersistent.has(t)) out.set(name ? `${name}.${k}` : k, t);
        }
      }
    }
    return out;
  }

  /**
   * Copies values into this module's tensors (they keep their identity, so an optimizer built
   * earlier still sees them). Strict mode throws a StateDictError naming every missing,
   * unexpected and shape-mismatched key; non-strict mode returns the same lists.
   */
  loadStateDict(
    sd: Map<string, Tensor> | Record<string, Tensor>,
    opts: { strict?: boolean; source?: string } = {},
  ): LoadResult {
    const strict = opts.strict ?? true;
    const given = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missing: string[] = [];
    const mismatched: LoadResult['mismatched'] = [];
    for (const [k, t] of own) {
      const src = given.get(k);
      if (!src) {
        // Checkpoints from PyTorch < 0.4.1 have no num_batches_tracked; PyTorch tolerates that.
        if (!k.endsWith('num_batches_tracked')) missing.push(k);
        continue;
      }
      if (!sameShape(src.shape, t.shape)) mismatched.push({ key: k, expected: t.shape, got: src.shape });
    }
    const unexpected = [...given.keys()].filter((k) => !own.has(k));
    const result = { missing, unexpected, mismatched };
    if (strict && (missing.length || unexpected.length || mismatched.length)) {
      throw new StateDictError(describeLoadErrors(result, opts.source), missing, unexpected, mismatched);
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const src = given.get(k);
        if (src && sameShape(src.shape, t.shape)) t.copy_(src);
      }
    });
    return result;
  }

  /**
   * Converts every parameter and buffer (and existing gradient) in place, as PyTorch's
   * `module.to(...)`: each tensor keeps its identity (set_data, like `p.data = p.data.to(...)`), so
   * an optimizer built earlier keeps working. A dtype applies to floating-point tensors only
   * (num_batches_tracked stays int64); a memory format to 4-D tensors (conv weights); a device to
   * all. Every conversion is made before any is applied, so a failure (no CUDA) changes nothing.
   */
  to(target: ModuleTarget): this {
    const convert = (t: Tensor): Tensor | null => {
      if (typeof target === 'object') {
        if (t.ndim !== 4) return null;
        return t.isContiguous(target.memoryFormat) ? null : t.contiguous(target.memoryFormat);
      }
      if (isDType(target)) return isFloating(t.dtype) && t.dtype !== target ? t.to(target) : null;
      return t.to(target);
    };
    const seen = new Set<Tensor>();
    const targets: Tensor[] = [];
    for (const [, m] of this.namedModules()) {
      for (const [, t] of m.ownTensors()) {
        if (seen.has(t)) continue;
        seen.add(t);
        targets.push(t);
        const g = t.grad;
        if (g) targets.push(g);
      }
    }
    const plan: [Tensor, Tensor][] = [];
    try {
      noGrad(() => {
        for (const t of targets) {
          const c = convert(t);
          if (c && native.sameTensor(c.handle, t.handle)) c.dispose();
          else if (c) plan.push([t, c]);
        }
      });
    } catch (e) {
      for (const [, c] of plan) c.dispose();
      throw e;
    }
    for (const [t, c] of plan) {
      t.setData_(c);
      c.dispose();
    }
    // the grad handles read above were new handles on the gradients: release them
    for (const t of targets) if (!seen.has(t)) t.dispose();
    return this;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient (zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  /** Frees every parameter and buffer of this module and its children. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      m.releaseNative();
      for (const [, t] of m.ownTensors()) t.dispose();
    }
  }
  /** Frees native state a module holds besides its tensors (Conv2d's prepacked weights). */
  protected releaseNative(): void {}
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function describeLoadErrors(r: LoadResult, source?: string): string {
  const lines = [`Error(s) in loading state_dict${source ? ` from ${source}` : ''}:`];
  const list = (ks: string[]) =>
    ks
      .slice(0, 20)
      .map((k) => `"${k}"`)
      .join(', ') + (ks.length > 20 ? `, ... (${ks.length} in all)` : '');
  if (r.missing.length) lines.push(`  Missing key(s): ${list(r.missing)}.`);
  if (r.unexpected.length) lines.push(`  Unexpected key(s): ${list(r.unexpected)}.`);
  for (const m of r.mismatched.slice(0, 20)) {
    lines.push(
      `  size mismatch for ${m.key}: copying a param with shape [${m.got}] from checkpoint, the shape in current model is [${m.expected}].`,
    );
  }
  return lines.join('\n');
}
