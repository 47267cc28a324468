// A small seeded PRNG (sfc32) for data loading. Every random decision of the data pipeline draws
// from a stream derived from (seed, purpose, epoch, index), never from a shared generator, so a
// sample's augmentation is the same whichever worker runs it and in whatever order: results do
// not depend on the worker count, and a run resumed mid-epoch sees the same batches.

/** murmur3's 32-bit finaliser: a good avalanche for mixing keys into a seed. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Streams for different purposes never coincide even with equal (seed, epoch, index). */
export const STREAM = { permutation: 0x7065726d, augment: 0x61756720, test: 0x74657374 } as const;

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** A generator from any number of non-negative integer keys (each up to 2^53). */
  constructor(...keys: number[]) {
    let h = 0x9e3779b9;
    for (const k of keys) {
      if (!Number.isSafeInteger(k) || k < 0)
        throw new RangeError(`Rng key must be a non-negative safe integer, got ${k}`);
      const lo = k >>> 0;
      const hi = Math.floor(k / 2 ** 32) >>> 0;
      h = fmix32(h ^ lo) + 0x6a09e667;
      h = fmix32(h ^ hi) + 0xbb67ae85;
    }
    this.a = fmix32(h ^ 0x243f6a88);
    this.b = fmix32(h ^ 0x85a308d3);
    this.c = fmix32(h ^ 0x13198a2e);
    this.d = 1;
    // sfc32's authors discard the first outputs so weak seeds mix fully.
    for (let i = 0; i < 12; i++) this.next32();
  }

  /** The next 32 random bits as an unsigned integer. */
  next32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) + t;
    this.c |= 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits (numpy's random_sample). */
  uniform(): number;
  /** Uniform in [lo, hi) (numpy's uniform(lo, hi) = lo + (hi - lo) * random_sample()). */
  uniform(lo: number, hi: number): number;
  uniform(lo?: number, hi?: number): number {
    const u = ((this.next32() >>> 5) * 67108864 + (this.next32() >>> 6)) / 9007199254740992;
    return lo === undefined ? u : lo + (hi! - lo) * u;
  }

  /** An integer in [lo, hi), hi exclusive as numpy's randint(lo, hi). */
  int(lo: number, hi: number): number {
    if (!(hi > lo)) throw new RangeError(`Rng.int: empty range [${lo}, ${hi})`);
    return lo + Math.floor(this.uniform() * (hi - lo));
  }

  /** Fisher-Yates in place; returns the same array. */
  shuffle<E, T extends { length: number; [i: number]: E }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
    return arr;
  }
}

/** The order of one epoch: a permutation of 0..n-1 that depends only on (seed, epoch). */
export function epochPermutation(seed: number, epoch: number, n: number, shuffle = true): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return shuffle ? new Rng(seed, STREAM.permutation, epoch).shuffle(order) : order;
}

/** The augmentation stream of dataset sample `index` in `epoch`. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(seed, STREAM.augment, epoch, index);
}
