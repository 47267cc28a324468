// Reading PyTorch checkpoints (torch.save, zip and legacy formats) and reading/writing
// safetensors, in pure TypeScript: no Python at run time, and no pickled code is ever run.
export { readCheckpoint, readStateDict, CheckpointError, type Checkpoint, type StateDictSource } from './pth.js';
export {
  readSafetensors,
  readSafetensorsMetadata,
  writeSafetensors,
  SafetensorsMap,
  SafetensorsError,
} from './safetensors.js';
// Lower layers, for tools that inspect archives or pickles directly.
export { readZip, isZip, ZipError, type ZipEntry } from './zip.js';
export {
  unpickle,
  PickledObject,
  TensorRef,
  StorageRef,
  StorageType,
  UnpicklingError,
  type PersistentLoad,
} from './pickle.js';
// Value checks for the weight loader: NaN/Inf weights, negative BatchNorm variances.
export { nonFiniteTensors, negativeRunningVars, type NonFinite, type NegativeVariance } from './check-values.js';
