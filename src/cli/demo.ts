// `deeplab demo`: a short real run. Until the model zoo lands it times a small atrous network
// (a strided stem, dilated 3x3 blocks, an ASPP-style head) forward and backward.
import { Command } from 'commander';
import * as torch from '../torch/index.js';

const { nn, F } = torch;

class TinyAtrousNet extends nn.Module {
  stem = new nn.Sequential(new nn.Conv2d(3, 32, 3, { stride: 2, padding: 1, bias: false }), new nn.BatchNorm2d(32), new nn.ReLU());
  body = new nn.Sequential(
    new nn.Conv2d(32, 64, 3, { stride: 2, padding: 1, bias: false }), new nn.BatchNorm2d(64), new nn.ReLU(),
    new nn.Conv2d(64, 64, 3, { padding: 2, dilation: 2, bias: false }), new nn.BatchNorm2d(64), new nn.ReLU(),
  );
  branches = new nn.ModuleList([1, 6, 12].map((r) => new nn.Conv2d(64, 32, r === 1 ? 1 : 3, { padding: r === 1 ? 0 : r, dilation: r })));
  classifier = new nn.Conv2d(96, 11, 1);

  forward(x: torch.Tensor): torch.Tensor {
    const f = this.body.forward(this.stem.forward(x));
    const y = this.classifier.forward(torch.cat(this.branches.map((b) => F.relu(b.forward(f))), 1));
    return F.interpolate(y, { size: [x.shape[2], x.shape[3]], mode: 'bilinear', alignCorners: false });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('time a small atrous network forward and backward on random input')
    .option('--size <px>', 'input height and width', '256')
    .option('--iters <n>', 'timed iterations', '5')
    .action((o: { size: string; iters: string }) => {
      const size = Number(o.size);
      const iters = Number(o.iters);
      torch.manualSeed(0);
      const net = new TinyAtrousNet();
      const x = torch.randn([2, 3, size, size]);
      const y = torch.randint(0, 11, [2, size, size]);
      const fwd: number[] = [];
      const train: number[] = [];
      for (let i = 0; i < iters + 1; i++) {
        torch.scope(() => {
          net.eval();
          let t0 = performance.now();
          const out = torch.inferenceMode(() => net.forward(x));
          if (i > 0) fwd.push(performance.now() - t0);
          if (i === iters) console.log(`output ${out.shape.join('x')} (N x classes x H x W)`);
          net.train();
          t0 = performance.now();
          const loss = F.crossEntropy(net.forward(x), y, { ignoreIndex: 255 });
          loss.backward();
          if (i > 0) train.push(performance.now() - t0);
          if (i === iters) console.log(`loss ${loss.item().toFixed(4)}`);
        });
        net.zeroGrad();
      }
      console.log(`LibTorch ${torch.buildInfo().torchVersion}, ${torch.getNumThreads()} threads, input 2x3x${size}x${size}, ${net.numParameters()} parameters`);
      console.log(`forward (inference mode): median ${median(fwd).toFixed(1)} ms over ${iters}`);
      console.log(`forward + backward:       median ${median(train).toFixed(1)} ms over ${iters}`);
      net.dispose();
      x.dispose();
      y.dispose();
    });
}
