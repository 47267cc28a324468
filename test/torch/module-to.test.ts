// Tensor.setData_ and Module.to: tensors change dtype, device or layout but keep their identity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';

const { nn } = torch;

class Net extends nn.Module {
  conv = new nn.Conv2d(3, 8, 3, { padding: 1 });
  bn = new nn.BatchNorm2d(8);
  dw = new nn.Conv2d(8, 8, 3, { padding: 1, groups: 8, bias: false });
  head = new nn.Conv2d(8, 2, 1);
  forward(x: torch.Tensor): torch.Tensor {
    return this.head.forward(this.dw.forward(torch.F.relu(this.bn.forward(this.conv.forward(x)))));
  }
}

function snapshot(m: torch.nn.Module): Map<string, number[]> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

test('setData_ swaps the data of a tensor and keeps the object', () => {
  const a = torch.zeros([2, 3]);
  const b = torch.arange(0, 12).reshape(3, 4).to('float64');
  const before = a.handle;
  assert.deepEqual(a.shape, [2, 3]); // caches shape and dtype
  assert.equal(a.dtype, 'float32');
  a.setData_(b);
  assert.equal(a.handle, before);
  assert.deepEqual(a.shape, [3, 4]);
  assert.equal(a.dtype, 'float64');
  assert.deepEqual(a.toArray(), b.toArray());
  // the storage is shared with the source, as `p.data = src` in PyTorch
  b.fill_(7);
  assert.equal(a.sum().item(), 84);
  b.dispose();
  assert.equal(a.sum().item(), 84);
  a.dispose();
});

test('to({memoryFormat}) makes 4-D weights channels_last in place, values and identities kept', () => {
  torch.manualSeed(1);
  const net = new Net();
  const params = net.parameters();
  const sd = net.stateDict();
  const before = snapshot(net);
  net.to({ memoryFormat: 'channels_last' });
  const after = net.stateDict();
  assert.deepEqual([...after.keys()], [...sd.keys()]);
  for (const [k, t] of after) {
    assert.equal(t, sd.get(k), `${k} is the same Tensor object`);
    assert.deepEqual(t.toArray(), before.get(k), `${k} values`);
    if (t.ndim === 4) {
      assert.ok(t.isContiguous('channels_last'), `${k} is channels_last`);
      if (t.shape[1] > 1 && t.shape[2] * t.shape[3] > 1)
        assert.ok(!t.isContiguous(), `${k} is no longer NCHW-contiguous`);
    }
  }
  assert.ok(net.parameters().every((p, i) => p === params[i] && p.requiresGrad));
  net.to({ memoryFormat: 'contiguous' });
  for (const [k, t] of net.stateDict()) {
    assert.ok(t.isContiguous(), `${k} is contiguous again`);
    assert.deepEqual(t.toArray(), before.get(k));
  }
  net.dispose();
});

test('an optimizer built before to() keeps training the same tensors', () => {
  const make = () => {
    torch.manualSeed(2);
    return new Net();
  };
  const plain = make();
  const cl = make();
  const step = (net: Net, opt: torch.optim.SGD, x: torch.Tensor) =>
    torch.scope(() => {
      opt.zeroGrad();
      net.forward(x).pow(2).mean().backward();
      opt.step();
    });
  const o1 = new torch.optim.SGD(plain.parameters(), { lr: 0.1, momentum: 0.9 });
  const o2 = new torch.optim.SGD(cl.parameters(), { lr: 0.1, momentum: 0.9 });
  torch.manualSeed(3);
  const x = torch.randn([2, 3, 8, 8]);
  step(plain, o1, x);
  step(cl, o2, x);
  // convert after the optimizer exists and holds momentum buffers and gradients
  cl.to({ memoryFormat: 'channels_last' });
  assert.ok(cl.conv.weight.grad!.isContiguous('channels_last'), 'gradients are converted too');
  const xcl = x.contiguous('channels_last');
  step(plain, o1, x);
  step(cl, o2, xcl);
  assert.ok(cl.conv.weight.isContiguous('channels_last'));
  for (const [k, t] of cl.stateDict()) {
    const want = plain.stateDict().get(k)!;
    const d = t.sub(want).abs().max().item();
    assert.ok(d < 1e-5, `${k}: ${d}`);
  }
  for (const m of [plain, cl]) m.dispose();
  o1.dispose();
  o2.dispose();
  x.dispose();
  xcl.dispose();
});

test('to(dtype) converts floating tensors only; the model runs in the new dtype', () => {
  torch.manualSeed(4);
  const net = new Net().eval();
  const x = torch.randn([1, 3, 6, 6]);
  const want = torch.scope(() => torch.noGrad(() => net.forward(x).toArray()));
  const w = net.conv.weight;
  net.to('float64');
  assert.equal(net.conv.weight, w);
  assert.equal(w.dtype, 'float64');
  assert.equal(net.bn.running_var!.dtype, 'float64');
  assert.equal(net.bn.num_batches_tracked!.dtype, 'int64');
  const got = torch.scope(() => torch.noGrad(() => net.forward(x.to('float64')).toArray()));
  assert.ok(got.every((v, i) => Math.abs(v - want[i]) < 1e-5));
  net.to('float32');
  assert.equal(w.dtype, 'float32');
  assert.equal(net.conv.weight.to('float32').dtype, 'float32');
  net.dispose();
  x.dispose();
});

test("to(device): cpu is a no-op; cuda without CUDA is LibTorch's error and changes nothing", () => {
  torch.manualSeed(5);
  const net = new Net();
  const before = snapshot(net);
  net.to('cpu');
  assert.deepEqual(snapshot(net), before);
  if (torch.buildInfo().cudaDevices > 0) {
    net.to('cuda');
    assert.equal(net.conv.weight.device, 'cuda:0');
    net.to('cpu');
  } else {
    const live = torch.liveTensors();
    assert.throws(
      () => net.to('cuda'),
      (e: Error) => /CUDA|cuda/.test(e.message) && !/^deeplab/.test(e.message),
    );
    assert.equal(torch.liveTensors(), live, 'no tensor leaked');
    assert.equal(net.conv.weight.device, 'cpu');
    assert.deepEqual(snapshot(net), before);
  }
  net.dispose();
});
