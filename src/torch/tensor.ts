// The Tensor class: a typed handle on an at::Tensor, with the methods PyTorch users expect.
// Every operator goes through `call(op(...), ...)`: the addon converts arguments by the
// operator's schema, so a method here is one line that names the ATen operator it runs.
import { native, type Handle } from './native.js';
import { track, untrack } from './scope.js';
import { DTYPES, type DType, type TypedArray, typedArrayFor } from './dtype.js';
import { checkAllocation } from './budget.js';

export type Device = string; // 'cpu', 'cuda', 'cuda:1'
export type MemoryFormat = 'contiguous' | 'channels_last' | 'preserve';
export type Shape = readonly number[];

// name -> overload -> id. Both keys are string literals at the call sites, whose hashes V8
// caches, so a lookup costs a few nanoseconds (a joined "name.overload" key would be rebuilt
// and hashed on every call).
const opIds = new Map<string, Map<string, number>>();
// id -> [name, overload], for the recorder (src/torch/record.ts) to name what it sees.
const opNames = new Map<number, [string, string]>();

/** The id of an ATen operator, looked up once ("aten::add", "Tensor"). */
export function op(name: string, overload = ''): number {
  let byOverload = opIds.get(name);
  if (byOverload === undefined) opIds.set(name, (byOverload = new Map<string, number>()));
  let id = byOverload.get(overload);
  if (id === undefined) {
    id = native.op(name, overload);
    byOverload.set(overload, id);
    opNames.set(id, [name, overload]);
  }
  return id;
}

/** The [name, overload] of an id that op() handed out. */
export function opName(id: number): [string, string] | undefined {
  return opNames.get(id);
}

/** Calls an operator that returns one tensor and wraps it. */
export function callT(id: number, ...args: unknown[]): Tensor {
  return new Tensor(native.call(id, ...args) as Handle);
}

/** Calls an operator that returns several tensors. */
export function callTs(id: number, ...args: unknown[]): Tensor[] {
  return (native.call(id, ...args) as Handle[]).map((h) => new Tensor(h));
}

type Other = Tensor | number;

export class Tensor {
  readonly handle: Handle;
  #shape: number[] | undefined;
  #dtype: DType | undefined;

  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  // ---- metadata -------------------------------------------------------------------------

  get shape(): number[] {
    return (this.#shape ??= native.shape(this.handle));
  }
  get dtype(): DType {
    if (this.#dtype === undefined) this.#meta();
    return this.#dtype!;
  }
  get device(): Device {
    return native.meta(this.handle)[2];
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? dim + s.length : dim];
  }
  strides(): number[] {
    return native.strides(this.handle);
  }
  isContiguous(format: MemoryFormat = 'contiguous'): boolean {
    return native.isContiguous(this.handle, format);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }
  #meta(): void {
    const [d, s] = native.meta(this.handle);
    this.#dtype = d as DType;
    this.#shape = s;
  }
  toString(): string {
    return this.isDisposed
      ? 'Tensor(disposed)'
      : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- lifetime -------------------------------------------------------------------------

  /** Frees the native tensor now. Safe to call twice. */
  dispose(): void {
    if (native.dispose(this.handle)) untrack(this);
  }
  /** @internal set by the scope module: whether the GC backstop holds this tensor. */
  _registered = false;
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- data out -------------------------------------------------------------------------

  /** The elements in row-major order, copied into a typed array of the tensor's dtype. */
  data(): TypedArray {
    // A stride-0 view (an expand, or one read from a checkpoint) may be far larger than its storage.
    checkAllocation(this.shape, this.dtype, 'data()');
    return typedArrayFor(this.dtype, native.toBuffer(this.handle));
  }
  /** The elements as plain numbers (int64 converted, so exact below 2^53). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  item(): number {
    return Number(native.item(this.handle));
  }

  // ---- conversion -----------------------------------------------------------------------

  to(target: DType | Device, opts: { copy?: boolean; memoryFormat?: MemoryFormat } = {}): Tensor {
    if (isDType(target))
      return callT(op('aten::to', 'dtype'), this.handle, target, false, opts.copy ?? false, opts.memoryFormat);
    return callT(
      op('aten::to', 'device'),
      this.handle,
      target,
      this.dtype,
      false,
      opts.copy ?? false,
      opts.memoryFormat,
    );
  }
  float(): Tensor {
    return this.to('float32');
  }
  long(): Tensor {
    return this.to('int64');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  clone(memoryFormat?: MemoryFormat): Tensor {
    return callT(op('aten::clone'), this.handle, memoryFormat);
  }
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return callT(op('aten::contiguous'), this.handle, memoryFormat);
  }
  detach(): Tensor {
    return callT(op('aten::detach'), this.handle);
  }
  /**
   * Makes this tensor use src's data (storage, dtype, device, strides) while staying the same
   * object: PyTorch's `param.data = src`. Whoever holds this tensor (a module, an optimizer)
   * sees the new data. src stays valid and shares the storage; dispose it if it was a temporary.
   */
  setData_(src: Tensor): this {
    native.setData(this.handle, src.handle);
    this.#shape = undefined;
    this.#dtype = undefined;
    return this;
  }
  /** The version counter that in-place operations bump (Tensor._version; not for inference tensors). */
  get version(): number {
    return native.call(op('aten::_version'), this.handle) as number;
  }

  // ---- views and layout -------------------------------------------------------------------

  reshape(...shape: number[]): Tensor {
    return callT(op('aten::reshape'), this.handle, flat(shape));
  }
  view(...shape: number[]): Tensor {
    return callT(op('aten::view'), this.handle, flat(shape));
  }
  permute(...dims: number[]): Tensor {
    return callT(op('aten::permute'), this.handle, flat(dims));
  }
  transpose(a: number, b: number): Tensor {
    return callT(op('aten::transpose', 'int'), this.handle, a, b);
  }
  flatten(start = 0, end = -1): Tensor {
    return callT(op('aten::flatten', 'using_ints'), this.handle, start, end);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined
      ? callT(op('aten::squeeze'), this.handle)
      : callT(op('aten::squeeze', 'dim'), this.handle, dim);
  }
  unsqueeze(dim: number): Tensor {
    return callT(op('aten::unsqueeze'), this.handle, dim);
  }
  expand(...shape: number[]): Tensor {
    return callT(op('aten::expand'), this.handle, flat(shape), false);
  }
  /** Python's x[start:end:step] along dim. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return callT(op('aten::slice', 'Tensor'), this.handle, dim, start ?? null, end ?? null, step);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return callT(op('aten::narrow'), this.handle, dim, start, length);
  }
  select(dim: number, index: number): Tensor {
    return callT(op('aten::select', 'int'), this.handle, dim, index);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return callT(op('aten::index_select'), this.handle, dim, index.handle);
  }
  gather(dim: number, index: Tensor): Tensor {
    return callT(op('aten::gather'), this.handle, dim, index.handle, false);
  }
  /** x[mask] for a bool mask of the same shape: a 1-D tensor of the selected elements. */
  maskedSelect(mask: Tensor): Tensor {
    return callT(op('aten::masked_select'), this.handle, mask.handle);
  }
  flip(...dims: number[]): Tensor {
    return callT(op('aten::flip'), this.handle, flat(dims));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return callTs(op('aten::chunk'), this.handle, chunks, dim);
  }
  split(size: number, dim = 0): Tensor[] {
    return callTs(op('aten::split', 'Tensor'), this.handle, size, dim);
  }

  // ---- element-wise arithmetic ------------------------------------------------------------

  // add/sub/mul/div take the addon's unboxed fast path (they are the hot loop of optimizers).
  add(o: Other, alpha = 1): Tensor {
    return binary(0, this, o, alpha);
  }
  sub(o: Other, alpha = 1): Tensor {
    return binary(1, this, o, alpha);
  }
  mul(o: Other): Tensor {
    return binary(2, this, o, 1);
  }
  div(o: Other): Tensor {
    return binary(3, this, o, 1);
  }
  pow(o: Other): Tensor {
    return typeof o === 'number'
      ? callT(op('aten::pow', 'Tensor_Scalar'), this.handle, o)
      : callT(op('aten::pow', 'Tensor_Tensor'), this.handle, o.handle);
  }
  /** a.rsub(b) = b - a */
  rsub(o: Other): Tensor {
    return typeof o === 'number'
      ? callT(op('aten::rsub', 'Scalar'), this.handle, o, 1)
      : callT(op('aten::rsub', 'Tensor'), this.handle, o.handle, 1);
  }
  neg(): Tensor {
    return callT(op('aten::neg'), this.handle);
  }
  abs(): Tensor {
    return callT(op('aten::abs'), this.handle);
  }
  exp(): Tensor {
    return callT(op('aten::exp'), this.handle);
  }
  log(): Tensor {
    return callT(op('aten::log'), this.handle);
  }
  sqrt(): Tensor {
    return callT(op('aten::sqrt'), this.handle);
  }
  rsqrt(): Tensor {
    return callT(op('aten::rsqrt'), this.handle);
  }
  reciprocal(): Tensor {
    return callT(op('aten::reciprocal'), this.handle);
  }
  floor(): Tensor {
    return callT(op('aten::floor'), this.handle);
  }
  round(): Tensor {
    return callT(op('aten::round'), this.handle);
  }
  sign(): Tensor {
    return callT(op('aten::sign'), this.handle);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return callT(op('aten::clamp'), this.handle, min ?? null, max ?? null);
  }
  maximum(o: Tensor): Tensor {
    return callT(op('aten::maximum'), this.handle, o.handle);
  }
  minimum(o: Tensor): Tensor {
    return callT(op('aten::minimum'), this.handle, o.handle);
  }
  matmul(o: Tensor): Tensor {
    return callT(op('aten::matmul'), this.handle, o.handle);
  }

  // ---- comparisons (bool results) -----------------------------------------------------------

  eq(o: Other): Tensor {
    return cmp('eq', this, o);
  }
  ne(o: Other): Tensor {
    return cmp('ne', this, o);
  }
  lt(o: Other): Tensor {
    return cmp('lt', this, o);
  }
  le(o: Other): Tensor {
    return cmp('le', this, o);
  }
  gt(o: Other): Tensor {
    return cmp('gt', this, o);
  }
  ge(o: Other): Tensor {
    return cmp('ge', this, o);
  }
  logicalAnd(o: Tensor): Tensor {
    return callT(op('aten::logical_and'), this.handle, o.handle);
  }
  logicalOr(o: Tensor): Tensor {
    return callT(op('aten::logical_or'), this.handle, o.handle);
  }
  logicalNot(): Tensor {
    return callT(op('aten::logical_not'), this.handle);
  }
  isnan(): Tensor {
    return callT(op('aten::isnan'), this.handle);
  }
  /** Same shape and exactly the same values (torch.equal). */
  equal(o: Tensor): boolean {
    return native.call(op('aten::equal'), this.handle, o.handle) as boolean;
  }
  /** True when every element is within atol + rtol*|other| (torch.allclose). */
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return native.call(op('aten::allclose'), this.handle, o.handle, rtol, atol, false) as boolean;
  }

  // ---- reductions ---------------------------------------------------------------------------

  sum(dim?: number | number[], keepdim = false, dtype?: DType): Tensor {
    return dim === undefined
      ? callT(op('aten::sum'), this.handle, dtype)
      : callT(op('aten::sum', 'dim_IntList'), this.handle, flat([dim]), keepdim, dtype);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined
      ? callT(op('aten::mean'), this.handle)
      : callT(op('aten::mean', 'dim'), this.handle, flat([dim]), keepdim);
  }
  amax(dim: number | number[] = [], keepdim = false): Tensor {
    return callT(op('aten::amax'), this.handle, flat([dim]), keepdim);
  }
  amin(dim: number | number[] = [], keepdim = false): Tensor {
    return callT(op('aten::amin'), this.handle, flat([dim]), keepdim);
  }
  /** max over all elements, or [values, indices] along dim. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return callT(op('aten::max'), this.handle);
    return callTs(op('aten::max', 'dim'), this.handle, dim, keepdim) as [Tensor, Tensor];
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return callT(op('aten::min'), this.handle);
    return callTs(op('aten::min', 'dim'), this.handle, dim, keepdim) as [Tensor, Tensor];
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return callT(op('aten::argmax'), this.handle, dim ?? null, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return callT(op('aten::argmin'), this.handle, dim ?? null, keepdim);
  }
  prod(): Tensor {
    return callT(op('aten::prod'), this.handle);
  }
  /** [values, indices] sorted along dim. */
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return callTs(op('aten::sort'), this.handle, dim, descending) as [Tensor, Tensor];
  }
  /** [values, indices] of the k largest (or smallest) along dim. */
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    return callTs(op('aten::topk'), this.handle, k, dim, largest, true) as [Tensor, Tensor];
  }
  /** Variance with Bessel's correction by default, as torch.var. */
  var(dim?: number | number[], unbiased = true, keepdim = false): Tensor {
    return callT(op('aten::var', 'dim'), this.handle, dim === undefined ? null : flat([dim]), unbiased, keepdim);
  }
  std(dim?: number | number[], unbiased = true, keepdim = false): Tensor {
    return callT(op('aten::std', 'dim'), this.handle, dim === undefined ? null : flat([dim]), unbiased, keepdim);
  }
  norm(p = 2): Tensor {
    return callT(op('aten::norm', 'Scalar'), this.handle, p);
  }

  // ---- in-place (return this) ---------------------------------------------------------------

  add_(o: Other, alpha = 1): this {
    binaryInplace(0, this, o, alpha);
    return this;
  }
  sub_(o: Other, alpha = 1): this {
    binaryInplace(1, this, o, alpha);
    return this;
  }
  mul_(o: Other): this {
    binaryInplace(2, this, o, 1);
    return this;
  }
  div_(o: Other): this {
    binaryInplace(3, this, o, 1);
    return this;
  }
  /** this += value * a * b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.callVoid(op('aten::addcmul_'), this.handle, a.handle, b.handle, value);
    return this;
  }
  /** this += value * a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.callVoid(op('aten::addcdiv_'), this.handle, a.handle, b.handle, value);
    return this;
  }
  /** this += weight * (end - this) */
  lerp_(end: Tensor, weight: number): this {
    native.callVoid(op('aten::lerp_', 'Scalar'), this.handle, end.handle, weight);
    return this;
  }
  sqrt_(): this {
    native.callVoid(op('aten::sqrt_'), this.handle);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    native.callVoid(op('aten::clamp_'), this.handle, min ?? null, max ?? null);
    return this;
  }
  copy_(src: Tensor): this {
    native.callVoid(op('aten::copy_'), this.handle, src.handle, false);
    return this;
  }
  zero_(): this {
    native.callVoid(op('aten::zero_'), this.handle);
    return this;
  }
  fill_(v: number): this {
    native.callVoid(op('aten::fill_', 'Scalar'), this.handle, v);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    native.callVoid(op('aten::uniform_'), this.handle, from, to);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.callVoid(op('aten::normal_'), this.handle, mean, std);
    return this;
  }
  /** index_fill_: set the slices at `index` along dim to v. */
  indexFill_(dim: number, index: Tensor, v: number): this {
    native.callVoid(op('aten::index_fill_', 'int_Scalar'), this.handle, dim, index.handle, v);
    return this;
  }
  /** masked_fill_: set elements where mask is true to v. */
  maskedFill_(mask: Tensor, v: number): this {
    native.callVoid(op('aten::masked_fill_', 'Scalar'), this.handle, mask.handle, v);
    return this;
  }

  // ---- autograd -----------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  requiresGrad_(on = true): this {
    native.callVoid(op('aten::requires_grad_'), this.handle, on);
    return this;
  }
  /** The accumulated gradient, or null. Each read returns a new handle on the same storage. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(
      this.handle,
      gradient ? gradient.handle : null,
      opts.retainGraph ?? false,
      opts.createGraph ?? false,
    );
  }
}

function binary(code: number, a: Tensor, o: Other, alpha: number): Tensor {
  return new Tensor(
    typeof o === 'number'
      ? native.binaryScalar(code, a.handle, o, alpha, false)
      : native.binary(code, a.handle, o.handle, alpha, false),
  );
}

function binaryInplace(code: number, a: Tensor, o: Other, alpha: number): void {
  if (typeof o === 'number') native.binaryScalar(code, a.handle, o, alpha, true);
  else native.binary(code, a.handle, o.handle, alpha, true);
}

function cmp(name: string, a: Tensor, o: Other): Tensor {
  return typeof o === 'number'
    ? callT(op(`aten::${name}`, 'Scalar'), a.handle, o)
    : callT(op(`aten::${name}`, 'Tensor'), a.handle, o.handle);
}

function flat(xs: (number | number[])[]): number[] {
  return xs.length === 1 && Array.isArray(xs[0]) ? xs[0] : xs.flat<(number | number[])[], 1>();
}

const DTYPE_SET = new Set<string>(DTYPES);
export function isDType(s: string): s is DType {
  return DTYPE_SET.has(s);
}
