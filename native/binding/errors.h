// The one way native errors cross into JavaScript: an Error with a stable `code`, and the
// argument checks every binding module shares.
#pragma once
#include <napi.h>

#include <string>

namespace kvgate {

// The codes, as registered in src/errors.ts and documented in index.d.ts.
constexpr const char* kInvalidArg = "ERR_INVALID_ARG";
constexpr const char* kMalformed = "ERR_KV_EVENT_MALFORMED";
constexpr const char* kClosed = "ERR_CLOSED";
constexpr const char* kLimit = "ERR_LIMIT";

// Throws a JS Error with err.code = code. Returns an undefined Value for `return Throw(...)`.
inline Napi::Value Throw(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

// An optional argument left out (or passed as undefined).
inline bool absent(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsUndefined(); }

}  // namespace kvgate
