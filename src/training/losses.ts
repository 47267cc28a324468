// The segmentation loss as the sources define it. Per-pixel cross-entropy with ignored pixels
// at 0, then either mmseg's default mean over ALL pixels (ignored ones count in the
// denominator) or the mean over valid pixels (avg_non_ignore; PyTorch's and TF's mean when no
// class weights are given). OHEM keeps the hardest pixels as mmseg's OHEMPixelSampler does.
import * as torch from '../torch/index.js';
import type { LossConfig } from '../config/schema.js';

const { F } = torch;
type Tensor = torch.Tensor;

/** logits N x C x H x W (already at the label's size), labels N x H x W int64 */
export function segmentationLoss(
  logits: Tensor,
  labels: Tensor,
  o: LossConfig,
  classWeights: Tensor | null = null,
): Tensor {
  const perPixel = F.crossEntropy(logits, labels, {
    weight: classWeights,
    ignoreIndex: o.ignoreIndex,
    reduction: 'none',
  });
  let weighted = perPixel;
  if (o.ohem) weighted = perPixel.mul(ohemMask(logits, labels, perPixel, o.ohem, o.ignoreIndex));
  if (o.avgNonIgnore) {
    const valid = labels.ne(o.ignoreIndex).sum().clamp(1, null);
    return weighted.sum().div(valid);
  }
  return weighted.mean();
}

/**
 * mmseg's OHEMPixelSampler: among valid pixels keep those whose ground-truth probability is
 * below max(thresh, the probability of the (minKept x N)-th hardest pixel); without thresh,
 * keep the minKept x N pixels of highest loss. Returns a 0/1 weight of the labels' shape.
 */
function ohemMask(
  logits: Tensor,
  labels: Tensor,
  perPixel: Tensor,
  o: { thresh?: number; minKept: number },
  ignore: number,
): Tensor {
  return torch.noGrad(() => {
    const valid = labels.ne(ignore).reshape(-1);
    const numValid = valid.sum().item();
    const kept = Math.min(o.minKept * labels.shape[0], numValid);
    if (kept === 0) return torch.zeros(labels.shape);
    let keep: Tensor;
    if (o.thresh !== undefined) {
      const gtProb = F.softmax(logits, 1)
        .gather(1, torch.where(labels.ne(ignore), labels, 0).unsqueeze(1))
        .reshape(-1);
      const [ascending] = gtProb.maskedSelect(valid).sort(0);
      // mmseg indexes sort_prob[min(batch_kept, numel - 1)]
      const threshold = Math.max(
        ascending.select(0, Math.min(o.minKept * labels.shape[0], numValid - 1)).item(),
        o.thresh,
      );
      keep = gtProb.lt(threshold).logicalAnd(valid);
    } else {
      const [, hardest] = torch.where(valid, perPixel.detach().reshape(-1), -1).topk(kept, 0);
      keep = torch.zeros([valid.shape[0]], { dtype: 'bool' }).indexFill_(0, hardest, 1);
    }
    return keep.to('float32').reshape(...labels.shape);
  });
}
