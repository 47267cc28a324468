// The training loop: SGD (or AdamW) with poly LR, per-prefix LR multipliers, the auxiliary loss,
// gradient accumulation, optional bf16 autocast, batch-norm policies, periodic evaluation at
// the evaluation output stride, atomic checkpoints and exact resume.
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import type { Config } from '../config/schema.js';
import type { Normalization, Segmentor } from '../models/segmentor.js';
import { segmentationLoss } from './losses.js';
import { polyLr } from './schedule.js';
import type { Batch, PreloadInfo } from '../data/loader.js';
import { batchToTensor } from '../data/to-tensor.js';
import type { EvalSummary } from '../evaluation/on-split.js';
import { saveCheckpoint, loadCheckpoint, lastCheckpoint, type TrainState } from './checkpoint.js';
import { bestMIoUOnDisk, POINTER, prunePeriodic, removeStaleTemps, setAsideLog, truncateLog } from './work-dir.js';
import { ensureDir } from '../data/output-dir.js';
import type { Distributed } from '../distributed/process-group.js';
import { DataParallel } from '../distributed/ddp.js';
import { convertSyncBatchNorm } from '../distributed/sync-bn.js';

export interface BatchSource {
  /** resolves when the first batch can be asked for; preloading sources say what it took */
  ready?(): Promise<PreloadInfo | null>;
  next(): Promise<Batch>;
  state(): { epoch: number; position: number };
  close(): void | Promise<void>;
}

export interface TrainerOptions {
  config: Config;
  model: Segmentor;
  normalization: Normalization;
  /** a batch source positioned at (epoch, position): resuming asks for the saved position */
  makeSource: (at: { epoch: number; position: number }) => BatchSource;
  /** evaluation on the validation split (the model is in eval mode at the eval output stride) */
  evaluate?: (model: Segmentor) => Promise<EvalSummary>;
  /** resume from the work dir's last checkpoint (true) or from this file */
  resume?: boolean | string;
  /** one line per log interval (progress bars are the caller's) */
  onLog?: (entry: LogEntry) => void;
  onEval?: (iter: number, summary: EvalSummary) => void;
  /** things the user should know that are not errors (a resume with nothing to resume, temps removed) */
  onNotice?: (line: string) => void;
  /** stop after this many iterations in this process (tests kill runs this way) */
  stopAfter?: number;
  /**
   * Data-parallel training (src/distributed): gradients averaged across ranks by DDP's Reducer,
   * model.syncBN's batch norms synchronised, losses logged as the ranks' mean; rank 0 alone
   * writes the work dir. The batch source must be this rank's shard.
   */
  dist?: Distributed;
}

export interface LogEntry {
  iter: number;
  lr: number;
  loss: number;
  decodeLoss: number;
  auxLoss: number | null;
  /** seconds per iteration, and the part of it spent waiting for data */
  time: number;
  dataTime: number;
}

export interface TrainResult {
  iter: number;
  bestMIoU: number | null;
  lastLoss: number;
  checkpoint: string;
  dataWaitShare: number;
}

/** Parameter groups by the first matching LR-multiplier prefix; frozen parameters are left out. */
export function paramGroups(
  model: torch.nn.Module,
  lrMult: Config['train']['lrMult'],
): { params: torch.Tensor[]; mult: number }[] {
  const groups = [
    { params: [] as torch.Tensor[], mult: 1 },
    ...lrMult.map((m) => ({ params: [] as torch.Tensor[], mult: m.mult })),
  ];
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const i = lrMult.findIndex((m) => name.startsWith(m.prefix));
    groups[i + 1].params.push(p);
  }
  return groups.filter((g) => g.params.length > 0);
}

/** The labels at the logits' size: nearest-neighbour resized when the logits are smaller (DeepLab-v2 MSC). */
function labelsAt(y: torch.Tensor, logits: torch.Tensor): torch.Tensor {
  const [h, w] = logits.shape.slice(-2);
  if (h === y.size(1) && w === y.size(2)) return y;
  return torch.F.interpolate(y.unsqueeze(1).float(), { size: [h, w], mode: 'nearest' })
    .squeeze(1)
    .long();
}

/** mmseg's norm_eval (statistics frozen) or fully frozen batch norm; train() resets modes, so reapply. */
function applyBatchNormPolicy(model: Segmentor, policy: Config['model']['batchNorm']): void {
  if (policy === 'train') return;
  for (const [, m] of model.namedModules()) if (m instanceof torch.nn.BatchNorm2d) m.eval();
}

export async function train(o: TrainerOptions): Promise<TrainResult> {
  const { config: cfg, model, dist } = o;
  // Rank 0 alone writes: checkpoints, log, best and final weights.
  const main = !dist || dist.isMain;
  const workDir = main ? ensureDir(cfg.workDir, 'work dir') : cfg.workDir;
  torch.manualSeed(cfg.train.seed);
  // What a crashed run left half-written is of no use to anyone: gone before this run writes.
  const stale = main ? removeStaleTemps(workDir) : [];
  if (stale.length) o.onNotice?.(`removed ${stale.length} temp file(s) of interrupted writes in ${workDir}`);
  if (dist && cfg.model.syncBN) convertSyncBatchNorm(model, dist.pg);

  if (cfg.model.batchNorm === 'frozen') {
    for (const [, m] of model.namedModules())
      if (m instanceof torch.nn.BatchNorm2d) for (const p of [m.weight, m.bias]) p?.requiresGrad_(false);
  }
  // In place and keeping every parameter object, so the optimizer (and a resumed state) see the same
  // tensors; checkpoints are written row-major whatever the layout.
  if (cfg.train.channelsLast) model.to({ memoryFormat: 'channels_last' });
  const groups = paramGroups(model, cfg.train.lrMult);
  const base = cfg.train.optimizer;
  const opt =
    base.type === 'sgd'
      ? new torch.optim.SGD(
          groups.map((g) => ({ params: g.params })),
          { lr: base.lr, momentum: base.momentum, weightDecay: base.weightDecay, nesterov: base.nesterov },
        )
      : new torch.optim.AdamW(
          groups.map((g) => ({ params: g.params })),
          { lr: base.lr, weightDecay: base.weightDecay, beta1: base.betas[0], beta2: base.betas[1] },
        );

  let state: TrainState = { iter: 0, bestMIoU: null, loader: { epoch: 0, position: 0 }, config: cfg.name };
  const logFile = join(workDir, 'log.jsonl');
  const file = o.resume ? (typeof o.resume === 'string' ? o.resume : lastCheckpoint(workDir)) : null;
  // Every rank must start from the same bytes (one shared work dir, or identical copies), before
  // anything is restored or written.
  dist?.agree('checkpoint to resume', file ? fileDigest(file) : 'none');
  if (main && !file) {
    const old = setAsideLog(logFile);
    if (old) o.onNotice?.(`a fresh run in a used work dir: the earlier run's log is now ${old}`);
  }
  if (o.resume) {
    if (file) {
      state = loadCheckpoint(file, model, opt, cfg.train.iters);
      // best_mIoU may be newer than the checkpoint (evaluation runs after the checkpoint is saved).
      const best = bestMIoUOnDisk(workDir);
      if (best !== null && (state.bestMIoU === null || best > state.bestMIoU)) state.bestMIoU = best;
      if (main) truncateLog(logFile, state.iter);
      o.onNotice?.(`resumed from ${file} at iteration ${state.iter}`);
    } else {
      o.onNotice?.(`--resume: no checkpoint in ${workDir} (no ${POINTER} file): starting from iteration 0`);
    }
  }
  // After the layout change and the resume: rank 0's weights are everyone's, and the Reducer
  // takes the parameters as they will be trained.
  const ddp = dist ? new DataParallel(model, dist.pg) : null;
  const source = o.makeSource(state.loader);
  const classWeights = cfg.train.loss.classWeights ? torch.keep(torch.tensor(cfg.train.loss.classWeights)) : null;
  let lastLoss = NaN;
  let checkpoint = '';
  let waited = 0;
  let total = 0;
  const stopAt = Math.min(cfg.train.iters, o.stopAfter !== undefined ? state.iter + o.stopAfter : Infinity);

  model.setOutputStride(cfg.model.outputStride.train);
  try {
    const preloaded = await source.ready?.();
    if (preloaded)
      o.onNotice?.(
        `train.preload: ${preloaded.samples} training samples in memory (${(preloaded.bytes / 2 ** 20).toFixed(0)} MiB) in ${preloaded.seconds.toFixed(1)} s, ${preloaded.from === 'file' ? `read from ${preloaded.file}` : `decoded; ${preloaded.notWritten ? `the preload file ${preloaded.notWritten}` : `saved to ${preloaded.file} for the next run`}`}`,
      );
    while (state.iter < stopAt) {
      const t0 = performance.now();
      const lr = polyLr(state.iter, cfg.train.iters, base.lr, cfg.train.schedule);
      opt.setLr((g) => lr * groups[g].mult);
      model.train();
      applyBatchNormPolicy(model, cfg.model.batchNorm);
      let sums = { loss: 0, decode: 0, aux: 0 };
      let dataTime = 0;
      for (let a = 0; a < cfg.train.accumulate; a++) {
        const d0 = performance.now();
        const batch = await source.next();
        dataTime += performance.now() - d0;
        // Gradients are all-reduced in the last accumulation step only (DDP's no_sync before).
        ddp?.beforeForward(a === cfg.train.accumulate - 1);
        const parts = torch.scope(() => {
          const x = batchToTensor(batch, o.normalization, cfg.train.channelsLast);
          const y = torch
            .tensor(batch.labels, { dtype: 'uint8', shape: [x.shape[0], batch.height, batch.width] })
            .long();
          // The model says which logits get a loss (its main and auxiliary heads, or DeepLab-v2's
          // four multi-scale outputs); losses of one role are summed.
          const forward = () => {
            const sums: { decode: torch.Tensor | null; aux: torch.Tensor | null } = { decode: null, aux: null };
            for (const { role, logits } of model.trainingOutputs(x)) {
              if (role === 'aux' && !cfg.model.aux) continue;
              const loss = segmentationLoss(logits.float(), labelsAt(y, logits), cfg.train.loss, classWeights);
              sums[role] = sums[role] ? sums[role].add(loss) : loss;
            }
            return { decode: sums.decode!, aux: sums.aux };
          };
          // Its own scope: only the losses leave it, so the forward's intermediates that autograd did
          // not save are freed before backward, and autograd frees the saved ones as it goes, as in
          // PyTorch (holding them meant fresh pages for every gradient, a slower backward).
          const { decode, aux } = torch.scope(() =>
            cfg.train.precision === 'bf16' ? torch.autocast('cpu', 'bfloat16', forward) : forward(),
          );
          const loss = aux ? decode.add(aux.mul(cfg.train.loss.auxWeight)) : decode;
          loss.div(cfg.train.accumulate).backward();
          return { loss: loss.item(), decode: decode.item(), aux: aux ? aux.item() : 0 };
        });
        sums = { loss: sums.loss + parts.loss, decode: sums.decode + parts.decode, aux: sums.aux + parts.aux };
      }
      opt.step();
      opt.zeroGrad();
      state.iter++;
      state.loader = source.state();
      const dt = (performance.now() - t0) / 1000;
      waited += dataTime / 1000;
      total += dt;
      const k = cfg.train.accumulate;
      if (dist) sums = meanAcrossRanks(sums, dist);
      lastLoss = sums.loss / k;
      if (!Number.isFinite(lastLoss))
        throw new Error(`loss is ${lastLoss} at iteration ${state.iter}: lower the learning rate or check the labels`);
      const entry: LogEntry = {
        iter: state.iter,
        lr,
        loss: lastLoss,
        decodeLoss: sums.decode / k,
        auxLoss: cfg.model.aux ? sums.aux / k : null,
        time: dt,
        dataTime: dataTime / 1000,
      };
      if (main && (state.iter % cfg.train.logInterval === 0 || state.iter === stopAt)) {
        appendFileSync(logFile, JSON.stringify(entry) + '\n');
        o.onLog?.(entry);
      }

      // The checkpoint first: an evaluation that fails (a bad validation image) loses no training.
      if (state.iter % cfg.train.checkpointInterval === 0 || state.iter === stopAt) {
        checkpoint = join(workDir, `iter_${state.iter}.safetensors`);
        if (main) {
          saveCheckpoint(checkpoint, model, opt, state);
          // The two newest periodic checkpoints (and best_mIoU) are kept: enough to survive a crash mid-write.
          prunePeriodic(workDir, 2);
        }
      }
      const evalNow = o.evaluate && (state.iter % cfg.train.evalInterval === 0 || state.iter === cfg.train.iters);
      if (evalNow) {
        model.eval();
        model.setOutputStride(cfg.model.outputStride.eval);
        const summary = await o.evaluate!(model);
        model.setOutputStride(cfg.model.outputStride.train);
        if (main) appendFileSync(logFile, JSON.stringify({ iter: state.iter, eval: summary }) + '\n');
        o.onEval?.(state.iter, summary);
        if (state.bestMIoU === null || summary.mIoU > state.bestMIoU) {
          state.bestMIoU = summary.mIoU;
          if (main)
            torch.writeSafetensors(join(workDir, 'best_mIoU.safetensors'), model.stateDict(), {
              format: 'deeplab-weights',
              iter: String(state.iter),
              mIoU: String(summary.mIoU),
              config: cfg.name,
            });
        }
      }
    }
  } finally {
    await source.close();
    ddp?.[Symbol.dispose]();
    classWeights?.dispose();
    opt.dispose();
  }
  if (main && state.iter >= cfg.train.iters) {
    torch.writeSafetensors(join(workDir, 'final.safetensors'), model.stateDict(), {
      format: 'deeplab-weights',
      iter: String(state.iter),
      config: cfg.name,
    });
  }
  return {
    iter: state.iter,
    bestMIoU: state.bestMIoU,
    lastLoss,
    checkpoint,
    dataWaitShare: total > 0 ? waited / total : 0,
  };
}

/** The step's losses as the mean over ranks (what one process on the whole batch would log). */
function meanAcrossRanks(
  sums: { loss: number; decode: number; aux: number },
  dist: Distributed,
): { loss: number; decode: number; aux: number } {
  return torch.scope(() => {
    const t = torch.tensor([sums.loss, sums.decode, sums.aux], { dtype: 'float64' });
    torch.noGrad(() => dist.pg.allreduce([t]));
    const [loss, decode, aux] = t.div(dist.worldSize).data() as Float64Array;
    return { loss, decode, aux };
  });
}

/** A checkpoint's identity for the ranks to compare: size and SHA-256 of its bytes. */
function fileDigest(file: string): string {
  const h = createHash('sha256');
  h.update(readFileSync(file));
  return `${statSync(file).size}:${h.digest('hex')}`;
}
