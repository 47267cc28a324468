// Loading a checkpoint into a model: .pth (torch.save, any nesting) or .safetensors, with the
// few named policies real checkpoints need, and errors that name the file and the keys.
import { existsSync } from 'node:fs';
import { type Tensor, nn, readCheckpoint, readSafetensors } from '../torch/index.js';
import { negativeRunningVars, nonFiniteTensors } from '../torch/serialize/index.js';

export interface WeightsReport {
  file: string;
  loaded: number;
  /** classifier keys left at their fresh initialisation (a new class count) */
  freshHead: string[];
  /** auxiliary-head keys of the checkpoint not loaded because the model has no aux head */
  skippedAux: string[];
  /**
   * Values no trained network has: NaN/Inf weights (a run that diverged) and negative BatchNorm
   * variances. Each such checkpoint loads, then predicts nonsense; these lines say why.
   */
  suspicious: string[];
}

/** Lines naming the tensors whose values no trained network has, or none. */
export function suspiciousValues(sd: ReadonlyMap<string, Tensor>): string[] {
  const list = (keys: string[]) =>
    keys.length > 5 ? `${keys.slice(0, 5).join(', ')} and ${keys.length - 5} more` : keys.join(', ');
  const out: string[] = [];
  const bad = nonFiniteTensors(sd);
  if (bad.length)
    out.push(
      `${bad.length} tensors hold NaN or Inf values (${bad.reduce((n, b) => n + b.nan, 0)} NaN, ${bad.reduce((n, b) => n + b.inf, 0)} Inf): ${list(bad.map((b) => b.key))}`,
    );
  const neg = negativeRunningVars(sd);
  if (neg.length)
    out.push(
      `${neg.length} BatchNorm running_var tensors hold negative variances (min ${Math.min(...neg.map((n) => n.min))}): ${list(neg.map((n) => n.key))}`,
    );
  return out;
}

/** Where the sources keep their training-only auxiliary heads. */
const AUX_PREFIXES = ['aux_classifier.', 'auxiliary_head.'];

export function readWeights(file: string): Map<string, Tensor> {
  if (!existsSync(file)) throw new Error(`${file}: no such weights file`);
  let sd: Map<string, Tensor>;
  if (file.endsWith('.safetensors')) {
    const st = readSafetensors(file);
    sd = st;
    // A training checkpoint of ours: the model is under "model.", next to optimizer state.
    if (st.metadata.format === 'deeplab-checkpoint') {
      sd = new Map();
      for (const [k, v] of st) {
        if (k.startsWith('model.')) sd.set(k.slice('model.'.length), v);
        else v.dispose();
      }
    }
  } else {
    sd = readCheckpoint(file).tensors;
  }
  // nn.DataParallel / DistributedDataParallel checkpoints prefix every key with "module.".
  if (sd.size && [...sd.keys()].every((k) => k.startsWith('module.'))) {
    sd = new Map([...sd].map(([k, v]) => [k.slice('module.'.length), v]));
  }
  return sd;
}

/**
 * Loads `file` into `model` strictly. With `freshHead`, classifier layers whose output size
 * differs (the checkpoint was trained for another class count) keep their initialisation;
 * every other difference is still an error.
 */
export function loadWeights(
  model: nn.Module & { numClasses: number },
  file: string,
  o: { freshHead?: boolean; strictFinite?: boolean } = {},
): WeightsReport {
  const sd = readWeights(file);
  try {
    const suspicious = suspiciousValues(sd);
    if (suspicious.length && o.strictFinite)
      throw new Error(`${file}: ${suspicious.join('; ')} (refused: --strict-finite)`);
    const r = model.loadStateDict(sd, { strict: false });
    // A model built without its auxiliary head (inference) ignores the checkpoint's aux keys.
    const modelKeys = model.stateDict();
    const hasAux = [...modelKeys.keys()].some((k) => AUX_PREFIXES.some((p) => k.startsWith(p)));
    const skippedAux = hasAux ? [] : r.unexpected.filter((k) => AUX_PREFIXES.some((p) => k.startsWith(p)));
    r.unexpected = r.unexpected.filter((k) => !skippedAux.includes(k));
    const head = r.mismatched.filter((m) => m.expected[0] === model.numClasses && m.got[0] !== model.numClasses);
    const other = r.mismatched.filter((m) => !head.includes(m));
    const allowedHead = o.freshHead ? head : [];
    if (r.missing.length || r.unexpected.length || other.length || head.length > allowedHead.length) {
      const result = {
        missing: r.missing,
        unexpected: r.unexpected,
        mismatched: r.mismatched.filter((m) => !allowedHead.includes(m)),
      };
      let msg = nn.describeLoadErrors(result, file);
      if (head.length && !o.freshHead) {
        msg +=
          `\nThe checkpoint's classifier has ${head[0].got[0]} classes and the model ${model.numClasses}: ` +
          `pass --num-classes ${head[0].got[0]} to use it as it is, or keep --num-classes ${model.numClasses} with a fresh head (freshHead).`;
      }
      throw new nn.StateDictError(msg, result.missing, result.unexpected, result.mismatched);
    }
    return {
      file,
      loaded: sd.size - allowedHead.length - skippedAux.length,
      freshHead: allowedHead.map((m) => m.key),
      skippedAux,
      suspicious,
    };
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}
