// Calibration for int8 inference (post-training static quantization): the range of every
// convolution's input over a few representative images, and the policy of which convolutions
// stay fp32. Saved as JSON beside the weights (`<weights>.calib.json`, calibrationPathFor) by
// `deeplab calibrate`; read back by load(..., { precision: 'int8' }).
//
// Observer: min/max of each conv's input over all calibration images (quantized u8, affine:
// affineU8; clipping the range at the 99.99th or 99.9th percentile lost agreement on the
// presets), and the mean of each input channel, for bias correction. Weights are quantized per
// output channel, symmetric, when the model is packed; the bias absorbs the mean shift that
// rounding them causes (native/src/fused_conv.cc).
// Kept fp32 (they lose accuracy, or gain nothing): the stem (fewer than 16 input channels), any
// conv whose input is a 1x1 map (the image-pooling branch) and the classifier (the last conv the
// forward runs, whose output has the logits' channels); then those the accuracy-driven fallback
// picks (src/inference/int8-fallback.ts, run by `deeplab calibrate` after this).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';

export const CALIBRATION_FORMAT = 'deeplab-int8-calibration';

const RangeSchema = z
  .strictObject({ min: z.number(), max: z.number(), mean: z.array(z.number()).min(1) })
  .refine((r) => r.min <= r.max, { message: 'min must not exceed max' });
const CalibrationSchema = z.strictObject({
  format: z.literal(CALIBRATION_FORMAT),
  version: z.literal(1),
  preset: z.string().min(1),
  images: z.number().int().positive(),
  observer: z.literal('minmax'),
  /** input range per quantized conv, by module name */
  convs: z.record(z.string(), RangeSchema),
  /** convs kept fp32, by module name, with the reason */
  fp32: z.record(z.string(), z.string()),
  /** the accuracy-driven fallback that chose some of fp32 (src/inference/int8-fallback.ts) */
  fallback: z
    .strictObject({
      keep: z.number().min(0).max(1),
      maxFlops: z.number().min(0).max(1),
      images: z.number().int().positive(),
      /** the logits' relative squared error on those images: all calibrated convs int8, and with the fallback */
      error: z.strictObject({ int8: z.number().nonnegative(), after: z.number().nonnegative() }),
      /** each conv's logit error run int8 alone: sum |int8 - fp32|^2 / sum |fp32|^2 */
      sensitivity: z.record(z.string(), z.number().nonnegative()),
    })
    .optional(),
});
export type Calibration = z.infer<typeof CalibrationSchema>;

/** Where load() looks for a checkpoint's calibration unless told otherwise. */
export function calibrationPathFor(weights: string): string {
  return `${weights}.calib.json`;
}

/**
 * The u8 quantization of a range, affine as PyTorch's quint8 observers make it: the range is
 * widened to hold 0, scale = (max - min) / 255, and the zero point (0-255) is where 0 lands, so
 * 0 (the convs' zero padding, a ReLU's floor) is represented exactly. A never-negative input gets
 * zero point 0 and scale max / 255; a hardswish output ([-0.375, max]) keeps nearly all 256
 * steps for its positive side, where a symmetric s8 scale (max / 127) had half as many.
 */
export function affineU8(min: number, max: number): { scale: number; zeroPoint: number } {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  // An input that is all zeros on the calibration images: any positive scale represents it.
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = (hi - lo) / 255;
  return { scale, zeroPoint: lo < 0 ? Math.min(255, Math.round(-lo / scale)) : 0 };
}

/** The conv's int8 input spec from its calibrated range (null: kept fp32 or not calibrated). */
export function int8InputOf(
  c: Calibration,
  name: string,
  conv: nn.Conv2d,
): { inputScale: number; zeroPoint: number; inputMean: Tensor } | null {
  const r = c.convs[name];
  if (!r || name in c.fp32) return null;
  if (r.mean.length !== conv.inChannels)
    throw new Error(
      `int8 calibration: convs.${name}.mean has ${r.mean.length} channels, the model's conv ${conv.inChannels}: the calibration is for another model`,
    );
  const { scale, zeroPoint } = affineU8(r.min, r.max);
  return { inputScale: scale, zeroPoint, inputMean: torch.tensor(Float32Array.from(r.mean)) };
}

/**
 * Runs each batch through the model (eval, fp32; prepared or not) and records every Conv2d's
 * input range. `run` runs the model on one input (default model.forward(x)). `peaks`, when
 * given, receives each conv's max |x| batch by batch (for rangeOutliers).
 */
export function calibrate(
  model: nn.Module,
  preset: string,
  batches: Iterable<Tensor>,
  run: (x: Tensor) => unknown = (x) => (model as unknown as { forward(x: Tensor): unknown }).forward(x),
  peaks?: Map<string, number[]>,
): Calibration {
  const ranges = new Map<string, { min: number; max: number; sum: Float64Array }>();
  const fp32: Record<string, string> = {};
  let images = 0;
  let batch = 0;
  let lastConv: { name: string; outChannels: number } | null = null;
  withConvHook(
    model,
    (name, conv, x) => {
      const [lo, hi, mean] = torch.scope(
        () =>
          [x.min().item(), x.max().item(), x.to('float64').mean([0, 2, 3]).data()] as [number, number, Float64Array],
      );
      const r = ranges.get(name) ?? { min: lo, max: hi, sum: new Float64Array(mean.length) };
      r.min = Math.min(r.min, lo);
      r.max = Math.max(r.max, hi);
      for (let i = 0; i < mean.length; i++) r.sum[i] += mean[i] * x.shape[0];
      ranges.set(name, r);
      if (peaks) {
        const p = peaks.get(name) ?? [];
        p[batch] = Math.max(p[batch] ?? 0, -lo, hi);
        peaks.set(name, p);
      }
      if (x.shape[2] === 1 && x.shape[3] === 1) fp32[name] ??= 'image pooling (a 1x1 input)';
      if (conv.inChannels < 16) fp32[name] ??= `the stem (${conv.inChannels} input channels)`;
      lastConv = { name, outChannels: conv.outChannels };
    },
    () => {
      for (const x of batches) {
        torch.scope(() =>
          torch.inferenceMode(() => {
            lastConv = null;
            const logits = logitsOf(run(x));
            const last = lastConv as { name: string; outChannels: number } | null;
            if (last && logits && logits.shape[1] === last.outChannels) fp32[last.name] ??= 'the classifier';
          }),
        );
        images += x.shape[0];
        batch++;
      }
    },
  );
  if (images === 0) throw new Error('calibrate: no images to calibrate on');
  return {
    format: CALIBRATION_FORMAT,
    version: 1,
    preset,
    images,
    observer: 'minmax',
    convs: Object.fromEntries(
      [...ranges].map(([name, r]) => [
        name,
        { min: r.min, max: r.max, mean: Array.from(r.sum, (v) => Number((v / images).toPrecision(6))) },
      ]),
    ),
    fp32,
  };
}

export interface RangeOutlier {
  /** the batch (the image, one a batch) */
  index: number;
  /** how many convs' ranges it widens past `factor` times the median image's peak */
  convs: number;
  /** the conv where it does most, and by how much */
  worst: { conv: string; ratio: number };
}

/**
 * The calibration images that set ranges far beyond what the others need: for each conv the
 * calibration quantizes (not the ones it keeps fp32), an image's max |x| against the median of all
 * images' (3 images or more). min/max ranges follow the
 * largest, so the others' activations then fall into a few of the 256 steps: the seeded
 * MobileNetV3 fixture on one demo scene in twenty gives logits 250x the others', and calibrated
 * with that scene int8 agreed with fp32 on 2% of the other scenes' pixels (bench/int8-agreement.ts).
 */
export function rangeOutliers(peaks: Map<string, number[]>, c: Calibration, factor = 10): RangeOutlier[] {
  const found = new Map<number, RangeOutlier>();
  for (const [conv, p] of peaks) {
    if (p.length < 3 || !(conv in c.convs) || conv in c.fp32) continue;
    const sorted = [...p].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)];
    if (!(median > 0)) continue;
    p.forEach((v, index) => {
      const ratio = v / median;
      if (!(ratio > factor)) return;
      const o = found.get(index) ?? { index, convs: 0, worst: { conv, ratio } };
      o.convs++;
      if (ratio > o.worst.ratio) o.worst = { conv, ratio };
      found.set(index, o);
    });
  }
  return [...found.values()].sort((a, b) => b.worst.ratio - a.worst.ratio);
}

/** The logits in what a run returns (a tensor, or { out }). */
export function logitsOf(out: unknown): Tensor | undefined {
  return out instanceof torch.Tensor ? out : (out as { out?: Tensor } | null)?.out;
}

/**
 * Runs fn with `seen(name, conv, input, output)` called after every Conv2d's forward (each conv
 * under its first name); the convs are restored after, whatever fn does.
 */
export function withConvHook<T>(
  model: nn.Module,
  seen: (name: string, conv: nn.Conv2d, x: Tensor, y: Tensor) => void,
  fn: () => T,
): T {
  const names = new Map<nn.Conv2d, string>();
  for (const [name, m] of model.namedModules()) if (m instanceof nn.Conv2d && !names.has(m)) names.set(m, name);
  const saved: nn.Conv2d[] = [];
  try {
    for (const [conv, name] of names) {
      const orig = conv.forwardAdd.bind(conv);
      Object.defineProperty(conv, 'forwardAdd', {
        configurable: true,
        writable: true,
        value: (x: Tensor, residual: Tensor | null, inPlace?: boolean) => {
          const y = orig(x, residual, inPlace);
          seen(name, conv, x, y);
          return y;
        },
      });
      saved.push(conv);
    }
    return fn();
  } finally {
    for (const conv of saved) delete (conv as unknown as { forwardAdd?: unknown }).forwardAdd;
  }
}

/** Writes the calibration (via a temporary file, so a failed write leaves the old one intact). */
export function saveCalibration(file: string, c: Calibration): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(c, null, 1) + '\n');
  renameSync(tmp, file);
}

/** Reads and checks a calibration file; errors name the file and the bad field. */
export function loadCalibration(file: string, preset?: string): Calibration {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT')
      throw new Error(
        `int8 calibration file ${file} does not exist: run \`deeplab calibrate --model PRESET --weights FILE --images DIR\` first`,
      );
    throw new Error(`int8 calibration file ${file} is not valid JSON: ${err.message}`);
  }
  const r = CalibrationSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(
      `int8 calibration file ${file}: ${issue.path.length ? `field "${issue.path.join('.')}"` : 'the file'}: ${issue.message}`,
    );
  }
  if (preset && r.data.preset !== preset)
    throw new Error(`int8 calibration file ${file} is for preset "${r.data.preset}", not "${preset}"`);
  return r.data;
}
