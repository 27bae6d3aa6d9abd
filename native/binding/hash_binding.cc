// Hashing and KV-event decoding exposed to JavaScript. The declarations, with the cost,
// argument rules and error codes of every function, are in index.d.ts.
#include <cstring>
#include <string>
#include <utility>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/block_hash.h"
#include "core/kv_events.h"
#include "core/xxh3.h"

namespace kvgate {
namespace {

bool is_typed_array_of(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

// The caller's `out` (checked to hold `count` elements) or a new array; `*dest` is where to write.
// Returns an empty value after throwing.
Napi::Value output_array(const Napi::CallbackInfo& info, size_t arg, size_t count, const char* fn,
                         Napi::BigUint64Array* dest) {
  Napi::Env env = info.Env();
  if (absent(info, arg)) {
    *dest = Napi::BigUint64Array::New(env, count);
    return *dest;
  }
  if (!is_typed_array_of(info[arg], napi_biguint64_array)) {
    return Throw(env, kInvalidArg, std::string(fn) + ": out must be a BigUint64Array");
  }
  Napi::BigUint64Array out = info[arg].As<Napi::BigUint64Array>();
  if (out.ElementLength() < count) {
    return Throw(env, kInvalidArg,
                 std::string(fn) + ": out has " + std::to_string(out.ElementLength()) + " elements, " +
                     std::to_string(count) + " needed");
  }
  if (out.ElementLength() == count) {
    *dest = out;
    return out;
  }
  *dest = Napi::BigUint64Array::New(env, count, out.ArrayBuffer(), out.ByteOffset());
  return *dest;
}

// The long-input paths by their JavaScript names, widest first.
constexpr std::pair<const char*, Xxh3Path> kXxh3Paths[] = {
    {"avx512", Xxh3Path::kAvx512}, {"avx2", Xxh3Path::kAvx2}, {"scalar", Xxh3Path::kScalar}};

Napi::Value Xxh3(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !is_typed_array_of(info[0], napi_uint8_array)) {
    return Throw(env, kInvalidArg, "xxh3: data must be a Uint8Array");
  }
  uint64_t seed = 0;
  if (!absent(info, 1)) {
    bool lossless = false;
    if (info[1].IsBigInt()) seed = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return Throw(env, kInvalidArg, "xxh3: seed must be a bigint in [0, 2^64)");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  if (absent(info, 2)) return Napi::BigInt::New(env, xxh3_64(data.Data(), data.ElementLength(), seed));
  const std::string name = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  for (const auto& [path_name, path] : kXxh3Paths) {
    if (name == path_name && xxh3_path_supported(path)) {
      return Napi::BigInt::New(env, xxh3_64_on(path, data.Data(), data.ElementLength(), seed));
    }
  }
  return Throw(env, kInvalidArg, "xxh3: path must be one of xxh3Paths()");
}

Napi::Value Xxh3Paths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  for (const auto& [name, path] : kXxh3Paths) {
    if (xxh3_path_supported(path)) out.Set(out.Length(), name);
  }
  return out;
}

Napi::Value BlockHashes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !is_typed_array_of(info[0], napi_uint32_array)) {
    return Throw(env, kInvalidArg, "blockHashes: tokens must be a Uint32Array");
  }
  const double bs = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  if (!(bs >= 1 && bs <= kMaxBlockSize) || bs != static_cast<double>(static_cast<uint32_t>(bs))) {
    return Throw(env, kInvalidArg, "blockHashes: blockSize must be an integer in [1, 1024]");
  }
  const uint32_t block_size = static_cast<uint32_t>(bs);
  Napi::Uint32Array tokens = info[0].As<Napi::Uint32Array>();
  const size_t count = tokens.ElementLength() / block_size;
  Napi::BigUint64Array dest;
  Napi::Value result = output_array(info, 2, count, "blockHashes", &dest);
  if (env.IsExceptionPending()) return result;
  compute_block_hashes(tokens.Data(), tokens.ElementLength(), block_size, dest.Data());
  return result;
}

Napi::Value SequenceHashes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !is_typed_array_of(info[0], napi_biguint64_array)) {
    return Throw(env, kInvalidArg, "sequenceHashes: local must be a BigUint64Array");
  }
  Napi::BigUint64Array local = info[0].As<Napi::BigUint64Array>();
  const size_t count = local.ElementLength();
  Napi::BigUint64Array dest;
  Napi::Value result = output_array(info, 1, count, "sequenceHashes", &dest);
  if (env.IsExceptionPending()) return result;
  compute_sequence_hashes(local.Data(), count, dest.Data());
  return result;
}

Napi::Value HashArray(Napi::Env env, const std::vector<int64_t>& hashes) {
  Napi::BigInt64Array a = Napi::BigInt64Array::New(env, hashes.size());
  if (!hashes.empty()) std::memcpy(a.Data(), hashes.data(), hashes.size() * sizeof(int64_t));
  return a;
}

Napi::Value OptionalBigInt(Napi::Env env, bool present, int64_t v) {
  return present ? Napi::Value(Napi::BigInt::New(env, v)) : env.Null();
}

Napi::Value EventObject(Napi::Env env, const KvEvent& e) {
  Napi::Object o = Napi::Object::New(env);
  switch (e.kind) {
    case KvEventKind::kStored: {
      o.Set("kind", "BlockStored");
      o.Set("blockHashes", HashArray(env, e.block_hashes));
      o.Set("parentHash", OptionalBigInt(env, e.has_parent, e.parent_hash));
      Napi::Uint32Array tokens = Napi::Uint32Array::New(env, e.token_ids.size());
      if (!e.token_ids.empty()) std::memcpy(tokens.Data(), e.token_ids.data(), e.token_ids.size() * sizeof(uint32_t));
      o.Set("tokenIds", tokens);
      o.Set("blockSize", Napi::Number::New(env, e.block_size));
      o.Set("loraId", OptionalBigInt(env, e.has_lora_id, e.lora_id));
      o.Set("gpuMedium", Napi::Boolean::New(env, e.gpu_medium));
      break;
    }
    case KvEventKind::kRemoved:
      o.Set("kind", "BlockRemoved");
      o.Set("blockHashes", HashArray(env, e.block_hashes));
      o.Set("gpuMedium", Napi::Boolean::New(env, e.gpu_medium));
      break;
    case KvEventKind::kCleared: o.Set("kind", "AllBlocksCleared"); break;
  }
  return o;
}

Napi::Value ParseKvEventBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !is_typed_array_of(info[0], napi_uint8_array)) {
    return Throw(env, kInvalidArg, "parseKvEventBatch: bytes must be a Uint8Array");
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  KvEventBatch batch;
  const KvEventError err = parse_kv_event_batch(bytes.Data(), bytes.ElementLength(), &batch);
  if (err != KvEventError::kOk) {
    return Throw(env, kMalformed,
                 std::string("parseKvEventBatch: malformed KV-event batch: ") + kv_event_error_name(err));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ts", Napi::Number::New(env, batch.ts));
  out.Set("dpRank",
          batch.has_dp_rank ? Napi::Value(Napi::Number::New(env, static_cast<double>(batch.dp_rank))) : env.Null());
  Napi::Array events = Napi::Array::New(env, batch.events.size());
  for (size_t i = 0; i < batch.events.size(); i++)
    events.Set(static_cast<uint32_t>(i), EventObject(env, batch.events[i]));
  out.Set("events", events);
  return out;
}

}  // namespace

void InitHashing(Napi::Env env, Napi::Object exports) {
  exports.Set("xxh3", Napi::Function::New(env, Xxh3, "xxh3"));
  exports.Set("xxh3Paths", Napi::Function::New(env, Xxh3Paths, "xxh3Paths"));
  exports.Set("blockHashes", Napi::Function::New(env, BlockHashes, "blockHashes"));
  exports.Set("sequenceHashes", Napi::Function::New(env, SequenceHashes, "sequenceHashes"));
  exports.Set("parseKvEventBatch", Napi::Function::New(env, ParseKvEventBatch, "parseKvEventBatch"));
}

}  // namespace kvgate
