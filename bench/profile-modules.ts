// Where a fast-path forward spends its time, module by module: every module's forward is wrapped
// with a timer, and each call's self time (its time less its child modules') is summed by module
// type and by name. CPU ops are synchronous, so wall time per call is what the op took.
//   node dist/bench/profile-modules.js [--model deeplabv3_resnet50] [--size 512x512] [--iters 3]
//        [--threads 2] [--precision fp32|bf16] [--top 15]
// The time outside every module (forwardLogits' layout change, the final resize and cast) is the
// row "(outside modules)". Random weights (seed 0), input randn.
import * as torch from '../src/torch/index.js';
import { findPreset } from '../src/models/zoo.js';
import { forwardLogits, prepareForInference, type Precision } from '../src/inference/fast-path.js';
import { benchArgs, benchSize } from './args.js';

const opt = benchArgs({
  '--model': 'deeplabv3_resnet50',
  '--size': '512x512',
  '--iters': '3',
  '--threads': '2',
  '--precision': 'fp32',
  '--top': '15',
});
const [h, w] = benchSize(opt['--size']);
torch.setNumThreads(Number(opt['--threads']));
torch.manualSeed(0);
const model = findPreset(opt['--model']).build({ aux: false }).eval();
const { settings } = prepareForInference(model, { precision: opt['--precision'] as Precision });

const byType = new Map<string, number>();
const byName = new Map<string, number>();
const stack: number[] = []; // children's time of each open call
let recording = false;
for (const [name, m] of model.namedModules()) {
  const mod = m as unknown as { forward?: (...a: unknown[]) => unknown };
  if (typeof mod.forward !== 'function') continue; // a container without a forward of its own
  const orig = mod.forward.bind(m);
  const type = m.constructor.name;
  mod.forward = (...a: unknown[]) => {
    if (!recording) return orig(...a);
    const t0 = performance.now();
    stack.push(0);
    const r = orig(...a);
    const total = performance.now() - t0;
    const self = total - stack.pop()!;
    if (stack.length) stack[stack.length - 1] += total;
    byType.set(type, (byType.get(type) ?? 0) + self);
    const key = name || '(model)';
    byName.set(key, (byName.get(key) ?? 0) + self);
    return r;
  };
}

const x = torch.randn([1, 3, h, w]).contiguous('channels_last');
torch.scope(() => forwardLogits(model, x, settings)); // warm-up: primitives created, pages faulted
const iters = Number(opt['--iters']);
let wall = 0;
recording = true;
for (let i = 0; i < iters; i++) {
  const t0 = performance.now();
  torch.scope(() => forwardLogits(model, x, settings));
  wall += performance.now() - t0;
}
recording = false;
const inModules = [...byType.values()].reduce((a, b) => a + b, 0);
const rows = (m: Map<string, number>) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(opt['--top']))
    .map(([k, v]) => `| ${k} | ${(v / iters).toFixed(1)} | ${((100 * v) / wall).toFixed(1)}% |`);
console.log(
  `${opt['--model']} ${h}x${w} ${opt['--precision']}, ${iters} calls, ${(wall / iters).toFixed(1)} ms per call\n`,
);
console.log('| module type | self ms per call | share |\n|---|---|---|');
console.log(rows(byType).join('\n'));
console.log(
  `| (outside modules) | ${((wall - inModules) / iters).toFixed(1)} | ${((100 * (wall - inModules)) / wall).toFixed(1)}% |`,
);
console.log('\n| module | self ms per call | share |\n|---|---|---|');
console.log(rows(byName).join('\n'));
x.dispose();
model.dispose();
