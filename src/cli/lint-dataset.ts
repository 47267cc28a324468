// `deeplab lint-dataset CONFIG`: every mask of the config's train and val splits checked (see
// data/lint.ts); prints each split's value histogram and findings with their fixes, and exits 1
// when any finding is an error.
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { openDataset } from '../data/datasets/index.js';
import { lintSplit } from '../data/lint.js';
import { progress } from './progress.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function lintDatasetCommand(): Command {
  return new Command('lint-dataset')
    .description("check every mask of the config's dataset: values, sizes, classes, reduceZeroLabel; exit 1 on errors")
    .argument('<config>', 'a JSON or YAML config')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .action(async (file: string, o: { set: string[] }) => {
      const cfg = loadConfig(file, o.set);
      const numClasses = cfg.model.numClasses;
      let errors = 0;
      for (const split of ['train', 'val'] as const) {
        // Missing masks are findings here, not a reason to stop listing.
        const ds = openDataset(cfg.data.dataset, split, { missingMask: 'keep' });
        const bar = progress(`lint ${ds.split}`, ds.samples.length);
        const r = await lintSplit(ds, numClasses, (d) => bar.update(d));
        bar.stop();
        const total = [...r.rawHistogram.values()].reduce((a, b) => a + b, 0);
        const top = [...r.rawHistogram].sort((a, b) => b[1] - a[1]).slice(0, 12);
        console.log(
          `${ds.name} ${ds.split}: ${r.masks} masks, raw values (share of pixels): ${top.map(([v, n]) => `${v} ${((100 * n) / total).toFixed(2)}%`).join(', ')}${r.rawHistogram.size > 12 ? `, ... (${r.rawHistogram.size} values)` : ''}`,
        );
        for (const f of r.findings) {
          console.log(`  ${f.level}: ${f.message}`);
          for (const x of f.files ?? []) console.log(`    ${x}`);
          if (f.level === 'error') errors++;
        }
        if (!r.findings.length) console.log('  no findings');
      }
      if (errors) {
        console.error(`${errors} error(s): fix the dataset or the config before training`);
        process.exitCode = 1;
      }
    });
}
