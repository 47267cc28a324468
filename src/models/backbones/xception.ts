// Aligned Xception-65 in the layout of jfzhang95/pytorch-deeplab-xception
// (modeling/backbone/xception.py, AlignedXception): entry flow conv1/bn1, conv2/bn2, block1..3;
// middle flow block4..19; exit flow block20 and separable conv3..5 with bn3..5. Returns the
// 2048-channel features and the low-level features (block1 + ReLU: 128 channels, stride 4).
// Output stride 16 or 8 (the port knows no other): block3's stride, the middle flow's rate and
// the exit flow's two rates are rewritten at run time; the modules, and the keys, stay.
import { type Tensor, F, nn } from '../../torch/index.js';
import { checkOutputStride, type Backbone, type Features, type OutputStride } from '../backbone.js';

/**
 * The port's fixed_padding: TensorFlow "SAME" padding for a stride-1 dilated kernel, applied
 * before the conv (begin, end). Symmetric for odd kernels, so the conv's own padding does it.
 */
export function fixedPadding(kernel: number, dilation: number): [number, number] {
  const total = kernel + (kernel - 1) * (dilation - 1) - 1;
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

/** Depthwise 3x3 (`conv1`) -> BN (`bn`) -> pointwise 1x1 (`pointwise`); no activation inside. */
export class SeparableConv2d extends nn.Module {
  conv1: nn.Conv2d;
  bn: nn.BatchNorm2d;
  pointwise: nn.Conv2d;
  #pad: [number, number] = [1, 1];

  constructor(inC: number, outC: number, stride = 1, dilation = 1) {
    super();
    this.conv1 = new nn.Conv2d(inC, inC, 3, { groups: inC, bias: false });
    this.bn = new nn.BatchNorm2d(inC);
    this.pointwise = new nn.Conv2d(inC, outC, 1, { bias: false });
    this.configure(stride, dilation);
  }

  configure(stride: number, dilation: number): void {
    this.#pad = fixedPadding(3, dilation);
    // A symmetric fixed_padding is the conv's own "same" padding; an asymmetric one is applied in forward.
    this.conv1.setAtrous(dilation, { stride, padded: this.#pad[0] === this.#pad[1] });
  }

  forward(x: Tensor): Tensor {
    const [b, e] = this.#pad;
    const padded = b === e ? x : F.pad(x, [b, e, b, e]);
    return this.pointwise.forward(this.bn.forward(this.conv1.forward(padded)));
  }
}

export interface XceptionBlockOptions {
  reps: number;
  stride?: number;
  dilation?: number;
  startWithRelu?: boolean;
  growFirst?: boolean;
  /** a stride-1 block that ends the entry or exit flow gets the extra separable conv a stride-2 one has */
  isLast?: boolean;
}

/**
 * The port's Block: `rep` = [ReLU, SeparableConv2d, BN] x n (the first ReLU dropped when the block
 * does not start with one), plus a 1x1 `skip`/`skipbn` shortcut when the shape changes.
 */
export class XceptionBlock extends nn.Module {
  skip: nn.Conv2d | null;
  skipbn: nn.BatchNorm2d | null;
  rep: nn.Sequential;
  readonly startWithRelu: boolean;
  /** the separable convs at the block's rate */
  readonly #atrous: SeparableConv2d[] = [];
  /** the closing stride-2 (or, for a last block, stride-1) separable conv, at rate 1 */
  readonly #closing: SeparableConv2d | null = null;

  constructor(inC: number, outC: number, o: XceptionBlockOptions) {
    super();
    const stride = o.stride ?? 1;
    const dilation = o.dilation ?? 1;
    const growFirst = o.growFirst ?? true;
    this.startWithRelu = o.startWithRelu ?? true;
    const hasSkip = outC !== inC || stride !== 1;
    this.skip = hasSkip ? new nn.Conv2d(inC, outC, 1, { stride, bias: false }) : null;
    this.skipbn = hasSkip ? new nn.BatchNorm2d(outC) : null;
    const layers: (nn.Module & nn.Layer)[] = [];
    const unit = (conv: SeparableConv2d, c: number) => layers.push(new nn.ReLU(true), conv, new nn.BatchNorm2d(c));
    const atrous = (i: number, c: number) => {
      const conv = new SeparableConv2d(i, c, 1, dilation);
      this.#atrous.push(conv);
      unit(conv, c);
    };
    let width = inC;
    if (growFirst) {
      atrous(inC, outC);
      width = outC;
    }
    for (let r = 1; r < o.reps; r++) atrous(width, width);
    if (!growFirst) atrous(inC, outC);
    if (stride !== 1 || o.isLast) {
      this.#closing = new SeparableConv2d(outC, outC, stride, 1);
      unit(this.#closing, outC);
    }
    this.rep = new nn.Sequential(...(this.startWithRelu ? layers : layers.slice(1)));
  }

  /** Rewrites the block's stride (closing conv and shortcut) and the rate of its atrous convs. */
  configure(stride: number, dilation: number): void {
    for (const c of this.#atrous) c.configure(1, dilation);
    if (stride !== 1 && !this.#closing) throw new RangeError('XceptionBlock: this block has no strided conv');
    this.#closing?.configure(stride, 1);
    if (this.skip) this.skip.stride = stride;
  }

  forward(input: Tensor): Tensor {
    // The port's leading ReLU is in place on the block's input, so its shortcut adds relu(input),
    // not the input: both branches start from the same rectified tensor here.
    const x = this.startWithRelu ? F.relu(input) : input;
    let y = x;
    for (let i = this.startWithRelu ? 1 : 0; i < this.rep.length; i++) y = this.rep.at(i).forward(y);
    const shortcut = this.skip ? this.skipbn!.forward(this.skip.forward(x)) : x;
    return y.add_(shortcut);
  }
}

/** Entry block3 stride, middle-flow rate and exit-flow rates per output stride, as the port sets them. */
const PLAN: Record<8 | 16, { entryStride: number; middle: number; exit: [number, number] }> = {
  16: { entryStride: 2, middle: 1, exit: [1, 2] },
  8: { entryStride: 1, middle: 2, exit: [2, 4] },
};

const MIDDLE_BLOCKS = 16;

export class AlignedXception extends nn.Module implements Backbone {
  // Field order is the state_dict order: conv1, bn1, conv2, bn2, block1..block20, conv3..bn5.
  conv1 = new nn.Conv2d(3, 32, 3, { stride: 2, padding: 1, bias: false });
  bn1 = new nn.BatchNorm2d(32);
  conv2 = new nn.Conv2d(32, 64, 3, { padding: 1, bias: false });
  bn2 = new nn.BatchNorm2d(64);
  /** block1..block20 (also fields `block1`... for the keys; an array is no child) */
  readonly blocks: XceptionBlock[];
  declare conv3: SeparableConv2d;
  declare bn3: nn.BatchNorm2d;
  declare conv4: SeparableConv2d;
  declare bn4: nn.BatchNorm2d;
  declare conv5: SeparableConv2d;
  declare bn5: nn.BatchNorm2d;
  /** stages: [low-level features (block1 + ReLU, stride 4), features] */
  readonly channels = [128, 2048] as const;
  outIndices: readonly number[] = [0, 1];
  #outputStride: OutputStride = 16;

  constructor(o: { outputStride?: OutputStride } = {}) {
    super();
    const blocks = [
      new XceptionBlock(64, 128, { reps: 2, stride: 2, startWithRelu: false }),
      new XceptionBlock(128, 256, { reps: 2, stride: 2, startWithRelu: false }),
      new XceptionBlock(256, 728, { reps: 2, stride: 2, isLast: true }),
    ];
    for (let i = 0; i < MIDDLE_BLOCKS; i++) blocks.push(new XceptionBlock(728, 728, { reps: 3 }));
    blocks.push(new XceptionBlock(728, 1024, { reps: 2, growFirst: false, isLast: true }));
    this.blocks = blocks;
    const named = this as unknown as Record<string, nn.Module>;
    blocks.forEach((b, i) => (named[`block${i + 1}`] = b));
    this.conv3 = new SeparableConv2d(1024, 1536);
    this.bn3 = new nn.BatchNorm2d(1536);
    this.conv4 = new SeparableConv2d(1536, 1536);
    this.bn4 = new nn.BatchNorm2d(1536);
    this.conv5 = new SeparableConv2d(1536, 2048);
    this.bn5 = new nn.BatchNorm2d(2048);
    this.setOutputStride(o.outputStride ?? 16);
  }

  get outputStride(): OutputStride {
    return this.#outputStride;
  }

  setOutputStride(os: OutputStride): void {
    checkOutputStride(os, 'AlignedXception', [8, 16]);
    const p = PLAN[os as 8 | 16];
    this.blocks[2].configure(p.entryStride, 1);
    for (let i = 3; i < 3 + MIDDLE_BLOCKS; i++) this.blocks[i].configure(1, p.middle);
    this.blocks[19].configure(1, p.exit[0]);
    for (const c of [this.conv3, this.conv4, this.conv5]) c.configure(1, p.exit[1]);
    this.#outputStride = os;
  }

  /** [low-level features (128 channels, stride 4), features (2048 channels)], as outIndices asks */
  forward(x: Tensor): Features {
    let y = F.relu_(this.bn1.forward(this.conv1.forward(x)));
    y = F.relu_(this.bn2.forward(this.conv2.forward(y)));
    const low = F.relu_(this.blocks[0].forward(y));
    y = low;
    for (let i = 1; i < this.blocks.length; i++) y = this.blocks[i].forward(y);
    y = F.relu_(y);
    y = F.relu_(this.bn3.forward(this.conv3.forward(y)));
    y = F.relu_(this.bn4.forward(this.conv4.forward(y)));
    y = F.relu_(this.bn5.forward(this.conv5.forward(y)));
    return [this.outIndices.includes(0) ? low : undefined, this.outIndices.includes(1) ? y : undefined];
  }
}
