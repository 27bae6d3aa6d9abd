// The byte-level BPE encoder (core/bpe.h) exposed to JavaScript: one ObjectWrap,
// `BpeEncoder`, built once from a tokenizer's vocabulary and merges. Declarations and costs
// in index.d.ts.
#include <napi.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/bpe.h"

namespace kvgate {
namespace {

// "a\nb\nc" → {"a", "b", "c"} (byte-level tokens never hold a newline: it is "Ċ").
std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); i++) {
    if (i == s.size() || s[i] == '\n') {
      out.emplace_back(s, start, i - start);
      start = i + 1;
    }
  }
  return out;
}

class BpeEncoderWrap : public Napi::ObjectWrap<BpeEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpeEncoder",
                       {
                           InstanceMethod<&BpeEncoderWrap::Encode>("encode"),
                           InstanceAccessor<&BpeEncoderWrap::CachedWords>("cachedWords"),
                       });
  }

  explicit BpeEncoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpeEncoderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Throw(env, kInvalidArg, "BpeEncoder: options must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    static const char* const kKnown[] = {"vocab", "merges", "added", "pattern", "ignoreMerges"};
    if (!only_known_keys(env, o, kKnown, "BpeEncoder")) return;
    if (!o.Get("vocab").IsString() || !o.Get("merges").IsString() || !o.Get("pattern").IsString() ||
        !o.Get("added").IsArray()) {
      Throw(env, kInvalidArg, "BpeEncoder: vocab, merges and pattern must be strings, added an array");
      return;
    }
    BpeSpec spec;
    if (!bpe_pattern_from_regex(o.Get("pattern").As<Napi::String>().Utf8Value(), &spec.pattern)) {
      Throw(env, kInvalidArg, "BpeEncoder: unsupported pre-tokenizer pattern");
      return;
    }
    spec.vocab = lines(o.Get("vocab").As<Napi::String>().Utf8Value());
    const std::string merges = o.Get("merges").As<Napi::String>().Utf8Value();
    if (!merges.empty()) spec.merges = lines(merges);
    spec.ignore_merges = o.Get("ignoreMerges").ToBoolean().Value();
    Napi::Array added = o.Get("added").As<Napi::Array>();
    for (uint32_t i = 0; i < added.Length(); i++) {
      Napi::Value t = added.Get(i);
      const Napi::Value content = t.IsObject() ? t.As<Napi::Object>().Get("content") : env.Undefined();
      const Napi::Value id = t.IsObject() ? t.As<Napi::Object>().Get("id") : env.Undefined();
      const double d = id.IsNumber() ? id.As<Napi::Number>().DoubleValue() : -1;
      if (!content.IsString() || !(d >= 0 && d < 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) {
        Throw(env, kInvalidArg, "BpeEncoder: added tokens must be {content: string, id: u32}");
        return;
      }
      spec.added.emplace_back(content.As<Napi::String>().Utf8Value(), static_cast<uint32_t>(d));
    }
    std::string error;
    encoder_ = BpeEncoder::create(spec, &error);
    if (!encoder_) Throw(env, kInvalidArg, "BpeEncoder: " + error);
  }

 private:
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      return Throw(env, kInvalidArg, "BpeEncoder.encode: text must be a string");
    const bool split_added = absent(info, 1) || info[1].ToBoolean().Value();
    // UTF-16 length → UTF-8 bound (3 bytes per code unit) without transcoding twice. Lone
    // surrogates come out as U+FFFD, as in every other string the addon reads.
    size_t units = 0;
    napi_get_value_string_utf16(env, info[0], nullptr, 0, &units);
    text_.resize(units * 3 + 1);
    size_t len = 0;
    napi_get_value_string_utf8(env, info[0], text_.data(), text_.size(), &len);
    ids_.clear();
    if (encoder_->encode(reinterpret_cast<const uint8_t*>(text_.data()), len, split_added, &ids_) != BpeError::kOk) {
      return Throw(env, kInvalidArg, "BpeEncoder.encode: text is not valid UTF-8");
    }
    Napi::Uint32Array out = Napi::Uint32Array::New(env, ids_.size());
    if (!ids_.empty()) std::memcpy(out.Data(), ids_.data(), ids_.size() * sizeof(uint32_t));
    return out;
  }

  Napi::Value CachedWords(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(encoder_->cached_words()));
  }

  std::unique_ptr<BpeEncoder> encoder_;
  std::string text_;           // scratch: the text as UTF-8
  std::vector<uint32_t> ids_;  // scratch: the ids
};

}  // namespace

void InitBpe(Napi::Env env, Napi::Object exports) { exports.Set("BpeEncoder", BpeEncoderWrap::Define(env)); }

}  // namespace kvgate
