// MobileNetV2 in the layout of jfzhang95/pytorch-deeplab-xception (modeling/backbone/mobilenet.py):
// `features.0` = conv 3x3 s2 + BN + ReLU6, `features.1..17` = inverted residuals (`conv.*`).
// Returns the 320-channel features and the low-level features after features.3 (24 channels,
// stride 4). Two of the port's habits are kept because its weights were trained with them:
//  - every inverted residual pads its *input* (fixed_padding) and then runs the expanding 1x1
//    conv, BN and ReLU6 over the padding, so its depthwise conv sees relu6(bn(0)) at the border;
//  - its output-stride rule gives a stage that stops striding the rate accumulated *before* it
//    (at 16 the 160-channel stage keeps rate 1 and only the last stage gets rate 2).
import { type Tensor, F, nn } from '../../torch/index.js';
import { checkOutputStride, type Backbone, type Features, type OutputStride } from '../backbone.js';
import { fixedPadding } from './xception.js';

/** expansion t, channels c, units n, stride s (MobileNetV2's table) */
const SETTINGS: readonly [number, number, number, number][] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];
/** features[0:4] make the low-level features (the port's `low_level_features` slice) */
const LOW_LEVEL_UNITS = 4;

export class InvertedResidual extends nn.Module {
  conv: nn.Sequential;
  readonly residual: boolean;
  readonly #depthwise: nn.Conv2d;
  #pad: [number, number] = [1, 1];

  constructor(inC: number, outC: number, stride: number, expansion: number) {
    super();
    const hidden = Math.round(inC * expansion);
    this.residual = stride === 1 && inC === outC;
    // no padding of its own: the block pads its input (see forward)
    this.#depthwise = new nn.Conv2d(hidden, hidden, 3, { stride, groups: hidden, bias: false });
    const expand =
      expansion === 1
        ? []
        : [new nn.Conv2d(inC, hidden, 1, { bias: false }), new nn.BatchNorm2d(hidden), new nn.ReLU6()];
    this.conv = new nn.Sequential(
      ...expand,
      this.#depthwise,
      new nn.BatchNorm2d(hidden),
      new nn.ReLU6(),
      new nn.Conv2d(hidden, outC, 1, { bias: false }),
      new nn.BatchNorm2d(outC),
    );
  }

  get dilation(): number {
    return this.#depthwise.rate;
  }

  configure(stride: number, dilation: number): void {
    if (this.residual && stride !== 1) throw new RangeError('InvertedResidual: a residual unit cannot stride');
    this.#depthwise.setAtrous(dilation, { stride, padded: false });
    this.#pad = fixedPadding(3, dilation);
  }

  forward(x: Tensor): Tensor {
    const [b, e] = this.#pad;
    const y = this.conv.forward(F.pad(x, [b, e, b, e]));
    return this.residual ? y.add_(x) : y;
  }
}

export class MobileNetV2 extends nn.Module implements Backbone {
  features: nn.Sequential;
  /** stages: [low-level features (features.0-3, stride 4), features] */
  readonly channels = [24, 320] as const;
  outIndices: readonly number[] = [0, 1];
  #outputStride: OutputStride = 16;

  constructor(o: { outputStride?: OutputStride } = {}) {
    super();
    const units: (nn.Module & nn.Layer)[] = [
      new nn.Sequential(
        new nn.Conv2d(3, 32, 3, { stride: 2, padding: 1, bias: false }),
        new nn.BatchNorm2d(32),
        new nn.ReLU6(),
      ),
    ];
    let inC = 32;
    for (const [t, c, n, s] of SETTINGS) {
      for (let i = 0; i < n; i++) {
        units.push(new InvertedResidual(inC, c, i === 0 ? s : 1, t));
        inC = c;
      }
    }
    this.features = new nn.Sequential(...units);
    this.setOutputStride(o.outputStride ?? 16);
  }

  get outputStride(): OutputStride {
    return this.#outputStride;
  }

  /**
   * The port's rule: the first layer gives stride 2; a stage reached at the target stride runs
   * at stride 1 with the rate accumulated so far, and then multiplies that rate by its stride.
   */
  setOutputStride(os: OutputStride): void {
    checkOutputStride(os, 'MobileNetV2');
    let current = 2;
    let rate = 1;
    let k = 1;
    for (const [, , n, s] of SETTINGS) {
      let stride = s;
      let dilation = 1;
      if (current === os) {
        stride = 1;
        dilation = rate;
        rate *= s;
      } else {
        current *= s;
      }
      for (let i = 0; i < n; i++) (this.features.at(k++) as InvertedResidual).configure(i === 0 ? stride : 1, dilation);
    }
    this.#outputStride = os;
  }

  /** Per-unit dilation of the depthwise convs (features.1..17), for tests. */
  rates(): number[] {
    return [...this.features].slice(1).map((u) => (u as InvertedResidual).dilation);
  }

  /** [low-level features (24 channels, stride 4), features (320 channels)], as outIndices asks */
  forward(x: Tensor): Features {
    let y = x;
    for (let i = 0; i < LOW_LEVEL_UNITS; i++) y = this.features.at(i).forward(y);
    const low = y;
    for (let i = LOW_LEVEL_UNITS; i < this.features.length; i++) y = this.features.at(i).forward(y);
    return [this.outIndices.includes(0) ? low : undefined, this.outIndices.includes(1) ? y : undefined];
  }

  override stateDict(): Map<string, Tensor> {
    return this.withPortAliases(super.stateDict(), '');
  }

  /**
   * The port also keeps `low_level_features = features[0:4]` and `high_level_features =
   * features[4:]` as attributes: Sequential slices that share the units and keep their indices, so
   * its state_dict lists the same tensors twice: `features.*`, then `low_level_features.0-3.*`,
   * then `high_level_features.4-17.*` (named_parameters, like ours, lists them once). Adds those
   * names to a state dict whose backbone keys start with `prefix`.
   */
  withPortAliases(sd: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
    const head = `${prefix}features.`;
    const out = new Map<string, Tensor>();
    const low: [string, Tensor][] = [];
    const high: [string, Tensor][] = [];
    let pending = false;
    const flush = () => {
      for (const [k, v] of [...low, ...high]) out.set(k, v);
      pending = false;
    };
    for (const [k, v] of sd) {
      if (k.startsWith(head)) {
        const rest = k.slice(head.length);
        const unit = Number.parseInt(rest, 10);
        (unit < LOW_LEVEL_UNITS ? low : high).push([
          `${prefix}${unit < LOW_LEVEL_UNITS ? 'low' : 'high'}_level_features.${rest}`,
          v,
        ]);
        pending = true;
      } else if (pending) {
        flush();
      }
      out.set(k, v);
    }
    if (pending) flush();
    return out;
  }
}
