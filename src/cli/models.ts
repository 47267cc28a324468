// `deeplab models`: every preset with its source, parameters and FLOPs at a given size.
import { Command } from 'commander';
import { PRESETS } from '../models/zoo.js';
import { countFlops } from '../models/flops.js';

export function modelsCommand(): Command {
  return new Command('models')
    .description('list the model presets with parameter count and forward GFLOPs')
    .option('--size <HxW>', 'input size for FLOPs, e.g. 512 or 512x1024', '512')
    .option('--aux', 'count the auxiliary head too', false)
    .action((o: { size: string; aux: boolean }) => {
      const [h, w] = o.size.includes('x') ? o.size.split('x').map(Number) : [Number(o.size), Number(o.size)];
      if (!(h > 0 && w > 0)) throw new Error(`--size: expected N or HxW, got "${o.size}"`);
      const rows = PRESETS.map((p) => {
        const m = p.build({ aux: o.aux && p.aux });
        try {
          return [
            p.name,
            p.source,
            `${p.numClasses} (${p.dataset})`,
            `OS${p.outputStride}`,
            (m.numParameters() / 1e6).toFixed(2) + 'M',
            (countFlops(m, h, w) / 1e9).toFixed(1),
          ];
        } finally {
          m.dispose();
        }
      });
      const head = ['preset', 'source', 'classes', 'stride', 'params', `GFLOPs@${h}x${w}`];
      const widths = head.map((x, i) => Math.max(x.length, ...rows.map((r) => r[i].length)));
      const line = (r: string[]) => r.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
      console.log(line(head));
      for (const r of rows) console.log(line(r));
    });
}
