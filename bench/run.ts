// Runs each workload here and in PyTorch, alternating processes (ours, theirs, ours, ...) so
// that machine noise hits both alike, and prints medians and the ratio ours / PyTorch.
//   node dist/bench/run.js [--rounds 3] [--threads 2] [--out bench/results/micro.md]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { median } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const rounds = Number(get('--rounds', '3'));
const threads = get('--threads', '2');
const out = get('--out', join(root, 'bench/results/micro.md'));
const python = process.env.PYTHON ?? '/usr/bin/python3';

interface Result {
  median_ms: number;
  gflops: number | null;
  version: string;
}

function runOnce(side: 'deeplab' | 'pytorch', c: string): Result {
  const cmd = side === 'deeplab' ? process.execPath : python;
  const script = side === 'deeplab' ? join(root, 'dist/bench/micro.js') : join(root, 'bench/py/micro.py');
  const text = execFileSync(cmd, [script, c, '--threads', threads], { encoding: 'utf8' });
  return JSON.parse(text.trim().split('\n').pop()!) as Result;
}

const cases: [string, string, string][] = [
  ['conv', '1x256x64x64 dilated 3x3 conv, forward (fp32)', 'ms'],
  ['convbwd', 'same conv, forward + backward', 'ms'],
  ['add', 'tiny add: per-op dispatch overhead', 'us'],
];
const rows: string[] = [];
let versions = '';
for (const [c, label, unit] of cases) {
  const ours: number[] = [];
  const theirs: number[] = [];
  const ratios: number[] = [];
  let g: [number | null, number | null] = [null, null];
  for (let r = 0; r < rounds; r++) {
    const a = runOnce('deeplab', c);
    const b = runOnce('pytorch', c);
    ours.push(a.median_ms);
    theirs.push(b.median_ms);
    ratios.push(a.median_ms / b.median_ms);
    g = [a.gflops, b.gflops];
    versions = `LibTorch ${a.version} here, PyTorch ${b.version}`;
  }
  const scale = unit === 'us' ? 1000 : 1;
  const fmt = (v: number) => (v * scale).toFixed(unit === 'us' ? 3 : 2);
  const gf = g[0]
    ? ` | ${median(ours.map((m) => (g[0]! * ours[ours.length - 1]) / m)).toFixed(0)} / ${median(theirs.map((m) => (g[1]! * theirs[theirs.length - 1]) / m)).toFixed(0)}`
    : ' | -';
  const row = `| ${label} | ${fmt(median(ours))} ${unit} | ${fmt(median(theirs))} ${unit} | **${median(ratios).toFixed(3)}x**${gf} |`;
  rows.push(row);
  console.log(row);
}
const table = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus()[0].model.trim()} (${cpus().length} cores), ${threads} threads, ${versions}; median of ${rounds} alternating process pairs.`,
  '',
  '| workload | deeplab (TS) | PyTorch (Python) | ratio | GFLOP/s ours / PyTorch |',
  '|---|---|---|---|---|',
  ...rows,
].join('\n');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, table + '\n');
console.log(`\n${table}\n\nwritten to ${out}`);
