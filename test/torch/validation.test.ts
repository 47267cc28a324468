// Values from JS that LibTorch used to take silently wrong (issue 12): NaN, Infinity and
// fractions as sizes, strings as data, NaN as a seed, thread counts that wrap or hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import * as torch from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';

test('creation functions refuse sizes that are not non-negative integers, naming the shape', () => {
  const before = torch.liveTensors();
  assert.throws(
    () => torch.zeros([Infinity]),
    /zeros: size 0 of shape \[Infinity\] is Infinity; sizes must be non-negative integers/,
  );
  assert.throws(() => torch.zeros([NaN]), /zeros: size 0 of shape \[NaN\] is NaN/);
  assert.throws(() => torch.zeros([1.5, 2.7]), /zeros: size 0 of shape \[1\.5, 2\.7\] is 1\.5/);
  assert.throws(() => torch.ones([2, -1]), /ones: size 1 of shape \[2, -1\] is -1/);
  assert.throws(() => torch.empty([2 ** 53]), /empty: size 0 .* is 9007199254740992/);
  assert.throws(() => torch.full([2, '3' as never], 1), /full: size 1 of shape \[2, 3\] is 3/);
  assert.throws(() => torch.randn([0.5]), /randn: size 0/);
  assert.throws(() => torch.randint(0, 5, [NaN]), /randint: size 0/);
  assert.throws(
    () => torch.tensor(new Float32Array(4), { shape: [2, 2.5] }),
    /tensor\(\): size 1 of shape \[2, 2\.5\]/,
  );
  assert.equal(torch.liveTensors(), before);
});

test('every operator taking sizes or ints refuses NaN, Infinity and fractions (the addon checks them)', () => {
  torch.scope(() => {
    const x = torch.arange(0, 6);
    assert.throws(() => x.reshape(2, 1.5), /aten::reshape: argument 'shape': expected an integer, got 1\.5/);
    assert.throws(() => x.view(NaN), /aten::view: argument 'size': expected an integer, got NaN/);
    assert.throws(() => x.reshape(Infinity), /expected an integer, got Infinity/);
    assert.throws(() => x.narrow(0, 0.5, 2), /aten::narrow: argument 'start': expected an integer, got 0\.5/);
    assert.throws(() => x.select(0, NaN), /aten::select\.int: argument 'index': expected an integer, got NaN/);
    assert.throws(
      () => native.fromBuffer(new Float32Array(1), 'float32', [NaN]),
      /fromBuffer: shape: expected an integer, got NaN/,
    );
    // -1 still means "infer this size", and booleans still pass as ints.
    assert.deepEqual(x.reshape(-1, 3).shape, [2, 3]);
    assert.deepEqual(x.view(2, 3).shape, [2, 3]);
  });
});

test('tensor() refuses data that is not numbers or booleans', () => {
  const before = torch.liveTensors();
  assert.throws(
    () => torch.tensor(['a'] as never),
    /tensor\(\): element 0 is the string "a"; expected numbers or booleans/,
  );
  assert.throws(
    () =>
      torch.tensor([
        [1, 2],
        [3, undefined],
      ] as never),
    /element 3 is a undefined/,
  );
  assert.throws(() => torch.tensor([1, null] as never), /element 1 is null/);
  assert.equal(torch.liveTensors(), before);
  torch.scope(() =>
    assert.deepEqual(
      torch
        .tensor([
          [1, 2],
          [3, 4],
        ])
        .toArray(),
      [1, 2, 3, 4],
    ),
  );
});

test('manualSeed takes only safe integers; negative seeds wrap as in PyTorch', () => {
  for (const bad of [NaN, Infinity, 1.5, 2 ** 53, '7' as never]) {
    assert.throws(() => torch.manualSeed(bad), /manualSeed: expected an integer between -\(2\^53 - 1\) and 2\^53 - 1/);
  }
  assert.throws(() => native.manualSeed(NaN), /manualSeed: expected an integer, got NaN/);
  // NaN used to seed 0: make sure seeding 0 and seeding NaN can no longer be confused.
  torch.manualSeed(-1);
  const a = torch.scope(() => torch.rand([3]).toArray());
  torch.manualSeed(-1);
  assert.deepEqual(
    torch.scope(() => torch.rand([3]).toArray()),
    a,
  );
});

test('setNumThreads refuses counts that wrapped, hung or killed the process', () => {
  const prev = torch.getNumThreads();
  const bound = 4 * availableParallelism();
  assert.equal(torch.maxThreads(), bound);
  assert.throws(
    () => torch.setNumThreads(1e10),
    new RegExp(
      `setNumThreads: 10000000000 threads is more than 4x the ${availableParallelism()} available cores \\(at most ${bound}\\)`,
    ),
  );
  assert.throws(() => torch.setNumThreads(2 ** 32 + 2), /more than 4x/); // used to become 2
  assert.throws(() => torch.setNumThreads(bound + 1), /more than 4x/);
  assert.throws(() => torch.setNumThreads(1.5), /expected a positive thread count, got 1\.5/);
  assert.throws(() => torch.setNumThreads(NaN), /expected a positive thread count, got NaN/);
  // The addon checks on its own, for callers that reach it directly.
  assert.throws(() => native.setNumThreads(1e10), /setNumThreads: 10000000000 threads is more than 4x/);
  assert.throws(() => native.setNumThreads(2 ** 32 + 2), /more than 4x/);
  assert.throws(() => native.setNumThreads(2.5), /setNumThreads: expected an integer, got 2\.5/);
  assert.equal(torch.getNumThreads(), prev, 'a refused count changes nothing');
  torch.setNumThreads(bound);
  assert.equal(torch.getNumThreads(), bound);
  torch.setNumThreads(prev);
  assert.equal(
    torch.scope(() => torch.ones([4, 4]).sum().item()),
    16,
  );
});

test('DEEPLAB_THREADS above the bound is lowered to it with a warning, not a failed import', () => {
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  const r = spawnSync(
    process.execPath,
    ['-e', `import(${JSON.stringify(url)}).then((t) => console.log(t.getNumThreads()))`],
    {
      env: { ...process.env, DEEPLAB_THREADS: '100000' },
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), String(4 * availableParallelism()));
  assert.match(r.stderr, /DEEPLAB_THREADS\/OMP_NUM_THREADS=100000 is more than 4x the \d+ cores; using \d+/);
});
