// Training checkpoints: one safetensors file with the model (`model.<key>`, the source's own
// state-dict keys), the optimizer state (`optimizer.<param index>.<name>`) and the LibTorch RNG
// (`rng.torch`); iteration, data-loader position, best mIoU and optimizer hyper-parameters go
// in its metadata. Writes are atomic (temp file, fsync, rename), and `last_checkpoint` names
// the newest file (work-dir.ts), so a run killed at any moment resumes from an intact checkpoint.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { readPointer, writePointer } from './work-dir.js';
import * as torch from '../torch/index.js';
import type { Optimizer, OptimizerStateDict, ParamState } from '../torch/optim/index.js';

export const CHECKPOINT_FORMAT = 'deeplab-checkpoint';

export interface TrainState {
  /** iterations completed */
  iter: number;
  bestMIoU: number | null;
  loader: { epoch: number; position: number };
  config: string;
}

export function saveCheckpoint(
  file: string,
  model: torch.nn.Module,
  opt: Optimizer<{ lr: number }>,
  state: TrainState,
): void {
  const tensors = new Map<string, torch.Tensor>();
  for (const [k, t] of model.stateDict()) tensors.set(`model.${k}`, t);
  const osd = opt.stateDict();
  const scalars: Record<string, Record<string, number>> = {};
  for (const [idx, st] of osd.state) {
    for (const [name, v] of Object.entries(st)) {
      if (typeof v === 'number') (scalars[idx] ??= {})[name] = v;
      else tensors.set(`optimizer.${idx}.${name}`, v);
    }
  }
  const rng = torch.getRngState();
  tensors.set('rng.torch', rng);
  try {
    torch.writeSafetensors(file, tensors, {
      format: CHECKPOINT_FORMAT,
      state: JSON.stringify(state),
      paramGroups: JSON.stringify(osd.paramGroups),
      optimizerScalars: JSON.stringify(scalars),
    });
  } finally {
    rng.dispose();
  }
  writePointer(dirname(file), file);
}

/** What a checkpoint's metadata must hold, checked before anything is restored. */
function parseState(
  file: string,
  meta: Record<string, string>,
  maxIter: number,
): { state: TrainState; paramGroups: unknown; scalars: Record<string, Record<string, number>> } {
  const json = (key: string): unknown => {
    if (typeof meta[key] !== 'string') throw new Error(`${file}: checkpoint metadata has no "${key}"`);
    try {
      return JSON.parse(meta[key]);
    } catch (e) {
      throw new Error(`${file}: checkpoint metadata "${key}" is not valid JSON (${(e as Error).message})`);
    }
  };
  const state = json('state') as TrainState;
  const count = (v: unknown, max = Number.MAX_SAFE_INTEGER) =>
    Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max;
  if (!state || typeof state !== 'object' || !count(state.iter, maxIter)) {
    throw new Error(
      `${file}: checkpoint iteration ${JSON.stringify(state?.iter)} is not a whole number from 0 to train.iters (${maxIter})`,
    );
  }
  if (!state.loader || !count(state.loader.epoch) || !count(state.loader.position))
    throw new Error(
      `${file}: checkpoint data-loader position ${JSON.stringify(state.loader)} is not two whole numbers`,
    );
  if (
    state.bestMIoU !== null &&
    !(typeof state.bestMIoU === 'number' && state.bestMIoU >= 0 && state.bestMIoU <= 100)
  ) {
    throw new Error(`${file}: checkpoint best mIoU ${JSON.stringify(state.bestMIoU)} is not null or a percentage`);
  }
  return {
    state,
    paramGroups: json('paramGroups'),
    scalars: json('optimizerScalars') as Record<string, Record<string, number>>,
  };
}

/** Restores model, optimizer and RNG from a checkpoint; returns where training stopped. */
export function loadCheckpoint(
  file: string,
  model: torch.nn.Module,
  opt: Optimizer<{ lr: number }>,
  maxIter: number,
): TrainState {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile())
    throw new Error(
      `${file}: ${st ? 'not a file' : 'no such file'} (--resume takes a checkpoint file, or nothing for the work dir's last one)`,
    );
  const all = torch.readSafetensors(file);
  try {
    if (all.metadata.format !== CHECKPOINT_FORMAT)
      throw new Error(`${file}: not a deeplab training checkpoint (no "${CHECKPOINT_FORMAT}" metadata)`);
    const { state: saved, paramGroups, scalars } = parseState(file, all.metadata, maxIter);
    const rng = all.get('rng.torch');
    if (!rng) throw new Error(`${file}: checkpoint has no "rng.torch" tensor (the random generator's state)`);
    const modelSd = new Map([...all].filter(([k]) => k.startsWith('model.')).map(([k, v]) => [k.slice(6), v]));
    model.loadStateDict(modelSd, { source: file });
    const state = new Map<number, ParamState>();
    for (const [k, v] of all) {
      const m = /^optimizer\.(\d+)\.(.+)$/.exec(k);
      if (m) (state.get(Number(m[1])) ?? state.set(Number(m[1]), {}).get(Number(m[1]))!)[m[2]] = v;
    }
    for (const [idx, st] of Object.entries(scalars))
      Object.assign(state.get(Number(idx)) ?? state.set(Number(idx), {}).get(Number(idx))!, st);
    opt.loadStateDict({ state, paramGroups } as OptimizerStateDict<{ lr: number }>);
    torch.setRngState(rng);
    return saved;
  } finally {
    for (const t of all.values()) t.dispose();
  }
}

/** The newest checkpoint of a work dir, or null. */
export function lastCheckpoint(workDir: string): string | null {
  return readPointer(workDir);
}
