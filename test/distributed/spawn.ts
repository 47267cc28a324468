// Child processes for the data-parallel tests: each run is bounded by a timeout, its output
// collected, and every child still alive is killed in the test's teardown (killAll), pass or fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

/** The compiled worker script (test/distributed/worker.ts). */
export const workerScript = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

const live = new Set<ChildProcess>();

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr together */
  out: string;
  pid: number;
}

/** Runs `node args...` to its end (SIGKILLed after timeoutMs, which then shows in `signal`). */
export function runNode(args: string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, out, pid: child.pid! });
    });
  });
}

export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

/** A port nobody listens on (the OS's pick, closed again): connecting to it is refused. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The environment of rank `rank` of `world`, with a store served on 127.0.0.1:port by the test. */
export function rankEnv(rank: number, world: number, port: number): NodeJS.ProcessEnv {
  return {
    RANK: String(rank),
    WORLD_SIZE: String(world),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(world),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    DEEPLAB_AGENT_STORE: '1',
  };
}
