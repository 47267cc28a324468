// `deeplab calibrate --model PRESET --weights FILE --images DIR`: the int8 calibration (each
// convolution's input range and channel means over a few representative images, at their own
// size), written beside the weights as <weights>.calib.json, where load(..., { precision: 'int8' })
// and `deeplab predict --precision int8` look for it.
import { Command } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { load } from '../api.js';
import { readImage } from '../data/image.js';
import { toInputTensor } from '../data/to-tensor.js';
import { forwardLogits } from '../inference/fast-path.js';
import { calibrate, calibrationPathFor, rangeOutliers, saveCalibration } from '../inference/calibration.js';
import { DEFAULT_KEEP, DEFAULT_MAX_FLOPS, keepSensitiveFp32 } from '../inference/int8-fallback.js';
import { parseIntOption, parseOutputStride, parseShareOption } from './options.js';
import type { OutputStride } from '../models/backbone.js';
import { packedConvAvailable, type Tensor } from '../torch/index.js';

const IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff']);

/** The first `count` images of a folder, by name. */
export function calibrationImages(dir: string, count: number): string[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error(`--images ${dir} is not a folder`);
    names = readdirSync(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code === 'ENOENT' ? `--images ${dir} does not exist` : err.message);
  }
  const files = names
    .filter((f) => IMAGE_EXTS.has(extname(f).toLowerCase()))
    .sort()
    .slice(0, count)
    .map((f) => join(dir, f));
  if (!files.length) throw new Error(`--images ${dir} holds no JPEG, PNG, WebP or TIFF images`);
  return files;
}

export function calibrateCommand(): Command {
  return new Command('calibrate')
    .description('calibrate int8 inference on a few representative images: writes <weights>.calib.json')
    .requiredOption('-m, --model <preset>', 'model preset (see `deeplab models`)')
    .option('-w, --weights <file>', ".pth or .safetensors checkpoint in the preset's key layout")
    .option('--num-classes <n>', "classes of the checkpoint (default: the preset's)", parseIntOption)
    .option(
      '--os <stride>',
      "output stride 8, 16 or 32, as predict and eval will run it (default: the preset's)",
      parseOutputStride,
    )
    .requiredOption('--images <dir>', 'a folder of representative images (JPEG, PNG, WebP, TIFF)')
    .option('--count <n>', 'images to use, the first by name', parseIntOption, 16)
    .option(
      '--keep-fp32 <share>',
      "keep fp32 the convs that cost int8 the most logit error per FLOP, as few as take this share of int8's error back (0: none)",
      parseShareOption,
      DEFAULT_KEEP,
    )
    .option(
      '--max-fp32-flops <share>',
      "the fallback's budget: at most this share of the convolution FLOPs kept fp32",
      parseShareOption,
      DEFAULT_MAX_FLOPS,
    )
    .option('--fallback-images <n>', 'images (the first) the fp32 fallback measures the error on', parseIntOption, 2)
    .option('-o, --out <file>', 'where to write it (default: <weights>.calib.json; required without --weights)')
    .action(
      async (o: {
        model: string;
        weights?: string;
        numClasses?: number;
        os?: OutputStride;
        images: string;
        count: number;
        keepFp32: number;
        maxFp32Flops: number;
        fallbackImages: number;
        out?: string;
      }) => {
        const out = o.out ?? (o.weights ? calibrationPathFor(o.weights) : null);
        if (!out) throw new Error('calibrate: give --out FILE when there are no --weights to write it beside');
        const files = calibrationImages(o.images, o.count);
        const seg = await load(o.model, {
          weights: o.weights,
          numClasses: o.numClasses,
          outputStride: o.os,
          precision: 'fp32',
        });
        try {
          const decoded = await Promise.all(files.map((f) => readImage(f)));
          const norm = seg.preset.normalization;
          function* batches(): Generator<Tensor> {
            for (const img of decoded) {
              const x = toInputTensor(img, norm, 'channels_last');
              try {
                yield x;
              } finally {
                x.dispose();
              }
            }
          }
          const run = (x: Tensor) => forwardLogits(seg.model, x, seg.settings);
          const peaks = new Map<string, number[]>();
          const ranges = calibrate(seg.model, seg.preset.name, batches(), run, peaks);
          for (const o of rangeOutliers(peaks, ranges))
            console.warn(
              `calibrate: warning: ${files[o.index]} widens the input range of ${o.convs} convs past 10x what the median image needs ` +
                `(${o.worst.conv}: ${o.worst.ratio.toFixed(0)}x), so int8 steps get that much coarser for the other images; ` +
                'leave it out unless the images you will segment look like it',
            );
          // Without the fused convolution there is no int8 kernel to measure (nor to run later).
          const keep = packedConvAvailable() ? o.keepFp32 : 0;
          const probe = decoded.slice(0, o.fallbackImages).map((img) => toInputTensor(img, norm, 'channels_last'));
          let fallback;
          try {
            fallback = keepSensitiveFp32(seg.model, ranges, probe, run, keep, o.maxFp32Flops);
          } finally {
            probe.forEach((x) => x.dispose());
          }
          const c = fallback.calibration;
          saveCalibration(out, c);
          const policy = Object.entries(c.fp32)
            .filter(([name]) => !fallback.kept.includes(name))
            .map(([name, why]) => `${name} (${why})`);
          const int8 = Object.keys(c.convs).length - Object.keys(c.fp32).length;
          console.log(
            `calibrated ${int8} convolutions for int8 on ${c.images} images; kept fp32: ${policy.join(', ') || 'none'}`,
          );
          if (keep > 0)
            console.log(
              `fp32 fallback: ${fallback.kept.length} more convs kept fp32 (${(100 * fallback.flopShare).toFixed(1)}% of the FLOPs): ` +
                `logit error on ${probe.length} images ${fallback.error.int8.toExponential(2)} all int8 -> ${fallback.error.after.toExponential(2)}`,
            );
          console.log(`wrote ${out}`);
        } finally {
          seg.dispose();
        }
      },
    );
}
