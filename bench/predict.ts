// Our side of the end-to-end predict benchmark (bench/py/predict.py is PyTorch's); one JSON line last.
//   node dist/bench/predict.js --prepare 1 [--images DIR --count 20 --size 512]   # make the JPEGs once
//   node dist/bench/predict.js [--images DIR --out DIR --model deeplabv3_resnet50 --weights FILE --threads 2 --bare 20
//        --precision fp32|bf16 --fast 1|0]
// Phase 1: load(model, { weights, precision, fast }) as the CLI does (no aux head, eval, by default
// the fast path: folded BNs, channels_last), one untimed warm-up forward of randn(1, 3, H, W), then
// --bare N timed bare forwards (forwardLogits(model, x, settings): the network alone, in the same
// precision and layout), summed. Phase 2, timed as a whole: the real `deeplab predict` command, run
// in this process (predictCommand().parseAsync) with the same --precision (and --no-fast for
// --fast 0) over every *.jpg of DIR: build + weights + preparation, then per image decode (sharp,
// the next one prefetched), segment, and write NAME_labels.png, NAME_color.png and NAME_overlay.jpg. Its per-image "in N ms" lines give the segment time (preprocess + forward +
// argmax + copy out). Targets: predict total / bare sum <= 1.05 (bare_ratio; pipeline_ratio leaves
// out the load() time measured in phase 1) and, in bench/table.ts, ours / PyTorch's predict.py <= 1.1.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as torch from '../src/torch/index.js';
import { load } from '../src/api.js';
import { predictCommand } from '../src/cli/predict.js';
import { forwardLogits } from '../src/inference/fast-path.js';
import { benchArgs } from './args.js';

const opt = benchArgs({
  '--prepare': '0',
  '--images': '',
  '--out': '',
  '--count': '20',
  '--size': '512',
  '--model': 'deeplabv3_resnet50',
  '--weights': '',
  '--threads': '2',
  '--bare': '20',
  '--precision': 'fp32',
  '--fast': '1',
});
const size = Number(opt['--size']);
const count = Number(opt['--count']);
const dir = opt['--images'] || join(tmpdir(), `deeplab-bench-predict-${size}`);
torch.setNumThreads(Number(opt['--threads']));

/** A deterministic, photo-like test image: gradient sky, a few flat shapes, mild noise. */
function synthImage(seed: number, w: number, h: number): Buffer {
  let s = (seed * 2654435761 + 12345) >>> 0;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const px = Buffer.alloc(w * h * 3);
  const base = [rnd() * 255, rnd() * 255, rnd() * 255];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      for (let c = 0; c < 3; c++)
        px[i + c] = Math.max(0, Math.min(255, base[c] * (1 - y / h) + (c * 60 * x) / w + (rnd() - 0.5) * 16));
    }
  }
  for (let k = 0; k < 6; k++) {
    const [cx, cy, r] = [rnd() * w, rnd() * h, (0.05 + rnd() * 0.25) * Math.min(w, h)];
    const col = [rnd() * 255, rnd() * 255, rnd() * 255];
    const round = rnd() < 0.5;
    for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(h, cy + r); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(w, cx + r); x++) {
        if (round && (x - cx) ** 2 + (y - cy) ** 2 > r * r) continue;
        const i = (y * w + x) * 3;
        for (let c = 0; c < 3; c++) px[i + c] = Math.max(0, Math.min(255, col[c] + (rnd() - 0.5) * 24));
      }
    }
  }
  return px;
}

const jpegs = () =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.jpg'))
        .sort()
    : [];

if (opt['--prepare'] === '1') {
  mkdirSync(dir, { recursive: true });
  if (jpegs().length !== count) {
    for (const f of jpegs()) rmSync(join(dir, f));
    for (let i = 0; i < count; i++) {
      await sharp(synthImage(i + 1, size, size), { raw: { width: size, height: size, channels: 3 } })
        .jpeg({ quality: 90 })
        .toFile(join(dir, `img_${String(i).padStart(2, '0')}.jpg`));
    }
  }
  console.log(
    JSON.stringify({ side: 'deeplab', bench: 'predict', prepared: dir, images: jpegs().length, size: [size, size] }),
  );
  process.exit(0);
}

const files = jpegs().map((f) => join(dir, f));
if (!files.length) throw new Error(`no *.jpg in ${dir}: run with --prepare 1 first`);
const out = opt['--out'] || join(dir, 'out-deeplab');
const weights = opt['--weights'] || undefined;
const { width: w, height: h } = await sharp(files[0]).metadata();

// Phase 1: warm-up and bare forwards
let t0 = performance.now();
const precision = opt['--precision'] as 'fp32' | 'bf16';
const fast = opt['--fast'] !== '0';
const seg = await load(opt['--model'], { weights, precision, fast });
const loadMs = performance.now() - t0;
const x = torch.randn([1, 3, h, w]).contiguous(seg.settings.channelsLast ? 'channels_last' : 'contiguous');
const bareCall = () => torch.scope(() => void forwardLogits(seg.model, x, seg.settings));
bareCall();
const bare: number[] = [];
for (let i = 0; i < Number(opt['--bare']); i++) {
  t0 = performance.now();
  bareCall();
  bare.push(performance.now() - t0);
}
x.dispose();
seg.dispose();

// Phase 2: the real predict command, its console lines captured
rmSync(out, { recursive: true, force: true });
const lines: string[] = [];
const log = console.log;
console.log = (...a: unknown[]) => void lines.push(a.join(' '));
t0 = performance.now();
try {
  const flags = [
    '-m',
    opt['--model'],
    '-o',
    out,
    '--precision',
    precision,
    ...(fast ? [] : ['--no-fast']),
    ...(weights ? ['-w', weights] : []),
  ];
  await predictCommand().parseAsync([...files, ...flags], { from: 'user' });
} finally {
  console.log = log;
}
const totalMs = performance.now() - t0;
const segmentMs = lines.map((l) => / in (\d+) ms -> /.exec(l)).reduce((s, m) => s + (m ? Number(m[1]) : 0), 0);
const done = lines.filter((l) => / in \d+ ms -> /.test(l)).length;
if (done !== files.length || process.exitCode)
  throw new Error(`predict wrote ${done} of ${files.length} images:\n${lines.join('\n')}`);
const bareSum = bare.reduce((a, b) => a + b, 0);
console.log(
  JSON.stringify({
    side: 'deeplab',
    bench: 'predict',
    model: opt['--model'],
    images: files.length,
    size: [h, w],
    precision,
    fast,
    settings: seg.settings,
    total_ms: totalMs,
    segment_ms: segmentMs,
    load_ms: loadMs,
    bare_sum_ms: bare.length ? bareSum : null,
    bare_runs: bare.length,
    bare_ratio: bare.length === files.length ? totalMs / bareSum : null,
    pipeline_ratio: bare.length === files.length ? (totalMs - loadMs) / bareSum : null,
    weights: weights ?? null,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    threads: torch.getNumThreads(),
    version: torch.buildInfo().torchVersion,
  }),
);
