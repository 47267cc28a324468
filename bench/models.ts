// Our side of the model benchmarks (bench/py/models.py is PyTorch's): inference latency of one
// preset at one size, one JSON line last.
//   node dist/bench/models.js --model deeplabv3_resnet50 --size 512x1024 --batch 1 --warmup 1 --iters 3
//        --threads 2 --fast 0|1 --layout nchw|cl --precision fp32|bf16|int8 --aux 0|1
// The model is findPreset(name).build({ aux }) in eval mode (random weights, seed 0), the input
// randn(batch, 3, H, W). --aux 0 (default) builds no auxiliary head, as load() does.
//  --fast 0 (default): the plain eager model, like for like with PyTorch eager: each call is
//    model.forward(x).out under torch.inferenceMode in a scope that frees its outputs; --layout cl
//    converts the weights (Module.to) and the input to channels_last; --precision bf16 runs the
//    call under torch.autocast('cpu', 'bfloat16').
//  --fast 1: what load() / `deeplab predict` run: prepareForInference (batch norms folded into the
//    convs, channels_last weights) and forwardLogits (channels_last input, bf16 autocast with
//    --precision bf16, fp32 contiguous logits); --layout is then always cl. fp32 prepacks the
//    convs with their activations and residual adds fused (src/inference/fuse.ts); --precision
//    int8 first calibrates (untimed) on 2 other random inputs, then runs the int8 packed convs;
//    --keep-fp32 S, --max-fp32-flops F: int8's fp32 fallback (as deeplab calibrate; --keep-fp32 0: all int8).
//    --fuse 0 keeps fp32 unfused (folded + channels_last only: what the fast path was before).
// GFLOP is countFlops (2 x MACs of convs, before folding) x batch, as bench/py/models.py counts.
import * as torch from '../src/torch/index.js';
import { findPreset } from '../src/models/zoo.js';
import { countFlops } from '../src/models/flops.js';
import { forwardLogits, prepareForInference, type Precision } from '../src/inference/fast-path.js';
import { calibrate, type Calibration } from '../src/inference/calibration.js';
import { DEFAULT_KEEP, DEFAULT_MAX_FLOPS, keepSensitiveFp32 } from '../src/inference/int8-fallback.js';
import { benchArgs, benchSize } from './args.js';
import { median } from './stats.js';

const opt = benchArgs({
  '--model': 'deeplabv3_resnet50',
  '--size': '512',
  '--batch': '1',
  '--warmup': '1',
  '--iters': '3',
  '--threads': '2',
  '--fast': '0',
  '--layout': 'nchw',
  '--precision': 'fp32',
  '--aux': '0',
  '--seed': '0',
  '--fuse': '1',
  '--keep-fp32': String(DEFAULT_KEEP),
  '--max-fp32-flops': String(DEFAULT_MAX_FLOPS),
});
const [h, w] = benchSize(opt['--size']);
const batch = Number(opt['--batch']);
const warmup = Math.max(1, Number(opt['--warmup']));
const iters = Number(opt['--iters']);
const layout = opt['--layout'];
const precision = opt['--precision'];
if (!['nchw', 'cl'].includes(layout) || !['fp32', 'bf16', 'int8'].includes(precision))
  throw new Error('--layout nchw|cl, --precision fp32|bf16|int8');
if (precision === 'int8' && opt['--fast'] !== '1') throw new Error('--precision int8 needs --fast 1');
torch.setNumThreads(Number(opt['--threads']));
torch.manualSeed(Number(opt['--seed']));

let t0 = performance.now();
const model = findPreset(opt['--model'])
  .build({ aux: opt['--aux'] === '1' })
  .eval();
const buildMs = performance.now() - t0;
const gflop = (countFlops(model, h, w) * batch) / 1e9;

const fast = opt['--fast'] === '1';
let layoutNote = layout;
let call: () => void;
let outShape: number[] = [];
let outDtype = '';
t0 = performance.now();
if (fast) {
  // int8: calibrated first (untimed) on 2 other random inputs of the same size, on an fp32 copy.
  let calibration: Calibration | undefined;
  if (precision === 'int8') {
    torch.manualSeed(Number(opt['--seed']));
    using ref = findPreset(opt['--model']).build({ aux: false }).eval();
    const p = prepareForInference(ref, { verifyFold: false });
    torch.manualSeed(Number(opt['--seed']) + 1);
    const xs = [0, 1].map(() => torch.randn([batch, 3, h, w]));
    const run = (x: torch.Tensor) => forwardLogits(ref, x, p.settings);
    const ranges = calibrate(ref, opt['--model'], xs, run);
    const f = keepSensitiveFp32(ref, ranges, xs, run, Number(opt['--keep-fp32']), Number(opt['--max-fp32-flops']));
    calibration = f.calibration;
    process.stderr.write(
      `int8 fp32 fallback: ${f.kept.length} convs kept fp32, ${(100 * f.flopShare).toFixed(1)}% of the FLOPs\n`,
    );
    xs.forEach((x) => x.dispose());
  }
  const { settings, fold } = prepareForInference(model, {
    precision: precision as Precision,
    calibration,
    fuse: opt['--fuse'] !== '0',
  });
  layoutNote = `fast: ${fold ? `${fold.folded.length} BNs folded, ${fold.skipped.length} left` : 'no folding'}, ${settings.channelsLast ? 'cl' : 'nchw'}`;
  const x = torch.randn([batch, 3, h, w]).contiguous(settings.channelsLast ? 'channels_last' : 'contiguous');
  call = () =>
    torch.scope(() => {
      const out = forwardLogits(model, x, settings);
      outShape = out.shape;
      outDtype = out.dtype;
    });
} else {
  if (layout === 'cl') model.to({ memoryFormat: 'channels_last' });
  const x = torch.randn([batch, 3, h, w]).contiguous(layout === 'cl' ? 'channels_last' : 'contiguous');
  const plain = () =>
    torch.scope(() =>
      torch.inferenceMode(() => {
        const out = model.forward(x).out;
        outShape = out.shape;
        outDtype = out.dtype;
      }),
    );
  call = precision === 'bf16' ? () => torch.autocast('cpu', 'bfloat16', plain) : plain;
}
const prepareMs = performance.now() - t0;
const fn = call;

const ms: number[] = [];
let firstMs = 0;
for (let i = 0; i < warmup + iters; i++) {
  t0 = performance.now();
  fn();
  const dt = performance.now() - t0;
  if (i === 0) firstMs = dt;
  if (i >= warmup) ms.push(dt);
}
ms.sort((a, b) => a - b);
const medianMs = median(ms);
console.log(
  JSON.stringify({
    side: 'deeplab',
    bench: 'models',
    model: opt['--model'],
    size: [h, w],
    batch,
    layout: fast ? 'cl' : layout,
    precision,
    aux: Number(opt['--aux']),
    warmup,
    runs: ms.length,
    median_ms: medianMs,
    min_ms: ms[0],
    max_ms: ms[ms.length - 1],
    first_ms: firstMs,
    build_ms: buildMs,
    prepare_ms: prepareMs,
    fast,
    gflop,
    gflops: (gflop * 1e3) / medianMs,
    out_shape: outShape,
    out_dtype: outDtype,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    layout_note: layoutNote,
    threads: torch.getNumThreads(),
    version: torch.buildInfo().torchVersion,
    huge_pages: torch.buildInfo().hugePages,
  }),
);
