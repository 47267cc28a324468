// Running exported ONNX models in onnxruntime-node and comparing them with our forward.
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import * as torch from '../../src/torch/index.js';
import { loadForInference } from '../../src/inference/load.js';
import { forwardLogits } from '../../src/inference/fast-path.js';
import { exportOnnx } from '../../src/export/export.js';

// Small forwards: one thread each for LibTorch and ORT wastes no time waiting on a busy machine.
// ORT runs the graph as written (no fusions: they would test ORT, and cost seconds per session
// on the ResNet-101 presets).
export const SESSION: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'disabled',
};

/** fp32: max |ORT - ours| over max |ours| (the logit scale) */
export const FP32_TOL = 1e-4;
/** fp16 weights and activations: 2.5e-4 to 1.2e-3 measured; 1e-2 of the logit scale */
export const FP16_TOL = 1e-2;

export async function runOrt(session: ort.InferenceSession, x: torch.Tensor): Promise<ort.Tensor> {
  const r = await session.run({ input: new ort.Tensor('float32', x.data() as Float32Array, x.shape) });
  return r.logits;
}

/** max |ours - theirs| / max |ours|, after checking the shapes match */
export function relativeError(ours: torch.Tensor, theirs: ort.Tensor): number {
  assert.deepEqual([...theirs.dims], ours.shape);
  const a = ours.data() as Float32Array;
  const b = theirs.data as Float32Array;
  let diff = 0,
    scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  assert.ok(scale > 0 && Number.isFinite(diff), 'logits are finite and not all zero');
  return diff / scale;
}

/** A preset with seeded random weights, plain eager (as exportPresetOnnx loads it). */
export function seeded(preset: string, o: { alignCorners?: boolean } = {}) {
  torch.manualSeed(0);
  return loadForInference(preset, { fast: false, ...o }).model;
}

/** Exports a preset at a small fixed size and returns ORT's error against our forward. */
export async function staticExportError(preset: string): Promise<number> {
  const model = seeded(preset);
  const e = exportOnnx(model, { size: [49, 65], name: preset });
  try {
    assert.equal(e.onnxOperators.BatchNormalization, undefined, 'batch norms folded');
    const session = await ort.InferenceSession.create(e.bytes, SESSION);
    const err = relativeError(e.logits, await runOrt(session, e.input));
    await session.release();
    return err;
  } finally {
    e.logits.dispose();
    e.input.dispose();
    model.dispose();
  }
}

/** Exports a preset with dynamic sizes and returns ORT's error against our forward at each shape. */
export async function dynamicExportErrors(
  preset: string,
  o: { alignCorners?: boolean },
  shapes: number[][],
): Promise<number[]> {
  const model = seeded(preset, o);
  try {
    const e = exportOnnx(model, { dynamic: true, name: preset });
    e.logits.dispose();
    e.input.dispose();
    const session = await ort.InferenceSession.create(e.bytes, SESSION);
    assert.deepEqual(session.inputNames, ['input']);
    const errors: number[] = [];
    for (const shape of shapes) {
      const x = torch.randn(shape);
      const ours = forwardLogits(model, x);
      errors.push(relativeError(ours, await runOrt(session, x)));
      x.dispose();
      ours.dispose();
    }
    await session.release();
    return errors;
  } finally {
    model.dispose();
  }
}
