// SGLang's cache_aware tree exposed to JavaScript: one ObjectWrap, `TextTree`, over
// core/text_tree.h. Text in as JS strings (UTF-8 bytes natively), tenants as uint32 ids.
// Declarations and costs in index.d.ts.
#include <cmath>
#include <string>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/text_tree.h"

namespace kvgate {
namespace {

bool tenant_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, uint32_t* out) {
  const double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 4294967295.0 && d == std::floor(d))) {
    Throw(info.Env(), kInvalidArg, std::string("TextTree.") + fn + ": tenant must be an integer in [0, 2^32)");
    return false;
  }
  *out = static_cast<uint32_t>(d);
  return true;
}

bool text_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, std::string* out) {
  if (info.Length() <= i || !info[i].IsString()) {
    Throw(info.Env(), kInvalidArg, std::string("TextTree.") + fn + ": text must be a string");
    return false;
  }
  *out = info[i].As<Napi::String>().Utf8Value();
  return true;
}

class TextTreeWrap : public Napi::ObjectWrap<TextTreeWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TextTree",
                       {
                           InstanceMethod<&TextTreeWrap::Insert>("insert"),
                           InstanceMethod<&TextTreeWrap::PrefixMatch>("prefixMatch"),
                           InstanceMethod<&TextTreeWrap::TenantSize>("tenantSize"),
                           InstanceMethod<&TextTreeWrap::RemoveTenant>("removeTenant"),
                           InstanceMethod<&TextTreeWrap::Evict>("evict"),
                           InstanceMethod<&TextTreeWrap::Dump>("dump"),
                           InstanceAccessor<&TextTreeWrap::NodeCount>("nodeCount"),
                       });
  }

  explicit TextTreeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TextTreeWrap>(info) {}

 private:
  Napi::Value Insert(const Napi::CallbackInfo& info) {
    std::string text;
    uint32_t tenant;
    if (!text_arg(info, 0, "insert", &text) || !tenant_arg(info, 1, "insert", &tenant)) return info.Env().Undefined();
    tree_.insert(text, tenant);
    return info.Env().Undefined();
  }

  // Writes [matched bytes, tenant or -1, text bytes] into `out` (Float64Array, length >= 3).
  Napi::Value PrefixMatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string text;
    if (!text_arg(info, 0, "prefixMatch", &text)) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[1].As<Napi::Float64Array>().ElementLength() < 3) {
      return Throw(env, kInvalidArg, "TextTree.prefixMatch: out must be a Float64Array of length >= 3");
    }
    const TextTree::Match m = tree_.prefix_match(text);
    Napi::Float64Array out = info[1].As<Napi::Float64Array>();
    out[0] = static_cast<double>(m.matched);
    out[1] = static_cast<double>(m.tenant);
    out[2] = static_cast<double>(text.size());
    return Napi::Number::New(env, static_cast<double>(m.matched));
  }

  Napi::Value TenantSize(const Napi::CallbackInfo& info) {
    uint32_t tenant;
    if (!tenant_arg(info, 0, "tenantSize", &tenant)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), static_cast<double>(tree_.tenant_size(tenant)));
  }

  Napi::Value RemoveTenant(const Napi::CallbackInfo& info) {
    uint32_t tenant;
    if (!tenant_arg(info, 0, "removeTenant", &tenant)) return info.Env().Undefined();
    tree_.remove_tenant(tenant);
    return info.Env().Undefined();
  }

  Napi::Value Evict(const Napi::CallbackInfo& info) {
    const double d = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0 && d == std::floor(d)))
      return Throw(info.Env(), kInvalidArg, "TextTree.evict: maxSize must be an integer in [0, 2^53)");
    tree_.evict(static_cast<size_t>(d));
    return info.Env().Undefined();
  }

  // [[prefix, lastUse], ...] for one tenant (tests only).
  Napi::Value Dump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t tenant;
    if (!tenant_arg(info, 0, "dump", &tenant)) return env.Undefined();
    const auto rows = tree_.dump(tenant);
    Napi::Array out = Napi::Array::New(env, rows.size());
    for (size_t i = 0; i < rows.size(); i++) {
      Napi::Array row = Napi::Array::New(env, 2);
      row.Set(0u, Napi::String::New(env, rows[i].first));
      row.Set(1u, Napi::Number::New(env, static_cast<double>(rows[i].second)));
      out.Set(static_cast<uint32_t>(i), row);
    }
    return out;
  }

  Napi::Value NodeCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(tree_.node_count()));
  }

  TextTree tree_;
};

}  // namespace

void InitTextTree(Napi::Env env, Napi::Object exports) { exports.Set("TextTree", TextTreeWrap::Define(env)); }

}  // namespace kvgate
