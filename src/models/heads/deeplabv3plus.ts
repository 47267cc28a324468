// DeepLabV3+'s ASPP and decoder in the layout of jfzhang95/pytorch-deeplab-xception
// (modeling/aspp.py, modeling/decoder.py); the port's SynchronizedBatchNorm2d is a plain
// BatchNorm2d here (same keys, same eval numerics).
//  - ASPP: `aspp1` (1x1) and `aspp2..4` (3x3 atrous), each `atrous_conv` + `bn` + ReLU; the image
//    pool `global_avg_pool` (pool, 1x1 conv, BN, ReLU) upsampled with align_corners=True; the
//    concatenation (1280) through `conv1`/`bn1`/ReLU to 256, then dropout 0.5.
//  - Decoder: low-level features through `conv1`/`bn1`/ReLU to 48 channels; ASPP output upsampled
//    (align_corners=True) to their size, concatenated (304), `last_conv` = 3x3 256 + BN + ReLU +
//    dropout 0.5, 3x3 256 + BN + ReLU + dropout 0.1, 1x1 to the classes (with bias).
import { type Tensor, F, nn, cat } from '../../torch/index.js';
import { setRates } from '../backbone.js';
import { resizeFeatures } from '../segmentor.js';

const ASPP_CHANNELS = 256;
const LOW_LEVEL_CHANNELS = 48;

/** One ASPP branch: conv (`atrous_conv`), BN (`bn`), ReLU. */
export class AsppBranch extends nn.Module {
  atrous_conv: nn.Conv2d;
  bn: nn.BatchNorm2d;

  constructor(inC: number, kernel: 1 | 3, rate: number) {
    super();
    this.atrous_conv = new nn.Conv2d(inC, ASPP_CHANNELS, kernel, { bias: false });
    this.bn = new nn.BatchNorm2d(ASPP_CHANNELS);
    this.atrous_conv.setAtrous(rate);
  }

  forward(x: Tensor): Tensor {
    return F.relu_(this.bn.forward(this.atrous_conv.forward(x)));
  }
}

function sameLayout(t: Tensor, like: Tensor): Tensor {
  return like.isContiguous('channels_last') && !like.isContiguous() && !t.isContiguous('channels_last')
    ? t.contiguous('channels_last')
    : t;
}

export class DeepLabV3PlusASPP extends nn.Module {
  aspp1: AsppBranch;
  aspp2: AsppBranch;
  aspp3: AsppBranch;
  aspp4: AsppBranch;
  global_avg_pool: nn.Sequential;
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  dropout: nn.Dropout;

  /** rates: of the three 3x3 branches (the port: 6, 12, 18 at output stride 16; 12, 24, 36 at 8) */
  constructor(inC: number, rates: readonly [number, number, number]) {
    super();
    this.aspp1 = new AsppBranch(inC, 1, 1);
    this.aspp2 = new AsppBranch(inC, 3, rates[0]);
    this.aspp3 = new AsppBranch(inC, 3, rates[1]);
    this.aspp4 = new AsppBranch(inC, 3, rates[2]);
    this.global_avg_pool = new nn.Sequential(
      new nn.AdaptiveAvgPool2d(1),
      new nn.Conv2d(inC, ASPP_CHANNELS, 1, { bias: false }),
      new nn.BatchNorm2d(ASPP_CHANNELS),
      new nn.ReLU(),
    );
    this.conv1 = new nn.Conv2d(5 * ASPP_CHANNELS, ASPP_CHANNELS, 1, { bias: false });
    this.bn1 = new nn.BatchNorm2d(ASPP_CHANNELS);
    this.dropout = new nn.Dropout(0.5);
  }

  get rates(): number[] {
    return [this.aspp2, this.aspp3, this.aspp4].map((b) => b.atrous_conv.rate);
  }

  set rates(r: readonly number[]) {
    setRates(
      [this.aspp2, this.aspp3, this.aspp4].map((b) => b.atrous_conv),
      r,
      'DeepLabV3PlusASPP',
    );
  }

  forward(x: Tensor): Tensor {
    const branches = [this.aspp1, this.aspp2, this.aspp3, this.aspp4].map((b) => b.forward(x));
    const [h, w] = branches[3].shape.slice(-2);
    // The pooled branch is 1x1 before upsampling, where NCHW and NHWC strides coincide, and can
    // come out NCHW; given the other branches' layout, the concatenation stays channels_last on
    // the fast path (a cat of mixed layouts is NCHW). A no-op for NCHW models.
    const pool = sameLayout(resizeFeatures(this.global_avg_pool.forward(x), [h, w], true), branches[0]);
    const y = F.relu_(this.bn1.forward(this.conv1.forward(cat([...branches, pool], 1))));
    return this.dropout.forward(y);
  }
}

export class DeepLabV3PlusDecoder extends nn.Module {
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  last_conv: nn.Sequential;

  constructor(lowLevelChannels: number, numClasses: number) {
    super();
    this.conv1 = new nn.Conv2d(lowLevelChannels, LOW_LEVEL_CHANNELS, 1, { bias: false });
    this.bn1 = new nn.BatchNorm2d(LOW_LEVEL_CHANNELS);
    const c = ASPP_CHANNELS;
    this.last_conv = new nn.Sequential(
      new nn.Conv2d(c + LOW_LEVEL_CHANNELS, c, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(c),
      new nn.ReLU(),
      new nn.Dropout(0.5),
      new nn.Conv2d(c, c, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(c),
      new nn.ReLU(),
      new nn.Dropout(0.1),
      new nn.Conv2d(c, numClasses, 1),
    );
  }

  /** The 1x1 conv to the classes (`last_conv.8`). */
  get classifier(): nn.Conv2d {
    return this.last_conv.at(8) as nn.Conv2d;
  }

  forward(x: Tensor, lowLevel: Tensor): Tensor {
    const low = F.relu_(this.bn1.forward(this.conv1.forward(lowLevel)));
    const [h, w] = low.shape.slice(-2);
    const up = resizeFeatures(x, [h, w], true);
    return this.last_conv.forward(cat([up, low], 1));
  }
}
