// The onnxruntime-node side of the model benchmarks: inference latency of any .onnx file (one
// float32 NCHW input, batch 1 or more), one JSON line last, as bench/models.ts prints for ours.
//   node dist/bench/ort.js --onnx FILE.onnx --size 512x1024 [--batch 1 --warmup 1 --iters 3 --threads 2]
//        [--opt all|extended|basic|disabled] [--profile DIR]
// The file can come from any exporter: bench/py/export_onnx.py (Debian's torch.onnx) today, our
// own exporter later. The session runs on the CPU execution provider with --threads intra-op
// threads and one inter-op thread (sequential execution), graph optimisation "all" by default
// (ORT then fuses conv + activation and conv + add into MLAS kernels). The input is randn-like
// (seeded uniform Box-Muller); each timed call is one session.run. --profile DIR writes ORT's
// own per-node profile (JSON) there and prints its path in the result.
import { mkdirSync } from 'node:fs';
import { statSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { benchArgs, benchSize } from './args.js';
import { median } from './stats.js';

const opt = benchArgs({
  '--onnx': '',
  '--model': '',
  '--size': '512',
  '--batch': '1',
  '--warmup': '1',
  '--iters': '3',
  '--threads': '2',
  '--opt': 'all',
  '--profile': '',
  '--seed': '0',
});
if (!opt['--onnx']) throw new Error('--onnx FILE.onnx is required');
const levels = ['all', 'extended', 'basic', 'disabled'] as const;
const level = opt['--opt'] as (typeof levels)[number];
if (!levels.includes(level)) throw new Error(`--opt must be one of ${levels.join(', ')}, got "${level}"`);
const [h, w] = benchSize(opt['--size']);
const batch = Number(opt['--batch']);
const warmup = Math.max(1, Number(opt['--warmup']));
const iters = Number(opt['--iters']);

/** Standard normal samples from a seeded xorshift generator (the values only need to be plausible). */
function randn(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

let t0 = performance.now();
if (opt['--profile']) mkdirSync(opt['--profile'], { recursive: true });
const session = await ort.InferenceSession.create(opt['--onnx'], {
  executionProviders: ['cpu'],
  graphOptimizationLevel: level,
  intraOpNumThreads: Number(opt['--threads']),
  interOpNumThreads: 1,
  executionMode: 'sequential',
  enableProfiling: Boolean(opt['--profile']),
  ...(opt['--profile'] ? { profileFilePrefix: `${opt['--profile']}/ort` } : {}),
});
const loadMs = performance.now() - t0;
const input = new ort.Tensor('float32', randn(batch * 3 * h * w, Number(opt['--seed'])), [batch, 3, h, w]);
const feeds = { [session.inputNames[0]]: input };

const ms: number[] = [];
let firstMs = 0;
let outShape: readonly number[] = [];
for (let i = 0; i < warmup + iters; i++) {
  t0 = performance.now();
  const res = await session.run(feeds);
  const dt = performance.now() - t0;
  const out = res[session.outputNames[0]];
  outShape = out.dims;
  for (const t of Object.values(res)) t.dispose();
  if (i === 0) firstMs = dt;
  if (i >= warmup) ms.push(dt);
}
const profileFile = opt['--profile'] ? session.endProfiling() : '';
await session.release();
ms.sort((a, b) => a - b);
const medianMs = median(ms);
console.log(
  JSON.stringify({
    side: 'onnxruntime',
    bench: 'models',
    model: opt['--model'] || opt['--onnx'],
    onnx: opt['--onnx'],
    onnx_bytes: statSync(opt['--onnx']).size,
    size: [h, w],
    batch,
    precision: 'fp32',
    graph_optimization: level,
    warmup,
    runs: ms.length,
    median_ms: medianMs,
    min_ms: ms[0],
    max_ms: ms[ms.length - 1],
    first_ms: firstMs,
    load_ms: loadMs,
    out_shape: outShape,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    threads: Number(opt['--threads']),
    version: ort.env.versions.common,
    ...(profileFile ? { profile: profileFile } : {}),
  }),
);
