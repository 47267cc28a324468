// One rank's life: die with the launcher, take its share of the cores, join the job, run, and on
// failure tell the others (or name the rank at fault) before exiting non-zero.
import { availableParallelism } from 'node:os';
import * as torch from '../torch/index.js';
import type { DistEnv } from './env.js';
import { Distributed, DistributedError, type JoinOptions } from './process-group.js';

/**
 * Gloo's and c10d's failures of a collective: a peer closed its connections (it died), or did
 * not answer within the timeout (it hangs or is gone).
 */
export function isCollectiveFailure(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return /gloo|Connection closed by peer|Connection reset|Timed out waiting|timed out|Broken pipe|Socket/i.test(m);
}

/** Threads per process: the cores shared by this machine's ranks, unless set explicitly. */
export function threadsPerRank(env: DistEnv, vars: NodeJS.ProcessEnv = process.env): number | null {
  if (vars.DEEPLAB_THREADS || vars.OMP_NUM_THREADS) return null;
  return Math.max(1, Math.floor(availableParallelism() / env.localWorldSize));
}

/** Joins the job and runs `body` as this rank; errors come back worded for the user, naming ranks. */
export async function runAsRank<T>(env: DistEnv, o: JoinOptions, body: (dist: Distributed) => Promise<T>): Promise<T> {
  const launcher = Number(process.env.DEEPLAB_LAUNCHER_PID);
  if (Number.isInteger(launcher) && launcher > 0 && !torch.distributed.dieWithParent(launcher))
    throw new Error(`rank ${env.rank}: the launcher (pid ${launcher}) is gone`);
  const threads = threadsPerRank(env);
  if (threads !== null) torch.setNumThreads(threads);
  const dist = Distributed.join(env, o);
  try {
    return await body(dist);
  } catch (e) {
    if (e instanceof DistributedError) {
      dist.reportFailure(e);
      throw e;
    }
    if (isCollectiveFailure(e)) throw dist.explain(e);
    dist.reportFailure(e);
    throw new DistributedError(`rank ${env.rank}: ${(e as Error).message}`);
  } finally {
    dist.close();
  }
}
