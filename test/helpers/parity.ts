// Shared by the model-parity tests (test/models/{torchvision,mmseg,v2_v3plus}.test.ts): a
// generated fixture (.cache/fixtures/NAME, from test/fixtures/gen/NAME.py) holds a manifest.json,
// raw float32 inputs and reference logits, and seeded checkpoints; these read them, build and load
// a preset, and compare our logits with the reference's.
//
//   const fx = parityFixture<Manifest>('torchvision');
//   const m = fx.manifest();
//   const model = fx.loaded<DeepLabV3>(name, m.presets[name].checkpoint);
//   t.diagnostic(torch.scope(() => fx.compareOutAux(model, fx.load(m.inputs[key]), m.presets[name].outputs[key], key)));
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../../src/torch/index.js';
import type { Checkpoint } from '../../src/torch/serialize/index.js';
import { findPreset } from '../../src/models/zoo.js';
import type { BuildOptions, OutputStride, Segmentor } from '../../src/models/segmentor.js';
import { generatedFixture } from './paths.js';

/** The largest absolute difference allowed between our logits and the reference's. */
export const TOL = 1e-4;

/** A raw little-endian float32 tensor of a generated fixture: its file and shape. */
export interface Entry {
  file: string;
  shape: number[];
}

/** The reference's main and auxiliary logits for one input. */
export interface OutAux {
  out: Entry;
  aux: Entry;
}

/**
 * A model of the torchvision and mmseg fixtures: its seeded checkpoint, the reference's logits
 * for each input, and (for some) its logits after switching to another output stride.
 */
export interface OutAuxModel {
  checkpoint: string;
  outputs: Record<string, OutAux>;
  switched?: { outputStride: OutputStride; rates: number[]; input: string } & OutAux;
}

/** max |a - b| over all elements, after asserting equal shapes (`what` names them in the message). */
export function maxAbsDiff(a: torch.Tensor, b: torch.Tensor, what = 'tensors'): number {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  return a.sub(b).abs().max().item();
}

/** A fresh preset (any source, by name), typed as the segmentor the caller knows it to be. */
export function buildPreset<T extends Segmentor = Segmentor>(name: string, o?: BuildOptions): T {
  return findPreset(name).build(o) as T;
}

/** One generated fixture's readers, bound to its name. M is the type of its manifest.json. */
export interface ParityFixture<M> {
  /** The fixture's manifest.json, parsed. */
  manifest(): M;
  /** The entry's raw float32 file as a tensor (owned by the enclosing scope). */
  load(e: Entry): torch.Tensor;
  /**
   * Preset `name`, built and put in eval mode, with the fixture's checkpoint `file` loaded
   * strictly; `check` sees the checkpoint before it is loaded. The model is the caller's to dispose
   * (it is disposed here when loading throws).
   */
  loaded<T extends Segmentor = Segmentor>(name: string, file: string, check?: (ckpt: Checkpoint) => void): T;
  /**
   * Runs `model` on `x` (inference mode) and asserts that it gives an aux output and that out and
   * aux are within TOL of the reference's; returns a line with both diffs for t.diagnostic.
   */
  compareOutAux(model: Segmentor, x: torch.Tensor, want: OutAux, what: string): string;
}

/** The readers of generated fixture `name` (.cache/fixtures/NAME; missing, it is an error). */
export function parityFixture<M>(name: string): ParityFixture<M> {
  const load = (e: Entry): torch.Tensor =>
    torch.tensor(readFileSync(generatedFixture(name, e.file)), { dtype: 'float32', shape: e.shape });
  return {
    manifest: () => JSON.parse(readFileSync(generatedFixture(name, 'manifest.json'), 'utf8')) as M,
    load,
    loaded<T extends Segmentor = Segmentor>(preset: string, file: string, check?: (ckpt: Checkpoint) => void): T {
      const model = buildPreset<T>(preset).eval();
      try {
        torch.scope(() => {
          const ckpt = torch.readCheckpoint(generatedFixture(name, file));
          check?.(ckpt);
          model.loadStateDict(ckpt.tensors, { strict: true, source: preset });
        });
      } catch (e) {
        model.dispose();
        throw e;
      }
      return model;
    },
    compareOutAux(model: Segmentor, x: torch.Tensor, want: OutAux, what: string): string {
      return torch.scope(() => {
        const got = torch.inferenceMode(() => model.forward(x));
        assert.ok(got.aux, `${what}: aux output`);
        const dOut = maxAbsDiff(got.out, load(want.out), `${what}: out`);
        const dAux = maxAbsDiff(got.aux, load(want.aux), `${what}: aux`);
        assert.ok(dOut <= TOL, `${what}: out max abs diff ${dOut.toExponential(3)} > ${TOL}`);
        assert.ok(dAux <= TOL, `${what}: aux max abs diff ${dAux.toExponential(3)} > ${TOL}`);
        return `${what}: out ${dOut.toExponential(2)}, aux ${dAux.toExponential(2)}`;
      });
    },
  };
}
