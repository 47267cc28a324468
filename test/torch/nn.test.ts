// nn against PyTorch: seeded init, state-dict names and order, BatchNorm statistics, loading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import { committedFixture } from '../helpers/paths.js';

const { nn } = torch;
const fx = JSON.parse(readFileSync(committedFixture('nn', 'nn.json'), 'utf8'));

function assertClose(got: number[], want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (d > worst) [worst, at] = [d, i];
  }
  assert.ok(worst <= tol, `${what}: max abs diff ${worst} at ${at} (got ${got[at]}, want ${want[at]})`);
}

test('seeded default init equals PyTorch bit for bit', () => {
  torch.manualSeed(0);
  const conv = new nn.Conv2d(3, 8, 3, { padding: 1 });
  const lin = new nn.Linear(5, 4);
  const dw = new nn.Conv2d(6, 6, 3, { groups: 6, bias: false });
  assert.deepEqual(conv.weight.toArray(), fx.init['conv.weight']);
  assert.deepEqual(conv.bias!.toArray(), fx.init['conv.bias']);
  assert.deepEqual(lin.weight.toArray(), fx.init['linear.weight']);
  assert.deepEqual(lin.bias!.toArray(), fx.init['linear.bias']);
  assert.deepEqual(dw.weight.toArray(), fx.init['dw.weight']);
  for (const m of [conv, lin, dw]) m.dispose();
});

test('deferRandomInit: init() later draws the same values as a plain seeded build; init(only) draws just those', () => {
  torch.manualSeed(0);
  const { value: conv, init } = nn.init.deferRandomInit(() => new nn.Conv2d(3, 8, 3, { padding: 1 }));
  const { value: lin, init: initLin } = nn.init.deferRandomInit(() => new nn.Linear(5, 4));
  init();
  initLin(new Set([lin.bias!]));
  // the same seed, the same order of draws as PyTorch: conv first
  assert.deepEqual(conv.weight.toArray(), fx.init['conv.weight']);
  assert.deepEqual(conv.bias!.toArray(), fx.init['conv.bias']);
  // only the bias was drawn, and it took the draws right after the conv's
  torch.manualSeed(0);
  const ref = [new nn.Conv2d(3, 8, 3, { padding: 1 })];
  const refBias = nn.init.uniform_(torch.empty([4]), -1 / Math.sqrt(5), 1 / Math.sqrt(5));
  assert.deepEqual(lin.bias!.toArray(), refBias.toArray());
  assert.throws(() => nn.init.deferRandomInit(() => nn.init.deferRandomInit(() => 0)), /already deferring/);
  for (const m of [conv, lin, ...ref]) m.dispose();
  refBias.dispose();
});

class Net extends nn.Module {
  stem = new nn.Sequential(new nn.Conv2d(3, 4, 3, { bias: false }), new nn.BatchNorm2d(4), new nn.ReLU());
  blocks = new nn.ModuleList([new nn.Conv2d(4, 4, 1), new nn.Conv2d(4, 2, 1)]);
  heads = new nn.ModuleDict({ main: new nn.Linear(2, 3), aux: new nn.Linear(2, 1, { bias: false }) });
}

test('state dict keys, shapes and order equal PyTorch', () => {
  const net = new Net();
  const got = [...net.stateDict()].map(([k, v]) => [k, v.shape]);
  assert.deepEqual(got, fx.keys);
  const params = [...net.namedParameters()].map(([k]) => k);
  assert.ok(!params.includes('stem.1.running_mean') && params.includes('stem.1.weight'));
  net.dispose();
});

test('loadStateDict copies values; strict errors name missing, unexpected and mismatched keys', () => {
  const a = new Net();
  const b = new Net();
  const sd = a.stateDict();
  b.loadStateDict(sd);
  assert.deepEqual(
    b.blocks.at(1).stateDict().get('weight')!.toArray(),
    a.blocks.at(1).stateDict().get('weight')!.toArray(),
  );

  const bad = new Map(sd);
  bad.delete('heads.main.bias');
  bad.set('heads.extra.weight', torch.zeros([1]));
  bad.set('blocks.0.weight', torch.zeros([4, 4, 3, 3]));
  assert.throws(
    () => b.loadStateDict(bad, { source: 'ckpt.pth' }),
    (e: Error) => {
      assert.ok(e instanceof nn.StateDictError);
      assert.match(e.message, /from ckpt\.pth/);
      assert.match(e.message, /Missing key\(s\): "heads\.main\.bias"/);
      assert.match(e.message, /Unexpected key\(s\): "heads\.extra\.weight"/);
      assert.match(
        e.message,
        /size mismatch for blocks\.0\.weight: copying a param with shape \[4,4,3,3\] from checkpoint, the shape in current model is \[4,4,1,1\]/,
      );
      return true;
    },
  );
  // Non-strict loads what matches and reports the rest.
  const r = b.loadStateDict(bad, { strict: false });
  assert.deepEqual(r.missing, ['heads.main.bias']);
  assert.deepEqual(r.unexpected, ['heads.extra.weight']);
  assert.equal(r.mismatched[0].key, 'blocks.0.weight');
  // A checkpoint without num_batches_tracked (PyTorch < 0.4.1) still loads strictly.
  const old = new Map([...sd].filter(([k]) => !k.endsWith('num_batches_tracked')));
  assert.doesNotThrow(() => b.loadStateDict(old));
  bad.get('heads.extra.weight')!.dispose();
  bad.get('blocks.0.weight')!.dispose();
  a.dispose();
  b.dispose();
});

test('BatchNorm2d running statistics and eval output equal PyTorch', () => {
  const bn = new nn.BatchNorm2d(3);
  const bnC = new nn.BatchNorm2d(3, { momentum: null });
  torch.noGrad(() => {
    bn.weight!.copy_(torch.tensor([1.5, 0.5, -1.0]));
    bn.bias!.copy_(torch.tensor([0.1, -0.2, 0.3]));
  });
  torch.scope(() => {
    const xs = fx.bn.inputs.map((v: number[]) => torch.tensor(Float32Array.from(v), { shape: fx.bn.shape }));
    let last = xs[0];
    for (const x of xs) last = bn.forward(x);
    for (const x of xs) bnC.forward(x);
    assertClose(last.toArray(), fx.bn.train_out_last, 1e-5, 'train output');
    assertClose(bn.running_mean!.toArray(), fx.bn.running_mean, 1e-6, 'running_mean');
    assertClose(bn.running_var!.toArray(), fx.bn.running_var, 1e-6, 'running_var');
    assert.equal(bn.num_batches_tracked!.item(), fx.bn.num_batches_tracked);
    assertClose(bnC.running_mean!.toArray(), fx.bn.cumulative_running_mean, 1e-6, 'cumulative mean');
    assertClose(bnC.running_var!.toArray(), fx.bn.cumulative_running_var, 1e-6, 'cumulative var');
    bn.eval();
    assertClose(bn.forward(xs[0]).toArray(), fx.bn.eval_out, 1e-5, 'eval output');
  });
  bn.dispose();
  bnC.dispose();
});

test('train() and eval() reach every submodule; dropout is identity in eval', () => {
  const seq = new nn.Sequential(new nn.Dropout(0.5), new nn.Sequential(new nn.Dropout2d(0.5)));
  seq.eval();
  assert.ok([...seq.namedModules()].every(([, m]) => !m.training));
  torch.scope(() => {
    const x = torch.ones([1, 4, 2, 2]);
    assert.deepEqual(seq.forward(x).toArray(), x.toArray());
  });
  seq.train();
  assert.ok([...seq.namedModules()].every(([, m]) => m.training));
});

test('modules built inside a scope keep their parameters', () => {
  const conv = torch.scope(() => new nn.Conv2d(2, 2, 1));
  assert.equal(conv.weight.isDisposed, false);
  assert.equal(conv.weight.requiresGrad, true);
  conv.dispose();
  assert.equal(conv.weight.isDisposed, true);
});

test('nn.pipe and Sequential free each intermediate once the next step has read it, never the input; gradients match nesting', () => {
  torch.manualSeed(0);
  const a = new torch.nn.Conv2d(2, 3, 1);
  const b = new torch.nn.Conv2d(3, 2, 1);
  const x = torch.randn([1, 2, 4, 4]);
  try {
    // nested calls keep every intermediate alive until the scope ends; pipe keeps only the result
    const nested = torch.scope(() => {
      const live = torch.liveTensors();
      const y = b.forward(torch.F.relu(a.forward(x)));
      const kept = torch.liveTensors() - live;
      y.sum().backward();
      return { kept, grad: a.weight.grad!.clone() };
    });
    a.weight.grad = null;
    b.weight.grad = null;
    const piped = torch.scope(() => {
      const live = torch.liveTensors();
      const y = torch.nn.pipe(x, a, torch.F.relu, b);
      const kept = torch.liveTensors() - live;
      y.sum().backward();
      return { kept, grad: a.weight.grad!.clone() };
    });
    assert.equal(nested.kept, 3);
    assert.equal(piped.kept, 1);
    assert.equal(x.isDisposed, false);
    assert.ok(piped.grad.equal(nested.grad), 'the autograd graph keeps what backward needs');
    const seq = new torch.nn.Sequential(a, new torch.nn.ReLU(true), b);
    torch.scope(() => {
      const live = torch.liveTensors();
      const y = seq.forward(x);
      assert.equal(torch.liveTensors() - live, 1);
      assert.equal(x.isDisposed, false);
      assert.deepEqual(y.shape, [1, 2, 4, 4]);
    });
    nested.grad.dispose();
    piped.grad.dispose();
  } finally {
    x.dispose();
    a.dispose();
    b.dispose();
  }
});
