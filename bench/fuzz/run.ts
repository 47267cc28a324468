// Fuzzing the file readers: seeded mutations of real files, each run in a child process under a
// watchdog (a time limit per input, the child's resident memory polled and its peak read back),
// so a crash, a hang or runaway memory is seen and recorded instead of taking the run down.
//
//   node dist/bench/fuzz/run.js --target pth --iters 2000 --seed 1
//
// Options: --target pth|safetensors|mask|image|config|all, --iters N, --seconds T (whichever
// ends first), --seed S, --timeout MS per input, --mem MIB (resident memory per input before the
// child is killed), --out DIR (findings; default bench/fuzz/findings), --json FILE (the summary),
// --seeds DIR (more seed files for the target, e.g. earlier findings).
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from './rng.js';
import { GENERIC, type Mutator } from './mutate.js';
import { ROOT, TARGETS, type Seed, type Target } from './targets.js';
import type { Reply, Request } from './child.js';

interface Options {
  target: string;
  iters: number;
  seconds: number;
  seed: number;
  timeout: number;
  memMiB: number;
  out: string;
  json?: string;
  seeds?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    target: 'all',
    iters: 1000,
    seconds: Infinity,
    seed: 1,
    timeout: 10_000,
    memMiB: 2048,
    out: join(ROOT, 'bench/fuzz/findings'),
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--target':
        o.target = v;
        i++;
        break;
      case '--iters':
        o.iters = Number(v);
        i++;
        break;
      case '--seconds':
        o.seconds = Number(v);
        i++;
        break;
      case '--seed':
        o.seed = Number(v);
        i++;
        break;
      case '--timeout':
        o.timeout = Number(v);
        i++;
        break;
      case '--mem':
        o.memMiB = Number(v);
        i++;
        break;
      case '--out':
        o.out = v;
        i++;
        break;
      case '--json':
        o.json = v;
        i++;
        break;
      case '--seeds':
        o.seeds = v;
        i++;
        break;
      default:
        throw new Error(`unknown option ${argv[i]} (see the header of bench/fuzz/run.ts)`);
    }
  }
  if (o.target !== 'all' && !TARGETS[o.target])
    throw new Error(`--target: one of ${Object.keys(TARGETS).join(', ')}, all`);
  return o;
}

/** Lines of /proc/<pid>/status: VmRSS (now) and VmHWM (peak since the last reset), in KiB. */
function procStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) };
  } catch {
    return undefined;
  }
}

/** Resets the peak (VmHWM) to the current resident size, so each input's peak is its own. */
function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* older kernels: the peak then spans inputs */
  }
}

/** Error messages with the input path, numbers and byte offsets taken out, so alike errors group. */
export function normalise(msg: string, path: string): string {
  // Multi-line messages (a config error lists its problems below the first line) keep them all.
  return msg
    .split(path)
    .join('<input>')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' / ')
    .replace(/0x[0-9a-f]+/gi, 'N')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/gi, 'N')
    .replace(/"[^"]{0,80}"/g, '"…"')
    .slice(0, 240);
}

type Outcome =
  | { kind: 'ok' | 'error' | 'unexpected-error' | 'leak'; message?: string }
  | { kind: 'crash'; message: string }
  | { kind: 'hang' | 'memory'; message: string };

interface Report {
  target: string;
  inputs: number;
  seconds: number;
  seed: number;
  ok: number;
  errors: number;
  distinctErrors: number;
  unexpectedErrors: Record<string, number>;
  crashes: number;
  hangs: number;
  overMemory: number;
  leaks: number;
  peakRssMiB: number;
  childPeakBaselineMiB: number;
  errorMessages: Record<string, number>;
}

class Child {
  proc!: ChildProcess;
  private pending: ((r: Reply | { exit: string }) => void) | undefined;
  baselineKiB = 0;

  constructor(private target: string) {}

  async start(): Promise<void> {
    const script = fileURLToPath(new URL('./child.js', import.meta.url));
    // One intra-op thread: inputs are small, and the machine is shared.
    this.proc = fork(script, [this.target], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, DEEPLAB_THREADS: '1' },
    });
    this.proc.stderr!.resume();
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('fuzz child did not start within 60 s')), 60_000);
      this.proc.once('message', () => {
        clearTimeout(t);
        resolve();
      });
      this.proc.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`fuzz child exited at start (${code ?? sig})`));
      });
    });
    this.baselineKiB = procStatus(this.proc.pid!)?.rss ?? 0;
    this.proc.on('message', (m: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.(m);
    });
    this.proc.on('exit', (code, sig) => {
      const p = this.pending;
      this.pending = undefined;
      p?.({ exit: sig ? `signal ${sig}` : `exit code ${code}` });
    });
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }

  /** Runs one input; resolves with the outcome and its peak resident memory (KiB). */
  run(req: Request, timeoutMs: number, memKiB: number): Promise<{ outcome: Outcome; peakKiB: number; dead: boolean }> {
    const pid = this.proc.pid!;
    resetPeak(pid);
    let peak = 0;
    return new Promise((resolve) => {
      let done = false;
      const finish = (outcome: Outcome, dead: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        peak = Math.max(peak, procStatus(pid)?.hwm ?? 0);
        if (dead && this.proc.exitCode === null && this.proc.signalCode === null) this.kill();
        resolve({ outcome, peakKiB: peak, dead });
      };
      const timer = setTimeout(
        () => finish({ kind: 'hang', message: `no answer within ${timeoutMs} ms` }, true),
        timeoutMs,
      );
      const poll = setInterval(() => {
        const s = procStatus(pid);
        if (!s) return;
        peak = Math.max(peak, s.hwm, s.rss);
        if (s.rss > memKiB)
          finish({ kind: 'memory', message: `resident memory reached ${(s.rss / 1024).toFixed(0)} MiB` }, true);
      }, 5);
      this.pending = (m) => {
        if ('exit' in m) return finish({ kind: 'crash', message: m.exit }, true);
        if ('uncaught' in m) return finish({ kind: 'crash', message: `uncaught ${m.name}: ${m.message}` }, true);
        if (m.ok)
          return finish(m.leaked ? { kind: 'leak', message: `${m.leaked} tensors left alive` } : { kind: 'ok' }, false);
        if (m.leaked)
          return finish(
            { kind: 'leak', message: `${m.leaked} tensors left alive after ${m.name}: ${m.message}` },
            false,
          );
        return finish({ kind: 'error', message: `${m.name}: ${m.message}` }, false);
      };
      this.proc.send(req);
    });
  }
}

async function fuzz(target: Target, o: Options): Promise<Report> {
  const rng = new Rng(o.seed);
  const seeds = await target.seeds();
  if (o.seeds) {
    for (const f of readdirSync(o.seeds)
      .filter((f) => !f.endsWith('.json'))
      .sort()) {
      seeds.push({ name: f, bytes: new Uint8Array(readFileSync(join(o.seeds, f))) });
    }
  }
  const corpus = seeds.map((s) => s.bytes);
  const work = mkdtempSync(join(tmpdir(), `fuzz-${target.name}-`));
  const findings = join(o.out, target.name);
  const errorMessages: Record<string, number> = {};
  const unexpected: Record<string, number> = {};
  const counts = { ok: 0, errors: 0, crashes: 0, hangs: 0, overMemory: 0, leaks: 0 };
  let peakKiB = 0;
  const memKiB = o.memMiB * 1024;
  const started = Date.now();
  let child = new Child(target.name);
  await child.start();
  const baseline = child.baselineKiB;
  let i = 0;
  try {
    for (; i < o.iters && (Date.now() - started) / 1000 < o.seconds; i++) {
      // Seeds themselves first, then mutants of 1-4 stacked mutations.
      const seed: Seed = i < seeds.length ? seeds[i] : rng.pick(seeds);
      let bytes = seed.bytes;
      if (i >= seeds.length) {
        const muts: Mutator[] = [...target.mutators(seed), ...GENERIC];
        for (let n = 1 + rng.int(4); n > 0; n--) {
          const mutate = rng.pick(muts);
          // A structure-aware mutator may meet a structure an earlier mutation broke: flip bits then.
          try {
            bytes = mutate(bytes, rng, corpus);
          } catch {
            bytes = GENERIC[0](bytes, rng, corpus);
          }
        }
      }
      const path = join(work, `input${target.ext(seed)}`);
      writeFileSync(path, bytes);
      const { outcome, peakKiB: p, dead } = await child.run({ id: i, path }, o.timeout, memKiB);
      peakKiB = Math.max(peakKiB, p);
      const save = (kind: string) => {
        mkdirSync(findings, { recursive: true });
        const hash = createHash('sha1').update(bytes).digest('hex').slice(0, 12);
        const file = join(findings, `${kind}-${hash}${target.ext(seed)}`);
        writeFileSync(file, bytes);
        writeFileSync(
          `${file}.json`,
          JSON.stringify(
            {
              target: target.name,
              seed: seed.name,
              iteration: i,
              runSeed: o.seed,
              kind,
              message: outcome.message,
              peakMiB: Math.round(p / 1024),
            },
            null,
            2,
          ),
        );
      };
      switch (outcome.kind) {
        case 'ok':
          counts.ok++;
          break;
        case 'leak':
          counts.leaks++;
          save('leak');
          break;
        case 'error': {
          counts.errors++;
          const msg = outcome.message!;
          const name = msg.slice(0, msg.indexOf(':'));
          const key = normalise(msg, path);
          errorMessages[key] = (errorMessages[key] ?? 0) + 1;
          if (!target.expectedErrors.includes(name)) {
            unexpected[key] = (unexpected[key] ?? 0) + 1;
            if (unexpected[key] === 1) save('unexpected');
          }
          break;
        }
        case 'crash':
          counts.crashes++;
          save('crash');
          break;
        case 'hang':
          counts.hangs++;
          save('hang');
          break;
        case 'memory':
          counts.overMemory++;
          save('memory');
          break;
      }
      if (dead) {
        child = new Child(target.name);
        await child.start();
      }
    }
  } finally {
    child.kill();
    rmSync(work, { recursive: true, force: true });
  }
  return {
    target: target.name,
    inputs: i,
    seconds: Math.round((Date.now() - started) / 1000),
    seed: o.seed,
    ok: counts.ok,
    errors: counts.errors,
    distinctErrors: Object.keys(errorMessages).length,
    unexpectedErrors: unexpected,
    crashes: counts.crashes,
    hangs: counts.hangs,
    overMemory: counts.overMemory,
    leaks: counts.leaks,
    peakRssMiB: Math.round(peakKiB / 1024),
    childPeakBaselineMiB: Math.round(baseline / 1024),
    errorMessages,
  };
}

function print(r: Report): void {
  console.log(`\n== ${r.target}: ${r.inputs} inputs in ${r.seconds} s (seed ${r.seed})`);
  console.log(
    `   accepted ${r.ok}, refused ${r.errors} (${r.distinctErrors} distinct messages), crashes ${r.crashes}, hangs ${r.hangs}, over memory ${r.overMemory}, leaks ${r.leaks}`,
  );
  console.log(
    `   peak resident memory of one input: ${r.peakRssMiB} MiB (the idle child: ${r.childPeakBaselineMiB} MiB)`,
  );
  const un = Object.entries(r.unexpectedErrors);
  if (un.length) {
    console.log('   errors of an unexpected class:');
    for (const [m, n] of un) console.log(`     ${n}x ${m}`);
  }
  console.log('   most frequent messages:');
  for (const [m, n] of Object.entries(r.errorMessages)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12))
    console.log(`     ${n}x ${m}`);
}

const o = parseArgs(process.argv.slice(2));
const reports: Report[] = [];
for (const name of o.target === 'all' ? Object.keys(TARGETS) : [o.target]) {
  const r = await fuzz(TARGETS[name], o);
  print(r);
  reports.push(r);
}
if (o.json) writeFileSync(o.json, JSON.stringify(reports, null, 2));
const bad = reports.some(
  (r) => r.crashes || r.hangs || r.overMemory || r.leaks || Object.keys(r.unexpectedErrors).length,
);
process.exitCode = bad ? 1 : 0;
