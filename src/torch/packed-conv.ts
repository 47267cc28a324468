// A convolution prepacked for inference on oneDNN (native/src/fused_conv.cc), fp32 or int8: the
// weights are reordered (and quantized) once into the blocked layout oneDNN computes in, and the epilogue (bias, an optional
// residual add, an optional ReLU / ReLU6 / hardswish) runs inside the conv. fp32, CPU, no autograd;
// run() returns null for any input it does not take (a gradient wanted, bf16 autocast, another
// dtype or device), and the caller takes the plain path. Released by dispose(), deterministically.
import { native, type PackedConvHandle } from './native.js';
import { Tensor } from './tensor.js';

export type ConvActivation = 'relu' | 'relu6' | 'hardswish';
const ACT_CODES: Record<ConvActivation | 'none', number> = { none: 0, relu: 1, relu6: 2, hardswish: 3 };

export interface PackedConvSpec {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
  act: ConvActivation | null;
  /**
   * int8 (post-training static quantization, on the CPU's VNNI instructions): the input is
   * quantized to u8 with this calibrated scale and zero point (x / scale rounded, plus the zero
   * point; PyTorch's affine quint8) and the weights per output channel, symmetric; the output,
   * bias, residual and activation stay fp32.
   */
  int8?: {
    inputScale: number;
    /** 0-255; 0 for an input that is never negative */
    zeroPoint: number;
    /** the input's per-channel mean (float32, in channels): the bias absorbs the mean shift rounding the weights causes */
    inputMean?: Tensor;
  };
}

/** Whether this build has the fused convolution (Debian's LibTorch with libdnnl-dev's headers). */
export function packedConvAvailable(): boolean {
  return native.fusedConvAvailable === true;
}

/** Whether int8 convolutions run on VNNI (8-bit weights); without it they keep 7 bits (fused_conv.cc). */
export function int8UsesVnni(): boolean {
  return native.int8Vnni === true;
}

export class PackedConv2d {
  private handle: PackedConvHandle | null;

  /** Copies weight (OC, IC/groups, KH, KW) and bias (fp32) into a packed convolution. */
  constructor(
    weight: Tensor,
    bias: Tensor | null,
    readonly spec: PackedConvSpec,
  ) {
    if (!native.convPack) throw new Error('PackedConv2d: this build of the addon has no fused convolution');
    this.handle = native.convPack(
      weight.handle,
      bias?.handle ?? null,
      spec.stride,
      spec.padding,
      spec.dilation,
      spec.groups,
      ACT_CODES[spec.act ?? 'none'],
      spec.int8?.inputScale ?? 0,
      spec.int8?.zeroPoint ?? 0,
      spec.int8?.inputMean?.handle ?? null,
    );
  }

  /**
   * act(conv(x) + bias [+ residual]), or null when x is not an input it takes. residualInPlace:
   * the result is written into residual's buffer and aliases it (only when nothing else reads the
   * residual afterwards).
   */
  run(x: Tensor, residual: Tensor | null = null, residualInPlace = false): Tensor | null {
    if (!this.handle) throw new Error('PackedConv2d: used after dispose()');
    const h = native.convRun!(this.handle, x.handle, residual?.handle ?? null, residualInPlace);
    return h === undefined ? null : new Tensor(h);
  }

  dispose(): void {
    if (this.handle) native.convRelease!(this.handle);
    this.handle = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
