// Training checkpoints: one safetensors file with the model (`model.<key>`, the source's own
// state-dict keys), the optimizer state (`optimizer.<param index>.<name>`) and the LibTorch RNG
// (`rng.torch`); iteration, data-loader position, best mIoU and optimizer hyper-parameters go
// in its metadata. Writes are atomic (temp file, fsync, rename), and `last_checkpoint` names
// the newest file, so a run killed at any moment resumes from an intact checkpoint.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

export function saveCheckpoint(file: string, model: torch.nn.Module, opt: Optimizer<{ lr: number }>, state: TrainState): void {
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
  const pointer = join(file, '..', 'last_checkpoint');
  writeFileSync(`${pointer}.tmp`, file);
  renameSync(`${pointer}.tmp`, pointer);
}

/** The newest checkpoint of a work dir, or null. */
export function lastCheckpoint(workDir: string): string | null {
  const pointer = join(workDir, 'last_checkpoint');
  if (!existsSync(pointer)) return null;
  const file = readFileSync(pointer, 'utf8').trim();
  if (!existsSync(file)) throw new Error(`${pointer} names ${file}, which does not exist`);
  return file;
}

/** Restores model, optimizer and RNG from a checkpoint; returns where training stopped. */
export function loadCheckpoint(file: string, model: torch.nn.Module, opt: Optimizer<{ lr: number }>): TrainState {
  const all = torch.readSafetensors(file);
  try {
    if (all.metadata.format !== CHECKPOINT_FORMAT) throw new Error(`${file}: not a deeplab training checkpoint (no "${CHECKPOINT_FORMAT}" metadata)`);
    const modelSd = new Map([...all].filter(([k]) => k.startsWith('model.')).map(([k, v]) => [k.slice(6), v]));
    model.loadStateDict(modelSd, { source: file });
    const scalars = JSON.parse(all.metadata.optimizerScalars) as Record<string, Record<string, number>>;
    const state = new Map<number, ParamState>();
    for (const [k, v] of all) {
      const m = /^optimizer\.(\d+)\.(.+)$/.exec(k);
      if (m) (state.get(Number(m[1])) ?? state.set(Number(m[1]), {}).get(Number(m[1]))!)[m[2]] = v;
    }
    for (const [idx, st] of Object.entries(scalars)) Object.assign(state.get(Number(idx)) ?? state.set(Number(idx), {}).get(Number(idx))!, st);
    opt.loadStateDict({ state, paramGroups: JSON.parse(all.metadata.paramGroups) } as OptimizerStateDict<{ lr: number }>);
    torch.setRngState(all.get('rng.torch')!);
    return JSON.parse(all.metadata.state) as TrainState;
  } finally {
    for (const t of all.values()) t.dispose();
  }
}
