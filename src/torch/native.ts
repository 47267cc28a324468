// Loads the LibTorch addon. This is the only file that touches it; everything else goes
// through Tensor and the functions of src/torch. If the addon is missing, say how to build it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';

/** A tensor handle: an index into the addon's per-thread tensor table. */
export type Handle = number;

export interface BuildInfo {
  torchVersion: string;
  mkldnn: boolean;
  cuda: boolean;
  cudaDevices: number;
  /** large inference tensors ask for transparent huge pages and are kept for reuse when freed (native/src/allocator.cc; off under jemalloc or DEEPLAB_HUGEPAGES=0) */
  hugePages: boolean;
  config: string;
}

export interface NativeBinding {
  op(name: string, overload: string): number;
  // What the operator's schema returns: a handle, a list of them, a number or a boolean; each
  // caller knows which for the operator it calls.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  call(id: number, ...args: unknown[]): any;
  callVoid(id: number, ...args: unknown[]): void;
  /** Unboxed add/sub/mul/div: code 0..3; returns a handle, or nothing when inplace. */
  binary(code: number, a: Handle, b: Handle, alpha: number, inplace: boolean): Handle;
  binaryScalar(code: number, a: Handle, b: number, alpha: number, inplace: boolean): Handle;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, dtype: string, shape: readonly number[], device?: string): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  meta(h: Handle): [string, number[], string, boolean];
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  requiresGrad(h: Handle): boolean;
  isContiguous(h: Handle, format?: string): boolean;
  dispose(h: Handle): boolean;
  isDisposed(h: Handle): boolean;
  liveCount(): number;
  sameTensor(a: Handle, b: Handle): boolean;
  /** at::Tensor::set_data: h takes src's storage, dtype, device and strides, keeping its identity. */
  setData(h: Handle, src: Handle): void;
  item(h: Handle): number | boolean;
  backward(h: Handle, grad: Handle | null, retainGraph: boolean, createGraph: boolean): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  inferenceEnter(): void;
  inferenceExit(): void;
  isInferenceMode(): boolean;
  setAutocast(device: string, on: boolean, dtype?: string): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  getRngState(): Handle;
  setRngState(h: Handle): void;
  buildInfo(): BuildInfo;
  /** frees the large inference buffers kept for reuse (native/src/allocator.cc); the bytes given back */
  releaseCpuCache(): number;
  /** whether native/src/fused_conv.cc was built with oneDNN (the next three exist only then) */
  fusedConvAvailable: boolean;
  /** the CPU has VNNI: int8 weights use 8 bits (else 7, so oneDNN's 16-bit pair sums cannot saturate) */
  int8Vnni?: boolean;
  /** act: 0 none, 1 relu, 2 relu6, 3 hardswish */
  convPack?(
    weight: Handle,
    bias: Handle | null,
    stride: number[],
    padding: number[],
    dilation: number[],
    groups: number,
    act: number,
    /** int8: the input's quantization scale (0: fp32) and zero point (u8: x = scale * (q - zeroPoint)) */
    inScale?: number,
    zeroPoint?: number,
    /** int8: the input's per-channel mean, for bias correction */
    inputMean?: Handle | null,
  ): PackedConvHandle;
  /** undefined when the input is not one it runs (grad wanted, autocast on, not fp32 4-D CPU) */
  convRun?(p: PackedConvHandle, x: Handle, residual: Handle | null, residualInPlace: boolean): Handle | undefined;
  convRelease?(p: PackedConvHandle): boolean;
  distributed: DistributedBinding;
}

/** LibTorch's c10d (native/src/distributed.cc); ids are entries of a process-wide table. */
export interface DistributedBinding {
  storeCreate(host: string, port: number, isServer: boolean, worldSize: number, timeoutMs: number): [number, number];
  storeSet(id: number, key: string, value: string): void;
  storeGet(id: number, key: string): string;
  storeAdd(id: number, key: string, value: number): number;
  storeCheck(id: number, keys: string[]): boolean;
  storeClose(id: number): void;
  pgCreate(store: number, rank: number, size: number, timeoutMs: number, ifnames: string[], hostname: string): number;
  pgBroadcast(id: number, tensors: Handle[], root: number): void;
  pgAllreduce(id: number, tensors: Handle[], op: 'sum' | 'max' | 'min'): void;
  pgAllgather(id: number, t: Handle): Handle;
  pgBarrier(id: number): void;
  pgClose(id: number): void;
  reducerCreate(pg: number, params: Handle[], bucketCapBytes: number, firstBucketBytes: number): [number, number];
  reducerPrepare(id: number, sync: boolean): void;
  reducerClose(id: number): void;
  syncBatchNorm(
    pg: number,
    x: Handle,
    weight: Handle | null,
    bias: Handle | null,
    runningMean: Handle | null,
    runningVar: Handle | null,
    momentum: number,
    eps: number,
  ): Handle;
  setParentDeathSignal(parentPid: number): boolean;
}

/** A packed convolution (native/src/fused_conv.cc): opaque to JS. */
export type PackedConvHandle = { readonly __packedConv: unique symbol };

function load(): NativeBinding {
  const here = dirname(fileURLToPath(import.meta.url));
  // From src/torch (ts-node style) or dist/src/torch (compiled) up to the package root.
  const candidates = [
    join(here, '../../native/build/Release/deeplab_torch.node'),
    join(here, '../../../native/build/Release/deeplab_torch.node'),
  ];
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw new Error(
      'deeplab: the LibTorch addon is not built (looked for native/build/Release/deeplab_torch.node).\n' +
        'Run `bash scripts/setup.sh` (installs libtorch-dev and builds it), or `npm run build:native`.\n' +
        'For another LibTorch, set LIBTORCH=/path/to/libtorch before building.',
    );
  }
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeBinding;
  } catch (e) {
    throw new Error(
      `deeplab: could not load ${file}: ${(e as Error).message}\n` +
        'Is the LibTorch it was built against still installed (Debian: apt-get install libtorch-dev)?',
    );
  }
}

export const native: NativeBinding = load();

// Intra-op threads default to every core, unless the environment asks for fewer. OpenMP keeps
// the count per thread, so each worker thread that loads us sets its own.
// A count above setNumThreads' bound (4x the cores) is lowered to it with a warning rather than
// failing every import.
const envThreads = Number(process.env.DEEPLAB_THREADS ?? process.env.OMP_NUM_THREADS ?? '');
const threadBound = 4 * availableParallelism();
let threads = Number.isInteger(envThreads) && envThreads > 0 ? envThreads : availableParallelism();
if (threads > threadBound) {
  process.emitWarning(
    `DEEPLAB_THREADS/OMP_NUM_THREADS=${threads} is more than 4x the ${availableParallelism()} cores; using ${threadBound}`,
  );
  threads = threadBound;
}
native.setNumThreads(threads);
