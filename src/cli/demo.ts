// `deeplab demo`: the main job. On Fashion-MNIST scenes (made from Debian's dataset-fashion-mnist)
// it trains a DeepLabV3 (mmseg's R-18-D8) at output stride 16, evaluates at 8, single scale and
// multi-scale + flip as the seed tables do, segments sample images and writes the report.
import { Command } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig } from '../config/load.js';
import { writeSceneDataset } from '../data/fashion-scenes.js';
import { readImage, colorize, overlay } from '../data/image.js';
import { readMask } from '../data/masks.js';
import { findPreset } from '../models/zoo.js';
import { loadWeights } from '../engine/weights.js';
import { prepareForInference } from '../engine/fast-path.js';
import { openSplit, evaluateOnSplit } from '../engine/from-config.js';
import { formatReport } from '../engine/report-table.js';
import { Segmenter } from '../api.js';
import { paletteFor } from '../data/palettes.js';
import { runTraining } from './train.js';
import { parseIntOption } from './options.js';

const root = [join(dirname(fileURLToPath(import.meta.url)), '../../..'), join(dirname(fileURLToPath(import.meta.url)), '../..')].find((r) => existsSync(join(r, 'package.json')))!;
const CONFIG = join(root, 'configs/demo/fashion-scenes_deeplabv3_r18-d8.json');

interface DemoOptions {
  iters?: number;
  trainScenes: number;
  valScenes: number;
  data: string;
  out: string;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('train and evaluate a DeepLabV3 on Fashion-MNIST scenes (about five minutes on 2 cores), then segment samples and write the report')
    .option('--iters <n>', 'training iterations (default: the demo config\'s)', parseIntOption)
    .option('--train-scenes <n>', 'training scenes to generate', parseIntOption, 2000)
    .option('--val-scenes <n>', 'validation scenes to generate', parseIntOption, 200)
    .option('--data <dir>', 'where the generated dataset goes', join(root, '.cache/fashion-scenes'))
    .option('--out <dir>', 'work dir for checkpoints, logs, report and samples', join(root, 'runs/demo'))
    .action(async (o: DemoOptions) => {
      const t0 = performance.now();
      console.log(`generating Fashion-MNIST scenes in ${o.data} (${o.trainScenes} train, ${o.valScenes} val, 128x128)`);
      await writeSceneDataset({ root: o.data, trainCount: o.trainScenes, valCount: o.valScenes, size: 128 });
      const sets = [`data.dataset.root=${o.data}`, `data.dataset.meta=${join(o.data, 'meta.json')}`, `workDir=${o.out}`];
      if (o.iters) sets.push(`train.iters=${o.iters}`, `train.evalInterval=${o.iters}`, `train.checkpointInterval=${Math.max(1, Math.floor(o.iters / 4))}`);
      const cfg = loadConfig(CONFIG, sets);
      const run = await runTraining(cfg);

      // The seed tables' two columns: single scale, and multi-scale + flip, at the eval stride.
      const preset = findPreset(cfg.model.preset);
      const model = preset.build({ numClasses: cfg.model.numClasses, aux: false, outputStride: cfg.model.outputStride.eval });
      loadWeights(model, join(cfg.workDir, 'final.safetensors'));
      // The inference fast path (folded batch norms, channels_last), as `deeplab eval` runs.
      const { settings } = prepareForInference(model, { verifyFold: false });
      const val = openSplit(cfg, 'val');
      const single = await evaluateOnSplit(model, cfg, preset, val, { settings });
      const multi = await evaluateOnSplit(model, cfg, preset, val, { augTest: true, settings });
      console.log(formatReport(single.metrics, val.classes));
      const figures = {
        config: cfg.name,
        iterations: run.result.iter,
        mIoU: single.metrics.mIoU,
        mIoUmsFlip: multi.metrics.mIoU,
        aAcc: single.metrics.aAcc,
        tta: cfg.evaluation.tta,
        minutes: (performance.now() - t0) / 60_000,
      };
      single.confusion.dispose();
      multi.confusion.dispose();

      // Sample pictures: image | ground truth | prediction | overlay, one row per image.
      const seg = new Segmenter(preset, model, paletteFor(undefined, cfg.model.numClasses), null, settings);
      const sheet = await sampleSheet(seg, val.samples.slice(0, 4));
      const samplesDir = join(cfg.workDir, 'samples');
      mkdirSync(samplesDir, { recursive: true });
      await sharp(sheet.data, { raw: { width: sheet.width, height: sheet.height, channels: 3 } }).png().toFile(join(samplesDir, 'samples.png'));
      writeFileSync(join(cfg.workDir, 'demo.json'), JSON.stringify(figures, null, 2));
      seg.dispose();
      console.log(`\nFashion-MNIST scenes, ${cfg.model.preset}, ${figures.iterations} iterations: mIoU ${figures.mIoU.toFixed(2)}, mIoU(ms+flip) ${figures.mIoUmsFlip.toFixed(2)}, aAcc ${figures.aAcc.toFixed(2)} (${figures.minutes.toFixed(1)} min)`);
      console.log(`pictures: ${join(samplesDir, 'samples.png')}; report: ${join(cfg.workDir, 'report')}`);
    });
}

async function sampleSheet(seg: Segmenter, samples: { image: string; mask: string | null }[]): Promise<{ data: Uint8Array; width: number; height: number }> {
  const rows: Uint8Array[][] = [];
  let w = 0, h = 0;
  for (const s of samples) {
    const img = await readImage(s.image);
    const gt = (await readMask(s.mask!)).data;
    const r = seg.segmentImage(img);
    const pred = colorize(r.labels, seg.palette.colors);
    rows.push([img.data, colorize(gt, seg.palette.colors), pred, overlay(img, pred)]);
    [w, h] = [img.width, img.height];
  }
  const cols = 4, gap = 4;
  const W = cols * w + (cols - 1) * gap, H = rows.length * h + (rows.length - 1) * gap;
  const out = new Uint8Array(W * H * 3).fill(255);
  rows.forEach((tiles, ri) => tiles.forEach((t, ci) => {
    for (let y = 0; y < h; y++) out.set(t.subarray(y * w * 3, (y + 1) * w * 3), ((ri * (h + gap) + y) * W + ci * (w + gap)) * 3);
  }));
  return { data: out, width: W, height: H };
}
