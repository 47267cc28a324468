// Autograd through the addon: requiresGrad, backward and .grad accumulation, zeroing, retained
// graphs, grad modes (noGrad, enableGrad, inferenceMode), and LibTorch errors surfacing as JS
// Errors with LibTorch's message while the process keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import { assertClose } from '../helpers/compare.js';

/** Runs the body in a scope and checks that no tensor outlives it. */
function scoped(fn: () => void): () => void {
  return () => {
    const before = torch.liveTensors();
    torch.scope(fn);
    assert.equal(torch.liveTensors(), before, 'tensors leaked out of the scope');
  };
}

const P = [1.5, -2, 0.25, 3];

/** A leaf p requiring grad, and f(p) = sum(p * p * 3) with df/dp = 6p. */
function leaf(): torch.Tensor {
  return torch.tensor(Float32Array.from(P)).requiresGrad_();
}
const f = (p: torch.Tensor) => p.mul(p).mul(3).sum();
const times = (k: number) => P.map((v) => k * v);

test(
  'requiresGrad: set on a leaf, propagated to results, absent after detach',
  scoped(() => {
    const x = torch.tensor(Float32Array.from(P));
    assert.equal(x.requiresGrad, false);
    assert.equal(x.mul(2).requiresGrad, false);
    const p = x.requiresGrad_();
    assert.equal(p, x, 'requiresGrad_ returns this');
    assert.equal(p.requiresGrad, true);
    assert.equal(p.mul(2).requiresGrad, true);
    assert.equal(p.add(torch.ones([4])).requiresGrad, true, 'one operand requiring grad is enough');
    assert.equal(p.detach().requiresGrad, false);
    assert.equal(p.grad, null, 'no .grad before any backward');
    p.requiresGrad_(false);
    assert.equal(p.requiresGrad, false);
    assert.ok(torch.tensor([1, 2], { requiresGrad: true }).requiresGrad, 'tensor(..., { requiresGrad: true })');
  }),
);

test(
  'backward: .grad of a scalar loss, accumulated over two backward calls',
  scoped(() => {
    const p = leaf();
    f(p).backward();
    assertClose(p.grad!, times(6), 'grad after one backward');
    f(p).backward();
    assertClose(p.grad!, times(12), 'grad after two backward calls (accumulated)');
  }),
);

test(
  'backward: an explicit upstream gradient for a non-scalar output',
  scoped(() => {
    const p = leaf();
    const y = p.mul(p); // dy/dp = 2p
    const g = torch.tensor(Float32Array.from([1, 2, 3, 4]));
    y.backward(g);
    assertClose(
      p.grad!,
      P.map((v, i) => 2 * v * (i + 1)),
      'grad of sum(p*p*g)',
    );
  }),
);

test(
  'backward: gradients reach every leaf, through broadcasting',
  scoped(() => {
    const a = torch.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), { shape: [2, 3] }).requiresGrad_();
    const b = torch.tensor(Float32Array.from([10, 20, 30]), { shape: [3] }).requiresGrad_();
    a.mul(b).sum().backward();
    assertClose(a.grad!, [10, 20, 30, 10, 20, 30], 'grad a = b broadcast');
    assertClose(b.grad!, [5, 7, 9], 'grad b = sum of a over the broadcast dim');
    assert.deepEqual(b.grad!.shape, [3]);
  }),
);

test(
  'zeroing: p.grad = null drops the gradient; the next backward starts afresh',
  scoped(() => {
    const p = leaf();
    f(p).backward();
    p.grad = null;
    assert.equal(p.grad, null);
    f(p).backward();
    assertClose(p.grad!, times(6), 'grad after reset and one backward');
  }),
);

test(
  'zeroing: p.grad.zero_() zeroes the stored gradient in place',
  scoped(() => {
    const p = leaf();
    f(p).backward();
    const g = p.grad!;
    g.zero_();
    assertClose(p.grad!, [0, 0, 0, 0], 'grad after zero_()');
    f(p).backward();
    assertClose(p.grad!, times(6), 'grad after zero_() and one backward');
  }),
);

test(
  'zeroing: assigning a tensor to p.grad sets it; backward accumulates into it',
  scoped(() => {
    const p = leaf();
    p.grad = torch.full([4], 1);
    f(p).backward();
    assertClose(
      p.grad,
      P.map((v) => 6 * v + 1),
      'assigned grad plus one backward',
    );
  }),
);

test(
  'retainGraph: a second backward through the same graph',
  scoped(() => {
    const p = leaf();
    const y = f(p);
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assertClose(p.grad!, times(12), 'grad after two backward calls on one retained graph');
  }),
);

test(
  'backward twice without retainGraph: LibTorch error, then everything still works',
  scoped(() => {
    const p = leaf();
    const y = p.exp().sum(); // exp saves its result for backward
    y.backward();
    assert.throws(
      () => y.backward(),
      (e: unknown) => {
        assert.ok(e instanceof Error, 'a JS Error');
        assert.match(e.message, /Trying to backward through the graph a second time/);
        return true;
      },
    );
    assertClose(p.grad!, P.map(Math.exp), 'grad from the first backward is intact', { rtol: 1e-6 });
    f(p).backward();
    assertClose(
      p.grad!,
      P.map((v) => Math.exp(v) + 6 * v),
      'a fresh graph still backpropagates',
      { rtol: 1e-6 },
    );
  }),
);

test(
  'backward errors: non-scalar without a gradient, and a tensor that requires no grad',
  scoped(() => {
    const p = leaf();
    assert.throws(() => p.mul(2).backward(), /grad can be implicitly created only for scalar outputs/);
    const x = torch.ones([3]);
    assert.throws(() => x.sum().backward(), /does not require grad and does not have a grad_fn/);
  }),
);

test(
  'an in-place op on a leaf that requires grad is refused by LibTorch',
  scoped(() => {
    const p = leaf();
    assert.throws(() => p.add_(1), /a leaf Variable that requires grad is being used in an in-place operation/);
    assertClose(p, P, 'p unchanged');
    torch.noGrad(() => p.add_(1)); // allowed without grad recording, as PyTorch's optimizers do
    assertClose(
      p,
      P.map((v) => v + 1),
      'p after add_ under noGrad',
    );
    assert.equal(p.requiresGrad, true);
  }),
);

test(
  'noGrad: results require no grad; the mode is restored, also when nested or on throw',
  scoped(() => {
    const p = leaf();
    assert.equal(torch.isGradEnabled(), true);
    const y = torch.noGrad(() => {
      assert.equal(torch.isGradEnabled(), false);
      const inner = torch.noGrad(() => {
        assert.equal(torch.isGradEnabled(), false);
        return p.mul(2);
      });
      assert.equal(torch.isGradEnabled(), false, 'nested noGrad restores the outer (off) mode');
      assert.equal(inner.requiresGrad, false);
      const on = torch.enableGrad(() => {
        assert.equal(torch.isGradEnabled(), true);
        return p.mul(2);
      });
      assert.equal(on.requiresGrad, true, 'enableGrad inside noGrad records');
      assert.equal(torch.isGradEnabled(), false, 'enableGrad restores the outer (off) mode');
      return p.mul(p).sum();
    });
    assert.equal(torch.isGradEnabled(), true);
    assert.equal(y.requiresGrad, false);
    assert.throws(() => y.backward(), /does not require grad/);
    assert.throws(
      () =>
        torch.noGrad(() => {
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(torch.isGradEnabled(), true, 'grad mode restored after a throw');
    assert.equal(
      torch.noGrad(() => 42),
      42,
      "noGrad returns fn's value",
    );
  }),
);

test(
  'inferenceMode: no grad inside, mode restored after, inference tensors refused by autograd',
  scoped(() => {
    const p = leaf();
    assert.equal(torch.isInferenceMode(), false);
    const t = torch.inferenceMode(() => {
      assert.equal(torch.isInferenceMode(), true);
      assert.equal(torch.isGradEnabled(), false);
      const r = p.mul(2);
      assert.equal(r.requiresGrad, false);
      const nested = torch.inferenceMode(() => torch.ones([4]));
      assert.equal(torch.isInferenceMode(), true, 'nested inferenceMode restores the outer mode');
      return r.add(nested);
    });
    assert.equal(torch.isInferenceMode(), false);
    assert.equal(torch.isGradEnabled(), true);
    assertClose(
      t,
      P.map((v) => 2 * v + 1),
      'inference result values',
    );
    assert.throws(() => p.mul(t).sum().backward(), /Inference tensors cannot be saved for backward/);
    // A clone made outside inference mode is a normal tensor.
    const c = t.clone();
    p.mul(c).sum().backward();
    assertClose(
      p.grad!,
      P.map((v) => 2 * v + 1),
      'grad through a clone of an inference tensor',
    );
    assert.throws(
      () =>
        torch.inferenceMode(() => {
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(torch.isInferenceMode(), false, 'inference mode left after a throw');
  }),
);

test(
  'LibTorch errors become JS Errors with its message, and the process keeps working',
  scoped(() => {
    const expectError = (fn: () => unknown, re: RegExp) =>
      assert.throws(fn, (e: unknown) => {
        assert.ok(e instanceof Error, `a JS Error, got ${String(e)}`);
        assert.match(e.message, re);
        assert.doesNotMatch(e.message, /Exception raised from|frame #\d/, 'no C++ backtrace in the message');
        return true;
      });
    const before = torch.liveTensors();
    const a = torch.ones([2, 3]);
    const b = torch.ones([2, 4]);
    expectError(
      () => a.add(b),
      /The size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton dimension 1/,
    );
    const x = torch.randn([2, 3, 9, 11]);
    const w = torch.randn([6, 4, 3, 3]);
    expectError(() => F.conv2d(x, w), /expected input\[2, 3, 9, 11\] to have 4 channels, but got 3 channels instead/);
    const m = torch.zeros([3, 4]);
    expectError(() => m.select(0, 5), /index 5 out of range for tensor of size \[3, 4\] at dimension 0/);
    expectError(() => m.select(1, -5), /index -5 out of range/);
    expectError(() => m.reshape(5, 3), /shape '\[5, 3\]' is invalid for input of size 12/);
    assert.equal(torch.liveTensors(), before + 5, 'a failed op leaves no tensor behind');
    // still working, including autograd
    const p = leaf();
    f(p).backward();
    assertClose(p.grad!, times(6), 'autograd after errors');
    assertClose(a.add(a), [2, 2, 2, 2, 2, 2], 'arithmetic after errors');
  }),
);

test('scope: tensors made inside are freed, the returned one survives until disposed', () => {
  const before = torch.liveTensors();
  const kept = torch.scope(() => {
    const p = leaf();
    f(p).backward();
    return p.grad!;
  });
  assert.equal(torch.liveTensors(), before + 1, 'only the returned tensor is alive');
  assertClose(kept, times(6), 'the returned tensor is intact after its scope');
  kept.dispose();
  assert.equal(kept.isDisposed, true);
  kept.dispose(); // twice is fine
  assert.equal(torch.liveTensors(), before);
});

test('grad of a leaf outlives the loss tensor; each .grad read is its own handle', () => {
  const before = torch.liveTensors();
  const p = leaf();
  const y = torch.scope(() => f(p)); // frees the intermediates, keeps y
  y.backward();
  y.dispose();
  const g1 = p.grad!;
  const g2 = p.grad!;
  assert.notEqual(g1.handle, g2.handle);
  g1.dispose();
  assertClose(g2, times(6), 'grad after the loss and another .grad handle are disposed');
  g2.dispose();
  p.dispose();
  assert.equal(torch.liveTensors(), before);
});

// bf16 training (MobileNetV2's ReLU6 under autocast): LibTorch 1.13 has no bf16 hardtanh backward,
// F.relu6 runs clamp there. Same values and gradients as fp32 away from 0 and 6.
test(
  'relu6 backpropagates in bfloat16 as in float32',
  scoped(() => {
    const v = [-3, -0.5, 0.5, 2, 5.5, 7, 12];
    const g = [1, 2, 3, 4, 5, 6, 7];
    const x32 = torch.tensor(Float32Array.from(v)).requiresGrad_();
    const x16 = torch.tensor(Float32Array.from(v)).to('bfloat16').requiresGrad_();
    for (const x of [x32, x16])
      F.relu6(x)
        .mul(torch.tensor(Float32Array.from(g)).to(x.dtype))
        .sum()
        .backward();
    assert.equal(x16.grad!.dtype, 'bfloat16');
    assert.deepEqual(x16.grad!.float().toArray(), [0, 0, 3, 4, 5, 0, 0]);
    assertClose(x16.grad!.float(), x32.grad!, 'bf16 relu6 gradient', { atol: 0, rtol: 0 });
    assert.deepEqual(F.relu6(x16).float().toArray(), [0, 0, 0.5, 2, 5.5, 6, 6]);
  }),
);
