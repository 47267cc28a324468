// The inference fast path shared by the library API (load() -> Segmenter), `deeplab predict` and
// `deeplab eval`:
//  - inference mode: no autograd bookkeeping at all;
//  - batch norms folded into the convolutions before them (src/models/fold.ts);
//  - channels_last (NHWC) weights and input. oneDNN computes NCHW convolutions in a blocked
//    layout and reorders the input and output of every conv; on NHWC it runs directly.
//    Activations stay NHWC from the input to the head's small
//    logits, which resizeLogits makes NCHW fp32 before the final resize. The one convolution oneDNN runs
//    badly in NHWC (depthwise, dilation >= 8: DeepLabV3+'s separable ASPP) goes to our own kernel
//    (F.conv2d -> native/src/depthwise.cc), so every model takes this path;
//  - in fp32, convolutions prepacked for oneDNN with their activation and residual add fused in
//    (src/inference/fuse.ts, native/src/fused_conv.cc);
//  - optionally bf16 autocast (for CPUs with AVX512-BF16), logits back to fp32;
//  - or int8: the same packed convolutions with int8 weights and inputs quantized with calibrated
//    scales (src/inference/calibration.ts), on the CPU's VNNI instructions; fp32 in between.
// What each step gains is measured in bench/ (bench/README.md).
// A prepared model is for inference only (folding is not undone): train an unprepared one.
import * as torch from '../torch/index.js';
import type { Segmentor } from '../models/segmentor.js';
import { foldBatchNorm, type FoldReport } from '../models/fold.js';
import { fuseForInference, type FuseReport } from './fuse.js';
import type { Calibration } from './calibration.js';

export type Precision = 'fp32' | 'bf16' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'int8'];

/** How to run a model's forward pass. */
export interface InferenceSettings {
  precision: Precision;
  /** feed channels_last inputs (the layout the prepared model's weights are in) */
  channelsLast: boolean;
}

/** Plain eager fp32 NCHW: what a model that was not prepared is run with. */
export const PLAIN: InferenceSettings = { precision: 'fp32', channelsLast: false };

export interface PrepareOptions {
  /** fold batch norms and switch to channels_last (default true) */
  fast?: boolean;
  /** default 'fp32'; 'int8' needs `calibration` */
  precision?: Precision;
  /** int8: the calibrated input ranges (src/inference/calibration.ts) */
  calibration?: Calibration;
  /**
   * fp32 only: prepack the convolutions and fuse their activations and residual adds
   * (src/inference/fuse.ts; default true where the addon has the fused conv)
   */
  fuse?: boolean;
  /**
   * run foldBatchNorm's and fuseForInference's checks (a second traced forward with random statistics). Default true;
   * the presets pass false: test/models/fold.test.ts and test/inference/fused.test.ts check every one.
   */
  verifyFold?: boolean;
}

export interface Prepared {
  settings: InferenceSettings;
  /** the folding report (null when fast is off) */
  fold: FoldReport | null;
  /** the fusion report (null when fast or fuse is off, or in bf16) */
  fuse: FuseReport | null;
}

/**
 * Puts the model in eval mode and, when fast (the default), folds its batch norms and converts
 * its 4-D weights to channels_last, in place. Returns the settings to run it with.
 */
export function prepareForInference(model: Segmentor, o: PrepareOptions = {}): Prepared {
  const precision = o.precision ?? 'fp32';
  if (!PRECISIONS.includes(precision))
    throw new RangeError(`Expected precision to be one of ${PRECISIONS.join(', ')} but received "${precision}"`);
  model.eval();
  if (precision === 'int8') {
    if (!o.calibration)
      throw new Error('precision int8 needs a calibration (deeplab calibrate; load() reads <weights>.calib.json)');
    if (o.fast === false) throw new Error('precision int8 runs on the fast path only (fast: false was given)');
    if (!torch.packedConvAvailable())
      throw new Error('precision int8 needs the fused convolution, which this build of the addon lacks (libdnnl-dev)');
  }
  if (o.fast === false) return { settings: { precision, channelsLast: false }, fold: null, fuse: null };
  const fold = foldBatchNorm(model, { verify: o.verifyFold ?? true });
  model.to({ memoryFormat: 'channels_last' });
  const fuse =
    precision === 'int8'
      ? fuseForInference(model, { int8: o.calibration })
      : precision === 'fp32' && o.fuse !== false
        ? fuseForInference(model, { verify: o.verifyFold ?? true })
        : null;
  return { settings: { precision, channelsLast: true }, fold, fuse };
}

/**
 * The model's main logits for a batch, in inference mode under the settings: float32 and
 * contiguous (NCHW) whatever the precision and layout the network ran in.
 */
export function forwardLogits(model: Segmentor, x: torch.Tensor, s: InferenceSettings = PLAIN): torch.Tensor {
  return torch.scope(() =>
    torch.inferenceMode(() => {
      const input = s.channelsLast ? x.contiguous('channels_last') : x;
      const run = () => model.forward(input).out;
      const out =
        s.precision === 'bf16'
          ? torch.autocast(input.device.startsWith('cuda') ? 'cuda' : 'cpu', 'bfloat16', run)
          : run();
      return out.to('float32').contiguous();
    }),
  );
}
