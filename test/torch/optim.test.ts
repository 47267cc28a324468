// SGD and AdamW against torch.optim, and a save/restore of their state mid-run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';
import { committedFixture } from '../helpers/paths.js';

const { optim } = torch;
const fx = JSON.parse(readFileSync(committedFixture('nn', 'nn.json'), 'utf8')).optim;

type Make = (p0: Tensor, p1: Tensor) => torch.optim.Optimizer<{ lr: number }>;

const cases: Record<string, Make> = {
  sgd_plain: (a, b) => new optim.SGD([a, b], { lr: 0.1 }),
  sgd_momentum_groups: (a, b) =>
    new optim.SGD([{ params: [a] }, { params: [b], lr: 0.5, weightDecay: 0 }], {
      lr: 0.1,
      momentum: 0.9,
      weightDecay: 1e-2,
      dampening: 0.1,
    }),
  sgd_nesterov: (a, b) => new optim.SGD([a, b], { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }),
  adamw: (a, b) => new optim.AdamW([a, b], { lr: 0.01, weightDecay: 0.05 }),
  adamw_amsgrad_groups: (a, b) =>
    new optim.AdamW([{ params: [a], lr: 0.02 }, { params: [b] }], {
      lr: 0.01,
      beta1: 0.8,
      beta2: 0.99,
      eps: 1e-6,
      weightDecay: 0.1,
      amsgrad: true,
    }),
};

function params(): [Tensor, Tensor] {
  return [
    torch.tensor(Float32Array.from(fx.p0), { shape: fx.shapes[0] }).requiresGrad_(),
    torch.tensor(Float32Array.from(fx.p1), { shape: fx.shapes[1] }).requiresGrad_(),
  ];
}

function setGrads(ps: Tensor[], step: number): void {
  ps.forEach((p, i) => {
    const g = torch.tensor(Float32Array.from(fx.grads[step][i]), { shape: fx.shapes[i] });
    p.grad = g;
    g.dispose(); // the parameter holds its own reference
  });
}

function close(got: number[], want: number[], what: string): void {
  const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i])));
  assert.ok(worst < 2e-6, `${what}: max abs diff ${worst}`);
}

for (const [name, make] of Object.entries(cases)) {
  test(`${name}: three steps equal torch.optim`, () => {
    const ps = params();
    const opt = make(...ps);
    for (let s = 0; s < 3; s++) {
      setGrads(ps, s);
      opt.step();
      ps.forEach((p, i) => close(p.toArray(), fx[name][s][i], `${name} step ${s} param ${i}`));
    }
    opt.dispose();
    ps.forEach((p) => p.dispose());
  });

  test(`${name}: state saved after step 1 and restored into a new optimizer continues identically`, () => {
    const ps = params();
    const opt = make(...ps);
    setGrads(ps, 0);
    opt.step();
    // Snapshot: copies of the parameter values and of the optimizer state.
    const snapParams = ps.map((p) => p.detach().clone());
    const sd = opt.stateDict();
    const saved = {
      paramGroups: sd.paramGroups,
      state: new Map(
        [...sd.state].map(([k, st]) => [
          k,
          Object.fromEntries(Object.entries(st).map(([n, v]) => [n, typeof v === 'number' ? v : v.clone()])),
        ]),
      ),
    };
    opt.dispose();
    ps.forEach((p) => p.dispose());

    const ps2 = snapParams.map((p) => p.requiresGrad_());
    const opt2 = make(...(ps2 as [Tensor, Tensor]));
    opt2.loadStateDict(saved);
    for (const st of saved.state.values()) for (const v of Object.values(st)) if (typeof v !== 'number') v.dispose();
    for (let s = 1; s < 3; s++) {
      setGrads(ps2, s);
      opt2.step();
      ps2.forEach((p, i) => close(p.toArray(), fx[name][s][i], `${name} resumed step ${s} param ${i}`));
    }
    opt2.dispose();
    ps2.forEach((p) => p.dispose());
  });
}

test('unknown option in a parameter group is an error naming it', () => {
  const p = torch.zeros([2]).requiresGrad_();
  assert.throws(
    () => new optim.SGD([{ params: [p], lrr: 0.1 } as never], { lr: 0.1 }),
    /unknown option "lrr" in parameter group 0/,
  );
  p.dispose();
});

test('setLr changes each group', () => {
  const a = torch.zeros([1]).requiresGrad_();
  const b = torch.zeros([1]).requiresGrad_();
  const opt = new optim.SGD([{ params: [a] }, { params: [b], lr: 1 }], { lr: 0.1 });
  opt.setLr((g) => (g === 0 ? 0.01 : 0.1));
  assert.deepEqual(
    opt.groups.map((g) => g.hyper.lr),
    [0.01, 0.1],
  );
  a.dispose();
  b.dispose();
});
