// Our predict against onnxruntime-node running OUR OWN ONNX export of the same preset (issue 14's
// comparison; bench/table.ts compares with ORT on Debian's torch.onnx exports instead).
//   node dist/bench/onnx-peer.js [--models deeplabv3_resnet50,deeplabv3_mobilenet_v3_large]
//        [--sizes 512x512,512x1024] [--rounds 3] [--threads 2] [--dir $TMPDIR/deeplab-onnx-peer]
//        [--sides 'ours fp32,ours bf16,ours int8,ORT fp32,ORT fp16'] (a subset; ORT fp32 always among them)
// Each model and size is exported once (`deeplab export --random-weights`, fp32 and fp16); then,
// round after round, each side runs in its own process, in turn: our fast path (fp32: fused and
// prepacked; bf16 autocast; int8, calibrated untimed on 2 random inputs; bench/models.ts --fast 1) and ORT on the fp32 and fp16 files
// (bench/ort.ts, graph optimisation "all"). Prints medians over rounds and ratios against ORT fp32.
// Timing does not depend on the weights' values, so the two sides' random weights need not match.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { median } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const opt = benchArgs({
  '--models': 'deeplabv3_resnet50,deeplabv3_mobilenet_v3_large',
  '--sizes': '512x512,512x1024',
  '--rounds': '3',
  '--threads': '2',
  '--dir': join(tmpdir(), 'deeplab-onnx-peer'),
  '--sides': 'ours fp32,ours bf16,ours int8,ORT fp32,ORT fp16',
});
const models = opt['--models'].split(',');
const sizes = opt['--sizes'].split(',');
const rounds = Number(opt['--rounds']);
const threads = opt['--threads'];
mkdirSync(opt['--dir'], { recursive: true });
const env = { ...process.env, DEEPLAB_THREADS: threads, OMP_NUM_THREADS: threads };

function lastJson(cmd: string, args: string[]): { median_ms: number } {
  const out = execFileSync(cmd, args, { cwd: root, encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').pop()!) as { median_ms: number };
}

type Side = 'ours fp32' | 'ours bf16' | 'ours int8' | 'ORT fp32' | 'ORT fp16';
const ALL_SIDES: Side[] = ['ours fp32', 'ours bf16', 'ours int8', 'ORT fp32', 'ORT fp16'];
const SIDES = opt['--sides'].split(',') as Side[];
for (const s of SIDES)
  if (!ALL_SIDES.includes(s)) throw new Error(`--sides: "${s}" is not one of ${ALL_SIDES.join(', ')}`);
if (!SIDES.includes('ORT fp32')) throw new Error('--sides: the ratios are to "ORT fp32", which must be among them');
const times = new Map<string, number[]>();

for (const model of models)
  for (const size of sizes)
    for (const p of ['fp32', 'fp16'] as const) {
      if (p === 'fp16' && !SIDES.includes('ORT fp16')) continue;
      const file = join(opt['--dir'], `${model}-${size}-${p}.onnx`);
      if (existsSync(file)) continue;
      console.error(`exporting ${model} ${size} ${p} (our exporter) ...`);
      execFileSync(
        join(root, 'bin/deeplab'),
        ['export', '--format', 'onnx', '--model', model, '--random-weights', '--size', size].concat([
          '--precision',
          p,
          '--out',
          file,
        ]),
        { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] },
      );
    }

for (let r = 0; r < rounds; r++)
  for (const model of models)
    for (const size of sizes)
      for (const side of SIDES) {
        const args = side.startsWith('ours')
          ? [
              'dist/bench/models.js',
              ...['--model', model, '--size', size, '--fast', '1', '--threads', threads],
              ...['--precision', side.slice(5), '--warmup', '1', '--iters', '3'],
            ]
          : [
              'dist/bench/ort.js',
              ...['--onnx', join(opt['--dir'], `${model}-${size}-${side === 'ORT fp32' ? 'fp32' : 'fp16'}.onnx`)],
              ...['--size', size, '--threads', threads, '--warmup', '1', '--iters', '3'],
            ];
        const ms = lastJson(process.execPath, args).median_ms;
        const key = `${model} ${size} ${side}`;
        times.set(key, [...(times.get(key) ?? []), ms]);
        console.error(`round ${r + 1}: ${key} ${ms.toFixed(0)} ms`);
      }

console.log(`\n${rounds} rounds, ${threads} threads, median ms (ratio to ORT fp32)\n`);
console.log(`| model | size | ${SIDES.join(' | ')} |`);
console.log(`|---|---|${SIDES.map(() => '---').join('|')}|`);
for (const model of models)
  for (const size of sizes) {
    const ort = median(times.get(`${model} ${size} ORT fp32`)!);
    const cells = SIDES.map((s) => {
      const m = median(times.get(`${model} ${size} ${s}`)!);
      return `${m.toFixed(0)} (${(m / ort).toFixed(2)}x)`;
    });
    console.log(`| ${model} | ${size} | ${cells.join(' | ')} |`);
  }
