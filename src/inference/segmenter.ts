// A loaded model with its palette, segmenting decoded images: what load() returns and what
// `deeplab predict` and the demo's sample pictures run.
import * as torch from '../torch/index.js';
import type { Preset, Segmentor } from '../models/segmentor.js';
import type { WeightsReport } from './weights.js';
import type { InferenceSettings } from './fast-path.js';
import { logitsAtScale } from './scaled.js';
import { colorize, fromRawPixels, readImage, type RawPixels, type RgbImage } from '../data/image.js';
import type { Palette } from '../data/palettes.js';
import { legendOf, type LegendEntry } from './legend.js';

export type { LegendEntry } from './legend.js';

export interface SegmentOptions {
  /** also return softmax probabilities, C x H x W */
  probabilities?: boolean;
  /** also return the raw logits, C x H x W */
  logits?: boolean;
  /** also return the colourised mask (H x W x 3 RGB) */
  colorMask?: boolean;
  /**
   * run the model on the image resized by this factor (default 1), for weights trained on
   * resized images; labels, probabilities and logits still come at the image's size
   */
  scale?: number;
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
    /** how the model runs: precision and input layout (see inference/fast-path.ts) */
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
        const out = logitsAtScale(
          this.model,
          { n: 1, width: img.width, height: img.height, pixels: img.data },
          this.preset.normalization,
          this.settings,
          o.scale ?? 1,
        );
        const lab = out.argmax(1).to(n <= 256 ? 'uint8' : 'int32');
        const l = lab.data();
        return {
          labels: n <= 256 ? (l as Uint8Array) : Uint16Array.from(l as Int32Array),
          probs: o.probabilities ? (torch.F.softmax(out, 1).data() as Float32Array) : undefined,
          logits: o.logits ? (out.data() as Float32Array) : undefined,
        };
      }),
    );
    return {
      width: img.width,
      height: img.height,
      numClasses: n,
      labels,
      probabilities: probs,
      logits,
      colorMask: o.colorMask ? colorize(labels, this.palette.colors) : undefined,
      legend: legendOf(labels, n, this.palette),
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
