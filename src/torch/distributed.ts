// LibTorch's c10d, typed: the TCPStore, the Gloo process group, DDP's Reducer and SyncBatchNorm
// (native/src/distributed.cc). Rendezvous, launching and the training integration are
// src/distributed's; this file only wraps the engine.
import { native } from './native.js';
import { Tensor } from './tensor.js';

const d = native.distributed;

/** c10d's TCPStore: the key-value store ranks meet through (one server, every rank a client). */
export class Store {
  private constructor(
    readonly id: number,
    /** the port it listens on or connects to (the OS's pick when a server asked for port 0) */
    readonly port: number,
  ) {}

  /** A server binds host:port (port 0: any free port); a client connects, retrying until `timeoutMs`. */
  static create(host: string, port: number, o: { isServer: boolean; worldSize: number; timeoutMs: number }): Store {
    const [id, actual] = d.storeCreate(host, port, o.isServer, o.worldSize, o.timeoutMs);
    return new Store(id, actual);
  }

  set(key: string, value: string): void {
    d.storeSet(this.id, key, value);
  }
  /** Waits for the key up to the store's timeout. */
  get(key: string): string {
    return d.storeGet(this.id, key);
  }
  add(key: string, delta: number): number {
    return d.storeAdd(this.id, key, delta);
  }
  /** Whether every key exists, without waiting. */
  has(...keys: string[]): boolean {
    return d.storeCheck(this.id, keys);
  }
  close(): void {
    d.storeClose(this.id);
  }
}

export interface ProcessGroupOptions {
  /** every collective fails after this long (a dead or hung peer) */
  timeoutMs: number;
  /** GLOO_SOCKET_IFNAME's interfaces (used round-robin), else `hostname`, else this host's name */
  ifnames?: string[];
  hostname?: string;
}

/** A Gloo process group: synchronous collectives, each bounded by the group's timeout. */
export class ProcessGroup {
  private constructor(
    readonly id: number,
    readonly rank: number,
    readonly size: number,
  ) {}

  /** Connects the full mesh of `size` ranks through the store. */
  static create(store: Store, rank: number, size: number, o: ProcessGroupOptions): ProcessGroup {
    return new ProcessGroup(
      d.pgCreate(store.id, rank, size, o.timeoutMs, o.ifnames ?? [], o.hostname ?? ''),
      rank,
      size,
    );
  }

  /** In place, from `root` (coalesced per dtype). */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    if (tensors.length)
      d.pgBroadcast(
        this.id,
        tensors.map((t) => t.handle),
        root,
      );
  }
  /** In place (coalesced per dtype). */
  allreduce(tensors: readonly Tensor[], op: 'sum' | 'max' | 'min' = 'sum'): void {
    if (tensors.length)
      d.pgAllreduce(
        this.id,
        tensors.map((t) => t.handle),
        op,
      );
  }
  /** Every rank's `t`, stacked along a new first dimension (rank order). */
  allgather(t: Tensor): Tensor {
    return new Tensor(d.pgAllgather(this.id, t.handle));
  }
  barrier(): void {
    d.pgBarrier(this.id);
  }
  close(): void {
    d.pgClose(this.id);
  }
}

/**
 * DDP's c10d::Reducer over `params`: hooks their gradient accumulators, all-reduces (averages)
 * full buckets while backward still runs, and writes the averaged gradients back when backward
 * ends. Buckets as DistributedDataParallel makes them (first 1 MiB, then `bucketCapBytes`).
 */
export class Reducer {
  private constructor(
    readonly id: number,
    readonly buckets: number,
  ) {}

  static create(
    pg: ProcessGroup,
    params: readonly Tensor[],
    o: { bucketCapBytes?: number; firstBucketBytes?: number } = {},
  ): Reducer {
    const [id, buckets] = d.reducerCreate(
      pg.id,
      params.map((p) => p.handle),
      o.bucketCapBytes ?? 25 * 1024 * 1024,
      o.firstBucketBytes ?? 1024 * 1024,
    );
    return new Reducer(id, buckets);
  }

  /** Before each forward. `sync: false` is DDP's no_sync(): this backward's gradients stay local. */
  prepare(sync: boolean): void {
    d.reducerPrepare(this.id, sync);
  }
  close(): void {
    d.reducerClose(this.id);
  }
}

/** torch.nn.SyncBatchNorm in training: statistics over every rank's batch, and their gradients. */
export function syncBatchNorm(
  pg: ProcessGroup,
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null,
  bias: Tensor | null,
  momentum: number,
  eps: number,
): Tensor {
  return new Tensor(
    d.syncBatchNorm(
      pg.id,
      x.handle,
      weight?.handle ?? null,
      bias?.handle ?? null,
      runningMean?.handle ?? null,
      runningVar?.handle ?? null,
      momentum,
      eps,
    ),
  );
}

/** Linux: this process gets SIGKILL when its parent dies. False if `parentPid` is already gone. */
export function dieWithParent(parentPid: number): boolean {
  return d.setParentDeathSignal(parentPid);
}
