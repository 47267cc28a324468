// `deeplab train CONFIG --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P]`,
// as torchrun: this process serves the rendezvous store (on node 0), starts N workers with
// torchrun's environment variables, and supervises them. A worker that fails stops the job
// (torchrun's --max-restarts 0): the others get SIGTERM, then SIGKILL after a grace period, and
// the launcher exits non-zero naming the rank. Workers also die with the launcher
// (PR_SET_PDEATHSIG), so no worker outlives it, whatever kills it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as torch from '../torch/index.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** 0: any free port (one machine only: other nodes could not know it) */
  masterPort: number;
  /** the worker's command line after the node script (e.g. ['train', CONFIG, '--set', ...]) */
  args: string[];
  /** how long node 0's store waits for clients, and other nodes wait for it */
  timeoutMs: number;
  /** SIGTERM to SIGKILL (default 5 s) */
  killGraceMs?: number;
  log: (line: string) => void;
}

interface Worker {
  rank: number;
  localRank: number;
  child: ChildProcess;
  done: Promise<void>;
  exited: boolean;
}

/** Runs the workers to the end; resolves with the exit code for the launcher (0: all succeeded). */
export async function launch(o: LaunchOptions): Promise<number> {
  const world = o.nnodes * o.nprocPerNode;
  if (o.nodeRank >= o.nnodes)
    throw new RangeError(`--node-rank ${o.nodeRank} is out of range for --nnodes ${o.nnodes} (0..${o.nnodes - 1})`);
  if (o.nnodes > 1 && o.masterPort === 0)
    throw new RangeError('--master-port 0 (any free port) works on one machine only: give every node the same port');
  // Node 0 serves the store, as torchrun's agent does; its workers and other nodes' are clients.
  let store: torch.distributed.Store | null = null;
  let port = o.masterPort;
  if (o.nodeRank === 0) {
    try {
      store = torch.distributed.Store.create(o.masterAddr, o.masterPort, {
        isServer: true,
        worldSize: world,
        timeoutMs: o.timeoutMs,
      });
    } catch (e) {
      const m = (e as Error).message.split('\n')[0];
      throw new Error(
        /address already in use|errno: 98/i.test(m)
          ? `--master-port ${o.masterPort}: the port is in use (another run?); choose another port, or 0 for any free one`
          : `cannot serve the rendezvous store on ${o.masterAddr}:${o.masterPort}: ${m}`,
      );
    }
    port = store.port;
  }
  const first = o.nodeRank * o.nprocPerNode;
  o.log(
    `starting ${o.nprocPerNode} worker${o.nprocPerNode > 1 ? 's' : ''} (ranks ${first}-${first + o.nprocPerNode - 1} of ${world}), rendezvous at ${o.masterAddr}:${port}`,
  );
  const workers: Worker[] = [];
  let failure = null as string | null; // set from the children's exit handlers
  let killTimer: NodeJS.Timeout | null = null;
  const stopAll = (why: string) => {
    if (failure === null) failure = why;
    for (const w of workers) if (!w.exited) w.child.kill('SIGTERM');
    killTimer ??= setTimeout(() => {
      for (const w of workers) if (!w.exited) w.child.kill('SIGKILL');
    }, o.killGraceMs ?? 5000);
  };
  const onSignal = (sig: NodeJS.Signals) => stopAll(`the launcher got ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    for (let i = 0; i < o.nprocPerNode; i++) {
      const rank = first + i;
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...o.args], {
        stdio: 'inherit',
        env: {
          ...process.env,
          RANK: String(rank),
          LOCAL_RANK: String(i),
          GROUP_RANK: String(o.nodeRank),
          WORLD_SIZE: String(world),
          LOCAL_WORLD_SIZE: String(o.nprocPerNode),
          MASTER_ADDR: o.masterAddr,
          MASTER_PORT: String(port),
          DEEPLAB_AGENT_STORE: '1',
          DEEPLAB_LAUNCHER_PID: String(process.pid),
        },
      });
      const w: Worker = { rank, localRank: i, child, exited: false, done: Promise.resolve() };
      w.done = new Promise<void>((resolve) => {
        child.on('error', (e) => {
          w.exited = true;
          stopAll(`rank ${rank} could not start: ${e.message}`);
          resolve();
        });
        child.on('exit', (code, signal) => {
          w.exited = true;
          if (code !== 0 && failure === null) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            const said = store ? postedBy(store, rank) : '';
            stopAll(`rank ${rank} (local rank ${i}, pid ${child.pid}) ${how}${said ? `: ${said}` : ''}`);
          }
          resolve();
        });
      });
      workers.push(w);
    }
    await Promise.all(workers.map((w) => w.done));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (killTimer) clearTimeout(killTimer);
    store?.close();
  }
  if (failure !== null) {
    o.log(`stopped: ${failure}; the other ranks were stopped`);
    return 1;
  }
  return 0;
}

/** What a failed rank posted in the store (its error, or its account of a failed collective). */
function postedBy(store: torch.distributed.Store, rank: number): string {
  try {
    for (const key of [`error/${rank}`, `fault/${rank}`]) if (store.has(key)) return store.get(key);
  } catch {
    // nothing posted, or the store is unusable: the exit code says enough
  }
  return '';
}
