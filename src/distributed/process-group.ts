// Joining a data-parallel job: the TCPStore rendezvous (served by the launcher or by rank 0),
// every rank accounted for within a timeout, the Gloo process group, a hash check that all ranks
// run the same thing, and turning a failed collective into a message that names the rank at fault.
import * as torch from '../torch/index.js';
import type { DistEnv } from './env.js';

const { Store, ProcessGroup } = torch.distributed;
type Store = torch.distributed.Store;
type ProcessGroup = torch.distributed.ProcessGroup;

export interface JoinOptions {
  /** every collective fails after this long: a dead or hung rank (PyTorch's default is 30 min) */
  timeoutMs: number;
  /** all ranks must have arrived within this long (default: timeoutMs) */
  rendezvousTimeoutMs?: number;
  /** GLOO_SOCKET_IFNAME, comma-separated (default: the environment's) */
  ifnames?: string;
}

export class DistributedError extends Error {}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** This process's place in the job: its rank, the store, the process group. */
export class Distributed {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly localWorldSize: number;

  private constructor(
    env: DistEnv,
    readonly store: Store,
    readonly pg: ProcessGroup,
    readonly timeoutMs: number,
  ) {
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.localRank = env.localRank;
    this.localWorldSize = env.localWorldSize;
  }

  /** Rank 0 alone writes checkpoints, logs, reports and draws progress bars. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Connects to the store, waits for every rank, then builds the Gloo process group. */
  static join(env: DistEnv, o: JoinOptions): Distributed {
    const rdzvMs = o.rendezvousTimeoutMs ?? o.timeoutMs;
    const serve = env.rank === 0 && !env.agentStore;
    const where = `${env.masterAddr}:${env.masterPort}`;
    let store: Store;
    try {
      store = Store.create(env.masterAddr, env.masterPort, {
        isServer: serve,
        worldSize: env.worldSize,
        timeoutMs: rdzvMs,
      });
    } catch (e) {
      const m = message(e);
      if (/address already in use|errno: 98/i.test(m))
        throw new DistributedError(
          `rank ${env.rank}: cannot serve the rendezvous store on port ${env.masterPort}: the port is in use (another run?); choose another MASTER_PORT / --master-port`,
        );
      throw new DistributedError(
        serve
          ? `rank ${env.rank}: cannot serve the rendezvous store at ${where}: ${m}`
          : `rank ${env.rank}: rendezvous failed: could not reach the store at ${where} within ${rdzvMs / 1000} s (is MASTER_ADDR right and reachable, is rank 0 or the launcher running, does a firewall block the port?): ${m}`,
      );
    }
    try {
      arrive(store, env, rdzvMs);
      const ifnames = (o.ifnames ?? process.env.GLOO_SOCKET_IFNAME ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      // On one machine, Gloo binds loopback: the host's name may not resolve in containers.
      const hostname = ifnames.length === 0 && isLoopback(env.masterAddr) ? '127.0.0.1' : '';
      let pg: ProcessGroup;
      try {
        pg = ProcessGroup.create(store, env.rank, env.worldSize, { timeoutMs: o.timeoutMs, ifnames, hostname });
      } catch (e) {
        throw new DistributedError(`rank ${env.rank}: could not connect the Gloo process group: ${message(e)}`);
      }
      return new Distributed(env, store, pg, o.timeoutMs);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  /**
   * Every rank must bring the same value (a hash of the config, of the checkpoint to resume):
   * otherwise every rank fails, naming the ranks that differ from rank 0.
   */
  agree(what: string, value: string): void {
    this.store.set(`agree/${what}/${this.rank}`, value);
    const values = Array.from({ length: this.worldSize }, (_, r) => this.store.get(`agree/${what}/${r}`));
    const odd = values.flatMap((v, r) => (v === values[0] ? [] : [r]));
    if (odd.length)
      throw new DistributedError(
        `rank ${this.rank}: the ${what} differs across ranks: rank${odd.length > 1 ? 's' : ''} ${odd.join(', ')} ${odd.length > 1 ? 'have' : 'has'} ${values[odd[0]].slice(0, 12)}, rank 0 has ${values[0].slice(0, 12)}; start every rank with the same ${what}`,
      );
  }

  /**
   * A collective failed (a peer died, hung past the timeout, or failed itself). Says which rank:
   * each rank that sees a failure posts it in the store; ranks that failed on their own posted
   * their error (reportFailure); whoever posted nothing within a grace period is the one that
   * died or hangs. The others see the same failure within moments: a dead peer's sockets close
   * at once, and a hung peer makes every rank's collective time out together.
   */
  explain(e: unknown, graceMs = Math.min(2000, this.timeoutMs)): DistributedError {
    const why = message(e);
    try {
      this.store.set(`fault/${this.rank}`, why);
      const others = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank);
      const posted = (r: number) => this.store.has(`fault/${r}`) || this.store.has(`error/${r}`);
      const until = Date.now() + graceMs;
      while (others.some((r) => !posted(r)) && Date.now() < until) sleep(50);
      const failed = others.filter((r) => this.store.has(`error/${r}`));
      const silent = others.filter((r) => !posted(r));
      const parts = [
        ...failed.map((r) => `rank ${r} failed: ${this.store.get(`error/${r}`)}`),
        ...(silent.length
          ? [`rank${silent.length > 1 ? 's' : ''} ${silent.join(', ')} stopped responding (died or hangs)`]
          : []),
      ];
      const account = `a collective failed: ${parts.length ? parts.join('; ') : 'every rank saw the failure'} (${why})`;
      this.store.set(`fault/${this.rank}`, account); // for the launcher's message
      return new DistributedError(`rank ${this.rank}: ${account}`);
    } catch {
      return new DistributedError(
        `rank ${this.rank}: lost the rendezvous store (served by rank 0 or the launcher, which has probably died) after a failed collective (${why})`,
      );
    }
  }

  /** Posts this rank's own failure, so that the others name it (best effort). */
  reportFailure(e: unknown): void {
    try {
      this.store.set(`error/${this.rank}`, message(e));
    } catch {
      // the store is gone: the others will report this rank as silent
    }
  }

  close(): void {
    this.pg.close();
    this.store.close();
  }
}

/** Each rank checks in once (a RANK used twice is an error); all must within the timeout. */
function arrive(store: Store, env: DistEnv, timeoutMs: number): void {
  if (store.add(`rdzv/rank/${env.rank}`, 1) > 1)
    throw new DistributedError(
      `rank ${env.rank}: another process already joined as RANK ${env.rank}; every process needs its own RANK`,
    );
  const keys = Array.from({ length: env.worldSize }, (_, r) => `rdzv/rank/${r}`);
  const until = Date.now() + timeoutMs;
  while (!store.has(...keys)) {
    if (Date.now() >= until) {
      const missing = keys.flatMap((k, r) => (store.has(k) ? [] : [r]));
      throw new DistributedError(
        `rank ${env.rank}: rendezvous timed out after ${timeoutMs / 1000} s: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of WORLD_SIZE=${env.worldSize} never joined`,
      );
    }
    sleep(20);
  }
}
