// `deeplab info`: what the addon was built against and how it will run here.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import * as torch from '../torch/index.js';

/** The malloc this process runs with: jemalloc when bin/deeplab preloaded it. */
export function allocator(): string {
  let maps = '';
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return 'unknown';
  }
  if (!maps.includes('libjemalloc'))
    return torch.buildInfo().hugePages ? 'system malloc, huge pages for large inference tensors' : 'system malloc';
  return `jemalloc (${process.env.MALLOC_CONF ? `MALLOC_CONF=${process.env.MALLOC_CONF}` : 'its default settings'})`;
}

export function infoCommand(): Command {
  return new Command('info')
    .description('show the LibTorch build, threads and devices')
    .option('--config', "print LibTorch's full build configuration")
    .action((o: { config?: boolean }) => {
      const b = torch.buildInfo();
      console.log(
        `LibTorch ${b.torchVersion}  oneDNN: ${b.mkldnn ? 'yes' : 'no'}  CUDA: ${b.cuda ? `${b.cudaDevices} device(s)` : 'no'}`,
      );
      console.log(`intra-op threads: ${torch.getNumThreads()}`);
      console.log(`allocator: ${allocator()}`);
      console.log(
        `memory budget per tensor: ${(torch.memoryBudget() / 2 ** 30).toFixed(1)} GiB (${process.env[torch.MEMORY_BUDGET_ENV] ? `${torch.MEMORY_BUDGET_ENV}=${process.env[torch.MEMORY_BUDGET_ENV]}` : `this machine's memory; ${torch.MEMORY_BUDGET_ENV} sets it`})`,
      );
      if (o.config) console.log(b.config);
    });
}
