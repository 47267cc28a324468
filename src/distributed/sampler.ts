// The distributed sampler's arithmetic, as mmengine's InfiniteSampler: one endless stream of
// per-epoch permutations, the same on every rank (it depends on the config's seed alone), and rank
// r of W takes positions r, r + W, r + 2W, ... of it. So the ranks never see the same sample in a
// round, and one step's W batches of b are the samples one process would put in a batch of W x b.
// Positions are kept in the whole stream's terms, so a run resumed with another number of
// processes carries on from the same sample.
//
// Augmentation draws from (seed, epoch, sample index) (src/data/rng.ts), not from a per-rank
// generator: each sample gets its own draws whichever rank loads it, which is what per-rank seeds
// are for, and the W-process run stays equal to the one-process run.

export interface Shard {
  rank: number;
  worldSize: number;
}

export const SINGLE: Shard = { rank: 0, worldSize: 1 };

/** Stream position of this rank's first sample, for a loader (re)started at stream position `base`. */
export function shardStart(base: number, s: Shard): number {
  return base + s.rank;
}

/**
 * Where the whole job stands in the stream once this rank has consumed `taken` samples since
 * `base`: every rank has taken as many (the same batch size, in lock step), so W x taken. A bad
 * sample skipped (train.badSample: skip) moves only its rank's share on by one; checkpoints keep
 * rank 0's position, so a resume may see a few samples of other ranks again or not at all.
 */
export function shardPosition(base: number, taken: number, s: Shard): number {
  return base + taken * s.worldSize;
}
