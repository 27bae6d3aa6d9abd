// The one way native errors cross into JavaScript: an Error with a stable `code`.
#pragma once
#include <napi.h>

namespace kvgate {

// Throws a JS Error with err.code = code. Returns an undefined Value for `return Throw(...)`.
inline Napi::Value Throw(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace kvgate
