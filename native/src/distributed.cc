// Data-parallel training on LibTorch's own distributed engine (c10d), not a home-made protocol:
// the TCPStore rendezvous, the Gloo process group (NCCL on a CUDA build sits behind the same
// ProcessGroup interface), DDP's gradient Reducer (buckets all-reduced while backward runs) and a
// SyncBatchNorm autograd function with torch.nn.SyncBatchNorm's arithmetic.
//
// Objects live in a process-wide table and JS holds their integer ids. Every collective is
// synchronous (Work::wait) and bounded by the process group's timeout, so a dead or hung peer
// surfaces as an error in JS after at most that long, never as a silent hang.
//
// LibTorch versions: built and tested against Debian's 1.13.1, where ProcessGroupGloo *is* a
// ProcessGroup. In 2.x it is a Backend that a ProcessGroup wraps; that branch (TORCH_VERSION_MAJOR
// >= 2) follows the 2.1-2.4 headers and has not been compiled here.
// LibTorch's build defines this for its own sources; ProcessGroupGloo.hpp is empty without it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include "common.h"
#include <torch/version.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <sys/prctl.h>
#include <csignal>
#include <unistd.h>

namespace dl {

namespace {

using c10d::ProcessGroup;
using c10d::Store;

std::map<int, c10::intrusive_ptr<Store>> g_stores;
std::map<int, c10::intrusive_ptr<ProcessGroup>> g_groups;
std::map<int, std::shared_ptr<c10d::Reducer>> g_reducers;
int g_next = 1;

template <typename M>
typename M::mapped_type& lookup(M& m, const Napi::Value& v, const char* what) {
  auto it = m.find(static_cast<int>(intValue(v, what)));
  if (it == m.end()) throw std::runtime_error(std::string(what) + ": unknown or closed id");
  return it->second;
}

std::chrono::milliseconds msOf(const Napi::Value& v, const char* what) {
  return std::chrono::milliseconds(intValue(v, what));
}

std::vector<at::Tensor> tensorList(const Napi::Value& v) {
  auto a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(tensorOf(a.Get(i)));
  return out;
}

std::vector<uint8_t> bytesOf(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string stringOf(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

// ---- store ----

// storeCreate(host, port, isServer, worldSize, timeoutMs) -> [id, port]. A server on port 0 binds
// a port the OS picks (reported back), which is how tests avoid fixed ports.
Napi::Value StoreCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(intValue(info[1], "storeCreate: port"));
  o.isServer = info[2].As<Napi::Boolean>();
  o.numWorkers = c10::nullopt;  // our own rendezvous counts arrivals (and names the missing ranks)
  o.waitWorkers = false;
  o.timeout = msOf(info[4], "storeCreate: timeoutMs");
  auto store = c10::make_intrusive<c10d::TCPStore>(info[0].As<Napi::String>().Utf8Value(), o);
  int id = g_next++;
  int port = store->getPort();
  g_stores[id] = store;
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, id));
  out.Set(1u, Napi::Number::New(env, port));
  return out;
  DL_GUARD_END(env)
}

Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  lookup(g_stores, info[0], "store")->set(info[1].As<Napi::String>(), bytesOf(info[2].As<Napi::String>()));
  return env.Undefined();
  DL_GUARD_END(env)
}

Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return Napi::String::New(env, stringOf(lookup(g_stores, info[0], "store")->get(info[1].As<Napi::String>())));
  DL_GUARD_END(env)
}

Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto n = lookup(g_stores, info[0], "store")->add(info[1].As<Napi::String>(), intValue(info[2], "storeAdd: value"));
  return Napi::Number::New(env, static_cast<double>(n));
  DL_GUARD_END(env)
}

// storeCheck(id, keys) -> whether all keys exist (never blocks).
Napi::Value StoreCheck(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  std::vector<std::string> keys;
  auto a = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) keys.push_back(a.Get(i).As<Napi::String>());
  return Napi::Boolean::New(env, lookup(g_stores, info[0], "store")->check(keys));
  DL_GUARD_END(env)
}

// ---- process group ----

c10::intrusive_ptr<ProcessGroup> makeGloo(const c10::intrusive_ptr<Store>& store, int rank, int size,
                                          std::chrono::milliseconds timeout,
                                          const std::vector<std::string>& ifnames, const std::string& hostname) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  // As torch.distributed picks Gloo's devices: GLOO_SOCKET_IFNAME (one device per interface,
  // used round-robin), else an address to bind, else this host's name (loopback if it does not
  // resolve).
  if (!ifnames.empty()) {
    for (auto& i : ifnames) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(i));
  } else if (!hostname.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  opts->threads = static_cast<int>(opts->devices.size()) * 2;
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo/", store);
#if TORCH_VERSION_MAJOR >= 2
  auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, opts);
  auto pgOpts = c10::make_intrusive<ProcessGroup::Options>("gloo", timeout);
  auto pg = c10::make_intrusive<ProcessGroup>(prefixed, rank, size, pgOpts);
  pg->setBackend(c10::DeviceType::CPU, ProcessGroup::BackendType::GLOO, backend);
  pg->setDefaultBackend(ProcessGroup::BackendType::GLOO);
  return pg;
#else
  return c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, opts);
#endif
}

// pgCreate(storeId, rank, size, timeoutMs, ifnames[], hostname) -> id. Connects the full mesh.
Napi::Value PgCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto store = lookup(g_stores, info[0], "store");
  std::vector<std::string> ifnames;
  auto a = info[4].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) ifnames.push_back(a.Get(i).As<Napi::String>());
  auto pg = makeGloo(store, static_cast<int>(intValue(info[1], "pgCreate: rank")),
                     static_cast<int>(intValue(info[2], "pgCreate: size")), msOf(info[3], "pgCreate: timeoutMs"),
                     ifnames, info[5].As<Napi::String>());
  int id = g_next++;
  g_groups[id] = pg;
  return Napi::Number::New(env, id);
  DL_GUARD_END(env)
}

void waitWork(const c10::intrusive_ptr<c10d::Work>& w) { w->wait(); }

// Tensors of one dtype flattened into one buffer: one collective instead of one per tensor, as
// DDP's coalesced broadcast of the module state.
template <typename F>
void coalesced(std::vector<at::Tensor>& ts, F&& collective) {
  std::map<at::ScalarType, std::vector<size_t>> byType;
  for (size_t i = 0; i < ts.size(); i++) byType[ts[i].scalar_type()].push_back(i);
  for (auto& [type, idx] : byType) {
    std::vector<at::Tensor> flat;
    for (auto i : idx) flat.push_back(ts[i].detach().contiguous().view({-1}));
    auto buf = at::cat(flat);
    collective(buf);
    int64_t off = 0;
    at::NoGradGuard ng;
    for (auto i : idx) {
      auto n = ts[i].numel();
      ts[i].detach().copy_(buf.narrow(0, off, n).view(ts[i].sizes()));
      off += n;
    }
  }
}

// pgBroadcast(id, tensors, root): in place, coalesced per dtype.
Napi::Value PgBroadcast(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto pg = lookup(g_groups, info[0], "process group");
  auto ts = tensorList(info[1]);
  c10d::BroadcastOptions o;
  o.rootRank = intValue(info[2], "pgBroadcast: root");
  coalesced(ts, [&](at::Tensor& buf) {
    std::vector<at::Tensor> v{buf};
    waitWork(pg->broadcast(v, o));
  });
  return env.Undefined();
  DL_GUARD_END(env)
}

// pgAllreduce(id, tensors, op): in place, summed ("sum") or the maximum ("max"), coalesced.
Napi::Value PgAllreduce(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto pg = lookup(g_groups, info[0], "process group");
  auto ts = tensorList(info[1]);
  std::string op = info[2].As<Napi::String>();
  c10d::AllreduceOptions o;
  o.reduceOp = op == "max" ? c10d::ReduceOp::MAX : op == "min" ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
  coalesced(ts, [&](at::Tensor& buf) {
    std::vector<at::Tensor> v{buf};
    waitWork(pg->allreduce(v, o));
  });
  return env.Undefined();
  DL_GUARD_END(env)
}

// pgAllgather(id, tensor) -> a handle: the ranks' tensors stacked along a new first dimension.
at::Tensor allgather(const c10::intrusive_ptr<ProcessGroup>& pg, const at::Tensor& t) {
  std::vector<at::Tensor> in{t.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < pg->getSize(); r++) out[0].push_back(at::empty_like(in[0]));
  waitWork(pg->allgather(out, in));
  return at::stack(out[0]);
}

Napi::Value PgAllgather(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto pg = lookup(g_groups, info[0], "process group");
  return wrap(env, allgather(pg, tensorOf(info[1])));
  DL_GUARD_END(env)
}

Napi::Value PgBarrier(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  waitWork(lookup(g_groups, info[0], "process group")->barrier());
  return env.Undefined();
  DL_GUARD_END(env)
}

// pgClose(id): drops the group (its reducers first); stores close with storeClose.
Napi::Value PgClose(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  g_groups.erase(static_cast<int>(intValue(info[0], "pgClose: id")));
  return env.Undefined();
  DL_GUARD_END(env)
}

Napi::Value StoreClose(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  g_stores.erase(static_cast<int>(intValue(info[0], "storeClose: id")));
  return env.Undefined();
  DL_GUARD_END(env)
}

// ---- DDP's Reducer ----

// reducerCreate(pg, params, bucketCapBytes, firstBucketBytes) -> id. Bucket assignment as
// torch.nn.parallel.DistributedDataParallel (1.13): by size with a small first bucket, passed to
// the Reducer reversed, so the last layers (whose gradients are ready first) fill bucket 0.
Napi::Value ReducerCreate(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto pg = lookup(g_groups, info[0], "process group");
  auto params = tensorList(info[1]);
  auto cap = intValue(info[2], "reducerCreate: bucketCapBytes");
  auto first = intValue(info[3], "reducerCreate: firstBucketBytes");
  std::vector<bool> sparse(params.size(), false);
  auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
      params, {static_cast<size_t>(first), static_cast<size_t>(cap)}, sparse);
  std::reverse(buckets.begin(), buckets.end());
  std::reverse(limits.begin(), limits.end());
  std::unordered_map<size_t, std::string> names;
  auto reducer = std::make_shared<c10d::Reducer>(params, buckets, limits, pg, sparse, cap,
                                                 /*find_unused_parameters=*/false,
                                                 /*gradient_as_bucket_view=*/false, names, first);
  int id = g_next++;
  g_reducers[id] = reducer;
  auto out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, id));
  out.Set(1u, Napi::Number::New(env, static_cast<double>(buckets.size())));
  return out;
  DL_GUARD_END(env)
}

// reducerPrepare(id, sync): before the forward of a step. sync=false is DDP's no_sync(): the
// gradients of this backward accumulate locally (gradient accumulation's inner steps).
Napi::Value ReducerPrepare(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& r = lookup(g_reducers, info[0], "reducer");
  bool sync = info[1].As<Napi::Boolean>();
  if (!sync) return env.Undefined();
  // After the first iteration the buckets are rebuilt once in the order gradients became ready
  // (rank 0's order, broadcast), as DDP's forward does.
  r->rebuild_buckets();
  r->prepare_for_forward();
  r->prepare_for_backward({});
  return env.Undefined();
  DL_GUARD_END(env)
}

Napi::Value ReducerClose(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  g_reducers.erase(static_cast<int>(intValue(info[0], "reducerClose: id")));
  return env.Undefined();
  DL_GUARD_END(env)
}

// ---- SyncBatchNorm ----

// torch.nn.SyncBatchNorm's arithmetic on any device: the forward gathers each rank's per-channel
// (mean, M2, count) and combines them (Chan's parallel formula, no cancellation), normalises with
// the global statistics and updates the running ones (unbiased variance); the backward all-reduces
// sum(dy) and sum(dy * (x - mean)) and forms the input gradient as batch_norm_backward_elemt.
// Weight and bias gradients stay local: DDP's Reducer averages them.
struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x, at::Tensor weight,
                            at::Tensor bias, at::Tensor runningMean, at::Tensor runningVar, int64_t pgId,
                            double momentum, double eps) {
    auto pg = g_groups.at(static_cast<int>(pgId));
    const int64_t C = x.size(1);
    auto xf = x.to(at::kFloat);
    auto dims = std::vector<int64_t>{0, 2, 3};
    const double n = static_cast<double>(x.numel() / C);
    auto mean = xf.mean(dims);
    auto m2 = (xf - mean.view({1, C, 1, 1})).pow(2).sum(dims);
    auto local = at::cat({mean, m2, at::full({1}, n, mean.options())});
    auto all = allgather(pg, local).to(at::kDouble);  // [W, 2C+1]
    auto counts = all.select(1, 2 * C);              // [W]
    auto keep = counts.gt(0);
    auto means = all.narrow(1, 0, C).index({keep});
    auto m2s = all.narrow(1, C, C).index({keep});
    auto cnt = counts.index({keep}).unsqueeze(1);
    auto total = cnt.sum(0);  // [1]
    auto gmean = (means * cnt).sum(0) / total;
    auto gm2 = (m2s + cnt * (means - gmean).pow(2)).sum(0);
    auto var = gm2 / total;
    auto invstd = (var + eps).rsqrt();
    double N = total.item<double>();
    if (runningMean.defined()) {
      at::NoGradGuard ng;
      runningMean.mul_(1 - momentum).add_(gmean.to(runningMean.scalar_type()), momentum);
      auto unbiased = N > 1 ? gm2 / (N - 1) : var;
      runningVar.mul_(1 - momentum).add_(unbiased.to(runningVar.scalar_type()), momentum);
    }
    auto meanF = gmean.to(at::kFloat), invstdF = invstd.to(at::kFloat);
    auto y = (xf - meanF.view({1, C, 1, 1})) * invstdF.view({1, C, 1, 1});
    if (weight.defined()) y = y * weight.view({1, C, 1, 1});
    if (bias.defined()) y = y + bias.view({1, C, 1, 1});
    ctx->save_for_backward({x, weight, meanF, invstdF});
    ctx->saved_data["pg"] = pgId;
    ctx->saved_data["count"] = N;
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0].to(at::kFloat), weight = saved[1], mean = saved[2], invstd = saved[3];
    auto pg = g_groups.at(static_cast<int>(ctx->saved_data["pg"].toInt()));
    double N = ctx->saved_data["count"].toDouble();
    const int64_t C = x.size(1);
    auto dy = grads[0].to(at::kFloat);
    auto dims = std::vector<int64_t>{0, 2, 3};
    auto xmu = x - mean.view({1, C, 1, 1});
    auto sumDy = dy.sum(dims);
    auto sumDyXmu = (dy * xmu).sum(dims);
    at::Tensor gW, gB;
    if (weight.defined() && ctx->needs_input_grad(1)) gW = sumDyXmu * invstd;
    if (ctx->needs_input_grad(2)) gB = sumDy.clone();
    auto both = at::cat({sumDy, sumDyXmu});
    std::vector<at::Tensor> v{both};
    waitWork(pg->allreduce(v));
    auto meanDy = both.narrow(0, 0, C) / N;
    auto meanDyXmu = both.narrow(0, C, C) / N;
    auto scale = weight.defined() ? invstd * weight.to(at::kFloat) : invstd;
    auto dx = (dy - meanDy.view({1, C, 1, 1}) - xmu * (invstd * invstd * meanDyXmu).view({1, C, 1, 1})) *
              scale.view({1, C, 1, 1});
    return {dx.to(saved[0].scalar_type()), gW, gB, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

// syncBatchNorm(pg, x, weight|null, bias|null, runningMean|null, runningVar|null, momentum, eps)
Napi::Value SyncBatchNorm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto pgId = intValue(info[0], "syncBatchNorm: process group");
  lookup(g_groups, info[0], "process group");
  auto opt = [&](int i) { return info[i].IsNull() || info[i].IsUndefined() ? at::Tensor() : tensorOf(info[i]); };
  auto y = SyncBatchNormFn::apply(tensorOf(info[1]), opt(2), opt(3), opt(4), opt(5), pgId,
                                  info[6].As<Napi::Number>().DoubleValue(), info[7].As<Napi::Number>().DoubleValue());
  return wrap(env, y);
  DL_GUARD_END(env)
}

// ---- supervision ----

// setParentDeathSignal(parentPid) -> false if the parent is already gone. A worker started by
// `deeplab train --nproc-per-node` dies with its launcher, even if the launcher is SIGKILLed and
// cannot stop it: no orphaned worker holding a port and a core.
Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto parent = static_cast<pid_t>(intValue(info[0], "setParentDeathSignal: pid"));
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) throw std::runtime_error("prctl(PR_SET_PDEATHSIG) failed");
  return Napi::Boolean::New(env, getppid() == parent);
  DL_GUARD_END(env)
}

}  // namespace

// The Reducer warns "Grad strides do not match bucket view strides" (once per process) when a
// gradient's strides differ from its parameter's. With channels_last models they do, and not by a
// rule a layout could follow: a 1x1 conv's weight is NCHW and channels_last at once but gets
// channels_last gradient strides, and a depthwise weight's gradient comes back NCHW or
// channels_last depending on the kernel oneDNN picked. The warning's cost ("may impair
// performance") is a copy into the bucket, which this Reducer makes for every gradient anyway
// (gradient_as_bucket_view is off), so it says nothing here: dropped, every other warning passes.
class DropBucketStrideWarning : public c10::WarningHandler {
 public:
  explicit DropBucketStrideWarning(c10::WarningHandler* next) : next_(next) {}
#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& w) override {
    if (w.msg().find("Grad strides do not match bucket view strides") != std::string::npos) return;
    next_->process(w);
  }
#else
  void process(const c10::SourceLocation& where, const std::string& msg, const bool verbatim) override {
    if (msg.find("Grad strides do not match bucket view strides") != std::string::npos) return;
    next_->process(where, msg, verbatim);
  }
#endif

 private:
  c10::WarningHandler* next_;
};

// The handler is per thread (c10 keeps it thread_local): installed for the thread that loads the
// addon, the one that trains.
void dropBucketStrideWarning() {
#if TORCH_VERSION_MAJOR >= 2
  thread_local DropBucketStrideWarning handler(c10::WarningUtils::get_warning_handler());
  c10::WarningUtils::set_warning_handler(&handler);
#else
  thread_local DropBucketStrideWarning handler(c10::Warning::get_warning_handler());
  c10::Warning::set_warning_handler(&handler);
#endif
}

void initDistributed(Napi::Env env, Napi::Object exports) {
  dropBucketStrideWarning();
  auto d = Napi::Object::New(env);
  d.Set("storeCreate", Napi::Function::New(env, StoreCreate));
  d.Set("storeSet", Napi::Function::New(env, StoreSet));
  d.Set("storeGet", Napi::Function::New(env, StoreGet));
  d.Set("storeAdd", Napi::Function::New(env, StoreAdd));
  d.Set("storeCheck", Napi::Function::New(env, StoreCheck));
  d.Set("storeClose", Napi::Function::New(env, StoreClose));
  d.Set("pgCreate", Napi::Function::New(env, PgCreate));
  d.Set("pgBroadcast", Napi::Function::New(env, PgBroadcast));
  d.Set("pgAllreduce", Napi::Function::New(env, PgAllreduce));
  d.Set("pgAllgather", Napi::Function::New(env, PgAllgather));
  d.Set("pgBarrier", Napi::Function::New(env, PgBarrier));
  d.Set("pgClose", Napi::Function::New(env, PgClose));
  d.Set("reducerCreate", Napi::Function::New(env, ReducerCreate));
  d.Set("reducerPrepare", Napi::Function::New(env, ReducerPrepare));
  d.Set("reducerClose", Napi::Function::New(env, ReducerClose));
  d.Set("syncBatchNorm", Napi::Function::New(env, SyncBatchNorm));
  d.Set("setParentDeathSignal", Napi::Function::New(env, SetParentDeathSignal));
  exports.Set("distributed", d);
}

}  // namespace dl
