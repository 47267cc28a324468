// Shared pieces of the addon: the tensor handle, argument helpers and the one error guard.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <atomic>
#include <string>
#include <vector>

namespace dl {

// A JS tensor holds an integer handle: a slot index in this thread's table plus a generation
// count, so a handle used after dispose() is an error even once its slot is reused. Integers
// cost nothing to create; a napi External with a finalizer cost ~1 us per tensor, more than the
// operator itself. The GC backstop lives in JS (a FinalizationRegistry for escaped tensors).
struct Slot {
  at::Tensor t;
  int64_t reported = 0;  // bytes reported to V8 as external memory
  uint32_t gen = 0;
};


Napi::Value wrap(Napi::Env env, at::Tensor t);
at::Tensor& tensorOf(const Napi::Value& v);
bool isHandle(const Napi::Value& v);

at::ScalarType parseDtype(const std::string& s);
const char* dtypeName(at::ScalarType t);
c10::Device parseDevice(const std::string& s);
// An integer from JS: a finite, integral number within +-(2^53 - 1), the range a JS number
// holds exactly. Napi's Int64Value turns NaN and Infinity into 0 and truncates 1.5 to 1, which
// made zeros([NaN]) a [0] tensor; `what` names the argument in the error.
// `what` is called only to word an error, so the hot path builds no strings.
using Namer = std::string (*)(const void* ctx);
int64_t intValue(const Napi::Value& v, Namer what, const void* ctx);
int64_t intValue(const Napi::Value& v, const char* what);
std::vector<int64_t> intList(const Napi::Value& v, Namer what, const void* ctx);
std::vector<int64_t> intList(const Napi::Value& v, const char* what);
Napi::Value fromIValue(Napi::Env env, const c10::IValue& v);

// Every exported function runs its body inside GUARD so that a LibTorch error becomes a JS
// Error with LibTorch's message and never unwinds through V8 or aborts the process.
#define DL_GUARD_BEGIN try {
#define DL_GUARD_END(env)                                                              \
  }                                                                                    \
  catch (const Napi::Error& e) { throw; }                                              \
  catch (const c10::Error& e) { throw Napi::Error::New(env, e.what_without_backtrace()); } \
  catch (const std::exception& e) { throw Napi::Error::New(env, e.what()); }           \
  catch (...) { throw Napi::Error::New(env, "unknown native error"); }

void initTensor(Napi::Env env, Napi::Object exports);
// The huge-page CPU allocator (allocator.cc): installed once per process; whether it is in use.
bool installCpuAllocator();
bool hugePagesInstalled();
// Frees the large inference buffers the allocator keeps for reuse; the bytes given back.
size_t releaseCpuCache();
void initOps(Napi::Env env, Napi::Object exports);
// c10d: store, Gloo process group, DDP Reducer, SyncBatchNorm (distributed.cc).
void initDistributed(Napi::Env env, Napi::Object exports);
// Fused, prepacked oneDNN convolutions (fused_conv.cc); exports.fusedConvAvailable says if built.
void initFusedConv(Napi::Env env, Napi::Object exports);

}  // namespace dl
