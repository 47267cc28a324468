// MobileNetV3-Large's feature extractor as torchvision builds it for segmentation
// (`mobilenet_v3_large(dilated=True).features`): children 0..16, so its keys are torchvision's
// (`1.block.0.0.weight`, SE `4.block.2.fc1.weight`, ...). Output stride 8, 16 or 32 is set at
// run time by rewriting depthwise strides and dilations, never weights.
import { type Tensor, nn } from '../../torch/index.js';
import { checkOutputStride, type Backbone, type Features, type OutputStride } from '../backbone.js';

type Activation = 'relu' | 'hardswish';

/** One row of the paper's Table 1 (torchvision's InvertedResidualConfig at width 1.0). */
interface BlockConfig {
  inC: number;
  kernel: 3 | 5;
  expandC: number;
  outC: number;
  se: boolean;
  act: Activation;
  /** the block's stride in the classification network */
  stride: 1 | 2;
}

const b = (
  inC: number,
  kernel: 3 | 5,
  expandC: number,
  outC: number,
  se: boolean,
  act: Activation,
  stride: 1 | 2,
): BlockConfig => ({ inC, kernel, expandC, outC, se, act, stride });

const LARGE: readonly BlockConfig[] = [
  b(16, 3, 16, 16, false, 'relu', 1),
  b(16, 3, 64, 24, false, 'relu', 2), // C1
  b(24, 3, 72, 24, false, 'relu', 1),
  b(24, 5, 72, 40, true, 'relu', 2), // C2
  b(40, 5, 120, 40, true, 'relu', 1),
  b(40, 5, 120, 40, true, 'relu', 1),
  b(40, 3, 240, 80, false, 'hardswish', 2), // C3
  b(80, 3, 200, 80, false, 'hardswish', 1),
  b(80, 3, 184, 80, false, 'hardswish', 1),
  b(80, 3, 184, 80, false, 'hardswish', 1),
  b(80, 3, 480, 112, true, 'hardswish', 1),
  b(112, 3, 672, 112, true, 'hardswish', 1),
  b(112, 5, 672, 160, true, 'hardswish', 2), // C4
  b(160, 5, 960, 160, true, 'hardswish', 1),
  b(160, 5, 960, 160, true, 'hardswish', 1),
];

/** Rounds to a multiple of 8, never more than 10% down (the TF reference's _make_divisible). */
function makeDivisible(v: number, divisor = 8): number {
  const r = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return r < 0.9 * v ? r + divisor : r;
}

// torchvision's MobileNetV3 uses BatchNorm2d(eps=0.001, momentum=0.01) throughout.
const bn = (c: number) => new nn.BatchNorm2d(c, { eps: 0.001, momentum: 0.01 });
const activation = (a: Activation) => (a === 'relu' ? new nn.ReLU(true) : new nn.Hardswish());

/** torchvision's Conv2dNormActivation: conv (no bias), BN, optional activation; `N.0`, `N.1`. */
export class ConvBNAct extends nn.Sequential {
  constructor(
    inC: number,
    outC: number,
    kernel: number,
    o: { stride?: number; groups?: number; act: Activation | null },
  ) {
    const conv = new nn.Conv2d(inC, outC, kernel, {
      stride: o.stride ?? 1,
      padding: (kernel - 1) / 2,
      groups: o.groups ?? 1,
      bias: false,
    });
    super(...(o.act ? [conv, bn(outC), activation(o.act)] : [conv, bn(outC)]));
  }

  get conv(): nn.Conv2d {
    return this.at(0) as nn.Conv2d;
  }
}

/** Channel attention: x * hardsigmoid(fc2(relu(fc1(mean(x))))), the fcs being 1x1 convs. */
class SqueezeExcitation extends nn.Module implements nn.Layer {
  avgpool = new nn.AdaptiveAvgPool2d(1);
  fc1: nn.Conv2d;
  fc2: nn.Conv2d;
  activation = new nn.ReLU(true);
  scale_activation = new nn.Hardsigmoid();

  constructor(channels: number, squeeze: number) {
    super();
    this.fc1 = new nn.Conv2d(channels, squeeze, 1);
    this.fc2 = new nn.Conv2d(squeeze, channels, 1);
  }

  forward(x: Tensor): Tensor {
    const s = this.fc2.forward(this.activation.forward(this.fc1.forward(this.avgpool.forward(x))));
    return this.scale_activation.forward(s).mul(x);
  }
}

/** Expand 1x1 (when widening), depthwise kxk, optional SE, project 1x1; residual when shapes allow. */
export class InvertedResidual extends nn.Module implements nn.Layer {
  block: nn.Sequential;
  readonly nativeStride: 1 | 2;
  // Decided by the native stride, like torchvision's, so dilating a stage never adds a shortcut.
  readonly residual: boolean;
  // A private field, so it is not mistaken for a second child holding the same weights.
  readonly #depthwise: nn.Conv2d;

  constructor(c: BlockConfig) {
    super();
    const layers: (nn.Module & nn.Layer)[] = [];
    if (c.expandC !== c.inC) layers.push(new ConvBNAct(c.inC, c.expandC, 1, { act: c.act }));
    const dw = new ConvBNAct(c.expandC, c.expandC, c.kernel, { stride: c.stride, groups: c.expandC, act: c.act });
    layers.push(dw);
    if (c.se) layers.push(new SqueezeExcitation(c.expandC, makeDivisible(c.expandC / 4)));
    layers.push(new ConvBNAct(c.expandC, c.outC, 1, { act: null }));
    this.block = new nn.Sequential(...layers);
    this.nativeStride = c.stride;
    this.residual = c.stride === 1 && c.inC === c.outC;
    this.#depthwise = dw.conv;
  }

  /** Only the depthwise conv strides or dilates; padding keeps 'same' geometry. */
  configure(stride: number, dilation: number): void {
    this.#depthwise.setAtrous(dilation, { stride });
  }

  get dilation(): number {
    return this.#depthwise.rate;
  }

  /** set by src/inference/fuse.ts: the projection conv adds the residual itself (its BN folded) */
  fusedResidual = false;

  forward(x: Tensor): Tensor {
    if (this.fusedResidual) {
      const n = this.block.length;
      const first = Array.from({ length: n - 1 }, (_, i) => this.block.at(i));
      return (this.block.at(n - 1) as ConvBNAct).conv.forwardAdd(nn.pipe(x, ...first), x);
    }
    const y = this.block.forward(x);
    return this.residual ? y.add_(x) : y;
  }
}

export interface MobileNetV3Options {
  /** 16 is torchvision's `dilated=True` (the default); 32 the classification network */
  outputStride?: OutputStride;
}

export class MobileNetV3Large extends nn.ModuleList<nn.Module & nn.Layer> implements Backbone {
  /**
   * Indices of the layers whose outputs forward() returns: the stem, each block that strides in
   * the classification network (C1..C4) and the last 1x1 conv (torchvision's `stage_indices`).
   */
  readonly taps: readonly number[];
  /** channels of each stage (tap) */
  readonly channels: readonly number[];
  /** the stages (indices into taps) forward() returns */
  outIndices: readonly number[];
  #outputStride: OutputStride = 32;

  constructor(o: MobileNetV3Options = {}) {
    const first = LARGE[0].inC;
    const last = LARGE[LARGE.length - 1].outC;
    super([
      new ConvBNAct(3, first, 3, { stride: 2, act: 'hardswish' }),
      ...LARGE.map((c) => new InvertedResidual(c)),
      new ConvBNAct(last, 6 * last, 1, { act: 'hardswish' }),
    ]);
    this.taps = [0, ...LARGE.flatMap((c, i) => (c.stride === 2 ? [i + 1] : [])), LARGE.length + 1];
    this.channels = this.taps.map((i) => (i === 0 ? first : i === LARGE.length + 1 ? 6 * last : LARGE[i - 1].outC));
    this.outIndices = this.taps.map((_, i) => i);
    this.initWeights();
    this.setOutputStride(o.outputStride ?? 16);
  }

  // torchvision's MobileNetV3 init: convs kaiming-normal (fan_out) with zero bias; BN 1 and 0.
  private initWeights(): void {
    for (const [, m] of this.namedModules()) {
      if (!(m instanceof nn.Conv2d)) continue;
      nn.init.kaimingNormal_(m.weight, { mode: 'fan_out' });
      if (m.bias) nn.init.zeros_(m.bias);
    }
  }

  private blocks(): InvertedResidual[] {
    return [...this].filter((m): m is InvertedResidual => m instanceof InvertedResidual);
  }

  get outputStride(): OutputStride {
    return this.#outputStride;
  }

  /**
   * Past the target stride, a block that would stride keeps stride 1 and doubles the rate, and
   * every block from there on (that one included, as torchvision's `dilated=True`) uses the rate.
   */
  setOutputStride(os: OutputStride): void {
    checkOutputStride(os, 'MobileNetV3');
    let current = 2; // after the stem
    let rate = 1;
    for (const blk of this.blocks()) {
      let stride: number = blk.nativeStride;
      if (stride === 2 && current * 2 > os) {
        rate *= 2;
        stride = 1;
      } else {
        current *= stride;
      }
      blk.configure(stride, rate);
    }
    this.#outputStride = os;
  }

  /** The depthwise dilation of each inverted-residual block (layers 1..15), for tests and tools. */
  rates(): number[] {
    return this.blocks().map((blk) => blk.dilation);
  }

  /** The outputs of the stages in outIndices, by stage (tap) index, shallow to deep. */
  forward(x: Tensor): Features {
    const out: (Tensor | undefined)[] = this.taps.map(() => undefined);
    let i = 0;
    for (const layer of this) {
      x = layer.forward(x);
      const stage = this.taps.indexOf(i++);
      if (stage >= 0 && this.outIndices.includes(stage)) out[stage] = x;
    }
    return out;
  }
}
