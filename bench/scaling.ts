// Scaling figures: deeplabv3_resnet50 inference time and peak memory against input size (256x256
// to 1024x2048, batch 1) and time per image against batch size (512x512), ours (default fast path,
// fp32 and bf16) beside PyTorch eager fp32 NCHW, each point its own process (bench/models.ts and
// bench/py/models.py), one round. Writes bench/results/scaling.md, scaling.jsonl and scaling.png.
//   node dist/bench/scaling.js [--threads 2] [--quick] [--out bench/results/scaling.md]
// --quick: sizes divided by 4, 1 timed call: a smoke test (to $TMPDIR/deeplab-bench-quick/).
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { lineChartSvg, type Series } from '../src/training/charts.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const quick = args.includes('--quick');
const threads = get('--threads', '2');
const out = get(
  '--out',
  quick ? join(tmpdir(), 'deeplab-bench-quick/scaling.md') : join(root, 'bench/results/scaling.md'),
);
const jsonl = out.replace(/\.md$/, '.jsonl');
const python = process.env.PYTHON ?? '/usr/bin/python3';
const div = quick ? 4 : 1;

const SIZES: [number, number][] = [
  [256, 256],
  [512, 512],
  [512, 1024],
  [1024, 1024],
  [1024, 2048],
];
const BATCHES = [1, 2, 4];

interface Side {
  name: string;
  cmd: string;
  argv: string[];
  color: string;
}
const SIDES: Side[] = [
  {
    name: 'ours fp32 (fast path)',
    cmd: process.execPath,
    argv: [join(root, 'dist/bench/models.js'), '--fast', '1'],
    color: '#1f77b4',
  },
  {
    name: 'ours bf16 (fast path)',
    cmd: process.execPath,
    argv: [join(root, 'dist/bench/models.js'), '--fast', '1', '--precision', 'bf16'],
    color: '#2ca02c',
  },
  { name: 'PyTorch eager fp32 NCHW', cmd: python, argv: [join(root, 'bench/py/models.py')], color: '#d62728' },
];

type Json = Record<string, number>;
function run(s: Side, h: number, w: number, batch: number): Json {
  const small = h * w * batch <= 512 * 512;
  const argv = [
    ...s.argv,
    '--model',
    'deeplabv3_resnet50',
    '--size',
    `${h / div}x${w / div}`,
    '--batch',
    String(batch),
    '--warmup',
    '1',
    '--iters',
    quick ? '1' : small ? '3' : '1',
    '--threads',
    threads,
  ];
  const text = execFileSync(s.cmd, argv, {
    encoding: 'utf8',
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const r = JSON.parse(text.trim().split('\n').pop()!) as Json;
  appendFileSync(jsonl, JSON.stringify({ ...r, series: s.name, at: new Date().toISOString() }) + '\n');
  return r;
}

mkdirSync(dirname(out), { recursive: true });
writeFileSync(jsonl, '');
const t0 = performance.now();
const bySize = new Map<string, { h: number; w: number; r: Json }[]>();
const byBatch = new Map<string, { b: number; r: Json }[]>();
for (const [h, w] of SIZES) {
  for (const s of SIDES) {
    const r = run(s, h, w, 1);
    bySize.set(s.name, [...(bySize.get(s.name) ?? []), { h, w, r }]);
    console.log(
      `[${((performance.now() - t0) / 1000).toFixed(0)} s] ${s.name} ${h / div}x${w / div}: ${r.median_ms.toFixed(0)} ms, peak RSS ${r.peak_rss_mib.toFixed(0)} MiB`,
    );
  }
}
for (const b of BATCHES) {
  for (const s of SIDES) {
    // batch 1 at 512x512 is already measured above
    const r = b === 1 ? bySize.get(s.name)!.find((p) => p.h === 512 && p.w === 512)!.r : run(s, 512, 512, b);
    byBatch.set(s.name, [...(byBatch.get(s.name) ?? []), { b, r }]);
    if (b > 1)
      console.log(
        `[${((performance.now() - t0) / 1000).toFixed(0)} s] ${s.name} batch ${b}: ${r.median_ms.toFixed(0)} ms, peak RSS ${r.peak_rss_mib.toFixed(0)} MiB`,
      );
  }
}

const mp = (h: number, w: number) => ((h / div) * (w / div)) / 1e6;
const timeSeries: Series[] = SIDES.map((s) => ({
  name: s.name,
  color: s.color,
  points: bySize.get(s.name)!.map((p) => [mp(p.h, p.w), p.r.median_ms / 1000] as [number, number]),
}));
const memSeries: Series[] = SIDES.map((s) => ({
  name: s.name,
  color: s.color,
  points: bySize.get(s.name)!.map((p) => [mp(p.h, p.w), p.r.peak_rss_mib / 1024] as [number, number]),
}));
const batchSeries: Series[] = SIDES.map((s) => ({
  name: s.name,
  color: s.color,
  points: byBatch.get(s.name)!.map((p) => [p.b, p.r.median_ms / 1000 / p.b] as [number, number]),
}));
const title = `deeplabv3_resnet50 inference, ${threads} threads`;
const svgs = [
  lineChartSvg(`${title}: time vs input size`, 'megapixels (batch 1)', 'seconds per forward', timeSeries, 'left'),
  lineChartSvg(`${title}: memory vs input size`, 'megapixels (batch 1)', 'peak RSS (GiB)', memSeries, 'left'),
  lineChartSvg(
    `${title}: time per image vs batch`,
    `batch size (${512 / div}x${512 / div})`,
    'seconds per image',
    batchSeries,
    'left',
  ),
];
const png = out.replace(/\.md$/, '.png');
// The three charts stacked into one picture for the README.
const tiles = await Promise.all(svgs.map((s) => sharp(Buffer.from(s)).png().toBuffer({ resolveWithObject: true })));
const width = Math.max(...tiles.map((t) => t.info.width));
const height = tiles.reduce((a, t) => a + t.info.height, 0);
let top = 0;
await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
  .composite(
    tiles.map((t) => {
      const o = { input: t.data, left: 0, top };
      top += t.info.height;
      return o;
    }),
  )
  .png()
  .toFile(png);

const f = (v: number, d = 0) => v.toFixed(d);
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus()[0]?.model.trim()} (${cpus().length} cores), ${threads} threads; deeplabv3_resnet50 (no aux head), random weights, ` +
    `one process per point, 1 warm-up call then the median of ${quick ? 1 : '3 (1 above 512x512)'} timed calls.${quick ? ' **QUICK SMOKE RUN: not a measurement.**' : ''}`,
  '',
  `| input | ${SIDES.map((s) => `${s.name} ms`).join(' | ')} | ${SIDES.map((s) => `${s.name} peak RSS MiB`).join(' | ')} |`,
  `|---|${SIDES.map(() => '---|').join('')}${SIDES.map(() => '---|').join('')}`,
  ...SIZES.map(
    ([h, w], i) =>
      `| ${h / div}x${w / div} | ${SIDES.map((s) => f(bySize.get(s.name)![i].r.median_ms)).join(' | ')} | ${SIDES.map((s) => f(bySize.get(s.name)![i].r.peak_rss_mib)).join(' | ')} |`,
  ),
  ...BATCHES.slice(1).map(
    (b, i) =>
      `| batch ${b} x ${512 / div}x${512 / div} | ${SIDES.map((s) => f(byBatch.get(s.name)![i + 1].r.median_ms)).join(' | ')} | ${SIDES.map((s) => f(byBatch.get(s.name)![i + 1].r.peak_rss_mib)).join(' | ')} |`,
  ),
  '',
  `![scaling](${png.split('/').pop()})`,
  '',
  `Total ${((performance.now() - t0) / 60000).toFixed(1)} min.`,
];
writeFileSync(out, lines.join('\n') + '\n');
console.log(`\n${lines.join('\n')}\n\nwritten to ${out} and ${png}`);
