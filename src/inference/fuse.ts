// Convolution fusion for fp32 inference, after batch-norm folding (src/models/fold.ts):
//  - every Conv2d is prepacked (torch.PackedConv2d, native/src/fused_conv.cc): its weights are
//    reordered once into oneDNN's blocked layout instead of on every call;
//  - the activation after a conv (ReLU, ReLU6, hardswish) becomes the conv's epilogue
//    (Conv2d.epilogue; the activation module is marked `absorbed` and passes its input through);
//  - the residual add (and ReLU) that ends a ResNet block or a MobileNetV3 inverted residual runs
//    inside the block's last conv (the block's `fusedResidual`).
// The patterns are explicit, by module class: a Sequential or an mmcv ConvModule of conv, folded
// BN, activation; ResNet's stem, Bottleneck and BasicBlock; MobileNetV3's InvertedResidual. An
// epilogue is part of what a conv computes on every path, so a fused model gives the same result
// in bf16 autocast (where the packed conv steps aside) as an unfused one; a check compares the
// fused model's output with the unfused one on a small input.
// What each step gains: bench/README.md. A fused model is for inference; unfuse() undoes it.
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { Bottleneck, BasicBlock, ResNet } from '../models/backbones/resnet.js';
import { InvertedResidual, ConvBNAct } from '../models/backbones/mobilenetv3.js';
import { ConvModule } from '../models/heads/mmseg.js';
import { relativeError, tensorsIn } from '../models/fold.js';
import { int8InputOf, type Calibration } from './calibration.js';

export interface FuseReport {
  /** convolutions prepacked */
  packed: number;
  /** activations moved into the conv before them */
  activations: number;
  /** residual adds moved into a block's last conv */
  residuals: number;
  /** why nothing was prepacked (null when it was) */
  unavailable: string | null;
  /** the check's max abs difference over max abs logit (NaN when verify is false) */
  verifyError: number;
  /** convolutions packed int8 (the rest of `packed` are fp32) */
  int8: number;
}

export interface FuseOptions {
  /** compare the fused and unfused outputs on a random 1x3x128x128 input (default true) */
  verify?: boolean;
  /** how to run the model for the check (default: model.forward(x)); tensors in the result are compared */
  run?: (x: Tensor) => unknown;
  /**
   * int8: the calibrated convolutions are packed int8 (src/inference/calibration.ts), the others
   * fp32. No check then: int8 changes the logits by design (test/inference/int8.test.ts measures it).
   */
  int8?: Calibration;
}

/** Largest relative change of the outputs the check accepts (fp32 rounding is ~1e-6 here). */
const VERIFY_TOL = 1e-4;

type Activation = nn.ReLU | nn.ReLU6 | nn.Hardswish;
const isActivation = (m: unknown): m is Activation =>
  m instanceof nn.ReLU || m instanceof nn.ReLU6 || m instanceof nn.Hardswish;
const actName = (m: Activation): torch.ConvActivation =>
  m instanceof nn.ReLU ? 'relu' : m instanceof nn.ReLU6 ? 'relu6' : 'hardswish';
const folded = (bn: nn.Module | null | undefined): boolean => bn instanceof nn.BatchNorm2d && bn.folded;

/** Fuses the model's convolutions in place (it must be in eval mode, its BNs folded). */
export function fuseForInference(model: nn.Module, o: FuseOptions = {}): FuseReport {
  if (model.training) throw new Error('fuseForInference: call model.eval() first (a fused model is for inference)');
  const report: FuseReport = { packed: 0, activations: 0, residuals: 0, unavailable: null, verifyError: NaN, int8: 0 };
  if (!torch.packedConvAvailable()) {
    report.unavailable =
      'this build of the addon has no fused convolution (it needs the oneDNN LibTorch links and its headers: libdnnl-dev)';
    return report;
  }
  const run = o.run ?? ((x: Tensor) => (model as unknown as { forward(x: Tensor): unknown }).forward(x));
  const rng = torch.getRngState();
  try {
    torch.scope(() =>
      torch.inferenceMode(() => {
        unfuse(model); // start from plain convolutions (a second call repacks)
        const device = model.parameters()[0]?.device ?? 'cpu';
        const x =
          (o.verify ?? true) && !o.int8 ? torch.randn([1, 3, 128, 128], { device }).contiguous('channels_last') : null;
        const reference = x ? tensorsIn(run(x)).map((t) => t.to('float32')) : [];

        const modules = modulesOf(model);
        for (const m of modules) markEpilogues(m, report);
        for (const [name, m] of model.namedModules()) {
          if (!(m instanceof nn.Conv2d) || m.weight.dtype !== 'float32' || m.weight.device !== 'cpu') continue;
          if (m.packed) continue; // shared module, met under another name
          const int8 = o.int8 ? int8InputOf(o.int8, name, m) : null;
          m.packed = packConv(m, int8);
          report.packed++;
          if (int8) report.int8++;
        }

        if (x) {
          const fusedOut = tensorsIn(run(x));
          report.verifyError = relativeError(reference, fusedOut);
          if (!(report.verifyError <= VERIFY_TOL)) {
            unfuse(model);
            throw new Error(
              `fuseForInference: the fused model's output differs from the unfused one (relative error ${report.verifyError.toExponential(2)}); left unfused`,
            );
          }
        }
      }),
    );
  } finally {
    torch.setRngState(rng);
    rng.dispose();
  }
  return report;
}

/** The conv prepacked as it stands (its weight, bias and epilogue), int8 when given an input spec. */
export function packConv(m: nn.Conv2d, int8: torch.PackedConvSpec['int8'] | null = null): torch.PackedConv2d {
  return new torch.PackedConv2d(m.weight, m.bias, {
    stride: pair(m.stride),
    padding: pair(m.padding),
    dilation: pair(m.dilation),
    groups: m.groups,
    act: m.epilogue,
    ...(int8 ? { int8 } : {}),
  });
}

/** Undoes fuseForInference: plain convolutions, activations and residual adds again. */
export function unfuse(model: nn.Module): void {
  for (const m of modulesOf(model)) {
    if (m instanceof nn.Conv2d) {
      m.packed?.dispose();
      m.packed = null;
      m.epilogue = null;
    } else if (isActivation(m)) m.absorbed = false;
    else if (m instanceof Bottleneck || m instanceof BasicBlock) {
      m.fusedResidual = false;
      m.ownsInput = false;
    } else if (m instanceof InvertedResidual) m.fusedResidual = false;
  }
}

/** Whether any convolution of the model is prepacked. */
export function isFused(model: nn.Module): boolean {
  return modulesOf(model).some((m) => m instanceof nn.Conv2d && m.packed !== null);
}

function markEpilogues(m: nn.Module, report: FuseReport): void {
  const absorb = (conv: nn.Conv2d, act: Activation) => {
    if (conv.epilogue || act.absorbed) return;
    conv.epilogue = actName(act);
    act.absorbed = true;
    report.activations++;
  };
  if (m instanceof nn.Sequential) {
    // conv, folded BN, activation (or conv, activation) anywhere in the sequence
    for (let i = 0; i + 1 < m.length; i++) {
      const conv = m.at(i);
      if (!(conv instanceof nn.Conv2d)) continue;
      const next = m.at(i + 1);
      const act = folded(next) && i + 2 < m.length ? m.at(i + 2) : next;
      if (isActivation(act)) absorb(conv, act);
    }
  } else if (m instanceof ConvModule) {
    if (folded(m.bn)) absorb(m.conv, m.activate);
  } else if (m instanceof ResNet) {
    if (m.conv1 && folded(m.bn1) && !m.conv1.epilogue) {
      m.conv1.epilogue = 'relu';
      report.activations++;
    }
    // A stage's blocks run one after another (Sequential): each but the first gets the previous
    // one's output, read by nothing else, so its residual add can be written there (no copy).
    for (const stage of [m.layer1, m.layer2, m.layer3, m.layer4])
      [...stage].forEach((b, i) => {
        if (i > 0 && (b instanceof Bottleneck || b instanceof BasicBlock)) b.ownsInput = true;
      });
  } else if (m instanceof Bottleneck || m instanceof BasicBlock) {
    const bns = m instanceof Bottleneck ? [m.bn1, m.bn2, m.bn3] : [m.bn1, m.bn2];
    if (m.fusedResidual || !bns.every(folded)) return;
    const convs = m instanceof Bottleneck ? [m.conv1, m.conv2, m.conv3] : [m.conv1, m.conv2];
    for (const c of convs) c.epilogue = 'relu'; // the last one's after the residual add
    m.fusedResidual = true;
    report.activations += convs.length;
    report.residuals++;
  } else if (m instanceof InvertedResidual) {
    const project = m.block.at(m.block.length - 1);
    if (!m.residual || m.fusedResidual || !(project instanceof ConvBNAct) || project.length !== 2) return;
    if (!folded(project.at(1)) || project.conv.epilogue) return;
    m.fusedResidual = true;
    report.residuals++;
  }
}

/** Every module of the model once, parents before children. */
const modulesOf = (model: nn.Module): nn.Module[] => [...new Set([...model.namedModules()].map(([, m]) => m))];

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);
