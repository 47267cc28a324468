// model.syncBN: every BatchNorm2d of a model normalises with the statistics of all ranks' batches
// in training (torch.nn.SyncBatchNorm.convert_sync_batchnorm). The layers keep their class and
// state_dict keys, so checkpoints stay interchangeable with plain BatchNorm; in eval mode, and
// with one process, they are plain BatchNorm.
import * as torch from '../torch/index.js';

/** Returns how many layers now synchronise. */
export function convertSyncBatchNorm(model: torch.nn.Module, group: torch.distributed.ProcessGroup | null): number {
  let n = 0;
  for (const [, m] of model.namedModules())
    if (m instanceof torch.nn.BatchNorm2d) {
      m.syncGroup = group;
      n++;
    }
  return n;
}
