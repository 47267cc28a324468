// `deeplab eval CONFIG --weights FILE [--aug-test] [--mode slide] [--metric NAME] [--json FILE]`
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { openSplit } from '../data/datasets/index.js';
import { loadForInference } from '../inference/load.js';
import { evaluateOnSplit } from '../evaluation/on-split.js';
import { formatReport, toReportJSON } from '../evaluation/report-table.js';
import { progress } from './progress.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function evalCommand(): Command {
  return new Command('eval')
    .description("evaluate weights on the config's validation split: aAcc, mIoU, mAcc and per-class IoU")
    .argument('<config>', 'a JSON or YAML config')
    .requiredOption('-w, --weights <file>', '.pth, .safetensors, or a training checkpoint')
    .option('--aug-test', "multi-scale + flip test (the config's evaluation.tta)")
    .addOption(new Option('--mode <mode>', 'whole image or sliding window').choices(['whole', 'slide']))
    .addOption(
      new Option('--metric <name>', "whose mIoU formula (default: the config's)").choices([
        'mmseg',
        'torchvision',
        'tf',
        'v2',
      ]),
    )
    .option('--json <file>', 'also write the figures as JSON')
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
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .action(
      async (
        file: string,
        o: {
          weights: string;
          augTest?: boolean;
          mode?: 'whole' | 'slide';
          metric?: 'mmseg' | 'torchvision' | 'tf' | 'v2';
          json?: string;
          set: string[];
          precision: 'fp32' | 'bf16' | 'int8';
          calibration?: string;
          fast: boolean;
          strictFinite?: boolean;
        },
      ) => {
        const cfg = loadConfig(file, [...o.set, ...(o.metric ? [`evaluation.metric="${o.metric}"`] : [])]);
        const { preset, model, settings, weights } = loadForInference(cfg.model.preset, {
          weights: o.weights,
          numClasses: cfg.model.numClasses,
          outputStride: cfg.model.outputStride.eval,
          alignCorners: cfg.model.alignCorners,
          fast: o.fast,
          precision: o.precision,
          calibration: o.calibration,
          strictFinite: o.strictFinite,
        });
        try {
          console.log(`loaded ${weights!.loaded} tensors from ${o.weights}`);
          for (const w of weights!.suspicious)
            console.error(
              `warning: ${o.weights}: ${w}; the figures will be wrong (--strict-finite refuses such weights)`,
            );
          const ds = openSplit(cfg, 'val');
          const bar = progress('eval', ds.samples.length);
          const r = await evaluateOnSplit(model, cfg, preset, ds, {
            augTest: o.augTest,
            mode: o.mode,
            settings,
            onProgress: (d: number) => bar.update(d),
          });
          bar.stop();
          console.log(formatReport(r.metrics, ds.classes));
          console.log(
            `${ds.samples.length} images in ${r.seconds.toFixed(1)} s (${o.augTest ? `${cfg.evaluation.tta.scales.length} scales${cfg.evaluation.tta.flip ? ' x flip' : ''}` : 'single scale'}, ${o.mode ?? cfg.evaluation.mode}, OS${model.outputStride}, ${cfg.evaluation.metric} metric, ${o.precision}${o.fast ? '' : ', plain eager'})`,
          );
          if (o.json)
            writeFileSync(
              o.json,
              JSON.stringify(
                {
                  config: cfg.name,
                  weights: o.weights,
                  augTest: Boolean(o.augTest),
                  precision: o.precision,
                  ...toReportJSON(r.metrics, ds.classes),
                  confusion: r.confusion.toJSON(),
                },
                null,
                2,
              ),
            );
          r.confusion.dispose();
        } finally {
          model.dispose();
        }
      },
    );
}
