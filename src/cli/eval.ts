// `deeplab eval CONFIG --weights FILE [--aug-test] [--mode slide] [--metric NAME] [--json FILE]`
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { findPreset } from '../models/zoo.js';
import { loadWeights } from '../engine/weights.js';
import { openSplit, evaluateOnSplit } from '../engine/from-config.js';
import { formatReport, toReportJSON } from '../engine/report-table.js';
import { progress } from './progress.js';
import { prepareForInference } from '../engine/fast-path.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function evalCommand(): Command {
  return new Command('eval')
    .description('evaluate weights on the config\'s validation split: aAcc, mIoU, mAcc and per-class IoU')
    .argument('<config>', 'a JSON or YAML config')
    .requiredOption('-w, --weights <file>', '.pth, .safetensors, or a training checkpoint')
    .option('--aug-test', 'multi-scale + flip test (the config\'s evaluation.tta)')
    .addOption(new Option('--mode <mode>', 'whole image or sliding window').choices(['whole', 'slide']))
    .addOption(new Option('--metric <name>', 'whose mIoU formula (default: the config\'s)').choices(['mmseg', 'torchvision', 'tf', 'v2']))
    .option('--json <file>', 'also write the figures as JSON')
    .addOption(new Option('--precision <p>', 'fp32, or bf16 autocast (about 2x faster where the CPU has AVX512-BF16)').choices(['fp32', 'bf16']).default('fp32'))
    .option('--no-fast', 'run the plain eager model (no batch-norm folding, NCHW layout)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .action(async (file: string, o: { weights: string; augTest?: boolean; mode?: 'whole' | 'slide'; metric?: 'mmseg' | 'torchvision' | 'tf' | 'v2'; json?: string; set: string[]; precision: 'fp32' | 'bf16'; fast: boolean }) => {
      const cfg = loadConfig(file, [...o.set, ...(o.metric ? [`evaluation.metric="${o.metric}"`] : [])]);
      const preset = findPreset(cfg.model.preset);
      const model = preset.build({ numClasses: cfg.model.numClasses, aux: false, alignCorners: cfg.model.alignCorners, outputStride: cfg.model.outputStride.eval });
      try {
        const w = loadWeights(model, o.weights);
        console.log(`loaded ${w.loaded} tensors from ${o.weights}`);
        const { settings } = prepareForInference(model, { fast: o.fast, precision: o.precision, verifyFold: false });
        const ds = openSplit(cfg, 'val');
        const bar = progress('eval', ds.samples.length);
        const r = await evaluateOnSplit(model, cfg, preset, ds, { augTest: o.augTest, mode: o.mode, settings, onProgress: (d) => bar.update(d) });
        bar.stop();
        console.log(formatReport(r.metrics, ds.classes));
        console.log(`${ds.samples.length} images in ${r.seconds.toFixed(1)} s (${o.augTest ? `${cfg.evaluation.tta.scales.length} scales${cfg.evaluation.tta.flip ? ' x flip' : ''}` : 'single scale'}, ${o.mode ?? cfg.evaluation.mode}, OS${model.outputStride}, ${cfg.evaluation.metric} metric, ${o.precision}${o.fast ? '' : ', plain eager'})`);
        if (o.json) writeFileSync(o.json, JSON.stringify({ config: cfg.name, weights: o.weights, augTest: Boolean(o.augTest), precision: o.precision, ...toReportJSON(r.metrics, ds.classes), confusion: r.confusion.toJSON() }, null, 2));
        r.confusion.dispose();
      } finally {
        model.dispose();
      }
    });
}
