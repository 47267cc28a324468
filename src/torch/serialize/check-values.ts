// Checks on a loaded state dict's values, for the weight loader to warn about (or refuse under
// --strict-finite): a checkpoint saved after training diverged holds NaN or Inf weights, and a
// BatchNorm running_var below zero (impossible for a variance) turns into NaN at its rsqrt.
// Both load without any error and only show as NaN logits much later.
import { type Tensor, callT, op } from '../tensor.js';
import { isFloating } from '../dtype.js';
import { scope } from '../scope.js';

export interface NonFinite {
  key: string;
  /** Elements that are NaN. */
  nan: number;
  /** Elements that are +Inf or -Inf. */
  inf: number;
}

export interface NegativeVariance {
  key: string;
  /** Elements below zero. */
  count: number;
  /** The smallest value. */
  min: number;
}

function count(t: Tensor, name: 'aten::isnan' | 'aten::isinf'): number {
  return scope(() => callT(op(name), t.handle).sum().item());
}

/** The floating-point tensors holding NaN or Inf, in state-dict order, with how many of each. */
export function nonFiniteTensors(stateDict: ReadonlyMap<string, Tensor>): NonFinite[] {
  const out: NonFinite[] = [];
  for (const [key, t] of stateDict) {
    if (!isFloating(t.dtype) || t.numel === 0) continue;
    const nan = count(t, 'aten::isnan');
    const inf = count(t, 'aten::isinf');
    if (nan || inf) out.push({ key, nan, inf });
  }
  return out;
}

/** BatchNorm running variances (keys ending in "running_var") with negative elements. */
export function negativeRunningVars(stateDict: ReadonlyMap<string, Tensor>): NegativeVariance[] {
  const out: NegativeVariance[] = [];
  for (const [key, t] of stateDict) {
    if (!(key === 'running_var' || key.endsWith('.running_var')) || !isFloating(t.dtype) || t.numel === 0) continue;
    const [n, min] = scope(() => [t.lt(0).sum().item(), t.float().amin().item()]);
    if (n) out.push({ key, count: n, min });
  }
  return out;
}
