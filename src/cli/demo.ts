// `deeplab demo`: the main job. On Fashion-MNIST scenes (made from Debian's dataset-fashion-mnist)
// it pre-trains the backbone of a DeepLabV3+ (mmseg's R-18-D8) as an item classifier, trains the
// segmentation at output stride 32 on the 128x128 scenes (the config's), evaluates single scale
// and with the config's test-time augmentation (flip; the seed tables' second column), segments
// sample images at the config's test scale and writes the report.
import { Command } from 'commander';
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { ensureDir } from '../data/output-dir.js';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig } from '../config/load.js';
import { readFashionMnist, writeSceneDataset } from '../data/fashion-scenes.js';
import { DEMO_ITEM_PRETRAIN, pretrainOnItems } from '../training/item-pretrain.js';
import { buildForTraining } from '../training/from-config.js';
import * as torch from '../torch/index.js';
import type { Config } from '../config/schema.js';
import type { Backbone } from '../models/backbone.js';
import { sampleSheet } from '../evaluation/sample-sheet.js';
import { openSplit } from '../data/datasets/index.js';
import { paletteFor } from '../data/palettes.js';
import { loadForInference } from '../inference/load.js';
import { Segmenter } from '../inference/segmenter.js';
import { evaluateOnSplit, summarize } from '../evaluation/on-split.js';
import { formatReport } from '../evaluation/report-table.js';
import { runTraining } from '../training/run.js';
import { writeReport } from '../training/report.js';
import { parseIntOption, parseNonNegativeIntOption } from './options.js';
import { terminal } from './progress.js';

const root = [
  join(dirname(fileURLToPath(import.meta.url)), '../../..'),
  join(dirname(fileURLToPath(import.meta.url)), '../..'),
].find((r) => existsSync(join(r, 'package.json')))!;
const CONFIG = join(root, 'configs/demo/fashion-scenes_deeplabv3plus_r18-d8.json');
/** The side of the generated scenes (the validation scenes are 128x128 since the first demo). */
const SCENE_SIZE = 128;
type ItemPretrainSettings = { -readonly [K in keyof typeof DEMO_ITEM_PRETRAIN]: number };

interface DemoOptions {
  iters?: number;
  seed?: number;
  pretrainSteps?: number;
  trainScenes: number;
  valScenes: number;
  data: string;
  out: string;
  set: string[];
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'train and evaluate a DeepLabV3+ on Fashion-MNIST scenes (about six minutes on 2 cores), then segment samples and write the report',
    )
    .option('--iters <n>', "training iterations (default: the demo config's)", parseIntOption)
    .option('--seed <n>', "training seed, train.seed (default: the demo config's, 0)", parseNonNegativeIntOption)
    .option(
      '--pretrain-steps <n>',
      `item pre-training steps before segmentation (default ${DEMO_ITEM_PRETRAIN.steps}; 0: none)`,
      parseNonNegativeIntOption,
    )
    .option(
      '--train-scenes <n>',
      'training scenes to generate (1,150 iterations x 16: each seen twice)',
      parseIntOption,
      9200,
    )
    .option('--val-scenes <n>', 'validation scenes to generate', parseIntOption, 200)
    .option('--data <dir>', 'where the generated dataset goes', '.cache/fashion-scenes')
    .option('--out <dir>', 'work dir for checkpoints, logs, report and samples', 'runs/demo')
    .option(
      '--set <key=value>',
      'override a key of the demo config (repeatable), e.g. train.optimizer.lr=0.002',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .action(async (o: DemoOptions) => {
      const t0 = performance.now();
      console.log(
        `generating Fashion-MNIST scenes in ${o.data} (${o.trainScenes} train, ${o.valScenes} val, ${SCENE_SIZE}x${SCENE_SIZE})`,
      );
      // Training scenes hold 2-5 items, the validation scenes 1-4 as always: more item pixels a
      // scene for the same cost (44.0 against 40.0 mIoU; 3-7 items gave no more, 43.9).
      await writeSceneDataset({
        root: o.data,
        trainCount: o.trainScenes,
        valCount: o.valScenes,
        size: SCENE_SIZE,
        trainItems: [2, 5],
      });
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
      sets.push(...o.set);
      let cfg = loadConfig(CONFIG, sets);
      const steps = o.pretrainSteps ?? DEMO_ITEM_PRETRAIN.steps;
      if (steps > 0) {
        const weights = itemPretrain(cfg, { ...DEMO_ITEM_PRETRAIN, steps });
        cfg = loadConfig(CONFIG, [...sets, `model.pretrained=${weights}`, 'model.pretrainedPrefix=backbone.']);
      }
      // No evaluation inside the trainer: its eager model ran the 200 scenes in 40 s, against 4 s
      // on the inference fast path (folded batch norms, fused convs) the rest of the demo uses.
      const run = await runTraining(cfg, terminal, { evaluate: false });

      // The seed tables' two columns at the eval stride, single scale and with the config's
      // test-time augmentation, on the fast path as `deeplab eval` (--aug-test) runs them.
      const { preset, model, settings } = loadForInference(cfg.model.preset, {
        weights: join(cfg.workDir, 'final.safetensors'),
        numClasses: cfg.model.numClasses,
        outputStride: cfg.model.outputStride.eval,
        alignCorners: cfg.model.alignCorners,
      });
      const val = openSplit(cfg, 'val');
      const one = await evaluateOnSplit(model, cfg, preset, val, { settings });
      console.log('single scale:');
      console.log(formatReport(one.metrics, val.classes));
      const single = summarize(one);
      one.confusion.dispose();
      // Into the run's log as the trainer writes its evaluations, so the report charts it.
      appendFileSync(join(cfg.workDir, 'log.jsonl'), JSON.stringify({ iter: run.result.iter, eval: single }) + '\n');
      await writeReport(cfg.workDir, val.classes);
      const multi = await evaluateOnSplit(model, cfg, preset, val, { augTest: true, settings });
      console.log(`${ttaLabel(cfg.evaluation.tta).long}:`);
      console.log(formatReport(multi.metrics, val.classes));
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
      const sheet = await sampleSheet(seg, val.samples.slice(0, 4), { scale: testScale(cfg) });
      const samplesDir = join(cfg.workDir, 'samples');
      ensureDir(samplesDir);
      await sharp(sheet.data, { raw: { width: sheet.width, height: sheet.height, channels: 3 } })
        .png()
        .toFile(join(samplesDir, 'samples.png'));
      writeFileSync(join(cfg.workDir, 'demo.json'), JSON.stringify(figures, null, 2));
      seg.dispose();
      console.log(
        `\nFashion-MNIST scenes, ${cfg.model.preset}, ${figures.iterations} iterations: mIoU ${figures.mIoU.toFixed(2)}, mIoU(${ttaLabel(cfg.evaluation.tta).short}) ${figures.mIoUmsFlip.toFixed(2)}, aAcc ${figures.aAcc.toFixed(2)} (${figures.minutes.toFixed(1)} min)`,
      );
      console.log(`pictures: ${join(samplesDir, 'samples.png')}; report: ${join(cfg.workDir, 'report')}`);
    });
}

/** How the demo names its test-time augmentation: the demo config's is flip alone (scales [1]). */
function ttaLabel(tta: Config['evaluation']['tta']): { long: string; short: string } {
  const flip = tta.flip ? ' + flip' : '';
  if (tta.scales.length === 1 && tta.scales[0] === 1)
    return tta.flip ? { long: 'flip', short: 'flip' } : { long: 'single scale', short: 'ss' };
  return { long: `multi-scale (${tta.scales.join(', ')})${flip}`, short: `ms${flip ? '+flip' : ''}` };
}

/** The factor the config's test resize applies to the demo's square scenes (1 when none). */
function testScale(cfg: Config): number {
  const s = cfg.data.test.scale;
  return s ? Math.min(...s) / SCENE_SIZE : 1;
}

/**
 * The backbone of the config's model, pre-trained as an item classifier (src/training/item-pretrain.ts),
 * saved as `<workDir>/item-pretrain.safetensors` with the backbone's own keys; returns the file.
 */
function itemPretrain(cfg: Config, s: ItemPretrainSettings): string {
  const { preset, model } = buildForTraining(cfg);
  try {
    const backbone = (model as unknown as { backbone: Backbone }).backbone;
    console.log(
      `item pre-training: the backbone as a 10-class classifier, ${s.steps} steps of ${s.batch} items at ${s.size}x${s.size}`,
    );
    const bar = terminal.progress('items', s.steps, 'loss {loss} acc {acc}');
    const r = pretrainOnItems(backbone, readFashionMnist('train'), {
      ...s,
      seed: cfg.train.seed,
      precision: cfg.train.precision,
      channelsLast: cfg.train.channelsLast,
      normalization: preset.normalization,
      logEvery: 10,
      onLog: (step, loss, acc) => bar.update(step, { loss: loss.toFixed(3), acc: acc.toFixed(2) }),
    });
    bar.stop();
    console.log(
      `item pre-training: ${(r.accuracy * 100).toFixed(1)}% of the last quarter's items right, ${r.seconds.toFixed(0)} s`,
    );
    const file = join(ensureDir(cfg.workDir, 'work dir'), 'item-pretrain.safetensors');
    torch.writeSafetensors(file, backbone.stateDict(), { format: 'deeplab-weights', config: 'item-pretrain' });
    // Relative to the working folder when inside it: the log line then reads as the README shows.
    const rel = relative(process.cwd(), file);
    return rel.startsWith('..') || isAbsolute(rel) ? file : rel;
  } finally {
    model.dispose();
  }
}
