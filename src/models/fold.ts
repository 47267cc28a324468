// Batch-norm folding for inference: a BatchNorm2d (eval mode, running statistics) that reads a
// convolution's output is an affine map per channel, so the convolution can apply it:
//   W' = W * s,  b' = (b - mean) * s + beta,  s = gamma / sqrt(var + eps)   (per output channel)
// and the BN becomes the identity. That removes one pass over every activation and, with it,
// the BN's memory traffic.
//
// The pairs are found by tracing, not by module names: one eval forward on a small input with
// every Conv2d and BatchNorm2d hooked records which conv produced each BN's input. A pair is
// folded only when, on every call, the BN reads the very tensor its conv returned, unmodified
// (the same object with the same version counter: an in-place ReLU or add in between changes
// it), and that conv's outputs go to that BN alone. The trace runs with random BN statistics, and
// a check runs the model once more with the same statistics and the folding simulated, and
// requires the same output: so a conv output also read elsewhere (a shortcut) is caught even
// when the real statistics are close to the identity. Only then are the weights rewritten.
//
// A folded model is for inference only. Its BNs are set to the identity (mean 0, var 1 - eps,
// weight 1, bias 0) and marked `folded`: their forward passes the input through in eval mode and
// throws in training mode. Its state dict has conv biases the checkpoint had not. Train, save
// and fine-tune an unfolded model; fold a copy for serving (load() does, unless `fast: false`).
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';

export interface FoldOptions {
  /**
   * the input the trace runs on (default: random 1 x 3 x 128 x 128 on the model's device; the global
   * RNG is restored). Not smaller: below ~80 px the OS8 ASPP's dilations (up to 36) exceed the 8x8
   * feature map, where oneDNN's dilated convs take a much slower path than at 128 px.
   */
  input?: Tensor;
  /** how to run the model (default: model.forward(x)); any tensors in its result are compared */
  run?: (x: Tensor) => unknown;
  /** the simulated-folding check (default true) */
  verify?: boolean;
}

export interface FoldReport {
  /** folded pairs, by module name */
  folded: { conv: string; bn: string }[];
  /** BNs left as they are, and why */
  skipped: { bn: string; reason: string }[];
  /** the check's max abs difference over max abs output (NaN when verify is false) */
  verifyError: number;
}

interface Stats {
  gamma: Tensor;
  beta: Tensor;
  mean: Tensor;
  var: Tensor;
  eps: number;
}

/** Largest relative output change the check accepts: fp32 rounding is ~1e-6 here. */
const VERIFY_TOL = 1e-3;

export function foldBatchNorm(model: nn.Module, o: FoldOptions = {}): FoldReport {
  if (model.training)
    throw new Error(
      'foldBatchNorm: call model.eval() first (folding uses the running statistics, and a folded model is for inference only)',
    );
  if (torch.isInferenceMode())
    throw new Error('foldBatchNorm: call it outside inferenceMode (the trace reads version counters)');
  const run = o.run ?? ((x: Tensor) => (model as unknown as { forward(x: Tensor): unknown }).forward(x));
  const names = new Map<nn.Module, string>();
  for (const [name, m] of model.namedModules()) if (!names.has(m)) names.set(m, name || '(root)');
  const convs = [...names.keys()].filter((m): m is nn.Conv2d => m instanceof nn.Conv2d);
  const bns = [...names.keys()].filter((m): m is nn.BatchNorm2d => m instanceof nn.BatchNorm2d && !m.folded);
  const report: FoldReport = { folded: [], skipped: [], verifyError: NaN };
  if (bns.length === 0) return report;

  const rng = torch.getRngState();
  try {
    torch.scope(() =>
      torch.noGrad(() => {
        const device = model.parameters()[0]?.device ?? 'cpu';
        const x = o.input ?? torch.randn([1, 3, 128, 128], { device });

        // Random statistics for every BN that has running statistics: the trace's output is then
        // the reference the check compares the simulated folding with.
        const random = new Map<nn.BatchNorm2d, Stats>();
        for (const bn of bns) {
          if (!bn.running_mean || !bn.running_var) continue;
          const c = bn.numFeatures;
          const dev = { device: bn.running_mean.device };
          random.set(bn, {
            gamma: torch.rand([c], dev).mul(1.5).add(0.25),
            beta: torch.randn([c], dev).mul(0.5),
            mean: torch.randn([c], dev).mul(0.5),
            var: torch.rand([c], dev).mul(2).add(0.25),
            eps: bn.eps,
          });
        }
        const randomBn = (bn: nn.BatchNorm2d, orig: Forward): Forward => {
          const s = random.get(bn);
          return s ? (input) => torch.F.batchNorm(input, s.mean, s.var, s.gamma, s.beta, false, 0, s.eps) : orig;
        };

        // 1. Trace: which conv produced each BN's input.
        const producedBy = new Map<Tensor, { conv: nn.Conv2d; version: number }>();
        const convCalls = new Map<nn.Conv2d, number>();
        const feeds = new Map<nn.BatchNorm2d, { convs: Set<nn.Conv2d>; calls: number; bad?: string }>();
        const consumers = new Map<nn.Conv2d, Set<nn.BatchNorm2d>>();
        const consumed: { t: Tensor; version: number; conv: nn.Conv2d }[] = [];
        const reference = tensorsIn(
          withHooks(
            [
              ...convs.map((conv): Hook => [
                conv,
                (orig) => (input) => {
                  const out = orig(input);
                  producedBy.set(out, { conv, version: out.version });
                  convCalls.set(conv, (convCalls.get(conv) ?? 0) + 1);
                  return out;
                },
              ]),
              ...bns.map((bn): Hook => [
                bn,
                (orig) => {
                  const norm = randomBn(bn, orig);
                  return (input) => {
                    const f = feeds.get(bn) ?? { convs: new Set(), calls: 0 };
                    feeds.set(bn, f);
                    f.calls++;
                    const p = producedBy.get(input);
                    if (!p) f.bad ??= "its input is not a convolution's output";
                    else if (p.version !== input.version)
                      f.bad ??= 'its input was changed in place after the convolution (an activation in between)';
                    else {
                      f.convs.add(p.conv);
                      const c = consumers.get(p.conv) ?? new Set();
                      consumers.set(p.conv, c);
                      c.add(bn);
                      consumed.push({ t: input, version: input.version, conv: p.conv });
                    }
                    return norm(input);
                  };
                },
              ]),
            ],
            () => run(x),
          ),
        );
        // A conv output modified in place after its BN read it has another reader.
        const modifiedLater = new Set(
          consumed.filter((c) => !c.t.isDisposed && c.t.version !== c.version).map((c) => c.conv),
        );

        const pairs: [nn.Conv2d, nn.BatchNorm2d][] = [];
        for (const bn of bns) {
          const f = feeds.get(bn);
          const skip = (reason: string) => report.skipped.push({ bn: names.get(bn)!, reason });
          if (!f) {
            skip("not run by the model's forward");
            continue;
          }
          if (f.bad) {
            skip(f.bad);
            continue;
          }
          if (f.convs.size !== 1) {
            skip('it reads the outputs of several convolutions');
            continue;
          }
          const conv = [...f.convs][0];
          if (consumers.get(conv)!.size !== 1) {
            skip(`${names.get(conv)} feeds several batch norms`);
            continue;
          }
          if (convCalls.get(conv) !== f.calls) {
            skip(`${names.get(conv)} also runs without it`);
            continue;
          }
          if (modifiedLater.has(conv)) {
            skip(`${names.get(conv)}'s output is modified after the batch norm read it`);
            continue;
          }
          if (!bn.running_mean || !bn.running_var) {
            skip('no running statistics (it normalises with batch statistics)');
            continue;
          }
          if (conv.outChannels !== bn.numFeatures) {
            skip(`${names.get(conv)} has ${conv.outChannels} channels, the batch norm ${bn.numFeatures}`);
            continue;
          }
          pairs.push([conv, bn]);
        }
        if (pairs.length === 0) return;

        // 2. The check: the same random statistics with the folding simulated must give the
        //    trace's output.
        if (o.verify ?? true) {
          const folding = new Set(pairs.map(([, b]) => b));
          const simulated = tensorsIn(
            withHooks(
              [
                ...pairs.map(([conv, bn]): Hook => [
                  conv,
                  () => (input) => {
                    const [w, b] = foldedParams(conv, random.get(bn)!);
                    const out = torch.F.conv2d(input, w, b, {
                      stride: conv.stride,
                      padding: conv.padding,
                      dilation: conv.dilation,
                      groups: conv.groups,
                    });
                    w.dispose();
                    b.dispose();
                    return out;
                  },
                ]),
                ...bns.map((bn): Hook => [bn, (orig) => (folding.has(bn) ? (input) => input : randomBn(bn, orig))]),
              ],
              () => run(x),
            ),
          );
          report.verifyError = relativeError(reference, simulated);
          if (!(report.verifyError <= VERIFY_TOL)) {
            throw new Error(
              `foldBatchNorm: folding would change this model's output (relative error ${report.verifyError.toExponential(2)} with random statistics): a convolution's output is also read by something other than its batch norm. Pass { verify: false } only if you know better.`,
            );
          }
        }

        // 3. Fold for real.
        for (const [conv, bn] of pairs) {
          const [w, b] = foldedParams(conv, statsOf(bn));
          conv.weight.copy_(w);
          conv.setBias(b);
          w.dispose();
          b.dispose();
          bn.weight?.fill_(1);
          bn.bias?.zero_();
          bn.running_mean!.zero_();
          bn.running_var!.fill_(1 - bn.eps);
          bn.folded = true;
          report.folded.push({ conv: names.get(conv)!, bn: names.get(bn)! });
        }
      }),
    );
  } finally {
    torch.setRngState(rng);
    rng.dispose();
  }
  return report;
}

/** Whether any BatchNorm2d of the model is folded. */
export function isFolded(model: nn.Module): boolean {
  for (const [, m] of model.namedModules()) if (m instanceof nn.BatchNorm2d && m.folded) return true;
  return false;
}

function statsOf(bn: nn.BatchNorm2d): Stats {
  const c = bn.numFeatures;
  return {
    gamma: bn.weight ?? torch.ones([c], { device: bn.running_mean!.device }),
    beta: bn.bias ?? torch.zeros([c], { device: bn.running_mean!.device }),
    mean: bn.running_mean!,
    var: bn.running_var!,
    eps: bn.eps,
  };
}

/**
 * The conv's weight and bias with the BN applied, in the weight's dtype. The per-channel factors
 * are computed in float64; the weight is then multiplied once in its own precision (one rounding
 * per element, as exact as a result in that dtype can be).
 */
function foldedParams(conv: nn.Conv2d, s: Stats): [Tensor, Tensor] {
  return torch.scope(() => {
    const f64 = (t: Tensor) => t.to('float64');
    const dtype = conv.weight.dtype;
    const scale = f64(s.gamma).div(f64(s.var).add(s.eps).sqrt());
    const w = conv.weight.mul(scale.to(dtype).reshape(-1, 1, 1, 1));
    const b0 = conv.bias
      ? f64(conv.bias)
      : torch.zeros([conv.outChannels], { dtype: 'float64', device: conv.weight.device });
    const b = b0.sub(f64(s.mean)).mul(scale).add(f64(s.beta)).to(dtype);
    return [w, b] as [Tensor, Tensor];
  });
}

type Forward = (x: Tensor) => Tensor;
type Hook = [nn.Module, (orig: Forward) => Forward];

/**
 * Runs body with instance-level forward overrides on some modules, then puts back what was there
 * (Module gives each instance a forward that runs the prototype's in a scope). A hook's `orig` is
 * that instance forward.
 */
function withHooks<T>(hooks: readonly Hook[], body: () => T): T {
  const saved: [nn.Module, PropertyDescriptor | undefined][] = [];
  try {
    for (const [m, make] of hooks) {
      const own = Object.getOwnPropertyDescriptor(m, 'forward');
      const prev = (m as unknown as { forward: Forward }).forward;
      const orig: Forward = (x) => prev.call(m, x);
      Object.defineProperty(m, 'forward', { value: make(orig), configurable: true, enumerable: false, writable: true });
      saved.push([m, own]);
    }
    return body();
  } finally {
    for (const [m, own] of saved.reverse()) {
      if (own) Object.defineProperty(m, 'forward', own);
      else delete (m as unknown as { forward?: unknown }).forward;
    }
  }
}

/** The tensors in a forward's result (a tensor, or arrays/objects of them), in a stable order. */
export function tensorsIn(v: unknown, out: Tensor[] = []): Tensor[] {
  if (v instanceof torch.Tensor) out.push(v);
  else if (Array.isArray(v)) for (const e of v) tensorsIn(e, out);
  else if (v && typeof v === 'object')
    for (const k of Object.keys(v).sort()) tensorsIn((v as Record<string, unknown>)[k], out);
  return out;
}

/** The largest max-abs difference over the pairs, relative to the first list's max |value|. */
export function relativeError(a: Tensor[], b: Tensor[]): number {
  if (a.length !== b.length || a.length === 0) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const scale = a[i].abs().max().item();
    const d = a[i].to('float64').sub(b[i].to('float64')).abs().max().item();
    worst = Math.max(worst, d / Math.max(scale, 1e-12));
  }
  return worst;
}
