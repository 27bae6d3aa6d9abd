#include "binding/errors.h"
#include "binding/exports.h"

namespace {

// setErrorClass(cls): native errors are thrown as `new cls(code, message)` from now on.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    return kvgate::Throw(env, kvgate::kInvalidArg, "setErrorClass: the error class must be a constructor");
  }
  env.GetInstanceData<kvgate::AddonData>()->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new kvgate::AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  kvgate::InitHashing(env, exports);
  kvgate::InitRouter(env, exports);
  kvgate::InitTextTree(env, exports);
  kvgate::InitTransferCoordinator(env, exports);
  kvgate::InitBpe(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kvgate, Init)
