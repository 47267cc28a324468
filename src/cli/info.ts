// `deeplab info`: what the addon was built against and how it will run here.
import { Command } from 'commander';
import * as torch from '../torch/index.js';

export function infoCommand(): Command {
  return new Command('info')
    .description('show the LibTorch build, threads and devices')
    .option('--config', 'print LibTorch\'s full build configuration')
    .action((o: { config?: boolean }) => {
      const b = torch.buildInfo();
      console.log(`LibTorch ${b.torchVersion}  oneDNN: ${b.mkldnn ? 'yes' : 'no'}  CUDA: ${b.cuda ? `${b.cudaDevices} device(s)` : 'no'}`);
      console.log(`intra-op threads: ${torch.getNumThreads()}`);
      if (o.config) console.log(b.config);
    });
}
