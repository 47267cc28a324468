// Batch-norm folding: every preset gives the same eval logits folded and unfolded (random weights
// and random BN statistics), and the folding refuses what is not "a conv straight into its BN".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { PRESETS } from '../../src/models/zoo.js';
import { foldBatchNorm, isFolded } from '../../src/models/fold.js';

const { nn, F } = torch;

// The forwards here are tiny: one thread avoids waiting on a second one at every operator,
// which costs most of the time on a busy machine. The numerics compared are the same.
torch.setNumThreads(1);

/** Random running statistics and affine parameters, so BN is far from the identity. */
function randomizeBatchNorms(m: torch.nn.Module): void {
  torch.noGrad(() =>
    torch.scope(() => {
      for (const [, b] of m.namedModules()) {
        if (!(b instanceof nn.BatchNorm2d)) continue;
        const c = b.numFeatures;
        b.running_mean!.copy_(torch.randn([c]).mul(0.2));
        b.running_var!.copy_(torch.rand([c]).mul(1.5).add(0.5));
        b.weight?.copy_(torch.rand([c]).add(0.5));
        b.bias?.copy_(torch.randn([c]).mul(0.2));
      }
    }),
  );
}

function outputs(m: { forward(x: torch.Tensor): unknown }, x: torch.Tensor): torch.Tensor[] {
  return torch.noGrad(() => {
    const r = m.forward(x) as torch.Tensor | Record<string, torch.Tensor | undefined>;
    return (
      r instanceof torch.Tensor
        ? [r]
        : Object.keys(r)
            .sort()
            .map((k) => r[k])
            .filter((t): t is torch.Tensor => t !== undefined)
    ).map((t) => t.clone());
  });
}

function relErr(a: torch.Tensor[], b: torch.Tensor[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((t, i) => t.sub(b[i]).abs().max().item() / t.abs().max().item()));
}

for (const preset of PRESETS) {
  test(`${preset.name}: folded eval logits equal the unfolded ones`, () => {
    torch.manualSeed(0);
    const model = preset.build();
    randomizeBatchNorms(model);
    model.eval();
    const numBn = [...model.namedModules()].filter(([, m]) => m instanceof nn.BatchNorm2d).length;
    torch.scope(() => {
      const x = torch.randn([1, 3, 33, 33]);
      const before = outputs(model, x);
      const input = torch.randn([1, 3, 24, 24]);
      const rng = torch.getRngState();
      const report = foldBatchNorm(model, { input });
      assert.ok(torch.getRngState().equal(rng), 'the global RNG is where it was');
      assert.equal(
        report.folded.length,
        numBn,
        `every BN of ${preset.name} directly follows a conv: skipped ${JSON.stringify(report.skipped)}`,
      );
      assert.ok(report.verifyError < 1e-4, `check error ${report.verifyError}`);
      const after = outputs(model, x);
      const err = relErr(before, after);
      assert.ok(err < 1e-4, `max abs diff / max abs = ${err}`);
    });
    model.dispose();
  });
}

class Pair extends nn.Module {
  conv = new nn.Conv2d(3, 4, 3, { padding: 1, bias: false });
  bn = new nn.BatchNorm2d(4);
}

test('a BN after an activation, in place or not, is not folded', () => {
  torch.manualSeed(1);
  class ActThenBn extends Pair {
    constructor(readonly inplace: boolean) {
      super();
    }
    forward(x: torch.Tensor): torch.Tensor {
      const y = this.conv.forward(x);
      return this.bn.forward(this.inplace ? F.relu_(y) : F.relu(y));
    }
  }
  for (const inplace of [true, false]) {
    const m = new ActThenBn(inplace);
    randomizeBatchNorms(m);
    m.eval();
    const w = m.conv.weight.toArray();
    const r = foldBatchNorm(m, { input: torch.randn([1, 3, 5, 5]) });
    assert.equal(r.folded.length, 0);
    assert.equal(r.skipped.length, 1);
    assert.match(r.skipped[0].reason, inplace ? /changed in place/ : /not a convolution's output/);
    assert.equal(m.bn.folded, false);
    assert.deepEqual(m.conv.weight.toArray(), w);
    assert.equal(m.conv.bias, null);
    m.dispose();
  }
});

test('a conv output read by something besides its BN is caught by the check; nothing changes', () => {
  torch.manualSeed(2);
  class Shortcut extends Pair {
    forward(x: torch.Tensor): torch.Tensor {
      const y = this.conv.forward(x);
      return this.bn.forward(y).add(y); // y is also read by the shortcut
    }
  }
  const m = new Shortcut();
  m.eval(); // statistics at their defaults: BN is nearly the identity, the check must still see it
  const before = m.stateDict();
  const values = [...before.values()].map((t) => t.toArray());
  assert.throws(
    () => foldBatchNorm(m, { input: torch.randn([1, 3, 5, 5]) }),
    /folding would change this model's output/,
  );
  assert.equal(m.bn.folded, false);
  assert.deepEqual(
    [...m.stateDict().values()].map((t) => t.toArray()),
    values,
  );
  m.dispose();
});

test('a conv feeding two BNs, or a BN reading two convs, is not folded', () => {
  torch.manualSeed(3);
  class TwoBns extends Pair {
    bn2 = new nn.BatchNorm2d(4);
    forward(x: torch.Tensor): torch.Tensor {
      const y = this.conv.forward(x);
      return this.bn.forward(y).add(this.bn2.forward(y));
    }
  }
  class SharedBn extends Pair {
    conv2 = new nn.Conv2d(3, 4, 1);
    forward(x: torch.Tensor): torch.Tensor {
      return this.bn.forward(this.conv.forward(x)).add(this.bn.forward(this.conv2.forward(x)));
    }
  }
  const a = new TwoBns().eval();
  const ra = foldBatchNorm(a, { input: torch.randn([1, 3, 5, 5]) });
  assert.equal(ra.folded.length, 0);
  assert.ok(ra.skipped.every((s) => /feeds several batch norms/.test(s.reason)));
  const b = new SharedBn().eval();
  const rb = foldBatchNorm(b, { input: torch.randn([1, 3, 5, 5]) });
  assert.deepEqual(rb.skipped, [{ bn: 'bn', reason: 'it reads the outputs of several convolutions' }]);
  a.dispose();
  b.dispose();
});

test('a conv run twice, each time into its BN, folds; the folded model is for inference only', () => {
  torch.manualSeed(4);
  class Twice extends Pair {
    forward(x: torch.Tensor): torch.Tensor {
      const a = this.bn.forward(this.conv.forward(x));
      const b = this.bn.forward(this.conv.forward(x.flip(3)));
      return a.add(b);
    }
  }
  const m = new Twice();
  assert.throws(() => foldBatchNorm(m), /call model.eval\(\) first/);
  randomizeBatchNorms(m);
  m.eval();
  const x = torch.randn([2, 3, 6, 7]);
  const want = outputs(m, x);
  const keys = [...m.stateDict().keys()];
  const own = (x: object) => Object.getOwnPropertyDescriptor(x, 'forward')?.value as unknown;
  const forwards = [own(m.conv), own(m.bn)];
  const r = foldBatchNorm(m, { input: torch.randn([1, 3, 5, 5]) });
  assert.deepEqual([own(m.conv), own(m.bn)], forwards, 'the trace puts the instance forwards back');
  assert.deepEqual(r.folded, [{ conv: 'conv', bn: 'bn' }]);
  assert.ok(isFolded(m));
  assert.ok(relErr(want, outputs(m, x)) < 1e-5);
  // the conv has a bias now; the BN holds the identity (its state dict stays consistent)
  assert.deepEqual([...m.stateDict().keys()], [...keys.slice(0, 1), 'conv.bias', ...keys.slice(1)]);
  assert.deepEqual(m.bn.running_mean!.toArray(), [0, 0, 0, 0]);
  assert.deepEqual(m.bn.weight!.toArray(), [1, 1, 1, 1]);
  // folding again finds nothing left to fold
  assert.equal(foldBatchNorm(m, { input: torch.randn([1, 3, 5, 5]) }).folded.length, 0);
  m.train();
  assert.throws(() => m.forward(x), /folded into the convolution before it.*inference only/);
  m.dispose();
});
