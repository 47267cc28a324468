// Tensor handles: creation from and to JS buffers, metadata, lifetime, autograd and global state.
#include "common.h"
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>
#include <memory>

namespace dl {

// Live handles of this thread's table: a worker's tensors are its own, and when a worker exits its
// table is emptied (cleanup hook below), so it leaves nothing behind in anyone's count.
static thread_local int64_t t_live = 0;

// Report only storages this handle created: views share their base's storage and would
// otherwise be counted twice. V8 uses the figure to schedule GC, which is our backstop only, so
// small tensors are not worth the call.
static int64_t freshBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.device().type() != c10::DeviceType::CPU) return 0;
  const auto& st = t.storage();
  int64_t n = static_cast<int64_t>(st.nbytes());
  return n >= (64 << 10) && st.use_count() == 1 ? n : 0;
}

// Handles are index + gen * 2^24: exact in a JS number, and cheap to check.
constexpr uint32_t kIndexBits = 24;
constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
static thread_local std::vector<Slot> t_slots;
static thread_local std::vector<uint32_t> t_free;

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  uint32_t idx;
  if (!t_free.empty()) {
    idx = t_free.back();
    t_free.pop_back();
  } else {
    if (t_slots.size() > kIndexMask) throw std::runtime_error("more than 16M live tensors");
    idx = static_cast<uint32_t>(t_slots.size());
    t_slots.emplace_back();
  }
  Slot& s = t_slots[idx];
  s.t = std::move(t);
  s.reported = freshBytes(s.t);
  if (s.reported) Napi::MemoryManagement::AdjustExternalMemory(env, s.reported);
  t_live++;
  return Napi::Number::New(env, static_cast<double>(static_cast<uint64_t>(s.gen) << kIndexBits | idx));
}

static Slot* slotOf(const Napi::Value& v) {
  if (!v.IsNumber()) return nullptr;
  auto h = static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  uint32_t idx = h & kIndexMask;
  if (idx >= t_slots.size()) return nullptr;
  Slot& s = t_slots[idx];
  if (s.gen != static_cast<uint32_t>(h >> kIndexBits) || !s.t.defined()) return nullptr;
  return &s;
}

bool isHandle(const Napi::Value& v) { return slotOf(v) != nullptr; }

at::Tensor& tensorOf(const Napi::Value& v) {
  Slot* s = slotOf(v);
  if (!s) {
    if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "expected a tensor");
    throw Napi::Error::New(v.Env(), "tensor used after dispose()");
  }
  return s->t;
}

// dispose(h) -> true if it freed the tensor, false if it was already gone (safe to repeat).
static bool releaseHandle(Napi::Env env, const Napi::Value& v) {
  Slot* s = slotOf(v);
  if (!s) return false;
  s->t = at::Tensor();
  s->gen++;
  if (s->reported) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -s->reported);
    s->reported = 0;
  }
  t_free.push_back(static_cast<uint32_t>(s - t_slots.data()));
  t_live--;
  return true;
}

static const std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
    {"int16", at::kShort}, {"int8", at::kChar}, {"uint8", at::kByte}, {"bool", at::kBool},
};

at::ScalarType parseDtype(const std::string& s) {
  for (auto& d : kDtypes)
    if (s == d.first) return d.second;
  throw std::runtime_error("unknown dtype '" + s + "'");
}

const char* dtypeName(at::ScalarType t) {
  for (auto& d : kDtypes)
    if (t == d.second) return d.first;
  return c10::toString(t);
}

c10::Device parseDevice(const std::string& s) { return c10::Device(s); }

static std::string jsNumber(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  std::ostringstream o;
  o.precision(17);
  o << d;
  return o.str();
}

static std::string typeName(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsString()) return "the string \"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsBigInt()) return "a bigint";
  if (v.IsArray()) return "an array";
  return "an object";
}

int64_t intValue(const Napi::Value& v, Namer what, const void* ctx) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), what(ctx) + ": expected an integer, got " + typeName(v));
  double d = v.As<Napi::Number>().DoubleValue();
  constexpr double kMaxSafe = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER
  if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > kMaxSafe)
    throw Napi::RangeError::New(v.Env(), what(ctx) + ": expected an integer, got " + jsNumber(d));
  return static_cast<int64_t>(d);
}

static std::string plainName(const void* ctx) { return static_cast<const char*>(ctx); }

int64_t intValue(const Napi::Value& v, const char* what) { return intValue(v, plainName, what); }

std::vector<int64_t> intList(const Napi::Value& v, Namer what, const void* ctx) {
  if (v.IsNumber()) return {intValue(v, what, ctx)};
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), what(ctx) + ": expected an array of integers");
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = intValue(a.Get(i), what, ctx);
  return out;
}

std::vector<int64_t> intList(const Napi::Value& v, const char* what) { return intList(v, plainName, what); }

static Napi::Value shapeArray(Napi::Env env, c10::IntArrayRef s) {
  auto a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set(i, Napi::Number::New(env, static_cast<double>(s[i])));
  return a;
}

// fromBuffer(view: ArrayBufferView | ArrayBuffer, dtype, shape, device?) copies the bytes into a
// new tensor. Copying keeps LibTorch from holding JS memory that V8 may move or free.
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  const uint8_t* src;
  size_t len;
  if (info[0].IsTypedArray()) {
    auto ta = info[0].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    len = ta.ByteLength();
  } else if (info[0].IsDataView()) {
    auto dv = info[0].As<Napi::DataView>();
    src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    len = dv.ByteLength();
  } else if (info[0].IsArrayBuffer()) {
    auto ab = info[0].As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(ab.Data());
    len = ab.ByteLength();
  } else if (info[0].IsBuffer()) {
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    src = b.Data();
    len = b.Length();
  } else {
    throw Napi::TypeError::New(env, "fromBuffer: expected a TypedArray, DataView or ArrayBuffer");
  }
  auto dtype = parseDtype(info[1].As<Napi::String>());
  auto shape = intList(info[2], "fromBuffer: shape");
  size_t numel = 1;
  bool overflow = false;
  for (auto d : shape) {
    if (d < 0) throw Napi::RangeError::New(env, "fromBuffer: negative dimension in shape");
    overflow = overflow || (d != 0 && numel > SIZE_MAX / static_cast<size_t>(d));
    numel *= static_cast<size_t>(d);
  }
  overflow = overflow || numel > SIZE_MAX / c10::elementSize(dtype);
  size_t need = numel * c10::elementSize(dtype);
  if (overflow || need != len)
    throw Napi::RangeError::New(env, "fromBuffer: shape [" + c10::str(c10::IntArrayRef(shape)) + "] of " +
                                         dtypeName(dtype) + " needs " + std::to_string(need) +
                                         " bytes, the buffer has " + std::to_string(len));
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (need) std::memcpy(t.data_ptr(), src, need);
  if (info.Length() > 3 && info[3].IsString()) {
    auto dev = parseDevice(info[3].As<Napi::String>());
    if (dev != t.device()) t = t.to(dev);
  }
  return wrap(env, std::move(t));
  DL_GUARD_END(env)
}

// toBuffer(h) copies the tensor's elements, in row-major order, into a new ArrayBuffer.
static Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto t = tensorOf(info[0]).detach();
  if (t.device().type() != c10::DeviceType::CPU) t = t.to(at::kCPU);
  t = t.contiguous();
  size_t n = t.nbytes();
  auto ab = Napi::ArrayBuffer::New(env, n);
  if (n) std::memcpy(ab.Data(), t.data_ptr(), n);
  return ab;
  DL_GUARD_END(env)
}

// meta(h) -> [dtype, shape, device, requiresGrad]: one call for everything a JS Tensor caches.
static Napi::Value Meta(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& t = tensorOf(info[0]);
  auto a = Napi::Array::New(env, 4);
  a.Set(0u, Napi::String::New(env, dtypeName(t.scalar_type())));
  a.Set(1u, shapeArray(env, t.sizes()));
  a.Set(2u, Napi::String::New(env, t.device().str()));
  a.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
  return a;
  DL_GUARD_END(env)
}

static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return shapeArray(env, tensorOf(info[0]).sizes());
  DL_GUARD_END(env)
}

static Napi::Value Strides(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return shapeArray(env, tensorOf(info[0]).strides());
  DL_GUARD_END(env)
}

static Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return Napi::Boolean::New(env, tensorOf(info[0]).requires_grad());
  DL_GUARD_END(env)
}

static Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto fmt = info.Length() > 1 && info[1].IsString() && info[1].As<Napi::String>().Utf8Value() == "channels_last"
                 ? at::MemoryFormat::ChannelsLast
                 : at::MemoryFormat::Contiguous;
  return Napi::Boolean::New(env, tensorOf(info[0]).is_contiguous(fmt));
  DL_GUARD_END(env)
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), releaseHandle(info.Env(), info[0]));
}

static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !isHandle(info[0]));
}

static Napi::Value LiveCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(t_live));
}

// Two handles are the same tensor object (in-place results, parameters read back).
static Napi::Value SameTensor(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return Napi::Boolean::New(env, tensorOf(info[0]).unsafeGetTensorImpl() == tensorOf(info[1]).unsafeGetTensorImpl());
  DL_GUARD_END(env)
}

// setData(h, src): the tensor takes src's storage, dtype, device and strides but stays the same
// object (at::Tensor::set_data, PyTorch's `param.data = src`), so a module's parameters and the
// optimizers that hold them see the new data. The bytes reported to V8 follow the new storage.
static Napi::Value SetData(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  Slot* s = slotOf(info[0]);
  if (!s) tensorOf(info[0]);  // throws the usual error
  const at::Tensor& src = tensorOf(info[1]);
  s->t.set_data(src);
  int64_t now = s->t.has_storage() && s->t.device().type() == c10::DeviceType::CPU && s->t.storage().nbytes() >= (64 << 10)
                    ? static_cast<int64_t>(s->t.storage().nbytes())
                    : 0;
  // The handle now reports its new storage (src's handle, usually disposed next, reports it too
  // meanwhile: the figure only steers V8's GC, so a short double count is harmless).
  if (now != s->reported) {
    Napi::MemoryManagement::AdjustExternalMemory(env, now - s->reported);
    s->reported = now;
  }
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& t = tensorOf(info[0]);
  if (t.numel() != 1)
    throw std::runtime_error("item(): a tensor with " + std::to_string(t.numel()) +
                             " elements cannot be converted to a number");
  auto s = t.item();
  if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
  if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
  return Napi::Number::New(env, s.toDouble());
  DL_GUARD_END(env)
}

// ---- autograd ------------------------------------------------------------------------------

static Napi::Value Backward(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& t = tensorOf(info[0]);
  std::vector<at::Tensor> grads;
  if (info.Length() > 1 && isHandle(info[1])) grads.push_back(tensorOf(info[1]));
  bool retain = info.Length() > 2 && info[2].ToBoolean();
  bool create = info.Length() > 3 && info[3].ToBoolean();
  torch::autograd::backward({t}, grads, retain, create);
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value Grad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  const auto& g = tensorOf(info[0]).grad();
  if (!g.defined()) return env.Null();
  return wrap(env, g);
  DL_GUARD_END(env)
}

// setGrad(h, g | null): null drops the gradient (PyTorch's zero_grad(set_to_none=True)).
static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& t = tensorOf(info[0]);
  if (isHandle(info[1]))
    t.mutable_grad() = tensorOf(info[1]);
  else
    t.mutable_grad().reset();
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean());
  return Napi::Boolean::New(info.Env(), prev);
}

static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

// Inference mode is an RAII guard in C++; JS enters and exits it around a synchronous block.
static thread_local std::vector<std::unique_ptr<c10::InferenceMode>> t_inference;

static Napi::Value InferenceEnter(const Napi::CallbackInfo& info) {
  t_inference.push_back(std::make_unique<c10::InferenceMode>(true));
  return info.Env().Undefined();
}

static Napi::Value InferenceExit(const Napi::CallbackInfo& info) {
  if (!t_inference.empty()) t_inference.pop_back();
  return info.Env().Undefined();
}

static Napi::Value IsInferenceMode(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled());
}

// LibTorch 2.4 replaced the per-device autocast setters with device-typed ones (the old ones
// are deprecated, later removed); 1.13 has only the old ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DL_NEW_AUTOCAST 1
#endif

// autocast(deviceType, enabled, dtype) -> previous enabled flag.
static Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  std::string dev = info[0].As<Napi::String>();
  bool on = info[1].ToBoolean();
  bool hasDtype = info.Length() > 2 && info[2].IsString();
  bool prev;
#ifdef DL_NEW_AUTOCAST
  auto type = dev == "cpu" ? c10::DeviceType::CPU : c10::DeviceType::CUDA;
  prev = at::autocast::is_autocast_enabled(type);
  if (hasDtype) at::autocast::set_autocast_dtype(type, parseDtype(info[2].As<Napi::String>()));
  at::autocast::set_autocast_enabled(type, on);
#else
  if (dev == "cpu") {
    prev = at::autocast::is_cpu_enabled();
    if (hasDtype) at::autocast::set_autocast_cpu_dtype(parseDtype(info[2].As<Napi::String>()));
    at::autocast::set_cpu_enabled(on);
  } else {
    prev = at::autocast::is_enabled();
    if (hasDtype) at::autocast::set_autocast_gpu_dtype(parseDtype(info[2].As<Napi::String>()));
    at::autocast::set_enabled(on);
  }
#endif
  if (!on) at::autocast::clear_cache();
  return Napi::Boolean::New(env, prev);
  DL_GUARD_END(env)
}

// ---- global state --------------------------------------------------------------------------

// More intra-op threads than cores only time-slice the same cores; a few times the core count
// still leaves room to oversubscribe on purpose. Beyond that OpenMP's per-thread stacks and
// start-up are all cost: 10,000 threads hung the next operator, and a count that wrapped to
// 1.4 billion killed the process inside libgomp. src/torch/autograd.ts checks the same bound.
static int64_t maxThreads() {
  unsigned cores = std::thread::hardware_concurrency();
  return 4 * static_cast<int64_t>(cores > 0 ? cores : 1);
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  int64_t n = intValue(info[0], "setNumThreads");
  if (n < 1) throw Napi::RangeError::New(env, "setNumThreads: expected a positive thread count, got " + std::to_string(n));
  if (n > maxThreads())
    throw Napi::RangeError::New(env, "setNumThreads: " + std::to_string(n) + " threads is more than 4x the " +
                                         std::to_string(maxThreads() / 4) + " cores (at most " +
                                         std::to_string(maxThreads()) + ")");
  at::set_num_threads(static_cast<int>(n));
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  // Negative seeds wrap to uint64 as in torch.manual_seed; beyond 2^53 a JS number is inexact.
  auto seed = static_cast<uint64_t>(intValue(info[0], "manualSeed"));
  at::manual_seed(seed);
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return wrap(env, gen.get_state());
  DL_GUARD_END(env)
}

static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(tensorOf(info[0]));
  return env.Undefined();
  DL_GUARD_END(env)
}

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torchVersion", TORCH_VERSION);
  o.Set("mkldnn", at::hasMKLDNN());
  o.Set("cuda", at::hasCUDA());
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  o.Set("cudaDevices", at::hasCUDA() ? static_cast<double>(at::detail::getCUDAHooks().deviceCount()) : 0);
#else
  o.Set("cudaDevices", at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0);
#endif
  o.Set("hugePages", hugePagesInstalled());
  o.Set("config", at::show_config());
  return o;
}

// When a worker thread's environment goes away, its tensors go with it: free the table now rather
// than leaving the memory to thread exit (and the count to a thread that no longer runs JS).
static void releaseThreadTable() {
  for (auto& s : t_slots) {
    if (s.t.defined()) {
      s.t = at::Tensor();
      s.gen++;
    }
    s.reported = 0;
  }
  t_free.clear();
  for (uint32_t i = 0; i < t_slots.size(); i++) t_free.push_back(i);
  t_live = 0;
}

void initTensor(Napi::Env env, Napi::Object e) {
  env.AddCleanupHook(releaseThreadTable);
  e.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  e.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  e.Set("meta", Napi::Function::New(env, Meta));
  e.Set("shape", Napi::Function::New(env, Shape));
  e.Set("strides", Napi::Function::New(env, Strides));
  e.Set("requiresGrad", Napi::Function::New(env, RequiresGrad));
  e.Set("isContiguous", Napi::Function::New(env, IsContiguous));
  e.Set("dispose", Napi::Function::New(env, Dispose));
  e.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  e.Set("liveCount", Napi::Function::New(env, LiveCount));
  e.Set("sameTensor", Napi::Function::New(env, SameTensor));
  e.Set("setData", Napi::Function::New(env, SetData));
  e.Set("item", Napi::Function::New(env, Item));
  e.Set("backward", Napi::Function::New(env, Backward));
  e.Set("grad", Napi::Function::New(env, Grad));
  e.Set("setGrad", Napi::Function::New(env, SetGrad));
  e.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  e.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  e.Set("inferenceEnter", Napi::Function::New(env, InferenceEnter));
  e.Set("inferenceExit", Napi::Function::New(env, InferenceExit));
  e.Set("isInferenceMode", Napi::Function::New(env, IsInferenceMode));
  e.Set("setAutocast", Napi::Function::New(env, SetAutocast));
  e.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  e.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  e.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  e.Set("getRngState", Napi::Function::New(env, GetRngState));
  e.Set("setRngState", Napi::Function::New(env, SetRngState));
  e.Set("buildInfo", Napi::Function::New(env, BuildInfo));
}

}  // namespace dl
