// The seeded generator: reproducible, in range, and independent streams per (seed, epoch, index).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, epochPermutation, sampleRng } from '../../src/data/rng.js';

test('same keys give the same stream; different keys differ', () => {
  const a = new Rng(7, 1, 2);
  const b = new Rng(7, 1, 2);
  const xs = Array.from({ length: 20 }, () => a.next32());
  assert.deepEqual(
    Array.from({ length: 20 }, () => b.next32()),
    xs,
  );
  for (const other of [new Rng(7, 1, 3), new Rng(7, 2, 2), new Rng(8, 1, 2), new Rng(7, 1, 2 ** 32 + 2)]) {
    assert.notDeepEqual(
      Array.from({ length: 20 }, () => other.next32()),
      xs,
    );
  }
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => sampleRng(0, 0, 1).uniform()),
    Array.from({ length: 5 }, () => sampleRng(0, 1, 0).uniform()),
  );
});

test('uniform, int and shuffle stay in range and cover it', () => {
  const r = new Rng(123);
  const seen = new Set<number>();
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    const u = r.uniform();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    const k = r.int(-18, 18);
    assert.ok(k >= -18 && k < 18 && Number.isInteger(k));
    seen.add(k);
    const x = r.uniform(-32, 32);
    assert.ok(x >= -32 && x < 32);
  }
  assert.equal(seen.size, 36, 'int(lo, hi) excludes hi, as numpy randint');
  assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01);
  const arr = Array.from({ length: 50 }, (_, i) => i);
  r.shuffle(arr);
  assert.deepEqual(
    [...arr].sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.throws(() => r.int(3, 3), RangeError);
  assert.throws(() => new Rng(-1), RangeError);
});

test('epoch permutations depend on (seed, epoch) only', () => {
  const p = epochPermutation(5, 0, 100);
  assert.deepEqual(epochPermutation(5, 0, 100), p);
  assert.notDeepEqual(epochPermutation(5, 1, 100), p);
  assert.notDeepEqual(epochPermutation(6, 0, 100), p);
  assert.deepEqual(Array.from(epochPermutation(5, 3, 6, false)), [0, 1, 2, 3, 4, 5]);
});
