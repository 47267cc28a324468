// Our side of the micro benchmarks (bench/py/micro.py is PyTorch's): the same workloads and
// timing, one JSON line.  node dist/bench/micro.js conv|convbwd|add [--threads 2 --warmup 5 --iters 30]
import * as torch from '../src/torch/index.js';
import { median } from './stats.js';

const [caseName, ...rest] = process.argv.slice(2);
const opt: Record<string, string> = {};
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i]] = rest[i + 1];
const threads = Number(opt['--threads'] ?? 2);
const warmup = Number(opt['--warmup'] ?? 5);
const iters = Number(opt['--iters'] ?? 30);
torch.setNumThreads(threads);
torch.manualSeed(0);

let inner = 1;
let flops = 0;
let fn: () => void;
if (caseName === 'conv' || caseName === 'convbwd') {
  const conv = new torch.nn.Conv2d(256, 256, 3, { padding: 2, dilation: 2, bias: false });
  const x = torch.randn([1, 256, 64, 64]);
  flops = 2 * 256 * 256 * 9 * 64 * 64;
  if (caseName === 'conv') {
    fn = () => torch.noGrad(() => conv.forward(x).dispose());
  } else {
    x.requiresGrad_(true);
    const g = torch.randn([1, 256, 64, 64]);
    flops *= 3;
    fn = () =>
      torch.scope(() => {
        x.grad = null;
        conv.weight.grad = null;
        conv.forward(x).backward(g);
      });
  }
} else if (caseName === 'add') {
  const a = torch.ones([1]);
  const b = torch.ones([1]);
  inner = 10_000;
  // Each result is freed as soon as it is made, as Python's refcounting does.
  fn = () => {
    for (let i = 0; i < inner; i++) a.add(b).dispose();
  };
} else {
  throw new Error(`unknown case ${caseName}`);
}

for (let i = 0; i < warmup; i++) fn();
const ms: number[] = [];
for (let i = 0; i < iters; i++) {
  const t0 = performance.now();
  fn();
  ms.push((performance.now() - t0) / inner);
}
ms.sort((a, b) => a - b);
const medianMs = median(ms);
console.log(
  JSON.stringify({
    side: 'deeplab',
    case: caseName,
    median_ms: medianMs,
    min_ms: ms[0],
    max_ms: ms[ms.length - 1],
    gflops: flops ? flops / 1e6 / medianMs : null,
    threads,
    version: torch.buildInfo().torchVersion,
  }),
);
