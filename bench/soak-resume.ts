// Kill-and-resume soak: a short training run is killed with SIGKILL N times at random moments
// (every other kill aimed inside a checkpoint write, by watching for its temp file), resumed with
// --resume each time, and finally run to the end. Its final weights are compared with those of a
// run that was never interrupted, and the work dir is inspected for what the kills left behind.
//   node dist/bench/soak-resume.js [--kills 10] [--seed 1] [--iters 40]
// Prints: kills, identical or not, leftover temp files, orphaned checkpoint bytes (periodic
// checkpoints past the two newest). Needs Debian's dataset-fashion-mnist (scripts/setup.sh).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { writeSceneDataset } from '../src/data/fashion-scenes.js';
import { periodicCheckpoints } from '../src/training/work-dir.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = [join(here, '..'), join(here, '../..')].find((r) => existsSync(join(r, 'package.json')))!;
const cli = join(here, '../src/cli/main.js');
// The demo's config (its dataset type and model), on a smaller set of scenes.
const config = join(
  root,
  'configs/demo',
  readdirSync(join(root, 'configs/demo')).find((f) => f.endsWith('.json'))!,
);

const { values: a } = parseArgs({
  options: {
    kills: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    iters: { type: 'string', default: '40' },
  },
});
const kills = Number(a.kills),
  iters = Number(a.iters);
let s = Number(a.seed) >>> 0;
const rand = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;

const dir = mkdtempSync(join(tmpdir(), 'soak-resume-'));
const data = join(dir, 'scenes');
await writeSceneDataset({ root: data, trainCount: 48, valCount: 4, size: 64 });
const args = (workDir: string) => [
  cli,
  'train',
  config,
  '--no-eval',
  '--set',
  `data.dataset.root=${data}`,
  '--set',
  `data.dataset.meta=${join(data, 'meta.json')}`,
  '--set',
  `workDir=${workDir}`,
  '--set',
  `train.iters=${iters}`,
  '--set',
  'train.batchSize=4',
  '--set',
  'data.train.scale=[64,64]',
  '--set',
  'data.train.crop=[64,64]',
  '--set',
  'train.checkpointInterval=2',
  '--set',
  'train.logInterval=1',
  '--set',
  'train.workers=1',
];

function runToEnd(workDir: string, resume: boolean): Promise<number> {
  return new Promise((res) =>
    spawn(process.execPath, [...args(workDir), ...(resume ? ['--resume'] : [])], { stdio: 'ignore' }).on('exit', (c) =>
      res(c ?? -1),
    ),
  );
}

/**
 * Starts a run and kills it: at a random moment of a run's length (`span`, the uninterrupted run's
 * time, start-up included, so most kills land after some iterations), or (midWrite) as soon as a
 * checkpoint's temp file appears.
 */
function runAndKill(workDir: string, midWrite: boolean, span: number): Promise<'killed' | 'finished'> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [...args(workDir), '--resume'], { stdio: 'ignore' });
    let done = false;
    const kill = () => {
      if (done) return;
      done = true;
      clearInterval(poll);
      child.kill('SIGKILL');
    };
    const poll = setInterval(() => {
      if (midWrite && existsSync(workDir) && readdirSync(workDir).some((f) => f.endsWith('.tmp'))) kill();
    }, 1);
    const timer = setTimeout(kill, span * (0.3 + 0.6 * rand()));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      res(signal === 'SIGKILL' ? 'killed' : code === 0 ? 'finished' : 'killed');
    });
  });
}

function weights(file: string): Map<string, Float32Array> {
  const st = torch.readSafetensors(file);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of st) {
    out.set(k, t.float().data() as Float32Array);
    t.dispose();
  }
  return out;
}

const straight = join(dir, 'straight');
const t0 = performance.now();
if ((await runToEnd(straight, false)) !== 0) throw new Error('the uninterrupted run failed');
const span = performance.now() - t0;
const soaked = join(dir, 'soaked');
let killed = 0,
  midWrites = 0,
  finishedEarly = 0,
  tempsLeftByKills = 0;
const progress: number[] = [];
for (let k = 0; k < kills; k++) {
  const midWrite = k % 2 === 1;
  const r = await runAndKill(soaked, midWrite, span);
  if (r === 'killed') {
    killed++;
    progress.push(periodicCheckpoints(soaked).at(-1)?.iter ?? 0);
    tempsLeftByKills += readdirSync(soaked).filter((f) => f.endsWith('.tmp')).length;
    if (midWrite) midWrites++;
  } else finishedEarly++;
  if (existsSync(join(soaked, 'final.safetensors'))) break;
}
if (!existsSync(join(soaked, 'final.safetensors')) && (await runToEnd(soaked, true)) !== 0)
  throw new Error('the final resume failed');

const a1 = weights(join(straight, 'final.safetensors'));
const b1 = weights(join(soaked, 'final.safetensors'));
let identical = a1.size === b1.size;
for (const [k, v] of a1) {
  const w = b1.get(k);
  if (!w || w.length !== v.length || v.some((x, i) => !Object.is(x, w[i]))) identical = false;
}
const leftovers = readdirSync(soaked).filter((f) => f.endsWith('.tmp'));
const periodic = periodicCheckpoints(soaked);
const orphanBytes = periodic.slice(0, Math.max(0, periodic.length - 2)).reduce((n, c) => n + statSync(c.file).size, 0);
console.log(
  `soak-resume: ${killed} SIGKILLs (${midWrites} aimed inside checkpoint writes; ${tempsLeftByKills} temp files found on disk right after a kill, for the next resume to clean), ${finishedEarly} runs finished before their kill`,
);
console.log(`newest checkpoint after each kill (iteration of ${iters}): ${progress.join(', ')}`);
console.log(
  `final weights identical to the uninterrupted run: ${identical ? 'yes' : 'NO'} (${a1.size} tensors, bit for bit)`,
);
console.log(
  `leftover temp files: ${leftovers.length}; periodic checkpoints kept: ${periodic.map((c) => c.iter).join(', ')}; orphaned checkpoint bytes: ${orphanBytes}`,
);
rmSync(dir, { recursive: true, force: true });
process.exitCode = identical && leftovers.length === 0 && orphanBytes === 0 ? 0 : 1;
