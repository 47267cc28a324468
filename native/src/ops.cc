// One generic entry point for every ATen operator: JS asks for an operator by its schema name
// once (op("aten::conv2d", "")), gets an id, and calls it with positional arguments. Argument
// conversion is decided once per operator from its schema, so a call only walks a small array.
// This is how TorchScript calls operators (boxed dispatch); autograd and autocast apply as usual.
#include "common.h"
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <mutex>
#include <unordered_map>

namespace dl {

enum class Kind : uint8_t {
  Tensor, TensorList, OptTensorList, Int, IntList, Float, FloatList, Bool, BoolList, Scalar,
  ScalarType, Layout, MemoryFormat, Device, String, None, Unknown
};

struct ArgSpec {
  Kind kind;
  bool optional;
  std::string name;
  c10::optional<c10::IValue> def;
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::vector<ArgSpec> args;
  std::string name;
};

constexpr size_t kMaxOps = 8192;
static OpEntry* g_ops[kMaxOps];
static std::atomic<size_t> g_numOps{0};
static std::mutex g_opsMutex;
static std::unordered_map<std::string, size_t> g_opIds;

static Kind kindOf(const c10::TypePtr& t) {
  using K = c10::TypeKind;
  switch (t->kind()) {
    case K::TensorType: return Kind::Tensor;
    case K::IntType: case K::SymIntType: return Kind::Int;
    case K::FloatType: return Kind::Float;
    case K::BoolType: return Kind::Bool;
    case K::NumberType: return Kind::Scalar;
    case K::ScalarTypeType: return Kind::ScalarType;
    case K::LayoutType: return Kind::Layout;
    case K::MemoryFormatType: return Kind::MemoryFormat;
    case K::DeviceObjType: return Kind::Device;
    case K::StringType: return Kind::String;
    case K::GeneratorType: return Kind::None;  // always the default generator
    case K::ListType: {
      auto elem = t->expectRef<c10::ListType>().getElementType();
      switch (elem->kind()) {
        case K::TensorType: return Kind::TensorList;
        case K::OptionalType: return Kind::OptTensorList;
        case K::IntType: case K::SymIntType: return Kind::IntList;
        case K::FloatType: return Kind::FloatList;
        case K::BoolType: return Kind::BoolList;
        default: return Kind::Unknown;
      }
    }
    default: return Kind::Unknown;
  }
}

static ArgSpec specOf(const c10::Argument& a) {
  ArgSpec s;
  s.name = a.name();
  s.def = a.default_value();
  // real_type() keeps ScalarType, Layout and MemoryFormat apart from int (type() merges them).
  const auto& t = a.real_type();
  if (t->kind() == c10::TypeKind::OptionalType) {
    s.optional = true;
    s.kind = kindOf(t->expectRef<c10::OptionalType>().getElementType());
  } else {
    s.optional = false;
    s.kind = kindOf(t);
  }
  return s;
}

// op(name, overload) -> id
static Napi::Value Op(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  std::string name = info[0].As<Napi::String>();
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  std::string key = name + "." + overload;
  std::lock_guard<std::mutex> lock(g_opsMutex);
  auto it = g_opIds.find(key);
  if (it != g_opIds.end()) return Napi::Number::New(env, static_cast<double>(it->second));
  auto handle = c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), overload.c_str());
  auto* e = new OpEntry{handle, {}, key};
  for (const auto& a : handle.schema().arguments()) e->args.push_back(specOf(a));
  size_t id = g_numOps.load();
  if (id >= kMaxOps) throw std::runtime_error("too many operators registered");
  g_ops[id] = e;
  g_numOps.store(id + 1);
  g_opIds.emplace(key, id);
  return Napi::Number::New(env, static_cast<double>(id));
  DL_GUARD_END(env)
}

static bool isIntegral(double d) { return d == static_cast<double>(static_cast<int64_t>(d)); }

// Names an argument for intValue's errors: "aten::zeros: argument 'size'".
struct ArgName {
  const ArgSpec& s;
  const OpEntry& op;
  static std::string name(const void* ctx) {
    auto* a = static_cast<const ArgName*>(ctx);
    std::string op = a->op.name;  // "aten::view." for the default overload: drop the dot
    if (!op.empty() && op.back() == '.') op.pop_back();
    return op + ": argument '" + a->s.name + "'";
  }
};

static c10::IValue toIValue(const Napi::Value& v, const ArgSpec& s, const OpEntry& op) {
  auto env = v.Env();
  if (v.IsUndefined() || v.IsNull()) {
    if (s.optional || s.kind == Kind::None) return c10::IValue();
    if (s.def) return *s.def;
    throw Napi::TypeError::New(env, op.name + ": argument '" + s.name + "' is required");
  }
  switch (s.kind) {
    case Kind::Tensor: return tensorOf(v);
    case Kind::Int:
      if (v.IsBoolean()) return static_cast<int64_t>(v.As<Napi::Boolean>().Value());
      {
        ArgName n{s, op};
        return intValue(v, ArgName::name, &n);
      }
    case Kind::Float: return v.As<Napi::Number>().DoubleValue();
    case Kind::Bool: return v.ToBoolean().Value();
    case Kind::Scalar: {
      if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
      double d = v.As<Napi::Number>().DoubleValue();
      // An integer-valued JS number is an int Scalar, so int tensors keep their dtype.
      return isIntegral(d) ? c10::Scalar(static_cast<int64_t>(d)) : c10::Scalar(d);
    }
    case Kind::IntList: {
      ArgName n{s, op};
      return c10::List<int64_t>(intList(v, ArgName::name, &n));
    }
    case Kind::FloatList: {
      auto a = v.As<Napi::Array>();
      c10::List<double> l;
      for (uint32_t i = 0; i < a.Length(); i++) l.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
      return l;
    }
    case Kind::BoolList: {
      auto a = v.As<Napi::Array>();
      c10::List<bool> l;
      for (uint32_t i = 0; i < a.Length(); i++) l.push_back(a.Get(i).ToBoolean().Value());
      return l;
    }
    case Kind::TensorList: {
      auto a = v.As<Napi::Array>();
      c10::List<at::Tensor> l;
      l.reserve(a.Length());
      for (uint32_t i = 0; i < a.Length(); i++) l.push_back(tensorOf(a.Get(i)));
      return l;
    }
    case Kind::OptTensorList: {
      auto a = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> l;
      for (uint32_t i = 0; i < a.Length(); i++) {
        auto x = a.Get(i);
        if (x.IsNull() || x.IsUndefined()) l.push_back(c10::nullopt);
        else l.push_back(tensorOf(x));
      }
      return l;
    }
    case Kind::ScalarType: return static_cast<int64_t>(parseDtype(v.As<Napi::String>()));
    case Kind::Layout: return static_cast<int64_t>(at::kStrided);
    case Kind::MemoryFormat: {
      std::string f = v.As<Napi::String>();
      if (f == "channels_last") return static_cast<int64_t>(at::MemoryFormat::ChannelsLast);
      if (f == "contiguous") return static_cast<int64_t>(at::MemoryFormat::Contiguous);
      if (f == "preserve") return static_cast<int64_t>(at::MemoryFormat::Preserve);
      throw Napi::TypeError::New(env, "unknown memory format '" + f + "'");
    }
    case Kind::Device: return parseDevice(v.As<Napi::String>());
    case Kind::String: return v.As<Napi::String>().Utf8Value();
    case Kind::None: return c10::IValue();
    default:
      throw Napi::TypeError::New(env, op.name + ": argument '" + s.name + "' has a type the binding does not convert");
  }
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isTensorList()) {
    auto l = v.toTensorList();
    auto a = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); i++) a.Set(i, wrap(env, l.get(i)));
    return a;
  }
  if (v.isTuple()) {
    const auto& el = v.toTupleRef().elements();
    auto a = Napi::Array::New(env, el.size());
    for (size_t i = 0; i < el.size(); i++) a.Set(i, fromIValue(env, el[i]));
    return a;
  }
  if (v.isIntList()) {
    auto l = v.toIntVector();
    auto a = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); i++) a.Set(i, Napi::Number::New(env, static_cast<double>(l[i])));
    return a;
  }
  if (v.isScalar()) return Napi::Number::New(env, v.toScalar().toDouble());
  throw Napi::TypeError::New(env, std::string("cannot return a value of type ") + v.tagKind());
}

static void runOp(const Napi::CallbackInfo& info, torch::jit::Stack& stack, OpEntry*& op) {
  struct Clear {
    torch::jit::Stack& s;
    ~Clear() { if (std::uncaught_exceptions()) s.clear(); }
  } clearOnError{stack};
  auto env = info.Env();
  size_t id = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  if (id >= g_numOps.load()) throw Napi::RangeError::New(env, "unknown operator id");
  op = g_ops[id];
  size_t given = info.Length() - 1;
  if (given > op->args.size())
    throw Napi::TypeError::New(env, op->name + ": expected at most " + std::to_string(op->args.size()) +
                                        " arguments, got " + std::to_string(given));
  stack.reserve(op->args.size());
  for (size_t i = 0; i < op->args.size(); i++) {
    const auto& s = op->args[i];
    if (i < given) stack.push_back(toIValue(info[i + 1], s, *op));
    else if (s.def) stack.push_back(*s.def);
    else if (s.optional) stack.emplace_back();
    else throw Napi::TypeError::New(env, op->name + ": argument '" + s.name + "' is required");
  }
  op->handle.callBoxed(stack);
}

// One stack per thread, reused: a call then allocates nothing for its arguments. Calls never
// nest (an operator does not call back into JS), so reuse is safe.
static thread_local torch::jit::Stack t_stack;

// call(id, ...args) -> the operator's result (a handle, an array for several, a number, null)
static Napi::Value Call(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& stack = t_stack;
  stack.clear();
  OpEntry* op = nullptr;
  runOp(info, stack, op);
  Napi::Value result;
  if (stack.empty()) {
    result = env.Undefined();
  } else if (stack.size() == 1) {
    result = fromIValue(env, stack[0]);
  } else {
    auto a = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) a.Set(i, fromIValue(env, stack[i]));
    result = a;
  }
  stack.clear();  // drop our references now, not at the next call
  return result;
  DL_GUARD_END(env)
}

// callVoid(id, ...args): for in-place operators whose result is their first argument.
static Napi::Value CallVoid(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  auto& stack = t_stack;
  stack.clear();
  OpEntry* op = nullptr;
  runOp(info, stack, op);
  stack.clear();
  return env.Undefined();
  DL_GUARD_END(env)
}

// Unboxed fast paths for add, sub, mul, div (tensor or scalar other, new or in place): the
// arithmetic that optimizers and metrics issue by the thousand. Skipping the boxed stack saves
// ~0.13 us a call. binary(code, a, b, alpha, inplace); code: 0 add, 1 sub, 2 mul, 3 div.
static c10::Scalar scalarOf(const Napi::Value& v) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  double d = v.As<Napi::Number>().DoubleValue();
  return isIntegral(d) ? c10::Scalar(static_cast<int64_t>(d)) : c10::Scalar(d);
}

static bool needsGrad(const at::Tensor& t) { return t.requires_grad(); }
static bool needsGrad(const c10::Scalar&) { return false; }

template <typename Other>
static Napi::Value binaryImpl(const Napi::CallbackInfo& info, const Other& b) {
  auto env = info.Env();
  int code = info[0].As<Napi::Number>().Int32Value();
  at::Tensor& a = tensorOf(info[1]);
  c10::Scalar alpha = info.Length() > 3 && info[3].IsNumber() ? scalarOf(info[3]) : c10::Scalar(int64_t(1));
  bool inplace = info.Length() > 4 && info[4].ToBoolean();
  if (inplace) {
    switch (code) {
      case 0: a.add_(b, alpha); break;
      case 1: a.sub_(b, alpha); break;
      case 2: a.mul_(b); break;
      case 3: a.div_(b); break;
      default: throw Napi::RangeError::New(env, "binary: unknown operation");
    }
    return env.Undefined();
  }
  // No input needs a gradient: autograd's kernel would only pass the call on, so start below it
  // (the result is the same tensor, without grad_fn, as through the full path).
  c10::optional<at::AutoDispatchBelowADInplaceOrView> below;
  if (!needsGrad(a) && !needsGrad(b)) below.emplace();
  switch (code) {
    case 0: return wrap(env, at::add(a, b, alpha));
    case 1: return wrap(env, at::sub(a, b, alpha));
    case 2: return wrap(env, at::mul(a, b));
    case 3: return wrap(env, at::div(a, b));
    default: throw Napi::RangeError::New(env, "binary: unknown operation");
  }
}

static Napi::Value Binary(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return binaryImpl(info, tensorOf(info[2]));
  DL_GUARD_END(env)
}

static Napi::Value BinaryScalar(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  DL_GUARD_BEGIN
  return binaryImpl(info, scalarOf(info[2]));
  DL_GUARD_END(env)
}

void initOps(Napi::Env env, Napi::Object e) {
  e.Set("op", Napi::Function::New(env, Op));
  e.Set("call", Napi::Function::New(env, Call));
  e.Set("callVoid", Napi::Function::New(env, CallVoid));
  e.Set("binary", Napi::Function::New(env, Binary));
  e.Set("binaryScalar", Napi::Function::New(env, BinaryScalar));
}

}  // namespace dl
