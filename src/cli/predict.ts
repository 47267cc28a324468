// `deeplab predict IMAGE... --model PRESET`: label PNG, colour mask and overlay per image;
// optionally the logits as .npy. A bad image is reported and skipped; the exit code says so.
import { Command, Option } from 'commander';
import { basename, dirname, extname, join } from 'node:path';
import { load } from '../api.js';
import { writeLabelPng, writeRgb, overlay, colorize, readImage } from '../data/image.js';
import { writeNpy } from '../data/npy.js';
import { ensureDir } from '../data/output-dir.js';
import { paletteFor, type Palette } from '../data/palettes.js';
import { readCustomMeta } from '../data/datasets/custom.js';
import { parseIntOption, parseOutputStride, parseScaleOption } from './options.js';
import type { OutputStride } from '../models/backbone.js';

interface PredictOptions {
  model: string;
  weights?: string;
  numClasses?: number;
  os?: OutputStride;
  out: string;
  palette?: 'voc' | 'cityscapes' | 'ade20k';
  classes?: string;
  saveLogits?: string;
  precision: 'fp32' | 'bf16' | 'int8';
  calibration?: string;
  fast: boolean;
  strictFinite?: boolean;
  scale: number;
}

/**
 * One output name per input, never the same twice: the file's name without its extension, and
 * when two inputs share it (d1/x.png and d2/x.png, or x.png and x.jpg) the later ones in argument
 * order get -2, -3, ... (skipping names another input already has). Decided before anything is
 * written, so no output overwrites another.
 */
export function outputStems(images: readonly string[]): string[] {
  const base = images.map((f) => basename(f, extname(f)));
  const inputs = new Set(base);
  // A renamed output never takes a name some input has, so `taken` holding b means b came before.
  const taken = new Set<string>();
  return base.map((b) => {
    let name = b;
    for (let k = 2; taken.has(name) || (name !== b && inputs.has(name)); k++) name = `${b}-${k}`;
    taken.add(name);
    return name;
  });
}

/** One .npy for one image; for several, the image's output name goes before the extension. */
function logitsPath(pattern: string, stem: string, many: boolean): string {
  if (!many) return pattern;
  const ext = extname(pattern) || '.npy';
  return `${pattern.slice(0, pattern.length - extname(pattern).length)}.${stem}${ext}`;
}

/** A custom dataset's class names and colours (its meta file), as predict's palette. */
export function classesPalette(file: string): Palette {
  const meta = readCustomMeta(file);
  const colors = meta.palette ?? paletteFor(undefined, meta.classes.length).colors;
  return { name: basename(file), classes: meta.classes, colors };
}

export function predictCommand(): Command {
  return new Command('predict')
    .description('segment images: writes NAME_labels.png (class indices), NAME_color.png and NAME_overlay.jpg')
    .argument('<images...>', 'JPEG, PNG, WebP (or TIFF, GIF) files')
    .requiredOption('-m, --model <preset>', 'model preset (see `deeplab models`)')
    .option('-w, --weights <file>', ".pth or .safetensors checkpoint in the preset's key layout")
    .option(
      '--num-classes <n>',
      "classes (default: the preset's); a checkpoint with another count gets a fresh head",
      parseIntOption,
    )
    .option('--os <stride>', "output stride 8, 16 or 32 (default: the preset's)", parseOutputStride)
    .option(
      '--scale <factor>',
      "run the model on each image resized by this factor, as the weights' config resized them (data.test.scale); outputs keep the image's size",
      parseScaleOption,
      1,
    )
    .option('-o, --out <dir>', 'output folder', 'out')
    .addOption(
      new Option('--palette <name>', 'colours and class names')
        .choices(['voc', 'cityscapes', 'ade20k'])
        .conflicts('classes'),
    )
    .option(
      '--classes <meta>',
      "colours and class names from a custom dataset's meta file (YAML or JSON: classes, palette)",
    )
    .option('--save-logits <file.npy>', 'write float32 logits N x C x H x W (one file per image when several)')
    .addOption(
      new Option(
        '--precision <p>',
        'fp32, bf16 autocast (faster where the CPU has AVX512-BF16), or int8 (needs `deeplab calibrate`; VNNI CPUs)',
      )
        .choices(['fp32', 'bf16', 'int8'])
        .default('fp32'),
    )
    .option('--calibration <file>', 'int8: the calibration file (default: <weights>.calib.json)')
    .option('--no-fast', 'run the plain eager model (no batch-norm folding, NCHW layout)')
    .option('--strict-finite', 'refuse weights holding NaN/Inf or negative BatchNorm variances (default: warn)')
    .action(async (images: string[], o: PredictOptions) => {
      const palette = o.classes ? classesPalette(o.classes) : o.palette;
      const seg = await load(o.model, {
        weights: o.weights,
        numClasses: o.numClasses ?? (typeof palette === 'object' ? palette.classes.length : undefined),
        outputStride: o.os,
        palette,
        precision: o.precision,
        calibration: o.calibration,
        fast: o.fast,
        strictFinite: o.strictFinite,
      });
      if (seg.weights) {
        const extra = seg.weights.freshHead.length
          ? `; fresh classifier for ${seg.numClasses} classes: ${seg.weights.freshHead.join(', ')}`
          : '';
        const aux = seg.weights.skippedAux.length
          ? `; ${seg.weights.skippedAux.length} auxiliary-head tensors not needed for inference`
          : '';
        console.log(`loaded ${seg.weights.loaded} tensors from ${seg.weights.file}${extra}${aux}`);
        for (const w of seg.weights.suspicious)
          console.error(
            `warning: ${seg.weights.file}: ${w}; predictions will be wrong (--strict-finite refuses such weights)`,
          );
      } else {
        console.log(`no --weights given: ${o.model} has random weights, so its predictions are noise`);
      }
      ensureDir(o.out);
      if (o.saveLogits) ensureDir(dirname(o.saveLogits), 'logits folder');
      const stems = outputStems(images);
      let failed = 0;
      // Decode the next image while this one runs through the network.
      let next = images.length ? readImage(images[0]).catch((e: Error) => e) : null;
      for (let i = 0; i < images.length; i++) {
        const file = images[i];
        const decoded = await next!;
        next = i + 1 < images.length ? readImage(images[i + 1]).catch((e: Error) => e) : null;
        if (decoded instanceof Error) {
          console.error(`error: ${decoded.message}`);
          failed++;
          continue;
        }
        const t0 = performance.now();
        const r = seg.segmentImage(decoded, { logits: Boolean(o.saveLogits), scale: o.scale });
        const ms = performance.now() - t0;
        const stem = join(o.out, stems[i]);
        const color = colorize(r.labels, seg.palette.colors);
        await Promise.all([
          writeLabelPng(`${stem}_labels.png`, r.labels, r.width, r.height),
          writeRgb(`${stem}_color.png`, color, r.width, r.height),
          writeRgb(`${stem}_overlay.jpg`, overlay(decoded, color), r.width, r.height),
        ]);
        if (o.saveLogits)
          writeNpy(logitsPath(o.saveLogits, stems[i], images.length > 1), r.logits!, [
            1,
            r.numClasses,
            r.height,
            r.width,
          ]);
        const top = r.legend
          .slice(0, 4)
          .map((l) => `${l.name} ${((100 * l.pixels) / (r.width * r.height)).toFixed(1)}%`)
          .join(', ');
        console.log(
          `${file}: ${r.width}x${r.height} in ${ms.toFixed(0)} ms -> ${stem}_{labels,color,overlay}  [${top}]`,
        );
      }
      seg.dispose();
      if (failed) {
        console.error(`${failed} of ${images.length} images failed`);
        process.exitCode = 1;
      }
    });
}
