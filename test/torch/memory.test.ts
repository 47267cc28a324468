// Deterministic release: scopes, dispose, `using`, and a 10,000-step training loop whose live
// tensor count and resident memory stay flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

const { nn, optim, F } = torch;

test('scope frees what it made and keeps what it returns (nested in arrays and objects)', () => {
  const before = torch.liveTensors();
  const out = torch.scope(() => {
    const a = torch.randn([8, 8]);
    const b = a.mul(2).add(1);
    return { pair: [b.sum(), a.mean()], note: 'x' };
  });
  assert.equal(torch.liveTensors(), before + 2);
  out.pair.forEach((t) => t.dispose());
  assert.equal(torch.liveTensors(), before);
});

test('nested scopes: a returned tensor moves to the enclosing scope and is freed with it', () => {
  const before = torch.liveTensors();
  let inner!: torch.Tensor;
  torch.scope(() => {
    inner = torch.scope(() => torch.ones([3]).mul(3));
    assert.equal(inner.isDisposed, false);
  });
  assert.equal(inner.isDisposed, true);
  assert.equal(torch.liveTensors(), before);
});

test('keep() lets a tensor outlive its scope; a throwing scope frees everything', () => {
  const before = torch.liveTensors();
  const kept =
    torch.scope(() => {
      torch.keep(torch.zeros([2]));
      torch.zeros([2]);
      return 42;
    }) && null;
  assert.equal(kept, null);
  assert.equal(torch.liveTensors(), before + 1);
  assert.throws(
    () =>
      torch.scope(() => {
        torch.zeros([4]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(torch.liveTensors(), before + 1);
});

test('using and dispose() release at once; use after dispose is an error, not a crash', () => {
  const before = torch.liveTensors();
  {
    using t = torch.ones([2, 2]);
    assert.equal(torch.liveTensors(), before + 1);
    assert.equal(
      torch.scope(() => t.sum().item()),
      4,
    );
  }
  assert.equal(torch.liveTensors(), before);
  const t2 = torch.ones([1]);
  t2.dispose();
  t2.dispose(); // twice is fine
  assert.throws(() => t2.add(1), /tensor used after dispose\(\)/);
  assert.equal(torch.liveTensors(), before);
});

test('an async scope is refused with a clear message and leaks nothing', () => {
  const before = torch.liveTensors();
  assert.throws(
    () =>
      torch.scope(() => {
        torch.ones([1]);
        return Promise.resolve(1);
      }),
    /scopes are synchronous/,
  );
  assert.equal(torch.liveTensors(), before);
});

test('10,000 small training steps: live tensors constant, resident memory flat', () => {
  torch.manualSeed(0);
  const model = new nn.Sequential(
    new nn.Conv2d(3, 8, 3, { padding: 2, dilation: 2 }),
    new nn.BatchNorm2d(8),
    new nn.ReLU(),
    new nn.Conv2d(8, 4, 1),
  );
  const opt = new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const x = torch.randn([2, 3, 8, 8]);
  const y = torch.randint(0, 4, [2, 8, 8]);
  torch.noGrad(() => y.maskedFill_(y.eq(3), 255)); // some ignored pixels
  const step = () =>
    torch.scope(() => {
      opt.zeroGrad();
      const loss = F.crossEntropy(model.forward(x), y, { ignoreIndex: 255 });
      loss.backward();
      opt.step();
      return loss.item();
    });
  for (let i = 0; i < 500; i++) step(); // warm-up: allocator pools and optimizer state fill up
  const live0 = torch.liveTensors();
  const rss0 = process.memoryUsage().rss;
  let loss = 0;
  for (let i = 0; i < 10_000; i++) loss = step();
  const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.equal(torch.liveTensors(), live0, 'live tensor count grew');
  assert.ok(grew < 16, `resident memory grew by ${grew.toFixed(1)} MiB over 10,000 steps`);
  assert.ok(Number.isFinite(loss));
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

test('each module forward frees its intermediates when it returns', () => {
  class Block extends nn.Module {
    a = new nn.Conv2d(2, 2, 1);
    b = new nn.Conv2d(2, 2, 1);
    forward(x: torch.Tensor): torch.Tensor {
      return this.b.forward(F.relu(this.a.forward(x)));
    }
  }
  const m = new Block();
  const x = torch.ones([1, 2, 4, 4]);
  const before = torch.liveTensors();
  // Outside any scope: only the result survives the call, not a's output or the relu.
  const y = torch.noGrad(() => m.forward(x));
  assert.equal(torch.liveTensors(), before + 1);
  y.dispose();
  x.dispose();
  m.dispose();
});

test('the huge-page CPU allocator: on under glibc, off under jemalloc or DEEPLAB_HUGEPAGES=0; large inference tensors hold their values', async () => {
  const { execFileSync } = await import('node:child_process');
  const { existsSync } = await import('node:fs');
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  const probe = `import(${JSON.stringify(url)}).then((t) => process.stdout.write(String(t.buildInfo().hugePages)))`;
  const { LD_PRELOAD: _l, DEEPLAB_HUGEPAGES: _h, ...env } = process.env;
  const run = (extra: NodeJS.ProcessEnv) =>
    execFileSync(process.execPath, ['-e', probe], { env: { ...env, ...extra }, encoding: 'utf8' });
  assert.equal(run({}), 'true');
  assert.equal(run({ DEEPLAB_HUGEPAGES: '0' }), 'false');
  const jemalloc = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
  if (existsSync(jemalloc)) assert.equal(run({ LD_PRELOAD: jemalloc }), 'false');
  // 24 MiB (int64) made in inference mode (huge-page path), 1 MiB and a training-mode 24 MiB (plain path):
  // values written and read back, and oneDNN's scratch buffers (raw_allocate) work through it.
  torch.scope(() => {
    const big = torch.inferenceMode(() => torch.arange(0, 3 << 20, 1, { dtype: 'int64' }));
    assert.equal(big.sum().item(), ((3 << 20) * ((3 << 20) - 1)) / 2);
    const small = torch.inferenceMode(() => torch.ones([1 << 18]));
    assert.equal(small.sum().item(), 1 << 18);
    const plain = torch.zeros([6 << 20]).add(2);
    assert.equal(plain.mean().item(), 2);
    const y = torch.inferenceMode(() =>
      torch.F.conv2d(
        torch.ones([1, 64, 96, 96]).contiguous('channels_last'),
        torch.ones([64, 64, 3, 3]).contiguous('channels_last'),
        null,
        { padding: 1 },
      ),
    );
    assert.equal(y.max().item(), 64 * 9);
  });
});

test('large inference buffers are kept for the next forward, given back by releaseCpuCache or a large training allocation; DEEPLAB_CPU_CACHE_MB caps them', async () => {
  const { execFileSync } = await import('node:child_process');
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  // A 24 MiB float32 tensor made and freed in inference mode, then what the cache gives back.
  const probe = `import(${JSON.stringify(url)}).then((t) => { t.scope(() => { t.inferenceMode(() => t.ones([6 << 20])); }); process.stdout.write(String(t.releaseCpuCache())); })`;
  const { LD_PRELOAD: _l, DEEPLAB_HUGEPAGES: _h, DEEPLAB_CPU_CACHE_MB: _c, ...env } = process.env;
  const run = (extra: NodeJS.ProcessEnv) =>
    execFileSync(process.execPath, ['-e', probe], { env: { ...env, ...extra }, encoding: 'utf8' });
  assert.equal(run({}), String(24 << 20));
  assert.equal(run({ DEEPLAB_CPU_CACHE_MB: '0' }), '0');
  assert.equal(run({ DEEPLAB_CPU_CACHE_MB: '16' }), '0'); // over the cap: freed at once
  assert.equal(run({ DEEPLAB_HUGEPAGES: '0' }), '0');

  // In this process (when the allocator is ours): a reused buffer holds the new tensor's values.
  if (!torch.buildInfo().hugePages) return;
  torch.releaseCpuCache();
  torch.scope(() => {
    torch.inferenceMode(() => torch.ones([6 << 20]).mul_(7)); // freed at the scope's end: cached
  });
  torch.scope(() => {
    const t = torch.inferenceMode(() => torch.zeros([6 << 20]).add_(2));
    assert.equal(t.min().item(), 2);
    assert.equal(t.max().item(), 2);
  });
  assert.equal(torch.releaseCpuCache(), 24 << 20);
  assert.equal(torch.releaseCpuCache(), 0);
  // A large allocation outside inference (a training step after an evaluation) empties the cache.
  torch.scope(() => {
    torch.inferenceMode(() => torch.ones([6 << 20]));
  });
  torch.scope(() => {
    torch.zeros([6 << 20]);
  });
  assert.equal(torch.releaseCpuCache(), 0);
});
