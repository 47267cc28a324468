// Grad-mode and inference-mode blocks, autocast, and global settings (threads, seeds, RNG state).
import { native } from './native.js';
import { Tensor } from './tensor.js';
import type { DType } from './dtype.js';

function withGradMode<T>(on: boolean, fn: () => T): T {
  const prev = native.setGradEnabled(on);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}
/** Runs fn with gradient recording on (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Runs fn in inference mode (torch.inference_mode): no autograd bookkeeping at all, faster than
 * noGrad. Tensors made here cannot later take part in autograd.
 */
export function inferenceMode<T>(fn: () => T): T {
  native.inferenceEnter();
  try {
    return fn();
  } finally {
    native.inferenceExit();
  }
}
export function isInferenceMode(): boolean {
  return native.isInferenceMode();
}

/** Runs fn under autocast (bf16 on CPU; bf16 or fp16 on CUDA). */
export function autocast<T>(device: 'cpu' | 'cuda', dtype: DType, fn: () => T): T {
  const prev = native.setAutocast(device, true, dtype);
  try {
    return fn();
  } finally {
    native.setAutocast(device, prev);
  }
}

export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** Seeds the global CPU generator, as torch.manual_seed. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
/** The global CPU generator's state as a uint8 tensor (torch.get_rng_state). */
export function getRngState(): Tensor {
  return new Tensor(native.getRngState());
}
export function setRngState(state: Tensor): void {
  native.setRngState(state.handle);
}
export function buildInfo() {
  return native.buildInfo();
}
