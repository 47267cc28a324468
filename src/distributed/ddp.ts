// Data parallelism as torch.nn.parallel.DistributedDataParallel does it, on c10d's own pieces:
// the module state broadcast from rank 0 at start, c10d's Reducer all-reducing gradient buckets
// while backward runs (averaged: divided by the world size, then summed), and rank 0's buffers
// broadcast before every forward (DDP's broadcast_buffers=True), so running statistics that
// plain BatchNorm keeps per rank stay those of rank 0 everywhere.
import * as torch from '../torch/index.js';

export interface DataParallelOptions {
  /** DDP's bucket_cap_mb (default 25) */
  bucketCapMB?: number;
  /** DDP's broadcast_buffers (default true) */
  broadcastBuffers?: boolean;
}

export class DataParallel implements Disposable {
  private readonly reducer: torch.distributed.Reducer | null;
  private readonly buffers: torch.Tensor[];
  /** parameters whose gradients are all-reduced (those that require grad) */
  readonly params: torch.Tensor[];

  /**
   * Call after the model has its final layout (channels_last) and its initial or resumed weights:
   * rank 0's are copied to every rank, and the Reducer takes the parameters as they are.
   */
  constructor(
    model: torch.nn.Module,
    private readonly group: torch.distributed.ProcessGroup,
    private readonly o: DataParallelOptions = {},
  ) {
    const params = [...model.parameters()];
    this.buffers = [...model.namedBuffers()].map(([, b]) => b);
    torch.noGrad(() => group.broadcast([...params, ...this.buffers], 0));
    this.params = params.filter((p) => p.requiresGrad);
    this.reducer =
      group.size > 1 && this.params.length
        ? torch.distributed.Reducer.create(group, this.params, {
            bucketCapBytes: Math.round((o.bucketCapMB ?? 25) * 1024 * 1024),
          })
        : null;
  }

  /** Bytes all-reduced per synchronised step: every gradient once. */
  get bytesPerStep(): number {
    return this.params.reduce((s, p) => s + p.numel * torch.elementSize(p.dtype), 0);
  }

  get buckets(): number {
    return this.reducer?.buckets ?? 0;
  }

  /**
   * Before each forward. `sync: false` (the inner steps of gradient accumulation, DDP's
   * no_sync()) leaves that backward's gradients local; the step that syncs all-reduces the
   * accumulated sum.
   */
  beforeForward(sync = true): void {
    if (this.group.size === 1) return;
    if (this.o.broadcastBuffers ?? true) torch.noGrad(() => this.group.broadcast(this.buffers, 0));
    this.reducer?.prepare(sync);
  }

  [Symbol.dispose](): void {
    this.reducer?.close();
  }
}
