// The library API: load a preset (with weights), then segment images, Buffers or raw pixels at
// full resolution. The ergonomics of TensorFlow.js's DeepLab package (load, then segment),
// for any preset and without its 513-pixel limit.
import * as torch from './torch/index.js';
import { findPreset } from './models/zoo.js';
import type { OutputStride, Preset, Segmentor } from './models/segmentor.js';
import { loadWeights, type WeightsReport } from './engine/weights.js';
import { toInputTensor } from './engine/preprocess.js';
import { forwardLogits, prepareForInference, type InferenceSettings, type Precision } from './engine/fast-path.js';
import { colorize, fromRawPixels, readImage, type RawPixels, type RgbImage } from './data/image.js';
import { paletteFor, type Palette, type PaletteName, type RGB } from './data/palettes.js';

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
  /** 'bf16' runs the network under bfloat16 autocast (about 2x faster on CPUs with AVX512-BF16; logits agree to about 1%); default 'fp32' */
  precision?: Precision;
}

export interface SegmentOptions {
  /** also return softmax probabilities, C x H x W */
  probabilities?: boolean;
  /** also return the raw logits, C x H x W */
  logits?: boolean;
  /** also return the colourised mask (H x W x 3 RGB) */
  colorMask?: boolean;
}

export interface LegendEntry {
  id: number;
  name: string;
  color: RGB;
  /** pixels labelled with this class */
  pixels: number;
}

export interface Segmentation {
  width: number;
  height: number;
  numClasses: number;
  /** H x W class indices (Uint16Array when there are more than 256 classes) */
  labels: Uint8Array | Uint16Array;
  probabilities?: Float32Array;
  logits?: Float32Array;
  colorMask?: Uint8Array;
  /** the classes present, most pixels first */
  legend: LegendEntry[];
}

export type ImageInput = string | Buffer | RawPixels | RgbImage;

export class Segmenter {
  constructor(
    readonly preset: Preset,
    readonly model: Segmentor,
    readonly palette: Palette,
    readonly weights: WeightsReport | null,
    /** how the model runs: precision and input layout (see engine/fast-path.ts) */
    readonly settings: InferenceSettings = { precision: 'fp32', channelsLast: false },
  ) {}

  get numClasses(): number {
    return this.model.numClasses;
  }

  /** Decodes the input (when it is a file or an encoded Buffer) and segments it. */
  async segment(input: ImageInput, o: SegmentOptions = {}): Promise<Segmentation> {
    const img = await toRgb(input);
    return this.segmentImage(img, o);
  }

  /** Segments decoded RGB pixels; synchronous (runs on this thread). */
  segmentImage(img: RgbImage, o: SegmentOptions = {}): Segmentation {
    const n = this.model.numClasses;
    const { labels, probs, logits } = torch.scope(() =>
      torch.inferenceMode(() => {
        const x = toInputTensor(img, this.preset.normalization, this.settings.channelsLast ? 'channels_last' : 'contiguous');
        const out = forwardLogits(this.model, x, this.settings);
        const lab = out.argmax(1).to(n <= 256 ? 'uint8' : 'int32');
        const l = lab.data();
        return {
          labels: n <= 256 ? (l as Uint8Array) : Uint16Array.from(l as Int32Array),
          probs: o.probabilities ? (torch.F.softmax(out, 1).data() as Float32Array) : undefined,
          logits: o.logits ? (out.data() as Float32Array) : undefined,
        };
      }),
    );
    // A typed-array histogram: a Map here cost ~4 ms per 512x512 image.
    const counts = new Float64Array(n);
    for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
    const legend = [...counts.keys()]
      .filter((id) => counts[id] > 0)
      .sort((a, b) => counts[b] - counts[a] || a - b)
      .map((id) => ({ id, name: this.palette.classes[id], color: this.palette.colors[id], pixels: counts[id] }));
    return {
      width: img.width,
      height: img.height,
      numClasses: n,
      labels,
      probabilities: probs,
      logits,
      colorMask: o.colorMask ? colorize(labels, this.palette.colors) : undefined,
      legend,
    };
  }

  dispose(): void {
    this.model.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

async function toRgb(input: ImageInput): Promise<RgbImage> {
  if (typeof input === 'string' || Buffer.isBuffer(input)) return readImage(input);
  if ('channels' in input) return fromRawPixels(input);
  return input;
}

/**
 * Builds a preset, loads its weights if given, and returns a ready Segmenter: eval mode and, unless
 * `fast: false`, prepared for inference (folded batch norms, channels_last).
 */
export async function load(presetName: string, o: LoadOptions = {}): Promise<Segmenter> {
  const preset = findPreset(presetName);
  // No auxiliary head: it is for training only, and torchvision's forward would compute it.
  // The random initial weights are drawn only where the checkpoint does not overwrite them (a
  // fresh head), or for all of them without one: ResNet-50 builds in ~130 instead of ~220 ms.
  const { value: model, init } = torch.nn.init.deferRandomInit(() => preset.build({ numClasses: o.numClasses, outputStride: o.outputStride, aux: false }));
  let report: WeightsReport | null = null;
  let settings: InferenceSettings;
  try {
    if (o.weights) {
      report = loadWeights(model, o.weights, { freshHead: o.numClasses !== undefined && o.numClasses !== preset.numClasses });
      const own = model.stateDict();
      init(new Set(report.freshHead.map((k) => own.get(k)!)));
    } else {
      init();
    }
    settings = prepareForInference(model, { fast: o.fast, precision: o.precision, verifyFold: false }).settings;
  } catch (e) {
    model.dispose();
    throw e;
  }
  const palette = paletteFor(o.palette ?? (preset.dataset in PALETTE_OF_DATASET ? PALETTE_OF_DATASET[preset.dataset] : undefined), model.numClasses);
  return new Segmenter(preset, model, palette, report, settings);
}

const PALETTE_OF_DATASET: Record<string, PaletteName> = { voc: 'voc', cityscapes: 'cityscapes', ade20k: 'ade20k' };
