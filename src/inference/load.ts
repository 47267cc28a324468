// A preset built for inference: no auxiliary head, its weights loaded with the checkpoint
// policies of weights.ts, and prepared for the fast path. The one way the library's load(),
// `deeplab predict`, `deeplab eval` and the demo build a model to run.
import * as torch from '../torch/index.js';
import { findPreset } from '../models/zoo.js';
import type { OutputStride, Preset, Segmentor } from '../models/segmentor.js';
import { loadWeights, type WeightsReport } from './weights.js';
import { prepareForInference, type InferenceSettings, type Precision } from './fast-path.js';
import { calibrationPathFor, loadCalibration, type Calibration } from './calibration.js';

export interface InferenceModelOptions {
  /** a .pth (torch.save) or .safetensors checkpoint in the preset's own key layout */
  weights?: string;
  /** classes of the model (default: the preset's) */
  numClasses?: number;
  /** a checkpoint whose classifier has another class count keeps a fresh classifier instead of failing */
  freshHead?: boolean;
  /** refuse a checkpoint with NaN/Inf weights or negative BatchNorm variances (default: load it, report.suspicious says so) */
  strictFinite?: boolean;
  outputStride?: OutputStride;
  /** the heads' and the logits' bilinear resizes (mmseg's 769x769 configs set it true) */
  alignCorners?: boolean;
  /** fold batch norms and run channels_last (default true); false keeps a plain eager model */
  fast?: boolean;
  precision?: Precision;
  /** int8: the calibration file (default `<weights>.calib.json`, written by `deeplab calibrate`) */
  calibration?: string;
}

export interface InferenceModel {
  preset: Preset;
  model: Segmentor;
  /** how to run it (forwardLogits' settings) */
  settings: InferenceSettings;
  weights: WeightsReport | null;
}

export function loadForInference(presetName: string, o: InferenceModelOptions = {}): InferenceModel {
  const preset = findPreset(presetName);
  // No auxiliary head: it is for training only, and torchvision's forward would compute it.
  // The random initial weights are drawn only where the checkpoint does not overwrite them (a
  // fresh head), or for all of them without one.
  const { value: model, init } = torch.nn.init.deferRandomInit(() =>
    preset.build({ numClasses: o.numClasses, outputStride: o.outputStride, alignCorners: o.alignCorners, aux: false }),
  );
  try {
    let weights: WeightsReport | null = null;
    if (o.weights) {
      weights = loadWeights(model, o.weights, { freshHead: o.freshHead, strictFinite: o.strictFinite });
      const own = model.stateDict();
      init(new Set(weights.freshHead.map((k) => own.get(k)!)));
    } else {
      init();
    }
    // The presets' folding is checked by the test suite (test/models/fold.test.ts), not at each load.
    let calibration: Calibration | undefined;
    if (o.precision === 'int8') {
      const file = o.calibration ?? (o.weights ? calibrationPathFor(o.weights) : null);
      if (!file)
        throw new Error(
          'precision int8 needs a calibration file: pass weights (their <weights>.calib.json is read) or calibration',
        );
      calibration = loadCalibration(file, preset.name);
    }
    const { settings } = prepareForInference(model, {
      fast: o.fast,
      precision: o.precision,
      calibration,
      verifyFold: false,
    });
    return { preset, model, settings, weights };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
