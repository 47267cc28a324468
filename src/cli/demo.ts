// `deeplab demo`: the main job. On Fashion-MNIST scenes (made from Debian's dataset-fashion-mnist)
// it trains a DeepLabV3 (mmseg's R-18-D8) at output stride 16, evaluates at 8, single scale and
// multi-scale + flip as the seed tables do, segments sample images and writes the report.
import { Command } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import { ensureDir } from '../data/output-dir.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig } from '../config/load.js';
import { writeSceneDataset } from '../data/fashion-scenes.js';
import { sampleSheet } from '../evaluation/sample-sheet.js';
import { openSplit } from '../data/datasets/index.js';
import { paletteFor } from '../data/palettes.js';
import { loadForInference } from '../inference/load.js';
import { Segmenter } from '../inference/segmenter.js';
import { evaluateOnSplit, summarize } from '../evaluation/on-split.js';
import { formatReport } from '../evaluation/report-table.js';
import { runTraining } from '../training/run.js';
import { parseIntOption, parseNonNegativeIntOption } from './options.js';
import { terminal } from './progress.js';

const root = [
  join(dirname(fileURLToPath(import.meta.url)), '../../..'),
  join(dirname(fileURLToPath(import.meta.url)), '../..'),
].find((r) => existsSync(join(r, 'package.json')))!;
const CONFIG = join(root, 'configs/demo/fashion-scenes_deeplabv3_r18-d8.json');

interface DemoOptions {
  iters?: number;
  seed?: number;
  trainScenes: number;
  valScenes: number;
  data: string;
  out: string;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'train and evaluate a DeepLabV3 on Fashion-MNIST scenes (about five minutes on 2 cores), then segment samples and write the report',
    )
    .option('--iters <n>', "training iterations (default: the demo config's)", parseIntOption)
    .option('--seed <n>', "training seed, train.seed (default: the demo config's, 0)", parseNonNegativeIntOption)
    .option('--train-scenes <n>', 'training scenes to generate', parseIntOption, 2000)
    .option('--val-scenes <n>', 'validation scenes to generate', parseIntOption, 200)
    .option('--data <dir>', 'where the generated dataset goes', '.cache/fashion-scenes')
    .option('--out <dir>', 'work dir for checkpoints, logs, report and samples', 'runs/demo')
    .action(async (o: DemoOptions) => {
      const t0 = performance.now();
      console.log(`generating Fashion-MNIST scenes in ${o.data} (${o.trainScenes} train, ${o.valScenes} val, 128x128)`);
      await writeSceneDataset({ root: o.data, trainCount: o.trainScenes, valCount: o.valScenes, size: 128 });
      const sets = [
        `data.dataset.root=${o.data}`,
        `data.dataset.meta=${join(o.data, 'meta.json')}`,
        `workDir=${o.out}`,
      ];
      if (o.iters)
        sets.push(
          `train.iters=${o.iters}`,
          `train.evalInterval=${o.iters}`,
          `train.checkpointInterval=${Math.max(1, Math.floor(o.iters / 4))}`,
        );
      if (o.seed !== undefined) sets.push(`train.seed=${o.seed}`);
      const cfg = loadConfig(CONFIG, sets);
      const run = await runTraining(cfg, terminal);

      // The seed tables' two columns at the eval stride: single scale (the trainer's evaluation of
      // the final weights, whose table it printed), and multi-scale + flip, run here on the
      // inference fast path (folded batch norms, channels_last) as `deeplab eval --aug-test` runs.
      const { preset, model, settings } = loadForInference(cfg.model.preset, {
        weights: join(cfg.workDir, 'final.safetensors'),
        numClasses: cfg.model.numClasses,
        outputStride: cfg.model.outputStride.eval,
        alignCorners: cfg.model.alignCorners,
      });
      const val = openSplit(cfg, 'val');
      const multi = await evaluateOnSplit(model, cfg, preset, val, { augTest: true, settings });
      console.log(`multi-scale (${cfg.evaluation.tta.scales.join(', ')}) + flip:`);
      console.log(formatReport(multi.metrics, val.classes));
      const single = run.lastEval ?? (await singleScale());
      async function singleScale() {
        const r = await evaluateOnSplit(model, cfg, preset, val, { settings });
        r.confusion.dispose();
        return summarize(r);
      }
      const figures = {
        config: cfg.name,
        iterations: run.result.iter,
        mIoU: single.mIoU,
        mIoUmsFlip: multi.metrics.mIoU,
        aAcc: single.aAcc,
        minIoU: Math.min(...single.perClassIoU.filter((v) => !Number.isNaN(v))),
        tta: cfg.evaluation.tta,
        minutes: (performance.now() - t0) / 60_000,
      };
      multi.confusion.dispose();

      // Sample pictures: image | ground truth | prediction | overlay, one row per image.
      const seg = new Segmenter(preset, model, paletteFor(undefined, cfg.model.numClasses), null, settings);
      const sheet = await sampleSheet(seg, val.samples.slice(0, 4));
      const samplesDir = join(cfg.workDir, 'samples');
      ensureDir(samplesDir);
      await sharp(sheet.data, { raw: { width: sheet.width, height: sheet.height, channels: 3 } })
        .png()
        .toFile(join(samplesDir, 'samples.png'));
      writeFileSync(join(cfg.workDir, 'demo.json'), JSON.stringify(figures, null, 2));
      seg.dispose();
      console.log(
        `\nFashion-MNIST scenes, ${cfg.model.preset}, ${figures.iterations} iterations: mIoU ${figures.mIoU.toFixed(2)}, mIoU(ms+flip) ${figures.mIoUmsFlip.toFixed(2)}, aAcc ${figures.aAcc.toFixed(2)} (${figures.minutes.toFixed(1)} min)`,
      );
      console.log(`pictures: ${join(samplesDir, 'samples.png')}; report: ${join(cfg.workDir, 'report')}`);
    });
}
