// Hashing and KV-event decoding exposed to JavaScript. The TypeScript declarations below
// are the contract (merged into native/binding/index.d.ts); keep the two in step.
//
// /** XXH3-64 of `data` (XXH3_64bits_withSeed). Seed defaults to 0n and must be in [0, 2^64).
//  *  Cost: O(data.length): ~60 ns per call from JS for short inputs, ~17 GB/s on long ones;
//  *  synchronous on the calling thread.
//  *  `data` is read during the call only. Throws ERR_INVALID_ARG on a bad argument. */
// export function xxh3(data: Uint8Array, seed?: bigint): bigint;
//
// /** Dynamo local block hashes: XXH3-64 (seed 1337) of each full block of `blockSize`
//  *  tokens as little-endian u32; a trailing partial block is not hashed, so the result has
//  *  floor(tokens.length / blockSize) elements. blockSize is an integer in [1, 1024].
//  *  With `out` (length >= that count, not overlapping `tokens`) the hashes are written
//  *  there and `out` is returned when its length equals the count, else a view of its first
//  *  count elements (no copy); without `out` a new array is allocated.
//  *  Cost: O(tokens.length), ~1.5 µs from JS for 4,096 tokens at block size 16 with `out`
//  *  (~2.4 µs allocating); synchronous; the arrays are only accessed during the call.
//  *  Throws ERR_INVALID_ARG on a bad argument. */
// export function blockHashes(tokens: Uint32Array, blockSize: number, out?: BigUint64Array): BigUint64Array;
//
// /** Chained sequence hashes of local block hashes: seq[0] = local[0],
//  *  seq[i] = XXH3-64(le64(seq[i-1]) ++ le64(local[i]), 1337). `out` may be `local` itself
//  *  (computed in place) or another array of length >= local.length (not otherwise
//  *  overlapping); the return value follows blockHashes' rule. Cost: ~6 ns per hash
//  *  (~1.7 µs from JS for 256); synchronous. Throws ERR_INVALID_ARG on a bad argument. */
// export function sequenceHashes(local: BigUint64Array, out?: BigUint64Array): BigUint64Array;
//
// export type KvEventObject =
//   | { kind: 'BlockStored'; blockHashes: BigInt64Array; parentHash: bigint | null; tokenIds: Uint32Array;
//       blockSize: number; loraId: bigint | null; gpuMedium: boolean }
//   | { kind: 'BlockRemoved'; blockHashes: BigInt64Array; gpuMedium: boolean }
//   | { kind: 'AllBlocksCleared' };
// export interface KvEventBatchObject { ts: number; dpRank: number | null; events: KvEventObject[] }
//
// /** Decodes one SGLang KV-event batch (raw msgpack payload frame) with the native reader
//  *  into plain JS objects. For tests and debugging only, NOT the hot path: it allocates
//  *  objects per event (~2.6 µs for a one-event batch; the router applies batches natively
//  *  without this). Engine hashes are signed int64 (a uint64 on the wire keeps its 64 bits);
//  *  gpuMedium is true for medium nil or "GPU". Synchronous, O(bytes.length);
//  *  `bytes` is read during the call only. Throws ERR_KV_EVENT_MALFORMED (message names the
//  *  reader error: TRUNCATED, BAD_TYPE, BAD_SHAPE, UNKNOWN_EVENT, LIMIT_EXCEEDED,
//  *  TRAILING_BYTES) or ERR_INVALID_ARG when `bytes` is not a Uint8Array. */
// export function parseKvEventBatch(bytes: Uint8Array): KvEventBatchObject;
#include <cstring>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/block_hash.h"
#include "core/kv_events.h"
#include "core/xxh3.h"

namespace kvgate {
namespace {

constexpr const char* kInvalidArg = "ERR_INVALID_ARG";

bool is_typed_array_of(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

bool is_absent(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsUndefined(); }

// The caller's `out` (checked to hold `count` elements) or a new array; `*dest` is where to write.
// Returns an empty value after throwing.
Napi::Value output_array(const Napi::CallbackInfo& info, size_t arg, size_t count, const char* fn,
                         Napi::BigUint64Array* dest) {
  Napi::Env env = info.Env();
  if (is_absent(info, arg)) {
    *dest = Napi::BigUint64Array::New(env, count);
    return *dest;
  }
  if (!is_typed_array_of(info[arg], napi_biguint64_array)) {
    return Throw(env, kInvalidArg, std::string(fn) + ": out must be a BigUint64Array");
  }
  Napi::BigUint64Array out = info[arg].As<Napi::BigUint64Array>();
  if (out.ElementLength() < count) {
    return Throw(env, kInvalidArg, std::string(fn) + ": out has " + std::to_string(out.ElementLength()) +
                                       " elements, " + std::to_string(count) + " needed");
  }
  if (out.ElementLength() == count) {
    *dest = out;
    return out;
  }
  *dest = Napi::BigUint64Array::New(env, count, out.ArrayBuffer(), out.ByteOffset());
  return *dest;
}

Napi::Value Xxh3(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !is_typed_array_of(info[0], napi_uint8_array)) {
    return Throw(env, kInvalidArg, "xxh3: data must be a Uint8Array");
  }
  uint64_t seed = 0;
  if (!is_absent(info, 1)) {
    bool lossless = false;
    if (info[1].IsBigInt()) seed = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return Throw(env, kInvalidArg, "xxh3: seed must be a bigint in [0, 2^64)");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  return Napi::BigInt::New(env, xxh3_64(data.Data(), data.ElementLength(), seed));
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
    case KvEventKind::kCleared:
      o.Set("kind", "AllBlocksCleared");
      break;
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
    return Throw(env, "ERR_KV_EVENT_MALFORMED",
                 std::string("parseKvEventBatch: malformed KV-event batch: ") + kv_event_error_name(err));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("ts", Napi::Number::New(env, batch.ts));
  out.Set("dpRank", batch.has_dp_rank ? Napi::Value(Napi::Number::New(env, static_cast<double>(batch.dp_rank)))
                                      : env.Null());
  Napi::Array events = Napi::Array::New(env, batch.events.size());
  for (size_t i = 0; i < batch.events.size(); i++) events.Set(static_cast<uint32_t>(i), EventObject(env, batch.events[i]));
  out.Set("events", events);
  return out;
}

}  // namespace

void InitHashing(Napi::Env env, Napi::Object exports) {
  exports.Set("xxh3", Napi::Function::New(env, Xxh3, "xxh3"));
  exports.Set("blockHashes", Napi::Function::New(env, BlockHashes, "blockHashes"));
  exports.Set("sequenceHashes", Napi::Function::New(env, SequenceHashes, "sequenceHashes"));
  exports.Set("parseKvEventBatch", Napi::Function::New(env, ParseKvEventBatch, "parseKvEventBatch"));
}

}  // namespace kvgate
