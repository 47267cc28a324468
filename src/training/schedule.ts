// Learning-rate schedules. Poly as mmseg's PolyLR (by iteration, with a floor):
//   lr_t = (base - min) * (1 - t / T)^power + min
// torchvision, TF and DeepLab-v2 decay to 0 (min = 0). Optional linear warm-up from
// base x warmupRatio over the first warmupIters iterations.
import type { ScheduleConfig } from '../config/schema.js';

export function polyLr(iter: number, maxIters: number, baseLr: number, s: ScheduleConfig): number {
  const t = Math.min(iter, maxIters);
  let lr = (baseLr - s.minLr) * (1 - t / maxIters) ** s.power + s.minLr;
  if (s.warmupIters > 0 && iter < s.warmupIters) {
    const k = s.warmupRatio + (1 - s.warmupRatio) * (iter / s.warmupIters);
    lr *= k;
  }
  return lr;
}
