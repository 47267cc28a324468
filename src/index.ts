// deeplab: the DeepLab family on LibTorch, for TypeScript.
export {
  load,
  Segmenter,
  type LoadOptions,
  type SegmentOptions,
  type Segmentation,
  type LegendEntry,
  type ImageInput,
} from './api.js';
export { PRESETS, findPreset, buildModel } from './models/zoo.js';
export {
  Segmentor,
  type Preset,
  type BuildOptions,
  type Normalization,
  type OutputStride,
  type SegmentationOutput,
} from './models/segmentor.js';
export { countFlops } from './models/flops.js';
export { loadWeights, readWeights, type WeightsReport } from './inference/weights.js';
export { toInputTensor } from './data/to-tensor.js';
export {
  prepareForInference,
  forwardLogits,
  type InferenceSettings,
  type Precision,
  type PrepareOptions,
} from './inference/fast-path.js';
export { foldBatchNorm, isFolded, type FoldOptions, type FoldReport } from './models/fold.js';
export {
  exportOnnx,
  exportPresetOnnx,
  writeOnnxFile,
  type OnnxExport,
  type OnnxExportOptions,
  type PresetExportOptions,
} from './export/export.js';
export {
  readImage,
  writeLabelPng,
  writeRgb,
  colorize,
  overlay,
  ImageError,
  type RgbImage,
  type RawPixels,
} from './data/image.js';
export { PALETTES, paletteFor, type Palette, type PaletteName, type RGB } from './data/palettes.js';
export { writeNpy, encodeNpy } from './data/npy.js';
export * as torch from './torch/index.js';
