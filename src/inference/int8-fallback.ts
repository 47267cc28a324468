// Accuracy-driven int8 fallback: which convolutions stay fp32 because int8 costs the logits most
// there for the time it saves. Each calibrated conv runs int8 alone (its real packed int8 kernel,
// the rest of the model fp32) on a few calibration images; the logits' relative squared error
// against fp32 is its sensitivity. Convs are ranked by sensitivity per FLOP, and the shortest
// prefix of that ranking that, kept fp32, brings the measured error of the whole model (the rest
// int8) down by `keep` is kept fp32, within a budget of `maxFlops` of the FLOPs (time).
// onnxruntime's and Intel Neural Compressor's quantization tools call this mixed-precision
// fallback.
//
// Why: on seeded random weights, whose logits have small margins between classes, int8
// everywhere agreed with fp32 on 92-97% of pixels. The error is spread thin (seeded ResNet-50:
// no conv above 9% of it; weights and activations about equal parts), so no fixed list of layers
// fixes it (README, int8 section).
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { int8InputOf, logitsOf, withConvHook, type Calibration } from './calibration.js';
import { packConv } from './fuse.js';

/** Share of int8's logit error the fallback takes back by default... */
export const DEFAULT_KEEP = 0.8;
/** ...with at most this share of the convolution FLOPs kept fp32. */
export const DEFAULT_MAX_FLOPS = 0.1;

export interface FallbackResult {
  calibration: Calibration;
  /** convs the fallback kept fp32 */
  kept: string[];
  /** their share of the model's convolution FLOPs */
  flopShare: number;
  /** the logits' relative squared error on the images, all int8 and with the fallback */
  error: { int8: number; after: number };
}

/**
 * Measures each calibrated conv's int8 sensitivity on `inputs` (run through `run`, the model
 * prepared for fp32 inference) and returns the calibration with the most costly convs per FLOP
 * added to its fp32 list: as few as bring the logits' measured error down by the share `keep`
 * (0: none kept; 1: as many as it takes to reach fp32's logits), but no more than `maxFlops` of
 * the convolution FLOPs (then the most the budget allows).
 */
export function keepSensitiveFp32(
  model: nn.Module,
  calibration: Calibration,
  inputs: Tensor[],
  run: (x: Tensor) => unknown,
  keep = DEFAULT_KEEP,
  maxFlops = DEFAULT_MAX_FLOPS,
): FallbackResult {
  if (!(keep >= 0 && keep <= 1)) throw new Error(`int8 fallback: keep must be between 0 and 1, got ${keep}`);
  if (!(maxFlops >= 0 && maxFlops <= 1))
    throw new Error(`int8 fallback: maxFlops must be between 0 and 1, got ${maxFlops}`);
  if (keep === 0 || inputs.length === 0)
    return { calibration, kept: [], flopShare: 0, error: { int8: NaN, after: NaN } };
  if (!torch.packedConvAvailable())
    throw new Error('int8 fallback: this build of the addon has no fused convolution, so no int8 either');
  const convs = new Map<string, nn.Conv2d>();
  const flops = new Map<string, number>();
  const refs: Tensor[] = [];
  try {
    // The fp32 logits, and each conv's multiply-adds per image (x2), from one pass.
    withConvHook(
      model,
      (name, conv, _x, y) => {
        convs.set(name, conv);
        const [kh, kw] = conv.weight.shape.slice(2);
        flops.set(name, ((2 * y.numel) / y.shape[0]) * (conv.inChannels / conv.groups) * kh * kw);
      },
      () => {
        for (const x of inputs)
          refs.push(torch.scope(() => torch.inferenceMode(() => torch.keep(logitsOf(run(x))!.to('float32')))));
      },
    );
    // Each calibrated conv int8: packed once, swapped in and out of conv.packed.
    const fp32Packs = new Map<string, torch.PackedConv2d | null>();
    const int8Packs = new Map<string, torch.PackedConv2d>();
    const means: Tensor[] = [];
    const error = () => {
      let num = 0,
        den = 0;
      inputs.forEach((x, i) =>
        torch.scope(() =>
          torch.inferenceMode(() => {
            const out = logitsOf(run(x))!.to('float32');
            num += out.sub(refs[i]).pow(2).sum().item();
            den += refs[i].pow(2).sum().item();
          }),
        ),
      );
      return den > 0 ? num / den : 0;
    };
    const use = (int8: Set<string>) => {
      for (const [name, q] of int8Packs) convs.get(name)!.packed = int8.has(name) ? q : fp32Packs.get(name)!;
    };
    try {
      for (const [name, conv] of convs) {
        if (name in calibration.fp32 || !(name in calibration.convs)) continue;
        const spec = int8InputOf(calibration, name, conv)!;
        means.push(spec.inputMean);
        fp32Packs.set(name, conv.packed);
        int8Packs.set(name, packConv(conv, spec));
      }
      // Sensitivity: each conv int8 alone.
      const sensitivity = new Map<string, number>();
      for (const name of int8Packs.keys()) {
        use(new Set([name]));
        sensitivity.set(name, error());
      }
      // The most error per FLOP first; then the shortest prefix of that order kept fp32 whose
      // measured error (everything else int8) is within (1 - keep) of all-int8's. The singles'
      // sum is only an estimate (MobileNetV3's errors compound), so the prefix is searched by
      // measuring (binary search: the error falls, near enough monotonically, as convs are kept).
      const perFlop = (n: string) => sensitivity.get(n)! / Math.max(1, flops.get(n)!);
      const order = [...sensitivity.keys()].sort((a, b) => perFlop(b) - perFlop(a));
      const measureKeeping = (k: number) => {
        use(new Set(order.slice(k)));
        return error();
      };
      const all = measureKeeping(0);
      const target = (1 - keep) * all;
      // The time budget: at most `maxFlops` of the FLOPs go back to fp32. With fp32's 3x3s on
      // Winograd, all-int8 ResNet-50 took 0.38x of fp32's time here; 10% kept fp32 took 0.45x,
      // 20% 0.56x (README, int8 section).
      const allFlops = [...flops.values()].reduce((a, b) => a + b, 0);
      let [lo, hi] = [0, 0];
      for (let cum = 0; hi < order.length && cum + flops.get(order[hi])! <= maxFlops * allFlops; hi++)
        cum += flops.get(order[hi])!;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (measureKeeping(mid) <= target) hi = mid;
        else lo = mid + 1;
      }
      const after = measureKeeping(lo);
      const kept = order.slice(0, lo);

      const total = [...sensitivity.values()].reduce((a, b) => a + b, 0);
      const share = (v: number, of: number) => `${((100 * v) / Math.max(of, Number.MIN_VALUE)).toFixed(1)}%`;
      const fp32 = { ...calibration.fp32 };
      for (const name of kept)
        fp32[name] =
          `int8 fallback: ${share(sensitivity.get(name)!, total)} of the summed single-conv int8 error, ` +
          `${share(flops.get(name)!, allFlops)} of the FLOPs`;
      const keptFlops = kept.reduce((a, n) => a + flops.get(n)!, 0);
      const round = (v: number) => Number(v.toPrecision(4));
      return {
        calibration: {
          ...calibration,
          fp32,
          fallback: {
            keep,
            maxFlops,
            images: inputs.length,
            error: { int8: round(all), after: round(after) },
            sensitivity: Object.fromEntries([...sensitivity].map(([n, v]) => [n, round(v)])),
          },
        },
        kept,
        flopShare: allFlops > 0 ? keptFlops / allFlops : 0,
        error: { int8: all, after },
      };
    } finally {
      for (const [name, q] of int8Packs) {
        convs.get(name)!.packed = fp32Packs.get(name)!;
        q.dispose();
      }
      means.forEach((t) => t.dispose());
    }
  } finally {
    refs.forEach((t) => t.dispose());
  }
}
