// Our side of the training-step benchmark (bench/py/train_step.py is PyTorch's): one iteration,
// one JSON line last.
//   node dist/bench/train-step.js --model deeplabv3_resnet50 --batch 2 --size 512 --warmup 1 --iters 2
//        --threads 2 --layout nchw|cl --precision fp32|bf16
// One step, as src/training/trainer.ts runs it: in a scope, forward (under bf16 autocast with
// --precision bf16), loss = segmentationLoss(out) + 0.4 x segmentationLoss(aux) with ignore 255 and
// avgNonIgnore (PyTorch's CE mean over valid pixels), backward; then SGD step (lr 0.01, momentum
// 0.9, weight decay 1e-4) and zeroGrad. model.train(), aux head built. Input randn(batch, 3, H, W),
// labels randint(0, classes) with ~5% set to 255, fixed across steps (seed 0). Reports the median
// step and its forward / backward / optimizer split, the losses and peak RSS (MiB).
import * as torch from '../src/torch/index.js';
import { findPreset } from '../src/models/zoo.js';
import { segmentationLoss } from '../src/training/losses.js';
import { countFlops } from '../src/models/flops.js';
import { benchArgs, benchSize } from './args.js';
import { median } from './stats.js';

const opt = benchArgs({
  '--model': 'deeplabv3_resnet50',
  '--size': '512',
  '--batch': '2',
  '--warmup': '1',
  '--iters': '2',
  '--threads': '2',
  '--layout': 'nchw',
  '--precision': 'fp32',
  '--seed': '0',
});
const [h, w] = benchSize(opt['--size']);
const batch = Number(opt['--batch']);
const warmup = Number(opt['--warmup']);
const iters = Number(opt['--iters']);
const layout = opt['--layout'];
const precision = opt['--precision'];
torch.setNumThreads(Number(opt['--threads']));
torch.manualSeed(Number(opt['--seed']));

const preset = findPreset(opt['--model']);
const model = preset.build({ aux: true }).train();
// forward + grad-input + grad-weight ~ 3 x the forward's conv FLOPs (aux head included)
const gflopStep = (3 * countFlops(model, h, w) * batch) / 1e9;
if (layout === 'cl') model.to({ memoryFormat: 'channels_last' });
const sgd = new torch.optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
let x = torch.randn([batch, 3, h, w]);
if (layout === 'cl') x = x.contiguous('channels_last');
const labels = torch.scope(() =>
  torch.where(torch.rand([batch, h, w]).lt(0.05), 255, torch.randint(0, preset.numClasses, [batch, h, w])),
);
const lossCfg = { avgNonIgnore: true, auxWeight: 0.4, ignoreIndex: 255 };

const steps: number[] = [];
const fwd: number[] = [];
const bwd: number[] = [];
const upd: number[] = [];
const losses: number[] = [];
for (let i = 0; i < warmup + iters; i++) {
  const t0 = performance.now();
  let t1 = 0;
  const loss = torch.scope(() => {
    const forward = () => {
      const out = model.forward(x);
      // .float(): the loss in fp32 under autocast, as the trainer computes it
      return segmentationLoss(out.out.float(), labels, lossCfg).add(
        segmentationLoss(out.aux!.float(), labels, lossCfg).mul(0.4),
      );
    };
    // Its own scope: only the loss leaves it, so the forward's intermediates that autograd did not
    // save are freed before backward, and autograd frees the saved ones as it goes (as in PyTorch).
    const l = torch.scope(() => (precision === 'bf16' ? torch.autocast('cpu', 'bfloat16', forward) : forward()));
    t1 = performance.now();
    l.backward();
    return l.item();
  });
  const t2 = performance.now();
  sgd.step();
  sgd.zeroGrad();
  const t3 = performance.now();
  losses.push(loss);
  if (i >= warmup) {
    steps.push(t3 - t0);
    fwd.push(t1 - t0);
    bwd.push(t2 - t1);
    upd.push(t3 - t2);
  }
}
console.log(
  JSON.stringify({
    side: 'deeplab',
    bench: 'train',
    model: opt['--model'],
    size: [h, w],
    batch,
    layout,
    precision,
    warmup,
    runs: steps.length,
    median_ms: median(steps),
    min_ms: Math.min(...steps),
    max_ms: Math.max(...steps),
    fwd_ms: median(fwd),
    bwd_ms: median(bwd),
    step_ms: median(upd),
    gflop_step_est: gflopStep,
    first_loss: losses[0],
    last_loss: losses[losses.length - 1],
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    threads: torch.getNumThreads(),
    version: torch.buildInfo().torchVersion,
  }),
);
