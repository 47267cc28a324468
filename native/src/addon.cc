// Entry point of the deeplab_torch addon. Context-aware, so it loads in worker_threads too.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  dl::installCpuAllocator();
  dl::initTensor(env, exports);
  dl::initOps(env, exports);
  dl::initDistributed(env, exports);
  dl::initFusedConv(env, exports);
  exports.Set("releaseCpuCache", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::Number::New(info.Env(), double(dl::releaseCpuCache()));
              }));
  return exports;
}

NODE_API_MODULE(deeplab_torch, Init)
