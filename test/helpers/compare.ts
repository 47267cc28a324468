// The one comparison every numeric test uses: shape and dtype must agree; floating tensors must
// agree within atol + rtol * |expected| element-wise (NaN matches only NaN, infinities must be
// equal); integer and bool tensors must be equal. A failure names the case and the tensor, and
// prints the worst element's index with both values, the max abs and the max relative error.
import { AssertionError } from 'node:assert';
import * as torch from '../../src/torch/index.js';

export interface Tolerance {
  rtol?: number;
  atol?: number;
  /**
   * Scale atol by max(1, max |expected|): for results of long sums (a conv weight's gradient sums
   * hundreds of products), where the summation order, which follows the thread count, moves the
   * result by a few ulps of its largest values, not of each element.
   */
  scaleAtol?: boolean;
}

/** fp32 default: 1e-5 relative and 1e-5 absolute. */
export const FP32 = { rtol: 1e-5, atol: 1e-5 } as const;

export interface CloseReport {
  maxAbs: number;
  maxRel: number;
  /** Flat index of the element furthest outside (or least inside) the tolerance, -1 when empty. */
  worst: number;
  ok: boolean;
}

/** atol as applied: scaled by max(1, max |expected|) when tol.scaleAtol. */
export function effectiveAtol(expected: ArrayLike<number>, tol: Tolerance = {}): number {
  const atol = tol.atol ?? FP32.atol;
  if (!tol.scaleAtol) return atol;
  let m = 1;
  for (let i = 0; i < expected.length; i++) {
    const v = Math.abs(expected[i]);
    if (v > m && Number.isFinite(v)) m = v;
  }
  return atol * m;
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return idx;
}

function values(t: torch.Tensor): Float64Array {
  const d = t.data();
  if (d instanceof BigInt64Array) return Float64Array.from(d, Number);
  return Float64Array.from(d as ArrayLike<number>);
}

/** Element-wise errors of actual against expected (same length). */
export function closeness(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}): CloseReport {
  const rtol = tol.rtol ?? FP32.rtol;
  const atol = effectiveAtol(expected, tol);
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstScore = -Infinity;
  let ok = true;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    let err: number;
    let bad: boolean;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      err = Number.isNaN(e) && Number.isNaN(a) ? 0 : Infinity;
      bad = err !== 0;
    } else if (!Number.isFinite(e) || !Number.isFinite(a)) {
      err = a === e ? 0 : Infinity;
      bad = err !== 0;
    } else {
      err = Math.abs(a - e);
      bad = err > atol + rtol * Math.abs(e);
    }
    const rel = err === 0 ? 0 : err / Math.max(Math.abs(e), Number.MIN_VALUE);
    if (err > maxAbs) maxAbs = err;
    if (rel > maxRel) maxRel = rel;
    const score = err === Infinity ? Infinity : err / (atol + rtol * Math.abs(e));
    if (score > worstScore) {
      worstScore = score;
      worst = i;
    }
    if (bad) ok = false;
  }
  return { maxAbs, maxRel, worst, ok };
}

/**
 * Asserts that `actual` matches `expected`. `what` names the case and the tensor, e.g.
 * "conv2d/s2_p1_bias: grad weight". Integer and bool tensors are compared exactly.
 */
export function assertClose(
  actual: torch.Tensor,
  expected: torch.Tensor | ArrayLike<number>,
  what: string,
  tol: Tolerance = {},
): void {
  const shape = actual.shape;
  let exp: Float64Array;
  let exact: boolean;
  if (expected instanceof torch.Tensor) {
    if (shape.length !== expected.shape.length || shape.some((s, i) => s !== expected.shape[i]))
      throw new AssertionError({
        message: `${what}: shape [${shape}] differs from the expected [${expected.shape}]`,
        actual: shape,
        expected: expected.shape,
        operator: 'assertClose',
      });
    if (actual.dtype !== expected.dtype)
      throw new AssertionError({
        message: `${what}: dtype ${actual.dtype} differs from the expected ${expected.dtype}`,
        actual: actual.dtype,
        expected: expected.dtype,
        operator: 'assertClose',
      });
    exp = values(expected);
    exact = !torch.isFloating(expected.dtype);
  } else {
    exp = Float64Array.from(expected);
    exact = !torch.isFloating(actual.dtype);
    if (exp.length !== actual.numel)
      throw new AssertionError({
        message: `${what}: ${actual.numel} elements (shape [${shape}]), expected ${exp.length}`,
        operator: 'assertClose',
      });
  }
  const act = values(actual);
  const r = closeness(act, exp, exact ? { rtol: 0, atol: 0 } : tol);
  if (r.ok) return;
  const at = r.worst >= 0 ? `[${unravel(r.worst, shape).join(', ')}]` : '[]';
  const tolText = exact
    ? 'exact'
    : `atol ${effectiveAtol(exp, tol).toExponential(2)}${tol.scaleAtol ? ' (scaled by max |expected|)' : ''}, rtol ${tol.rtol ?? FP32.rtol}`;
  const message =
    `${what}: mismatch (${tolText}, shape [${shape}], ${actual.dtype}): ` +
    `worst at ${at}: actual ${act[r.worst]}, expected ${exp[r.worst]}; ` +
    `max abs err ${r.maxAbs.toExponential(3)}, max rel err ${r.maxRel.toExponential(3)}`;
  throw new AssertionError({ message, actual: act[r.worst], expected: exp[r.worst], operator: 'assertClose' });
}
