// The model-level benchmarks side by side with PyTorch. A case is one PyTorch command (bench/py/*.py)
// and one or more of ours (dist/bench/*.js: e.g. eager like for like, and our fast path); each round
// runs ours, PyTorch, ours (next variant) ... in turn so that machine noise hits both alike; each
// process prints one JSON line last. Per row: the median over rounds of each side's in-process
// median, and the median of the per-round ratios ours / PyTorch.
//   node dist/bench/table.js [--quick] [--only NAME[,NAME]] [--all] [--rounds 3] [--threads 2] [--size 512]
//        [--limit-fp32 G --limit-bf16 G] [--out bench/results/models.md] [--plan] [--onnx-dir DIR]
// The torchvision presets also run onnxruntime-node (bench/ort.ts) each round, on ONNX files from
// --onnx-dir (exported there by bench/py/export_onnx.py when missing): the ORT columns.
// --quick: 1 round, 1 warm-up + 1 timed call, 4 predict images: a smoke test. --size S scales every
// input size by S/512 (smoke tests: --size 128). --only keeps the cases whose name contains NAME
// (optional cases included; NAME$ only the case named exactly NAME); --all adds the optional cases (predict --no-fast, predict bf16).
// --plan prints the cases and a time estimate (from the conv limit) and stops. Writes
// bench/results/models.md (tables) and models.jsonl (every JSON line, both sides); --only to
// bench/results/models-NAME.md; --quick to $TMPDIR/deeplab-bench-quick/.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { median } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const flag = (k: string) => args.includes(k);
const get = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const quick = flag('--quick');
const rounds = Number(get('--rounds', quick ? '1' : '3'));
const threads = get('--threads', '2');
const scale = Number(get('--size', '512')) / 512;
const only = get('--only', '').split(',').filter(Boolean);
// A smoke run never overwrites the real results, nor does a partial (--only) run.
const out = get(
  '--out',
  quick
    ? join(tmpdir(), 'deeplab-bench-quick/models.md')
    : join(root, 'bench/results', only.length ? `models-${only.join('+')}.md` : 'models.md'),
);
const jsonl = out.replace(/\.md$/, '') + '.jsonl';
const python = process.env.PYTHON ?? '/usr/bin/python3';

type Json = Record<string, unknown> & { peak_rss_mib: number };

/** One of our commands measured against the case's PyTorch command: one table row. */
interface Variant {
  /** the row's text after the workload */
  label: string;
  /** our arguments on top of the case's */
  argv: string[];
  /** run ours under jemalloc: true = never returning pages (as bin/deeplab runs train/eval), a string = that MALLOC_CONF ('' = jemalloc's defaults, as bin/deeplab runs predict) */
  jemalloc?: boolean | string;
  /** false: our huge-page allocator off (DEEPLAB_HUGEPAGES=0), for rows that compare kernels alone */
  hugePages?: boolean;
  /** our precision when it is not the case's (for the conv-limit column) */
  precision?: 'fp32' | 'bf16';
}

interface Case {
  name: string;
  label: string;
  kind: 'models' | 'train' | 'predict';
  /** arguments both sides get */
  argv: string[];
  /** PyTorch's own arguments on top */
  theirs: string[];
  ours: Variant[];
  /** warm-up and timed calls (full run) */
  warmup: number;
  iters: number;
  /** heavy: one round only */
  once?: boolean;
  /** not in the default set: run with --only or --all */
  optional?: boolean;
  precision?: 'fp32' | 'bf16';
  /** rough forward GFLOP (for the time estimate) */
  gflop: number;
  /** run PyTorch under jemalloc too (the same allocator on both sides) */
  theirsJemalloc?: boolean;
  /** also run onnxruntime-node (bench/ort.ts) on the model exported to ONNX, in every round */
  ort?: boolean;
}

// jemalloc as bin/deeplab sets it up (Debian's libjemalloc2, never returning memory): the
// allocator is part of the step (perf-baseline.md), so rows say which side ran under which.
const jemallocLib = [
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`,
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
].find((p) => existsSync(p));
const JEMALLOC_CONF = 'dirty_decay_ms:-1,muzzy_decay_ms:-1';
function allocEnv(jemalloc: boolean | string | undefined): NodeJS.ProcessEnv | undefined {
  if (jemalloc === undefined || jemalloc === false) return undefined;
  if (!jemallocLib) throw new Error('libjemalloc.so.2 not found (apt-get install libjemalloc2)');
  const { MALLOC_CONF: _, ...env } = process.env;
  const conf = jemalloc === true ? JEMALLOC_CONF : jemalloc;
  return conf ? { ...env, LD_PRELOAD: jemallocLib, MALLOC_CONF: conf } : { ...env, LD_PRELOAD: jemallocLib };
}

/** Our process's environment for a variant: its allocator, and DEEPLAB_HUGEPAGES=0 where asked. */
function oursEnv(v: Variant): NodeJS.ProcessEnv | undefined {
  const env = allocEnv(v.jemalloc);
  return v.hugePages === false ? { ...(env ?? process.env), DEEPLAB_HUGEPAGES: '0' } : env;
}

const sz = (h: number, w: number) => `${Math.round(h * scale)}x${Math.round(w * scale)}`;
// Forward GFLOP at 512x512 without aux head (bench/py/models.py and countFlops agree), for the ETA.
const GFLOP_512: Record<string, number> = {
  deeplabv3_resnet50: 327.2,
  deeplabv3_resnet101: 482.3,
  deeplabv3_mobilenet_v3_large: 19.7,
  'deeplabv3_r50-d8': 539.1,
  'deeplabv3plus_r50-d8': 352.3,
};
const PLAIN: Variant = { label: 'eager fp32 NCHW, both (like for like)', argv: ['--fast', '0'], hugePages: false };
const FAST: Variant = { label: 'ours fast path fp32 (fold + CL) vs PyTorch eager fp32 NCHW', argv: ['--fast', '1'] };
const FAST_BF16: Variant = {
  label: 'ours fast path bf16 vs PyTorch eager fp32 NCHW',
  argv: ['--fast', '1', '--precision', 'bf16'],
  precision: 'bf16',
};
const FAST_INT8: Variant = {
  label: 'ours fast path int8 (calibrated on 2 random inputs) vs PyTorch eager fp32 NCHW',
  argv: ['--fast', '1', '--precision', 'int8'],
};
const TORCHVISION = ['deeplabv3_resnet50', 'deeplabv3_resnet101', 'deeplabv3_mobilenet_v3_large'];
const inf = (
  model: string,
  label: string,
  h: number,
  w: number,
  warmup: number,
  iters: number,
  o: Partial<Case> = {},
): Case => ({
  name: `${label
    .replace(/^mmseg /, 'mmseg-')
    .replace('deeplabv3_', 'v3-')
    .replace('deeplabv3plus_', 'v3plus-')
    .replace('mobilenet_v3_large', 'mbv3')}-${h}x${w}`,
  label: `${label} ${sz(h, w)}`,
  kind: 'models',
  argv: ['--model', model, '--size', sz(h, w)],
  theirs: [],
  ours: [PLAIN, FAST, FAST_BF16, FAST_INT8],
  warmup,
  iters,
  ort: TORCHVISION.includes(model) && !o.name,
  gflop: (GFLOP_512[model] * h * w * scale * scale) / (512 * 512),
  ...o,
});
// Iteration counts keep one full run near 20 minutes on 2 Zen 4 cores (PyTorch ResNet-50 512x512
// eager fp32 ~1.9 s a call; Zen 5 about half), 3 rounds; `--plan` prints the estimate. Every model
// and size runs three ways against the same PyTorch eager fp32 NCHW run: our eager model (like for
// like), our fast path in fp32 and in bf16 (the issue's two targets).
const CASES: Case[] = [
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 512, 512, 1, 2),
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 512, 512, 1, 2, {
    name: 'v3-resnet50-512x512-cl',
    label: `deeplabv3_resnet50 ${sz(512, 512)}, PyTorch channels_last`,
    theirs: ['--layout', 'cl'],
    ours: [
      { label: 'eager fp32 channels_last, both', argv: ['--fast', '0', '--layout', 'cl'], hugePages: false },
      { label: 'ours fast path (fold + CL) vs PyTorch eager CL', argv: ['--fast', '1'] },
    ],
  }),
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 512, 512, 1, 3, {
    name: 'v3-resnet50-512x512-bf16',
    label: `deeplabv3_resnet50 ${sz(512, 512)} bf16, PyTorch autocast + CL`,
    theirs: ['--layout', 'cl', '--precision', 'bf16'],
    precision: 'bf16',
    ours: [
      {
        label: 'eager bf16 autocast CL, both',
        argv: ['--fast', '0', '--layout', 'cl', '--precision', 'bf16'],
        hugePages: false,
      },
      { label: 'ours fast path bf16 vs PyTorch autocast CL', argv: ['--fast', '1', '--precision', 'bf16'] },
    ],
  }),
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 512, 512, 1, 2, {
    name: 'v3-resnet50-512x512-jemalloc',
    label: `deeplabv3_resnet50 ${sz(512, 512)}, both under jemalloc`,
    theirsJemalloc: true,
    ours: [
      { label: 'eager fp32 NCHW, both jemalloc', argv: ['--fast', '0'], jemalloc: true },
      { label: 'ours fast path vs PyTorch eager NCHW, both jemalloc', argv: ['--fast', '1'], jemalloc: true },
    ],
  }),
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 512, 1024, 1, 1),
  inf('deeplabv3_resnet50', 'deeplabv3_resnet50', 1024, 2048, 1, 1, { once: true }),
  inf('deeplabv3_resnet101', 'deeplabv3_resnet101', 512, 512, 1, 1),
  inf('deeplabv3_resnet101', 'deeplabv3_resnet101', 512, 1024, 1, 1),
  inf('deeplabv3_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large', 512, 512, 2, 8),
  inf('deeplabv3_mobilenet_v3_large', 'deeplabv3_mobilenet_v3_large', 512, 1024, 2, 6),
  inf('deeplabv3_r50-d8', 'mmseg deeplabv3_r50-d8', 512, 512, 1, 1),
  inf('deeplabv3_r50-d8', 'mmseg deeplabv3_r50-d8', 512, 1024, 1, 1),
  inf('deeplabv3plus_r50-d8', 'mmseg deeplabv3plus_r50-d8', 512, 512, 1, 1),
  inf('deeplabv3plus_r50-d8', 'mmseg deeplabv3plus_r50-d8', 512, 1024, 1, 1),
  {
    name: 'train-resnet50',
    label: `training step, deeplabv3_resnet50 + aux, SGD, batch 2, ${sz(512, 512)}`,
    kind: 'train',
    argv: ['--model', 'deeplabv3_resnet50', '--batch', '2', '--size', sz(512, 512)],
    theirs: [],
    ours: [
      { label: 'fp32 NCHW, both, glibc malloc (like for like)', argv: [] },
      {
        label: 'ours as `deeplab train` runs (fp32 NCHW, jemalloc) vs PyTorch eager fp32 NCHW',
        argv: [],
        jemalloc: true,
      },
      {
        label:
          'ours bf16 autocast channels_last + jemalloc (train.precision bf16, train.channelsLast) vs PyTorch eager fp32 NCHW',
        argv: ['--layout', 'cl', '--precision', 'bf16'],
        jemalloc: true,
      },
    ],
    warmup: 1,
    iters: 2,
    once: true,
    gflop: 2 * 346.5 * scale * scale,
  },
  {
    name: 'train-resnet50-jemalloc',
    label: `training step, deeplabv3_resnet50 + aux, batch 2, ${sz(512, 512)}, PyTorch under jemalloc too`,
    kind: 'train',
    argv: ['--model', 'deeplabv3_resnet50', '--batch', '2', '--size', sz(512, 512)],
    theirs: [],
    theirsJemalloc: true,
    ours: [
      { label: 'fp32 NCHW, both under jemalloc (kernels alone)', argv: [], jemalloc: true },
      {
        label: 'ours fp32 channels_last vs PyTorch fp32 NCHW, both jemalloc',
        argv: ['--layout', 'cl'],
        jemalloc: true,
      },
    ],
    warmup: 1,
    iters: 2,
    once: true,
    gflop: 2 * 346.5 * scale * scale,
  },
  {
    name: 'train-resnet50-bf16',
    label: `training step, deeplabv3_resnet50 + aux, batch 2, ${sz(512, 512)}, bf16 autocast channels_last`,
    kind: 'train',
    argv: [
      '--model',
      'deeplabv3_resnet50',
      '--batch',
      '2',
      '--size',
      sz(512, 512),
      '--layout',
      'cl',
      '--precision',
      'bf16',
    ],
    theirs: [],
    theirsJemalloc: true,
    ours: [{ label: 'bf16 CL, both under jemalloc (PyTorch at its best)', argv: [], jemalloc: true }],
    warmup: 1,
    iters: 2,
    once: true,
    precision: 'bf16',
    gflop: 2 * 346.5 * scale * scale,
  },
  {
    name: 'predict-resnet50',
    label: `predict, deeplabv3_resnet50, ${quick ? 4 : 20} JPEGs ${sz(512, 512)}`,
    kind: 'predict',
    argv: [],
    theirs: [],
    ours: [
      {
        label: 'ours as `deeplab predict` runs (fast path fp32, jemalloc defaults) vs PyTorch eager fp32 NCHW',
        argv: [],
        jemalloc: '',
      },
      { label: 'ours fast path fp32, glibc malloc, vs PyTorch eager fp32 NCHW (same allocator)', argv: [] },
    ],
    warmup: 0,
    iters: 0,
    once: true,
    gflop: 327.2 * scale * scale,
  },
  {
    name: 'predict-resnet50-plain',
    label: `predict, deeplabv3_resnet50, ${quick ? 4 : 20} JPEGs ${sz(512, 512)}`,
    kind: 'predict',
    argv: [],
    theirs: [],
    ours: [{ label: 'ours --no-fast vs PyTorch eager fp32 NCHW', argv: ['--fast', '0'] }],
    warmup: 0,
    iters: 0,
    once: true,
    optional: true,
    gflop: 327.2 * scale * scale,
  },
  {
    name: 'predict-resnet50-bf16',
    label: `predict, deeplabv3_resnet50, ${quick ? 4 : 20} JPEGs ${sz(512, 512)}`,
    kind: 'predict',
    argv: [],
    theirs: ['--layout', 'cl', '--precision', 'bf16'],
    ours: [{ label: 'ours --precision bf16 vs PyTorch bf16 autocast CL', argv: ['--precision', 'bf16'] }],
    warmup: 0,
    iters: 0,
    once: true,
    optional: true,
    precision: 'bf16',
    gflop: 327.2 * scale * scale,
  },
];

// NAME$ matches that case alone (v3-resnet50-512x512$ without its -cl, -bf16 ... siblings).
const matches = (name: string, o: string) => (o.endsWith('$') ? name === o.slice(0, -1) : name.includes(o));
const cases = CASES.filter((c) => (only.length ? only.some((o) => matches(c.name, o)) : flag('--all') || !c.optional));
if (!cases.length) throw new Error(`--only ${only.join(',')} matches none of: ${CASES.map((c) => c.name).join(', ')}`);

function runJson(cmd: string, argv: string[], env?: NodeJS.ProcessEnv): Json {
  let text: string;
  try {
    text = execFileSync(cmd, argv, {
      encoding: 'utf8',
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
      env,
    });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    const tail = (err.stderr || err.stdout || err.message).trim().split('\n').slice(-6).join('\n');
    throw new Error(`${cmd} ${argv.join(' ')} failed:\n${tail}`);
  }
  const r = JSON.parse(text.trim().split('\n').pop()!) as Json;
  appendFileSync(
    jsonl,
    JSON.stringify({
      ...r,
      argv: [cmd, ...argv].join(' '),
      allocator: env?.LD_PRELOAD ? `jemalloc ${env.MALLOC_CONF ?? '(defaults)'}` : 'glibc',
      at: new Date().toISOString(),
    }) + '\n',
  );
  return r;
}

mkdirSync(dirname(out), { recursive: true });
writeFileSync(jsonl, '');
const t00 = performance.now();
const elapsed = () => `${((performance.now() - t00) / 60000).toFixed(1)} min`;

// The conv limit ("roofline") the GFLOP/s are divided by: measured here unless given.
let limit = { fp32: Number(get('--limit-fp32', '0')), bf16: Number(get('--limit-bf16', '0')) };
let limitNote = 'given on the command line';
if (!limit.fp32 || !limit.bf16) {
  try {
    const l = runJson(python, [
      join(root, 'bench/py/limit.py'),
      '--threads',
      threads,
      ...(quick ? ['--warmup', '1', '--iters', '3'] : []),
    ]);
    limit = { fp32: limit.fp32 || (l.fp32 as number), bf16: limit.bf16 || (l.bf16 as number) };
    limitNote =
      'measured at the start by bench/py/limit.py (best median of a large dilated 3x3 conv, channels_last, 2 shapes)';
  } catch (e) {
    limit = { fp32: limit.fp32 || 236, bf16: limit.bf16 || 473 };
    limitNote = `bench/py/limit.py failed (${(e as Error).message.split('\n')[0]}); perf-baseline.md's Zen 4 values used`;
  }
}
console.log(`conv limit: fp32 ${limit.fp32.toFixed(0)} GFLOP/s, bf16 ${limit.bf16.toFixed(0)} GFLOP/s (${limitNote})`);

// Predict's inputs: 20 JPEGs (4 with --quick) made once with sharp, and one set of seeded random
// weights saved by PyTorch and loaded by both sides, so both do the same work (and agree).
const nImages = quick ? 4 : 20;
const imgSize = Math.round(512 * scale);
const imgDir = join(tmpdir(), `deeplab-bench-predict-${imgSize}-${nImages}`);
const weightsFile = join(imgDir, 'deeplabv3_resnet50.pth');
if (cases.some((c) => c.kind === 'predict')) {
  runJson(process.execPath, [
    join(root, 'dist/bench/predict.js'),
    '--prepare',
    '1',
    '--images',
    imgDir,
    '--size',
    String(imgSize),
    '--count',
    String(nImages),
  ]);
  if (!existsSync(weightsFile)) runJson(python, [join(root, 'bench/py/predict.py'), '--save-weights', weightsFile]);
}

// The ORT peer's models: <model>-<H>x<W>.onnx in --onnx-dir (default $TMPDIR/deeplab-bench-onnx),
// exported once by bench/py/export_onnx.py (Debian's torch.onnx, opset 13, the same seeded weights
// as bench/py/models.py) unless the file is there: any exporter can fill the folder instead.
const onnxDir = get('--onnx-dir', join(tmpdir(), 'deeplab-bench-onnx'));
function onnxFile(c: Case): string {
  const model = c.argv[c.argv.indexOf('--model') + 1];
  const size = c.argv[c.argv.indexOf('--size') + 1];
  const file = join(onnxDir, `${model}-${size}.onnx`);
  if (!existsSync(file)) {
    console.log(`exporting ${model} ${size} to ${file} (torch.onnx) ...`);
    runJson(python, [join(root, 'bench/py/export_onnx.py'), '--model', model, '--size', size, '--out', file]);
  }
  return file;
}

interface Commands {
  ours: string[][];
  theirs: string[];
  ort?: string[];
  outDirs?: [string, string];
}

function commands(c: Case): Commands {
  const it = quick ? ['--warmup', '1', '--iters', '1'] : ['--warmup', String(c.warmup), '--iters', String(c.iters)];
  const th = ['--threads', threads];
  if (c.kind !== 'predict') {
    const [ts, py] = c.kind === 'models' ? ['models.js', 'models.py'] : ['train-step.js', 'train_step.py'];
    return {
      ours: c.ours.map((v) => [join(root, 'dist/bench', ts), ...c.argv, ...v.argv, ...it, ...th]),
      theirs: [join(root, 'bench/py', py), ...c.argv, ...c.theirs, ...it, ...th],
      ...(c.ort ? { ort: [join(root, 'dist/bench/ort.js'), '--onnx', onnxFile(c), ...c.argv, ...it, ...th] } : {}),
    };
  }
  const common = ['--images', imgDir, '--weights', weightsFile, ...th];
  const outDirs: [string, string] = [join(imgDir, `out-deeplab-${c.name}`), join(imgDir, `out-pytorch-${c.name}`)];
  return {
    ours: c.ours.map((v) => [
      join(root, 'dist/bench/predict.js'),
      ...common,
      ...v.argv,
      '--out',
      outDirs[0],
      '--bare',
      String(nImages),
    ]),
    theirs: [join(root, 'bench/py/predict.py'), ...common, ...c.theirs, '--out', outDirs[1], '--bare', '0'],
    outDirs,
  };
}

/** Rough seconds a case takes (both sides, all rounds), from its GFLOP and the conv limit. */
function estimateS(c: Case): number {
  const lim = c.precision === 'bf16' ? limit.bf16 : limit.fp32;
  const eff = c.name.includes('mbv3') ? 0.45 : 0.7;
  const call = c.gflop / (eff * lim);
  const startup = 3;
  const n = quick || c.once ? 1 : rounds;
  const [w, i] = quick ? [1, 1] : [c.warmup, c.iters];
  if (c.kind === 'models') return n * (1 + c.ours.length + (c.ort ? 1 : 0)) * (startup + (w + i) * call);
  if (c.kind === 'train') return n * (1 + c.ours.length) * (startup + (w + i) * 3 * call * 1.3);
  return n * (2 * startup + (2 + 3 * nImages) * call);
}
const etaS = cases.reduce((s, c) => s + estimateS(c), 0);
console.log(
  `${cases.length} cases: ${cases.map((c) => c.name).join(', ')}; estimated ${(etaS / 60).toFixed(0)} min (from the conv limit)`,
);
if (flag('--plan')) {
  for (const c of cases) console.log(`  ${c.name}: ~${(estimateS(c) / 60).toFixed(1)} min`);
  process.exit(0);
}

/** Share of label pixels on which the two sides' predict outputs agree. */
async function labelAgreement(a: string, b: string): Promise<number | null> {
  if (!existsSync(a) || !existsSync(b)) return null;
  let same = 0;
  let total = 0;
  for (const f of readdirSync(a).filter((f) => f.endsWith('_labels.png'))) {
    if (!existsSync(join(b, f))) return null;
    const [x, y] = await Promise.all([a, b].map((d) => sharp(join(d, f)).toColourspace('b-w').raw().toBuffer()));
    if (x.length !== y.length) return null;
    for (let i = 0; i < x.length; i++) same += x[i] === y[i] ? 1 : 0;
    total += x.length;
  }
  return total ? same / total : null;
}

interface Row {
  c: Case;
  v: Variant;
  ours: Json[];
  theirs: Json[];
  ratios: number[];
  /** onnxruntime-node's runs and ours / ORT per round (cases with `ort`) */
  ort: Json[];
  ortRatios: number[];
  agreement?: number | null;
  error?: string;
}
const rows: Row[] = [];
for (const c of cases) {
  const n = c.once ? 1 : rounds;
  const mine: Row[] = c.ours.map((v) => ({ c, v, ours: [], theirs: [], ratios: [], ort: [], ortRatios: [] }));
  const cmd = commands(c);
  const key = c.kind === 'predict' ? 'total_ms' : 'median_ms';
  try {
    for (let r = 0; r < n; r++) {
      // ours, PyTorch, ours (next variant), ...: each of our runs sits next to the PyTorch run
      const a0 = runJson(process.execPath, cmd.ours[0], oursEnv(c.ours[0]));
      const b = runJson(python, cmd.theirs, allocEnv(c.theirsJemalloc));
      const as = [a0, ...cmd.ours.slice(1).map((o, i) => runJson(process.execPath, o, oursEnv(c.ours[i + 1])))];
      const o = cmd.ort ? runJson(process.execPath, cmd.ort) : null;
      as.forEach((a, i) => {
        mine[i].ours.push(a);
        mine[i].theirs.push(b);
        mine[i].ratios.push((a[key] as number) / (b[key] as number));
        if (o) {
          mine[i].ort.push(o);
          mine[i].ortRatios.push((a[key] as number) / (o[key] as number));
        }
      });
      const ms = as.map((a) => (a[key] as number).toFixed(1)).join(' / ');
      const ortNote = o
        ? `, ORT ${(o[key] as number).toFixed(1)} ms, vs ORT ${mine.map((m) => m.ortRatios[r].toFixed(3)).join(' / ')}`
        : '';
      console.log(
        `[${elapsed()}] ${c.name} round ${r + 1}/${n}: ours ${ms} ms, PyTorch ${(b[key] as number).toFixed(1)} ms, ratio ${mine.map((m) => m.ratios[r].toFixed(3)).join(' / ')}${ortNote}`,
      );
    }
    if (cmd.outDirs) {
      const a = await labelAgreement(...cmd.outDirs);
      for (const m of mine) m.agreement = a;
    }
  } catch (e) {
    for (const m of mine) m.error = (e as Error).message;
    console.log(`[${elapsed()}] ${c.name}: ERROR ${(e as Error).message}`);
  }
  rows.push(...mine);
}

// ---- the tables ------------------------------------------------------------------------------
const f = (v: number | null | undefined, d = 0) =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d);
const med = (js: Json[], k: string) =>
  js.length && js.every((j) => typeof j[k] === 'number') ? median(js.map((j) => j[k] as number)) : null;
const pct = (g: number | null, lim: number) => (g === null ? '-' : `${((100 * g) / lim).toFixed(0)}%`);
const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
const versionOf = (j: Json | undefined) => (typeof j?.version === 'string' ? j.version : '?');
const anyOurs = versionOf(rows.find((r) => r.ours.length)?.ours[0]);
const anyTheirs = versionOf(rows.find((r) => r.theirs.length)?.theirs[0]);
const alloc = process.env.LD_PRELOAD
  ? `LD_PRELOAD=${process.env.LD_PRELOAD} ${process.env.MALLOC_CONF ?? ''}`.trim()
  : `glibc malloc on both sides unless the row says jemalloc (${jemallocLib ?? 'libjemalloc2 not installed'}, MALLOC_CONF=${JEMALLOC_CONF}, as bin/deeplab runs); ` +
    'under glibc our process asks for transparent huge pages for tensors of 4 MiB and more made in inference mode outside autocast (native/src/allocator.cc), ' +
    'except in the eager "both" rows (DEEPLAB_HUGEPAGES=0: kernels alone)';

const lines: string[] = [
  `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpu} (${cpus().length} cores), ${threads} threads, ` +
    `LibTorch ${anyOurs} here, PyTorch ${anyTheirs}; ${alloc}.` +
    `${quick ? ' **QUICK SMOKE RUN (1 call per process, 1 round): not a measurement.**' : ''}`,
  '',
  `Each row: our process and PyTorch's run in turn (${rounds} round${rounds > 1 ? 's; rows marked * once' : ''}), each reporting its median over its timed calls after warm-up; ` +
    'ms columns are the medians over rounds, ratio = median of the per-round ratios ours / PyTorch (< 1: we are faster). ' +
    'Random weights, eval, batch 1, no auxiliary head; PyTorch under inference_mode. ' +
    `GFLOP/s = conv FLOPs (2 x MACs, unfolded) / ms; conv limit fp32 ${f(limit.fp32)} GFLOP/s, bf16 ${f(limit.bf16)} GFLOP/s (${limitNote}).`,
  '',
  '| workload | ours vs PyTorch | ours ms | PyTorch ms | ratio | ORT ms | ours / ORT | GFLOP/s ours / PyTorch | of conv limit ours / PyTorch | peak RSS MiB ours / PyTorch | RSS ratio |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
];
const notes: string[] = [];
const byName = new Map<string, Row[]>();
for (const r of rows) {
  byName.set(r.c.name, [...(byName.get(r.c.name) ?? []), r]);
  const once = r.c.once && rounds > 1 ? '*' : '';
  if (r.error || !r.ours.length) {
    lines.push(`| ${r.c.label}${once} | ${r.v.label} | error | error | - | - | - | - | - | - | - |`);
    if (r === byName.get(r.c.name)![0]) notes.push(`${r.c.name}: ${r.error?.split('\n').slice(0, 3).join(' / ')}`);
    continue;
  }
  const key = r.c.kind === 'predict' ? 'total_ms' : 'median_ms';
  const [mo, mt] = [med(r.ours, key), med(r.theirs, key)];
  const [ro, rt] = [med(r.ours, 'peak_rss_mib'), med(r.theirs, 'peak_rss_mib')];
  let gflop: [number | null, number | null] = [med(r.ours, 'gflop'), med(r.theirs, 'gflop')];
  if (r.c.kind === 'train') gflop = [med(r.ours, 'gflop_step_est'), med(r.ours, 'gflop_step_est')];
  const go = gflop[0] && mo ? (gflop[0] * 1e3) / mo : null;
  const gt = gflop[1] && mt ? (gflop[1] * 1e3) / mt : null;
  const lim = (r.v.precision ?? r.c.precision) === 'bf16' ? limit.bf16 : limit.fp32;
  const gcol = go === null ? '-' : `${f(go)} / ${f(gt)}`;
  const lcol = go === null ? '-' : `${pct(go, lim)} / ${pct(gt, lim)}`;
  lines.push(
    `| ${r.c.label}${once} | ${r.v.label} | ${f(mo, 1)} | ${f(mt, 1)} | **${f(median(r.ratios), 3)}x** | ${r.ort.length ? f(med(r.ort, key), 1) : '-'} | ${r.ortRatios.length ? `**${f(median(r.ortRatios), 3)}x**` : '-'} | ${gcol} | ${lcol} | ${f(ro)} / ${f(rt)} | ${ro && rt ? f(ro / rt, 2) + 'x' : '-'} |`,
  );
  if (r.c.kind === 'models' && gflop[0] && gflop[1] && Math.abs(gflop[0] / gflop[1] - 1) > 1e-6) {
    notes.push(
      `${r.c.name}: the two sides count different FLOPs (${f(gflop[0], 2)} vs ${f(gflop[1], 2)} GFLOP): not the same network`,
    );
  }
}
lines.push('');
if (rows.some((r) => r.c.kind === 'train' && r.ours.length))
  lines.push('(train: GFLOP/s from 3 x the forward conv FLOPs with the aux head, batch 2.)', '');

// int8 against our own fp32 fast path, round by round (the issue's target: <= 0.50x).
const int8Rows = rows.filter((r) => r.v === FAST_INT8 && r.ours.length);
if (int8Rows.length) {
  lines.push(
    'int8 against our fp32 fast path (same rounds; target <= 0.50x on ResNet-50 and R-50-D8 at 512x1024):',
    '',
    '| workload | fp32 fast ms | int8 ms | int8 / fp32 |',
    '|---|---|---|---|',
  );
  for (const r of int8Rows) {
    const fp = rows.find((x) => x.c === r.c && x.v === FAST);
    if (!fp || fp.ours.length !== r.ours.length) continue;
    const ratios = r.ours.map((j, i) => (j.median_ms as number) / (fp.ours[i].median_ms as number));
    lines.push(
      `| ${r.c.label} | ${f(med(fp.ours, 'median_ms'), 1)} | ${f(med(r.ours, 'median_ms'), 1)} | **${f(median(ratios), 3)}x** |`,
    );
  }
  lines.push('');
}

const trains = rows.filter((r) => r.c.kind === 'train' && r.ours.length);
if (trains.length) {
  lines.push('Training step split (medians, ms): forward (incl. loss) / backward / optimizer step.', '');
  lines.push(
    '| run | step | forward | backward | optimizer | first loss | peak RSS MiB |',
    '|---|---|---|---|---|---|---|',
  );
  const seen = new Set<Json>();
  for (const r of trains) {
    const pairs: [string, Json[]][] = [
      [
        `ours: ${[...r.c.argv.slice(6), ...r.v.argv].join(' ') || 'fp32 NCHW'}${r.v.jemalloc ? ', jemalloc' : ''}`,
        r.ours,
      ],
    ];
    if (!seen.has(r.theirs[0]))
      pairs.push([
        `PyTorch: ${r.c.argv.slice(6).join(' ') || 'fp32 NCHW'}${r.c.theirsJemalloc ? ', jemalloc' : ''}`,
        r.theirs,
      ]);
    r.theirs.forEach((j) => seen.add(j));
    for (const [side, js] of pairs) {
      lines.push(
        `| ${side} | ${f(med(js, 'median_ms'))} | ${f(med(js, 'fwd_ms'))} | ${f(med(js, 'bwd_ms'))} | ${f(med(js, 'step_ms'))} | ${f(med(js, 'first_loss'), 3)} | ${f(med(js, 'peak_rss_mib'))} |`,
      );
    }
  }
  lines.push('');
}

for (const p of rows.filter((r) => r.c.kind === 'predict' && r.ours.length)) {
  const [o, t] = [p.ours, p.theirs];
  lines.push(
    `${p.c.label}, ${p.v.label} (same seeded weights on both sides; build, weights and preparation inside the total):`,
    '',
    `- ours: ${f(med(o, 'total_ms'))} ms in all; ${f(med(o, 'segment_ms'))} ms in segmentImage (preprocess + forward + argmax + copy out); load() ${f(med(o, 'load_ms'))} ms. ` +
      `${nImages} bare forwards in the same process: ${f(med(o, 'bare_sum_ms'))} ms: **predict / bare forwards = ${f(med(o, 'bare_ratio'), 3)}x** (target <= 1.05); ` +
      `without load() (build, weights, BN folding): ${f(med(o, 'pipeline_ratio'), 3)}x.`,
    `- PyTorch (PIL decode, to_tensor + normalize, forward, argmax, PIL writes): ${f(med(t, 'total_ms'))} ms in all; decode ${f(med(t, 'decode_ms'))}, ` +
      `segment ${f(med(t, 'segment_ms'))}, write ${f(med(t, 'write_ms'))} ms; model build + weights ${f(med(t, 'load_ms'))} ms.`,
    `- **ours / PyTorch = ${f(median(p.ratios), 3)}x** (target <= 1.1); peak RSS ${f(med(o, 'peak_rss_mib'))} / ${f(med(t, 'peak_rss_mib'))} MiB; ` +
      `label maps identical on ${p.agreement === null || p.agreement === undefined ? '-' : (100 * p.agreement).toFixed(2) + '%'} of pixels.`,
    '',
  );
}

// mmseg's table format for the mmseg configs: Mem (GB) = our peak RSS, Inf time (fps) = 1000 / ms
// at 512x1024 (scaled with --size), batch 1, on this CPU; ours on its default (fast) path.
const mm = [...byName.values()].filter(
  (rs) => rs[0].c.name.startsWith('mmseg') && rs[0].c.name.endsWith('512x1024') && rs[0].ours.length,
);
if (mm.length) {
  lines.push(
    `mmseg configs in the seeds' format, on this CPU: Mem (GB) = peak RSS of the inference process (GiB), Inf time (fps) = 1000 / median ms for one ${sz(512, 1024)} image, ` +
      `batch 1, ${threads} threads, fp32; ours on its default path (fast: folded BNs, channels_last), in brackets eager NCHW; PyTorch eager NCHW. ` +
      "(mmseg's own columns are GPU training memory and GPU fps: not comparable.)",
    '',
    '| Method | Backbone | Crop Size | Lr schd | Mem (GB) | Inf time (fps) | PyTorch Mem (GB) | PyTorch Inf time (fps) |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const rs of mm) {
    const plain = rs.find((r) => r.v === PLAIN) ?? rs[0];
    const fastRow = rs.find((r) => r.v === FAST) ?? plain;
    const method = rs[0].c.name.includes('plus') ? 'DeepLabV3+' : 'DeepLabV3';
    const fps = (r: Row, side: 'ours' | 'theirs') => f(1000 / med(r[side], 'median_ms')!, 2);
    const gb = (r: Row, side: 'ours' | 'theirs') => f(med(r[side], 'peak_rss_mib')! / 1024, 2);
    lines.push(
      `| ${method} | R-50-D8 | ${sz(512, 1024)} | - | ${gb(fastRow, 'ours')} (${gb(plain, 'ours')}) | ${fps(fastRow, 'ours')} (${fps(plain, 'ours')}) | ${gb(plain, 'theirs')} | ${fps(plain, 'theirs')} |`,
    );
  }
  lines.push('');
}
if (notes.length) lines.push('Notes:', '', ...notes.map((n) => `- ${n}`), '');
lines.push(
  `Total time ${elapsed()} (estimated ${(etaS / 60).toFixed(0)} min). Raw JSON lines: ${relative(root, jsonl).startsWith('..') ? jsonl : relative(root, jsonl)}.`,
);

writeFileSync(out, lines.join('\n') + '\n');
console.log(`\n${lines.join('\n')}\n\nwritten to ${out}`);
