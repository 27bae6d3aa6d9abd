#include "binding/exports.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  kvgate::InitHashing(env, exports);
  kvgate::InitRouter(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kvgate, Init)
