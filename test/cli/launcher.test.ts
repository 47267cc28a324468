// bin/deeplab: the CLI under jemalloc when it is installed, as the same process (exec), with
// node's own exit codes and signals, and DEEPLAB_ALLOCATOR=system to opt out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { arch } from 'node:os';
import { deeplabBin, tempDir } from '../helpers/paths.js';

const run = promisify(execFile);
const jemalloc = [
  `/usr/lib/${arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`,
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
].some(existsSync);
const env = (extra: Record<string, string> = {}) => {
  const e: Record<string, string | undefined> = { ...process.env, ...extra };
  if (!('LD_PRELOAD' in extra)) delete e.LD_PRELOAD;
  if (!('MALLOC_CONF' in extra)) delete e.MALLOC_CONF;
  return e;
};

test('deeplab info names the allocator: jemalloc when installed, the system malloc when opted out', async () => {
  const { stdout } = await run(deeplabBin, ['info'], { env: env() });
  assert.match(stdout, jemalloc ? /allocator: jemalloc \(its default settings\)/ : /allocator: system malloc/);
  const system = await run(deeplabBin, ['info'], { env: env({ DEEPLAB_ALLOCATOR: 'system' }) });
  assert.match(system.stdout, /allocator: system malloc, huge pages for large inference tensors/);
  if (jemalloc) {
    const own = await run(deeplabBin, ['info'], { env: env({ MALLOC_CONF: 'narenas:2' }) });
    assert.match(own.stdout, /allocator: jemalloc \(MALLOC_CONF=narenas:2\)/, 'a MALLOC_CONF of the user is kept');
  }
});

test("exit codes and signals are node's own: the launcher execs, it does not wrap", async () => {
  await assert.rejects(
    run(deeplabBin, ['no-such-command'], { env: env() }),
    (e: { code: number; stderr: string }) => e.code === 1 && /unknown command 'no-such-command'/.test(e.stderr),
  );
  // `models` builds all 22 presets: long enough to catch the process running.
  const child = spawn(deeplabBin, ['models'], { env: env(), stdio: 'ignore' });
  const exited = once(child, 'exit');
  let cmdline = '';
  for (let i = 0; i < 200 && !cmdline.includes('main.js'); i++) {
    await new Promise((r) => setTimeout(r, 25));
    try {
      cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    } catch {
      break;
    }
  }
  assert.match(cmdline, /node.*dist\/src\/cli\/main\.js\0models/, "the launcher's PID is node running the CLI");
  if (jemalloc)
    assert.ok(readFileSync(`/proc/${child.pid}/maps`, 'utf8').includes('libjemalloc'), 'jemalloc is loaded');
  child.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.deepEqual([code, signal], [null, 'SIGTERM']);
});

test(
  'train, eval and demo run with jemalloc keeping its pages (no decay); a MALLOC_CONF of the user wins',
  { skip: !jemalloc && 'libjemalloc2 not installed' },
  async () => {
    const dir = tempDir('deeplab-launcher-');
    for (const [extra, want] of [
      [{}, 'dirty_decay_ms:-1,muzzy_decay_ms:-1'],
      [{ MALLOC_CONF: 'narenas:2' }, 'narenas:2'],
    ] as const) {
      // demo generating its scenes runs long enough to read the process's environment
      const child = spawn(
        deeplabBin,
        [
          'demo',
          '--iters',
          '1',
          '--train-scenes',
          '400',
          '--val-scenes',
          '4',
          '--data',
          join(dir, 'data'),
          '--out',
          join(dir, 'run'),
        ],
        { env: env(extra), stdio: 'ignore' },
      );
      const exited = once(child, 'exit');
      let environ = '';
      for (let i = 0; i < 400 && !readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').includes('main.js'); i++)
        await new Promise((r) => setTimeout(r, 25));
      try {
        environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8');
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
      assert.ok(
        environ.split('\0').includes(`MALLOC_CONF=${want}`),
        `MALLOC_CONF=${want} expected in the environment of deeplab demo`,
      );
    }
  },
);
