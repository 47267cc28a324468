// torchvision's segmentation heads (models/segmentation/deeplabv3.py and fcn.py), with the same
// module tree, so that `classifier.0.convs.4.1.weight` and friends load from its checkpoints.
// The ASPP rates can be rewritten in place when the backbone's output stride changes.
import { type Tensor, nn, cat } from '../../torch/index.js';
import { resizeFeatures } from '../segmentor.js';
import { setRates } from '../backbone.js';

/** 3x3 atrous conv, BN, ReLU: one parallel branch of ASPP. */
export class ASPPConv extends nn.Sequential {
  constructor(inC: number, outC: number, rate: number) {
    super(
      new nn.Conv2d(inC, outC, 3, { padding: rate, dilation: rate, bias: false }),
      new nn.BatchNorm2d(outC),
      new nn.ReLU(true),
    );
  }

  get conv(): nn.Conv2d {
    return this.at(0) as nn.Conv2d;
  }
}

/** Image-level features: global average pool, 1x1 conv, BN, ReLU, broadcast back to the input size. */
export class ASPPPooling extends nn.Sequential {
  constructor(inC: number, outC: number) {
    // The pool sits at index 0 like torchvision's, so the conv's keys are `4.1.*`.
    super(
      new nn.AdaptiveAvgPool2d(1),
      new nn.Conv2d(inC, outC, 1, { bias: false }),
      new nn.BatchNorm2d(outC),
      new nn.ReLU(true),
    );
  }

  override forward(x: Tensor): Tensor {
    const [h, w] = x.shape.slice(-2);
    return resizeFeatures(super.forward(x), [h, w], false);
  }
}

/** Atrous spatial pyramid pooling: [1x1, three atrous 3x3, pooling] concatenated, then projected. */
export class ASPP extends nn.Module implements nn.Layer {
  convs: nn.ModuleList<nn.Module & nn.Layer>;
  project: nn.Sequential;

  constructor(inC: number, rates: readonly [number, number, number], outC = 256) {
    super();
    this.convs = new nn.ModuleList<nn.Module & nn.Layer>([
      new nn.Sequential(new nn.Conv2d(inC, outC, 1, { bias: false }), new nn.BatchNorm2d(outC), new nn.ReLU(true)),
      ...rates.map((r) => new ASPPConv(inC, outC, r)),
      new ASPPPooling(inC, outC),
    ]);
    this.project = new nn.Sequential(
      new nn.Conv2d(5 * outC, outC, 1, { bias: false }),
      new nn.BatchNorm2d(outC),
      new nn.ReLU(true),
      new nn.Dropout(0.5),
    );
  }

  private atrous(): ASPPConv[] {
    return [...this.convs].filter((m): m is ASPPConv => m instanceof ASPPConv);
  }

  /** The dilation of the three atrous branches. */
  get rates(): number[] {
    return this.atrous().map((c) => c.conv.rate);
  }

  set rates(rates: readonly number[]) {
    setRates(
      this.atrous().map((c) => c.conv),
      rates,
      'ASPP',
    );
  }

  forward(x: Tensor): Tensor {
    const branches = this.convs.map((m) => m.forward(x));
    return this.project.forward(cat(branches, 1));
  }
}

/** DeepLabV3's classifier: ASPP, 3x3 conv + BN + ReLU, 1x1 conv to the classes (`classifier.4`). */
export class DeepLabHead extends nn.Sequential {
  constructor(inC: number, numClasses: number, rates: readonly [number, number, number] = [12, 24, 36]) {
    super(
      new ASPP(inC, rates),
      new nn.Conv2d(256, 256, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(256),
      new nn.ReLU(true),
      new nn.Conv2d(256, numClasses, 1),
    );
  }

  get aspp(): ASPP {
    return this.at(0) as ASPP;
  }
}

/** FCN's head, torchvision's auxiliary classifier: 3x3 conv to in/4 + BN + ReLU + Dropout(0.1), 1x1 conv. */
export class FCNHead extends nn.Sequential {
  constructor(inC: number, numClasses: number) {
    const mid = Math.floor(inC / 4);
    super(
      new nn.Conv2d(inC, mid, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(mid),
      new nn.ReLU(true),
      new nn.Dropout(0.1),
      new nn.Conv2d(mid, numClasses, 1),
    );
  }
}
