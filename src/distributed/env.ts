// Which rank this process is, from the variables torchrun, Slurm scripts and Kubernetes
// operators set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), or
// that `deeplab train --nproc-per-node` sets for its workers. No WORLD_SIZE: one process.

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /**
   * The store is served by the launcher (ours, or torchrun's agent with
   * TORCHELASTIC_USE_AGENT_STORE=True): every rank connects as a client. Otherwise rank 0 serves it.
   */
  agentStore: boolean;
}

export class DistEnvError extends Error {}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = env[name]!;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new DistEnvError(
      `${name}=${JSON.stringify(v)}: expected an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}`,
    );
  return n;
}

/** The distributed setting of this process, or null when it runs alone (no WORLD_SIZE). */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined) {
    if (env.RANK !== undefined) throw new DistEnvError('RANK is set but WORLD_SIZE is not: set both, or neither');
    return null;
  }
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  if (env.RANK === undefined)
    throw new DistEnvError(`WORLD_SIZE=${worldSize} is set but RANK is not: every process needs its RANK`);
  const rank = intVar(env, 'RANK', 0, worldSize - 1);
  const localWorldSize = env.LOCAL_WORLD_SIZE === undefined ? 1 : intVar(env, 'LOCAL_WORLD_SIZE', 1);
  const localRank = env.LOCAL_RANK === undefined ? 0 : intVar(env, 'LOCAL_RANK', 0, localWorldSize - 1);
  if (worldSize > 1) {
    for (const name of ['MASTER_ADDR', 'MASTER_PORT'])
      if (!env[name]) throw new DistEnvError(`WORLD_SIZE=${worldSize}: ${name} is not set (rank 0's address and port)`);
  }
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: env.MASTER_PORT ? intVar(env, 'MASTER_PORT', 0, 65535) : 0,
    agentStore: env.DEEPLAB_AGENT_STORE === '1' || env.TORCHELASTIC_USE_AGENT_STORE === 'True',
  };
}
