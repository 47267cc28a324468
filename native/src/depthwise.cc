// deeplab::depthwise_conv2d_nhwc: a depthwise convolution on channels_last CPU tensors, for
// inference. Why our own kernel: oneDNN (LibTorch 1.13 here, the same in PyTorch) runs depthwise
// convolutions with dilation 8 or more on channels_last input through a slow generic path, 8-100x
// slower than at dilation 6 (2048 channels at 64x128, dilation 12: 116 ms, dilation 6: 7 ms;
// bench/micro.ts). DeepLabV3+'s separable ASPP has exactly those (dilation 12/24/36 over 2048
// channels), and NCHW, where oneDNN is fine, costs the rest of the network its reorders. This
// kernel runs them in ~17 ms. It is called only where that cliff is (src/torch/functional.ts);
// everything else stays with oneDNN.
//
// Layout: input (N, H, W, C) in memory; each work item is one output row for 64 channels, so the
// 64 accumulators stay in four AVX-512 registers across the taps, and consecutive items share a
// channel block, so the input rows they read are still in L2. fp32 or bf16 input (bf16 is widened
// to fp32, accumulated in fp32 and rounded to nearest-even once, as oneDNN does); fp32 weights.
// No autograd: the caller uses it only when no gradient is wanted.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>
#include <algorithm>
#include <cstring>

namespace {

inline float bf16ToFloat(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);                      // round to nearest even
  return uint16_t(u >> 16);
}

template <typename T> inline float load(const T* p, int64_t i);
template <> inline float load<float>(const float* p, int64_t i) { return p[i]; }
template <> inline float load<uint16_t>(const uint16_t* p, int64_t i) { return bf16ToFloat(p[i]); }
template <typename T> inline void store(T* p, int64_t i, float v);
template <> inline void store<float>(float* p, int64_t i, float v) { p[i] = v; }
template <> inline void store<uint16_t>(uint16_t* p, int64_t i, float v) { p[i] = floatToBf16(v); }

struct Geometry {
  int64_t N, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
};

// One output row (n, oh) for channels [c0, c0 + CB). always_inline: inlined into each
// target_clones variant below, so CB = 64 becomes four AVX-512 (or eight AVX2) accumulators.
template <typename T, int CB>
__attribute__((always_inline)) inline void rowBlock(const T* __restrict x, const float* __restrict w,
                                                     const float* __restrict b, T* __restrict y, const Geometry& g,
                                                     int64_t n, int64_t oh, int64_t c0) {
  for (int64_t ow = 0; ow < g.OW; ow++) {
    float acc[CB];
    for (int c = 0; c < CB; c++) acc[c] = b[c0 + c];
    for (int64_t kh = 0; kh < g.KH; kh++) {
      int64_t ih = oh * g.sh - g.ph + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; kw++) {
        int64_t iw = ow * g.sw - g.pw + kw * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        const T* xp = x + ((n * g.H + ih) * g.W + iw) * g.C + c0;
        const float* wp = w + (kh * g.KW + kw) * g.C + c0;
        for (int c = 0; c < CB; c++) acc[c] += load(xp, c) * wp[c];
      }
    }
    T* yp = y + ((n * g.OH + oh) * g.OW + ow) * g.C + c0;
    for (int c = 0; c < CB; c++) store(yp, c, acc[c]);
  }
}

// Items [begin, end) of (channel block, image row), channel block outermost.
template <typename T>
__attribute__((target_clones("avx512f", "avx2", "default")))
void runItems(const T* x, const float* w, const float* b, T* y, const Geometry& g, int64_t begin, int64_t end) {
  const int64_t rows = g.N * g.OH;
  for (int64_t r = begin; r < end; r++) {
    int64_t cb = r / rows, row = r % rows;
    int64_t n = row / g.OH, oh = row % g.OH, c0 = cb * 64, c1 = std::min<int64_t>(c0 + 64, g.C);
    if (c1 - c0 == 64) {
      rowBlock<T, 64>(x, w, b, y, g, n, oh, c0);
      continue;
    }
    int64_t c = c0;
    for (; c + 16 <= c1; c += 16) rowBlock<T, 16>(x, w, b, y, g, n, oh, c);
    for (; c < c1; c++) rowBlock<T, 1>(x, w, b, y, g, n, oh, c);
  }
}

at::Tensor depthwiseConv2dNhwc(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                               at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 4, "depthwise_conv2d_nhwc: expected 4-D input and weight, got ",
              input.dim(), "-D and ", weight.dim(), "-D");
  TORCH_CHECK(input.device().is_cpu() && weight.device().is_cpu(), "depthwise_conv2d_nhwc: CPU tensors only");
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kBFloat16,
              "depthwise_conv2d_nhwc: input must be float32 or bfloat16, got ", input.scalar_type());
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "depthwise_conv2d_nhwc: stride, padding and dilation must have 2 values each");
  Geometry g;
  g.N = input.size(0); g.C = input.size(1); g.H = input.size(2); g.W = input.size(3);
  TORCH_CHECK(weight.size(0) == g.C && weight.size(1) == 1, "depthwise_conv2d_nhwc: weight of shape ", weight.sizes(),
              " is not depthwise for ", g.C, " input channels (expected [", g.C, ", 1, kH, kW])");
  g.KH = weight.size(2); g.KW = weight.size(3);
  g.sh = stride[0]; g.sw = stride[1]; g.ph = padding[0]; g.pw = padding[1]; g.dh = dilation[0]; g.dw = dilation[1];
  TORCH_CHECK(g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0 && g.ph >= 0 && g.pw >= 0,
              "depthwise_conv2d_nhwc: stride and dilation must be positive, padding non-negative");
  g.OH = (g.H + 2 * g.ph - g.dh * (g.KH - 1) - 1) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.dw * (g.KW - 1) - 1) / g.sw + 1;
  TORCH_CHECK(g.OH > 0 && g.OW > 0, "depthwise_conv2d_nhwc: input ", input.sizes(), " is too small for the kernel");
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->numel() == g.C, "depthwise_conv2d_nhwc: bias has ", bias->numel(), " values for ", g.C, " channels");
  }

  at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
  // (C, 1, KH, KW) -> (KH, KW, C): each tap's weights contiguous over channels, like the input.
  at::Tensor w = weight.to(at::kFloat).reshape({g.C, g.KH * g.KW}).t().contiguous();
  at::Tensor b = bias.has_value() && bias->defined() ? bias->to(at::kFloat).contiguous() : at::zeros({g.C}, at::kFloat);
  at::Tensor out = at::empty({g.N, g.C, g.OH, g.OW}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (out.numel() == 0) return out;
  const float* wp = w.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const bool bf16 = input.scalar_type() == at::kBFloat16;
  at::parallel_for(0, g.N * g.OH * ((g.C + 63) / 64), 1, [&](int64_t begin, int64_t end) {
    if (bf16) {
      runItems<uint16_t>(static_cast<const uint16_t*>(x.data_ptr()), wp, bp, static_cast<uint16_t*>(out.data_ptr()), g,
                         begin, end);
    } else {
      runItems<float>(x.data_ptr<float>(), wp, bp, out.data_ptr<float>(), g, begin, end);
    }
  });
  return out;
}

// Under CPU autocast the op behaves as aten::conv2d does there: a float32 input is cast to the
// autocast dtype (bf16) and so is the output; weights are used in fp32 (exact, not rounded).
at::Tensor depthwiseConv2dNhwcAutocast(const at::Tensor& input, const at::Tensor& weight,
                                       const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                       at::IntArrayRef padding, at::IntArrayRef dilation) {
  c10::impl::ExcludeDispatchKeyGuard noAutocast(c10::DispatchKey::AutocastCPU);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(at::kCPU);
#else
  const at::ScalarType dtype = at::autocast::get_autocast_cpu_dtype();
#endif
  const bool cast = input.scalar_type() == at::kFloat && dtype == at::kBFloat16;
  return depthwiseConv2dNhwc(cast ? input.to(dtype) : input, weight, bias, stride, padding, dilation);
}

}  // namespace

TORCH_LIBRARY(deeplab, m) {
  m.def("depthwise_conv2d_nhwc(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation) -> Tensor");
}
TORCH_LIBRARY_IMPL(deeplab, CPU, m) { m.impl("depthwise_conv2d_nhwc", depthwiseConv2dNhwc); }
TORCH_LIBRARY_IMPL(deeplab, AutocastCPU, m) { m.impl("depthwise_conv2d_nhwc", depthwiseConv2dNhwcAutocast); }
