// ResNet with atrous stages, in the three dialects the DeepLab family uses:
//  - torchvision / mmseg "b" (ResNetV1b): 7x7 stem `conv1`/`bn1`, stride on the 3x3 (V1.5);
//  - mmseg ResNetV1c: deep stem `stem.{0..8}` (three 3x3 convs);
//  - DeepLab-v2 (caffe style): stride on the first 1x1, max-pool with ceil_mode.
// Output stride (8, 16, 32) replaces stage strides with dilation and can be changed at run time:
// only conv strides, dilations and paddings change, never weights.
import { type Tensor, nn, F } from '../../torch/index.js';

export type Style = 'pytorch' | 'caffe';
import { checkOutputStride, type Backbone, type Features, type OutputStride } from '../backbone.js';

export interface ResNetOptions {
  depth: 18 | 34 | 50 | 101 | 152;
  /** 'torchvision': 7x7 conv1/bn1; 'deep': mmseg V1c stem.* */
  stem?: 'torchvision' | 'deep';
  /** where a bottleneck strides: on conv2 (pytorch, V1.5) or conv1 (caffe, DeepLab-v2) */
  style?: Style;
  outputStride?: OutputStride;
  /** the first block of a dilated stage uses half the rate (mmseg contract_dilation, torchvision) */
  contractDilation?: boolean;
  /** unit rates of the last stage's blocks */
  multiGrid?: readonly number[];
  /** 'absolute': the rates are multi_grid itself (mmseg); 'multiplicative': stage rate x multi_grid (paper, TF) */
  multiGridMode?: 'absolute' | 'multiplicative';
  /** max-pool with ceil_mode (caffe DeepLab-v2) */
  ceilPool?: boolean;
  /** false: batch-norm affine parameters are frozen (DeepLab-v2 sets requires_grad=False) */
  bnAffineTrainable?: boolean;
}

const ARCH: Record<
  ResNetOptions['depth'],
  { block: 'basic' | 'bottleneck'; layers: [number, number, number, number] }
> = {
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
};

/** A 3x3 or 1x1 conv whose stride and dilation the backbone may rewrite. */
function conv(inC: number, outC: number, k: 1 | 3, stride = 1, dilation = 1): nn.Conv2d {
  return new nn.Conv2d(inC, outC, k, { stride, padding: k === 3 ? dilation : 0, dilation, bias: false });
}

interface Block extends nn.Module {
  downsample: nn.Sequential | null;
  forward(x: Tensor): Tensor;
  /** rewrites this block's stride and the rate of its 3x3 conv(s) */
  configure(stride: number, dilation: number): void;
}

export class BasicBlock extends nn.Module implements Block {
  static readonly expansion = 1;
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  conv2: nn.Conv2d;
  bn2: nn.BatchNorm2d;
  downsample: nn.Sequential | null;

  constructor(inC: number, planes: number, downsample: nn.Sequential | null) {
    super();
    this.conv1 = conv(inC, planes, 3);
    this.bn1 = new nn.BatchNorm2d(planes);
    this.conv2 = conv(planes, planes, 3);
    this.bn2 = new nn.BatchNorm2d(planes);
    this.downsample = downsample;
  }

  // mmseg's BasicBlock dilates conv1 only; conv2 stays a plain 3x3 (torchvision's refuses dilation).
  configure(stride: number, dilation: number): void {
    this.conv1.setAtrous(dilation, { stride });
    this.conv2.setAtrous(1, { stride: 1 });
    if (this.downsample) (this.downsample.at(0) as nn.Conv2d).stride = stride;
  }

  /** set by src/inference/fuse.ts: conv1 applies its ReLU, conv2 the residual add and ReLU (BNs folded) */
  fusedResidual = false;
  /**
   * set by src/inference/fuse.ts on every block but the first of a stage: the input is the previous
   * block's output, which nothing else reads, so the fused residual add may write into it.
   */
  ownsInput = false;

  forward(x: Tensor): Tensor {
    if (this.fusedResidual) {
      const identity = this.downsample ? this.downsample.forward(x) : x;
      return this.conv2.forwardAdd(this.conv1.forward(x), identity, identity !== x || this.ownsInput);
    }
    const out = nn.pipe(x, this.conv1, this.bn1, F.relu_, this.conv2, this.bn2);
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return F.relu_(out.add_(identity));
  }
}

export class Bottleneck extends nn.Module implements Block {
  static readonly expansion = 4;
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  conv2: nn.Conv2d;
  bn2: nn.BatchNorm2d;
  conv3: nn.Conv2d;
  bn3: nn.BatchNorm2d;
  downsample: nn.Sequential | null;

  constructor(
    inC: number,
    planes: number,
    downsample: nn.Sequential | null,
    readonly style: Style,
  ) {
    super();
    this.conv1 = conv(inC, planes, 1);
    this.bn1 = new nn.BatchNorm2d(planes);
    this.conv2 = conv(planes, planes, 3);
    this.bn2 = new nn.BatchNorm2d(planes);
    this.conv3 = conv(planes, planes * 4, 1);
    this.bn3 = new nn.BatchNorm2d(planes * 4);
    this.downsample = downsample;
  }

  configure(stride: number, dilation: number): void {
    this.conv1.setAtrous(1, { stride: this.style === 'caffe' ? stride : 1 });
    this.conv2.setAtrous(dilation, { stride: this.style === 'caffe' ? 1 : stride });
    if (this.downsample) (this.downsample.at(0) as nn.Conv2d).stride = stride;
  }

  /**
   * Set by src/inference/fuse.ts: conv1 and conv2 apply their ReLU, conv3 the residual add and
   * ReLU (the BNs are folded). The downsample's output, read by nothing else, takes the result.
   */
  fusedResidual = false;
  /** as BasicBlock's: the fused residual add may write into the input (not the first block of a stage) */
  ownsInput = false;

  forward(x: Tensor): Tensor {
    if (this.fusedResidual) {
      const identity = this.downsample ? this.downsample.forward(x) : x;
      // x is read by conv1 (and downsample) before conv3 runs, so conv3 may write into it when it is ours.
      return this.conv3.forwardAdd(nn.pipe(x, this.conv1, this.conv2), identity, identity !== x || this.ownsInput);
    }
    const out = nn.pipe(x, this.conv1, this.bn1, F.relu_, this.conv2, this.bn2, F.relu_, this.conv3, this.bn3);
    const identity = this.downsample ? this.downsample.forward(x) : x;
    return F.relu_(out.add_(identity));
  }
}

/** The deep stem of ResNetV1c: conv3x3 s2 (3→32), conv3x3 (32→32), conv3x3 (32→64), each BN+ReLU. */
function deepStem(): nn.Sequential {
  const c = (i: number, o: number, s: number) => new nn.Conv2d(i, o, 3, { stride: s, padding: 1, bias: false });
  return new nn.Sequential(
    c(3, 32, 2),
    new nn.BatchNorm2d(32),
    new nn.ReLU(true),
    c(32, 32, 1),
    new nn.BatchNorm2d(32),
    new nn.ReLU(true),
    c(32, 64, 1),
    new nn.BatchNorm2d(64),
    new nn.ReLU(true),
  );
}

export class ResNet extends nn.Module implements Backbone {
  // Field order is the state_dict order: stem first, then layer1..layer4.
  stem?: nn.Sequential;
  conv1?: nn.Conv2d;
  bn1?: nn.BatchNorm2d;
  layer1: nn.Sequential;
  layer2: nn.Sequential;
  layer3: nn.Sequential;
  layer4: nn.Sequential;
  /** channels of the four stage outputs */
  readonly channels: [number, number, number, number];
  /** The stage outputs (0..3) forward() returns; the others are freed once the next stage read them. */
  outIndices: readonly number[] = [0, 1, 2, 3];
  private readonly opts: Required<Omit<ResNetOptions, 'multiGrid'>> & { multiGrid: readonly number[] | null };
  #outputStride: OutputStride;

  constructor(o: ResNetOptions) {
    super();
    this.opts = {
      stem: 'torchvision',
      style: 'pytorch',
      outputStride: 32,
      contractDilation: true,
      multiGridMode: 'absolute',
      ceilPool: false,
      bnAffineTrainable: true,
      ...o,
      multiGrid: o.multiGrid ?? null,
    };
    const arch = ARCH[o.depth];
    if (!arch) throw new RangeError(`ResNet: depth must be one of 18, 34, 50, 101, 152 (got ${o.depth})`);
    if (this.opts.stem === 'deep') {
      this.stem = deepStem();
    } else {
      this.conv1 = new nn.Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false });
      this.bn1 = new nn.BatchNorm2d(64);
    }
    const expansion = arch.block === 'basic' ? 1 : 4;
    let inC = 64;
    const makeLayer = (planes: number, blocks: number, firstStride: number): nn.Sequential => {
      const out = planes * expansion;
      // Whether a stage downsamples is decided at construction (by its native stride), so the
      // module tree, and with it the checkpoint keys, never depends on the output stride.
      const ds =
        firstStride !== 1 || inC !== out
          ? new nn.Sequential(conv(inC, out, 1, firstStride), new nn.BatchNorm2d(out))
          : null;
      const list: (nn.Module & Block)[] = [];
      for (let i = 0; i < blocks; i++) {
        const b: nn.Module & Block =
          arch.block === 'basic'
            ? new BasicBlock(inC, planes, i === 0 ? ds : null)
            : new Bottleneck(inC, planes, i === 0 ? ds : null, this.opts.style);
        list.push(b);
        inC = out;
      }
      return new nn.Sequential(...list);
    };
    this.layer1 = makeLayer(64, arch.layers[0], 1);
    this.layer2 = makeLayer(128, arch.layers[1], 2);
    this.layer3 = makeLayer(256, arch.layers[2], 2);
    this.layer4 = makeLayer(512, arch.layers[3], 2);
    this.channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion];
    // torchvision's and mmseg's initialisation: Kaiming-normal (fan_out, ReLU) convs, BN 1 and 0.
    for (const [, m] of this.namedModules())
      if (m instanceof nn.Conv2d) nn.init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
    if (!this.opts.bnAffineTrainable) {
      for (const [, m] of this.namedModules())
        if (m instanceof nn.BatchNorm2d) for (const p of [m.weight, m.bias]) p?.requiresGrad_(false);
    }
    this.#outputStride = 32;
    this.setOutputStride(this.opts.outputStride);
  }

  get outputStride(): OutputStride {
    return this.#outputStride;
  }

  /**
   * Sets the stage strides and atrous rates for output stride 8, 16 or 32 (stem + max-pool give
   * 4; each of layer2..4 either halves the resolution or, past the target, doubles its rate).
   */
  setOutputStride(os: OutputStride): void {
    checkOutputStride(os, 'ResNet');
    let current = 4;
    let rate = 1;
    const layers = [this.layer1, this.layer2, this.layer3, this.layer4];
    layers.forEach((layer, si) => {
      let stride = si === 0 ? 1 : 2;
      const prevRate = rate;
      if (stride === 2 && current * 2 > os) {
        rate *= 2;
        stride = 1;
      } else {
        current *= stride;
      }
      const blocks = [...layer] as unknown as Block[];
      const mg = si === 3 ? this.opts.multiGrid : null;
      blocks.forEach((b, bi) => {
        let d: number;
        if (mg) d = this.opts.multiGridMode === 'absolute' ? mg[bi % mg.length] : rate * mg[bi % mg.length];
        else if (bi === 0 && rate > 1 && this.opts.contractDilation)
          d = prevRate === rate ? rate : Math.max(1, rate / 2);
        else d = rate;
        b.configure(bi === 0 ? stride : 1, d);
      });
    });
    this.#outputStride = os;
  }

  /** Per-stage dilation of every 3x3 conv, for tests and `deeplab models`. */
  rates(): number[][] {
    return [this.layer1, this.layer2, this.layer3, this.layer4].map((l) =>
      [...l].map((b) => {
        return ((b as Bottleneck).conv3 ? (b as Bottleneck).conv2 : (b as BasicBlock).conv1).rate;
      }),
    );
  }

  /** The stage outputs in outIndices (strides 4, 8, 16, 32 at output stride 32). */
  forward(x: Tensor): Features {
    let y: Tensor;
    if (this.stem) y = this.stem.forward(x);
    else {
      y = this.bn1!.forward(this.conv1!.forward(x));
      if (!this.conv1!.epilogue) y = F.relu_(y); // src/inference/fuse.ts may have put it in the conv
    }
    y = F.maxPool2d(y, 3, { stride: 2, padding: 1, ceilMode: this.opts.ceilPool });
    const outs: (Tensor | undefined)[] = [];
    [this.layer1, this.layer2, this.layer3, this.layer4].forEach((layer, i) => {
      y = layer.forward(y);
      if (i > 0 && !this.outIndices.includes(i - 1)) outs[i - 1]?.dispose();
      outs[i] = y;
    });
    if (!this.outIndices.includes(3)) outs[3]?.dispose();
    return outs.map((t, i) => (this.outIndices.includes(i) ? t : undefined));
  }
}
