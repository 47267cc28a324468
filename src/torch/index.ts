// The tensor library: the only public face of the LibTorch addon.
export { Tensor, op, callT, callTs, isDType, type Device, type MemoryFormat, type Shape } from './tensor.js';
export * from './creation.js';
export * from './autograd.js';
export { scope, keep, liveTensors } from './scope.js';
export { type DType, type TypedArray, DTYPES, isFloating, elementSize } from './dtype.js';
export * as F from './functional.js';
export { cat, stack, where, pad } from './functional.js';
export * as nn from './nn/index.js';
export {
  PackedConv2d,
  packedConvAvailable,
  int8UsesVnni,
  type ConvActivation,
  type PackedConvSpec,
} from './packed-conv.js';
export * as optim from './optim/index.js';
export * as distributed from './distributed.js';
export * as serialize from './serialize/index.js';
export {
  readCheckpoint,
  readStateDict,
  readSafetensors,
  readSafetensorsMetadata,
  writeSafetensors,
} from './serialize/index.js';
export {
  memoryBudget,
  setMemoryBudget,
  checkAllocation,
  MemoryBudgetError,
  MEMORY_BUDGET_ENV,
  parseBytes,
} from './budget.js';
