// The cascaded DeepLabV3 of "Rethinking Atrous Convolution for Semantic Image Segmentation"
// (section 3.2, "Going deeper with atrous convolution"): ResNet-50 whose block4 is repeated as
// block5..block7 (three 1x1-3x3-1x1 bottleneck units each, 2048 channels), then a 1x1 classifier.
// With atrous convolution every block past the output stride keeps stride 1 and doubles the
// rate of the one before (at 16: block4..7 at 2, 4, 8, 16); Multi-Grid (1, 2, 4) multiplies the
// block rate per unit (block4 at 16: 2, 4, 8). No port publishes this model: the key layout is
// ours: `backbone.*` (our ResNet: torchvision's ResNet-50 keys without fc, so its ImageNet
// weights load there), `block5..block7.{unit}.*` (torchvision bottleneck keys), `classifier.*`.
// Logits are upsampled bilinearly (align_corners=false, as torchvision) to the input size.
import { type Tensor, nn } from '../../torch/index.js';
import { Segmentor, resizeLogits, type SegmentationOutput } from '../segmentor.js';
import { featureAt, type OutputStride } from '../backbone.js';
import { Bottleneck, ResNet } from '../backbones/resnet.js';

export const CASCADE_MULTI_GRID = [1, 2, 4] as const;
const BLOCK_CHANNELS = 2048;
const BLOCK_PLANES = 512;
/** block4's stride without atrous convolution; each cascaded block would halve it again */
const BLOCK4_STRIDE = 32;

export interface CascadeOptions {
  numClasses: number;
  outputStride?: OutputStride;
}

function cascadedBlock(): nn.Sequential {
  return new nn.Sequential(
    ...CASCADE_MULTI_GRID.map(() => new Bottleneck(BLOCK_CHANNELS, BLOCK_PLANES, null, 'pytorch')),
  );
}

export class CascadeDeepLabV3 extends Segmentor {
  // Field order is the state_dict order.
  backbone: ResNet;
  block5: nn.Sequential;
  block6: nn.Sequential;
  block7: nn.Sequential;
  classifier: nn.Conv2d;
  readonly numClasses: number;

  constructor(o: CascadeOptions) {
    super();
    this.backbone = new ResNet({
      depth: 50,
      contractDilation: false,
      multiGrid: CASCADE_MULTI_GRID,
      multiGridMode: 'multiplicative',
    });
    this.backbone.outIndices = [3];
    this.block5 = cascadedBlock();
    this.block6 = cascadedBlock();
    this.block7 = cascadedBlock();
    this.classifier = new nn.Conv2d(BLOCK_CHANNELS, o.numClasses, 1);
    this.numClasses = o.numClasses;
    this.setOutputStride(o.outputStride ?? 16);
  }

  get outputStride(): OutputStride {
    return this.backbone.outputStride;
  }

  get blocks(): nn.Sequential[] {
    return [this.block5, this.block6, this.block7];
  }

  setOutputStride(os: OutputStride): void {
    this.backbone.setOutputStride(os);
    this.blocks.forEach((block, i) => {
      const rate = (BLOCK4_STRIDE * 2 ** (i + 1)) / os;
      [...block].forEach((unit, u) => (unit as Bottleneck).configure(1, rate * CASCADE_MULTI_GRID[u]));
    });
  }

  /** The 3x3 rates of every unit: layer1..layer4, then block5..block7. */
  rates(): number[][] {
    const cascade = this.blocks.map((b) => [...b].map((u) => (u as Bottleneck).conv2.rate));
    return [...this.backbone.rates(), ...cascade];
  }

  forward(x: Tensor): SegmentationOutput {
    const [h, w] = x.shape.slice(-2);
    let y = featureAt(this.backbone.forward(x), 3);
    for (const block of this.blocks) y = block.forward(y);
    return { out: resizeLogits(this.classifier.forward(y), [h, w], false) };
  }
}
