// torch.nn.init, drawing from the global generator exactly as PyTorch does (same ops, same
// order), so a seeded model here starts from the same weights as the seeded PyTorch model.
import type { Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';

export type Nonlinearity = 'relu' | 'leaky_relu' | 'linear' | 'sigmoid' | 'tanh';

export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
  }
}

/** [fan_in, fan_out] of a weight of shape [out, in, ...kernel]. */
export function fans(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length < 2)
    throw new Error(`fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions (shape [${s}])`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return [s[1] * receptive, s[0] * receptive];
}

// While deferRandomInit runs, random draws are recorded instead of made (see there).
let recording: { t: Tensor; draw: () => void }[] | null = null;

export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  const draw = () => noGrad(() => t.uniform_(a, b));
  if (recording) recording.push({ t, draw });
  else draw();
  return t;
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  const draw = () => noGrad(() => t.normal_(mean, std));
  if (recording) recording.push({ t, draw });
  else draw();
  return t;
}

/**
 * Builds something (a model) without drawing its random initial weights: uniform_ / normal_ are
 * recorded, and the returned `init(only?)` makes the draws later, in the order they were asked
 * for, for all tensors or only those in `only`. For loading a checkpoint that overwrites every
 * weight anyway: the draws are ~40% of building ResNet-50 (LibTorch's generator, 25M numbers).
 * Until init() runs for them, the tensors hold whatever their allocation held.
 */
export function deferRandomInit<T>(build: () => T): { value: T; init: (only?: ReadonlySet<Tensor>) => void } {
  if (recording) throw new Error('deferRandomInit: already deferring (nested builds are not supported)');
  const list: { t: Tensor; draw: () => void }[] = [];
  recording = list;
  let value: T;
  try {
    value = build();
  } finally {
    recording = null;
  }
  return {
    value,
    init: (only) => {
      for (const { t, draw } of list.splice(0)) if (!only || only.has(t)) draw();
    },
  };
}
export function constant_(t: Tensor, v: number): Tensor {
  return noGrad(() => t.fill_(v));
}
export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}
export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(t: Tensor, o: KaimingOptions): number {
  const [fanIn, fanOut] = fans(t);
  const fan = (o.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

export function kaimingUniform_(t: Tensor, o: KaimingOptions = {}): Tensor {
  const bound = Math.sqrt(3) * kaimingStd(t, o);
  return uniform_(t, -bound, bound);
}
export function kaimingNormal_(t: Tensor, o: KaimingOptions = {}): Tensor {
  return normal_(t, 0, kaimingStd(t, o));
}
