// mmsegmentation's DeepLabV3 / DeepLabV3+ Cityscapes models, named by config stem without the
// schedule and dataset (configs/deeplabv3{,plus}/<name>_4xb2-80k_cityscapes-512x1024.py). All
// share configs/_base_/models/deeplabv3{,plus}_r50-d8.py: ResNetV1c (deep stem) with strides
// (1,2,1,1), dilations (1,1,2,4), contract_dilation; ASPP rates (1,12,24,36); an FCN auxiliary
// head (one 3x3 conv) on stage 3; align_corners False. "b" models use torchvision's 7x7 stem
// (type='ResNet'); "r18" shrinks the heads; "d16-mg124" is output stride 16 with layer4 rates
// (1,2,4) and ASPP rates (1,6,12,18).
import { IMAGENET_255, type BuildOptions, type OutputStride, type Preset } from '../segmentor.js';
import { ResNet } from '../backbones/resnet.js';
import { ASPPHead, DepthwiseSeparableASPPHead, FCNHead } from '../heads/mmseg.js';
import { EncoderDecoder } from '../segmentors/encoder-decoder.js';

interface Spec {
  plus: boolean;
  depth: 18 | 50 | 101;
  /** ResNetV1b ("b" configs): 7x7 conv1/bn1 stem instead of V1c's stem.0..8 */
  v1b: boolean;
  mg124: boolean;
}

// Channel widths from the configs: the r18 configs override the heads, the rest keep the base's.
function widths(depth: Spec['depth']) {
  return depth === 18
    ? { in: 512, ch: 128, auxIn: 256, auxCh: 64, c1In: 64, c1: 12 }
    : { in: 2048, ch: 512, auxIn: 1024, auxCh: 256, c1In: 256, c1: 48 };
}

function buildEncoderDecoder(s: Spec, o: BuildOptions = {}): EncoderDecoder {
  const numClasses = o.numClasses ?? 19;
  const nativeOS: OutputStride = s.mg124 ? 16 : 8;
  const backbone = new ResNet({
    depth: s.depth,
    stem: s.v1b ? 'torchvision' : 'deep',
    outputStride: nativeOS,
    contractDilation: true,
    multiGrid: s.mg124 ? [1, 2, 4] : undefined,
    multiGridMode: 'absolute',
  });
  const w = widths(s.depth);
  const alignCorners = o.alignCorners ?? false;
  const aspp = {
    inChannels: w.in,
    channels: w.ch,
    numClasses,
    inIndex: 3,
    dilations: s.mg124 ? [1, 6, 12, 18] : [1, 12, 24, 36],
    outputStride: nativeOS,
    alignCorners,
  };
  const decode = s.plus
    ? new DepthwiseSeparableASPPHead({ ...aspp, c1InChannels: w.c1In, c1Channels: w.c1 })
    : new ASPPHead(aspp);
  const aux =
    (o.aux ?? true)
      ? new FCNHead({
          inChannels: w.auxIn,
          channels: w.auxCh,
          numClasses,
          inIndex: 2,
          numConvs: 1,
          concatInput: false,
          alignCorners,
        })
      : null;
  const model = new EncoderDecoder(backbone, decode, aux);
  if (o.outputStride && o.outputStride !== nativeOS) model.setOutputStride(o.outputStride);
  return model;
}

function preset(s: Spec): Preset {
  const name = `${s.plus ? 'deeplabv3plus' : 'deeplabv3'}_r${s.depth}${s.v1b ? 'b' : ''}-${s.mg124 ? 'd16-mg124' : 'd8'}`;
  const backbone = `ResNet-${s.depth} ${s.v1b ? 'V1b (7x7 stem)' : 'V1c (deep stem)'}`;
  const stride = s.mg124
    ? 'output stride 16, multi-grid (1,2,4), ASPP rates 6/12/18'
    : 'output stride 8, ASPP rates 12/24/36';
  return {
    name,
    source: 'mmsegmentation',
    description: `${s.plus ? 'DeepLabV3+ (separable ASPP, stride-4 decoder)' : 'DeepLabV3 (ASPP)'}, ${backbone}, ${stride}; FCN auxiliary head`,
    numClasses: 19,
    outputStride: s.mg124 ? 16 : 8,
    aux: true,
    normalization: IMAGENET_255,
    dataset: 'cityscapes',
    build: (o) => buildEncoderDecoder(s, o),
  };
}

const SPECS: Spec[] = [false, true].flatMap((plus) => [
  ...([18, 50, 101] as const).map((depth) => ({ plus, depth, v1b: false, mg124: false })),
  ...([18, 50, 101] as const).map((depth) => ({ plus, depth, v1b: true, mg124: false })),
  { plus, depth: 101 as const, v1b: false, mg124: true },
]);

export const MMSEG_PRESETS: Preset[] = SPECS.map(preset);
