// The library API: load a preset (with weights), then segment images, Buffers or raw pixels at
// full resolution. The ergonomics of TensorFlow.js's DeepLab package (load, then segment),
// for any preset and without its 513-pixel limit.
import type { OutputStride } from './models/segmentor.js';
import type { Precision } from './inference/fast-path.js';
import { loadForInference } from './inference/load.js';
import { findPreset } from './models/zoo.js';
import { Segmenter } from './inference/segmenter.js';
import { paletteFor, paletteOfDataset, type Palette, type PaletteName } from './data/palettes.js';

export {
  Segmenter,
  type SegmentOptions,
  type Segmentation,
  type LegendEntry,
  type ImageInput,
} from './inference/segmenter.js';

export interface LoadOptions {
  /** a .pth (torch.save) or .safetensors checkpoint in the preset's own key layout */
  weights?: string;
  /** classes of the model; a checkpoint with another count keeps a fresh classifier */
  numClasses?: number;
  outputStride?: OutputStride;
  /**
   * colours and names for the legend: a dataset's name, or your own classes (e.g. from a custom
   * dataset's meta file: `{ name, classes, colors }`); default: the preset's dataset
   */
  palette?: PaletteName | Palette;
  /**
   * The inference fast path (default true): batch norms folded into the convolutions and
   * channels_last weights and inputs. The model is then for inference only; pass false to get a
   * plain model you can train or fine-tune (segmenter.model).
   */
  fast?: boolean;
  /** refuse a checkpoint with NaN/Inf weights or negative BatchNorm variances (default: load it; segmenter.weights.suspicious names them) */
  strictFinite?: boolean;
  /** 'bf16' runs the network under bfloat16 autocast (faster on CPUs with AVX512-BF16; logits agree to about 1%); 'int8' needs a calibration; default 'fp32' */
  precision?: Precision;
  /**
   * precision 'int8' (post-training static quantization on the CPU's VNNI instructions): the
   * calibration file `deeplab calibrate` wrote; default `<weights>.calib.json`
   */
  calibration?: string;
}

/**
 * Builds a preset, loads its weights if given, and returns a ready Segmenter: eval mode and, unless
 * `fast: false`, prepared for inference (folded batch norms, channels_last).
 */
export async function load(presetName: string, o: LoadOptions = {}): Promise<Segmenter> {
  const { preset, model, settings, weights } = loadForInference(presetName, {
    weights: o.weights,
    numClasses: o.numClasses,
    // A class count of the user's own keeps a fresh classifier; the preset's own count must match the checkpoint.
    freshHead: o.numClasses !== undefined && o.numClasses !== findPreset(presetName).numClasses,
    outputStride: o.outputStride,
    fast: o.fast,
    precision: o.precision,
    calibration: o.calibration,
    strictFinite: o.strictFinite,
  });
  const palette = paletteFor(o.palette ?? paletteOfDataset(preset.dataset), model.numClasses);
  return new Segmenter(preset, model, palette, weights, settings);
}
