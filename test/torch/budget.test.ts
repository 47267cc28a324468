// The memory budget (issue 12): allocation requests are checked before LibTorch is asked, since
// under jemalloc a 4 TB torch.empty "succeeds" and the process dies when it is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';

test('the default budget is physical memory; creation functions check it, naming shape and budget', () => {
  assert.equal(
    torch.memoryBudget(),
    process.env.DEEPLAB_MEMORY_BUDGET ? torch.parseBytes(process.env.DEEPLAB_MEMORY_BUDGET) : totalmem(),
  );
  const before = torch.liveTensors();
  for (const make of [
    () => torch.empty([1e6, 1e6]),
    () => torch.zeros([1e6, 1e6]),
    () => torch.randn([1e6, 1e6]),
    () => torch.full([1e6, 1e6], 2),
  ]) {
    assert.throws(make, (e: Error) => {
      assert.ok(e instanceof torch.MemoryBudgetError, `${e}`);
      assert.match(
        e.message,
        /a float32 tensor of shape \[1000000, 1000000\] needs 3\.64 TiB, more than the memory budget of/,
      );
      assert.match(e.message, /DEEPLAB_MEMORY_BUDGET/);
      return true;
    });
  }
  assert.throws(() => torch.arange(0, 1e13), /arange: an int64 tensor of shape \[10000000000000\] needs 72\.8 TiB/);
  assert.equal(torch.liveTensors(), before);
});

test('setMemoryBudget lowers and restores the budget; int64 counts 8 bytes an element', () => {
  const prev = torch.setMemoryBudget(1000);
  try {
    assert.equal(torch.memoryBudget(), 1000);
    torch.scope(() => torch.zeros([250])); // exactly 1000 bytes: allowed
    assert.throws(() => torch.zeros([251]), /shape \[251\] needs 1004 B, more than the memory budget of 1000 B/);
    assert.throws(() => torch.zeros([126], { dtype: 'int64' }), /an int64 tensor of shape \[126\] needs 1008 B/);
    assert.throws(() => torch.setMemoryBudget(0), /expected a positive integer byte count/);
  } finally {
    torch.setMemoryBudget(prev);
  }
  assert.equal(torch.memoryBudget(), prev);
});

test('data() of a stride-0 view is checked against the budget: the copy would be full size', () => {
  torch.scope(() => {
    const big = torch.ones([1]).expand(1e6, 1e6);
    assert.throws(() => big.data(), /data\(\): a float32 tensor of shape \[1000000, 1000000\] needs 3\.64 TiB/);
  });
});

test('parseBytes reads plain counts and binary units', () => {
  assert.equal(torch.parseBytes('123'), 123);
  assert.equal(torch.parseBytes('512M'), 512 * 2 ** 20);
  assert.equal(torch.parseBytes('8G'), 8 * 2 ** 30);
  assert.equal(torch.parseBytes('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(torch.parseBytes('2t'), 2 * 2 ** 40);
  for (const bad of ['', 'lots', '-5', '0', '8X']) assert.throws(() => torch.parseBytes(bad), /byte count/);
});

test('DEEPLAB_MEMORY_BUDGET sets the default in a fresh process, and a bad value is an error naming it', () => {
  const url = new URL('../../src/torch/index.js', import.meta.url).href;
  const code = `import(${JSON.stringify(url)}).then((t) => { console.log(t.memoryBudget()); try { t.zeros([1024]); } catch (e) { console.log(e.message); } })
    .catch((e) => { console.log('ERR ' + e.message); });`;
  const run = (v: string) =>
    spawnSync(process.execPath, ['-e', code], {
      env: { ...process.env, DEEPLAB_MEMORY_BUDGET: v },
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('.', import.meta.url)),
    });
  const ok = run('1K').stdout.trim().split('\n');
  assert.equal(ok[0], '1024');
  assert.match(
    ok[1],
    /zeros: a float32 tensor of shape \[1024\] needs 4\.00 KiB, more than the memory budget of 1\.00 KiB/,
  );
  assert.match(run('plenty').stdout, /DEEPLAB_MEMORY_BUDGET: expected a byte count/);
});
