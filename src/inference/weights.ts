// Loading a checkpoint into a model: .pth (torch.save, any nesting) or .safetensors, with the
// few named policies real checkpoints need, and errors that name the file and the keys.
import { existsSync } from 'node:fs';
import { type Tensor, nn, readCheckpoint, readSafetensors } from '../torch/index.js';

export interface WeightsReport {
  file: string;
  loaded: number;
  /** classifier keys left at their fresh initialisation (a new class count) */
  freshHead: string[];
  /** auxiliary-head keys of the checkpoint not loaded because the model has no aux head */
  skippedAux: string[];
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
export function loadWeights(model: nn.Module & { numClasses: number }, file: string, o: { freshHead?: boolean } = {}): WeightsReport {
  const sd = readWeights(file);
  try {
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
      const result = { missing: r.missing, unexpected: r.unexpected, mismatched: r.mismatched.filter((m) => !allowedHead.includes(m)) };
      let msg = nn.describeLoadErrors(result, file);
      if (head.length && !o.freshHead) {
        msg += `\nThe checkpoint's classifier has ${head[0].got[0]} classes and the model ${model.numClasses}: ` +
          `pass --num-classes ${head[0].got[0]} to use it as it is, or keep --num-classes ${model.numClasses} with a fresh head (freshHead).`;
      }
      throw new nn.StateDictError(msg, result.missing, result.unexpected, result.mismatched);
    }
    return { file, loaded: sd.size - allowedHead.length - skippedAux.length, freshHead: allowedHead.map((m) => m.key), skippedAux };
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}
