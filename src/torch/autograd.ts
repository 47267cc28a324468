// Grad-mode and inference-mode blocks, autocast, and global settings (threads, seeds, RNG state).
import { availableParallelism } from 'node:os';
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

/**
 * The most intra-op threads setNumThreads accepts: 4x the cores. More threads than cores only
 * time-slice the same cores; a few times as many leaves room to oversubscribe on purpose, while
 * thousands of OpenMP threads hang or kill the process. The addon enforces the same bound
 * against the machine's core count.
 */
export function maxThreads(): number {
  return 4 * availableParallelism();
}

export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new RangeError(`setNumThreads: expected a positive thread count, got ${String(n)}`);
  }
  if (n > maxThreads()) {
    throw new RangeError(
      `setNumThreads: ${n} threads is more than 4x the ${availableParallelism()} available cores (at most ${maxThreads()})`,
    );
  }
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** Seeds the global CPU generator, as torch.manual_seed. */
export function manualSeed(seed: number): void {
  // torch.manual_seed takes any int in [-2^63, 2^64); a JS number is exact only up to 2^53, and
  // NaN used to seed 0 silently. Negative seeds wrap to uint64 as in PyTorch.
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new RangeError(`manualSeed: expected an integer between -(2^53 - 1) and 2^53 - 1, got ${String(seed)}`);
  }
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
/**
 * Frees the large inference buffers (4 MiB and up) that the addon's allocator keeps for the next
 * forward (at most DEEPLAB_CPU_CACHE_MB, default 1024; none under jemalloc or DEEPLAB_HUGEPAGES=0).
 * Returns the bytes given back. Call it after a burst of inference to lower the resident memory; the
 * first large allocation outside inference mode (a training step) does it by itself.
 */
export function releaseCpuCache(): number {
  return native.releaseCpuCache();
}
