export { Optimizer, type ParamGroup, type ParamState, type OptimizerStateDict, type GroupSpec } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWOptions } from './adamw.js';
