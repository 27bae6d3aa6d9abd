// The one way native errors cross into JavaScript: an error with a stable `code`, and the
// argument checks every binding module shares.
//
// The project's error class (src/errors.ts KvgateError) is handed to the addon once at load
// (setErrorClass, as better-sqlite3 takes its SqliteError), so native errors reach the
// error registry like any other: `new KvgateError(code, message)`. Without it (the addon
// required directly) they are plain Errors with err.code set.
#pragma once
#include <napi.h>

#include <string>

namespace kvgate {

// The codes, as registered in src/errors.ts and documented in index.d.ts.
constexpr const char* kInvalidArg = "ERR_INVALID_ARG";
constexpr const char* kMalformed = "ERR_KV_EVENT_MALFORMED";
constexpr const char* kClosed = "ERR_CLOSED";
constexpr const char* kLimit = "ERR_LIMIT";

// Per environment (the main thread and each worker thread load the addon apart).
struct AddonData {
  Napi::FunctionReference error_class;  // empty until setErrorClass
};

// Throws `new ErrorClass(code, message)`, or a plain Error with err.code = code when no
// class was handed over (or its constructor failed). Returns an undefined Value for
// `return Throw(...)`. Uses the C API so it never throws a C++ exception itself.
inline Napi::Value Throw(Napi::Env env, const char* code, const std::string& message) {
  napi_value args[2];
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &args[0]);
  napi_create_string_utf8(env, message.data(), message.size(), &args[1]);
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->error_class.IsEmpty()) {
    napi_value err;
    if (napi_new_instance(env, data->error_class.Value(), 2, args, &err) == napi_ok) {
      napi_throw(env, err);
      return env.Undefined();
    }
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_value err;
  napi_create_error(env, args[0], args[1], &err);
  napi_throw(env, err);
  return env.Undefined();
}

// An optional argument left out (or passed as undefined).
inline bool absent(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsUndefined(); }

// An options object may hold only the keys a constructor knows: a misspelt option is an
// ERR_INVALID_ARG naming it (`what`: the class), not a silent default. False after throwing.
template <size_t N>
inline bool only_known_keys(Napi::Env env, const Napi::Object& o, const char* const (&known)[N], const char* what) {
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    const std::string k = keys.Get(i).ToString().Utf8Value();
    bool ok = false;
    for (const char* name : known) ok = ok || k == name;
    if (!ok) {
      Throw(env, kInvalidArg, std::string(what) + ": unknown option " + k);
      return false;
    }
  }
  return true;
}

}  // namespace kvgate
