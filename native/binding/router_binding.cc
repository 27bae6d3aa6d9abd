// The router exposed to JavaScript: one ObjectWrap, `KvRouter`, over core/kv_router.h.
// Typed arrays in, caller-owned typed arrays out, numbers for ids; the per-request calls
// (route, markPrefillDone, free) and applyEvents allocate no JS objects. The declarations
// and the documented cost, thread and lifetime of every method are in index.d.ts.
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/block_hash.h"
#include "core/kv_router.h"

namespace kvgate {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

double steady_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// A typed array's elements if `v` is one of the two given types (the second may repeat the first).
// (napi_get_typedarray_info fails on anything but a typed array: no separate IsTypedArray, which
// would check again on every route.)
template <typename T>
bool typed(const Napi::Value& v, napi_typedarray_type a, napi_typedarray_type b, T** data, size_t* len) {
  napi_typedarray_type type;
  void* ptr;
  if (napi_get_typedarray_info(v.Env(), v, &type, len, &ptr, nullptr, nullptr) != napi_ok) return false;
  if (type != a && type != b) return false;
  *data = static_cast<T*>(ptr);
  return true;
}

// An integer number in [0, max]; throws ERR_INVALID_ARG naming `what` otherwise.
bool integer(const Napi::Value& v, double max, const char* fn, const char* what, double* out) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max && d == std::floor(d))) {
    const std::string range = max == 4294967295.0      ? "2^32)"
                              : max == kMaxSafeInteger ? "2^53)"
                                                       : std::to_string(static_cast<uint64_t>(max)) + "]";
    Throw(v.Env(), kInvalidArg, std::string(fn) + ": " + what + " must be an integer in [0, " + range);
    return false;
  }
  *out = d;
  return true;
}

bool u32(const Napi::Value& v, const char* fn, const char* what, uint32_t* out) {
  double d;
  if (!integer(v, 4294967295.0, fn, what, &d)) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

bool request_id(const Napi::Value& v, const char* fn, uint64_t* out) {
  double d;
  if (!integer(v, kMaxSafeInteger, fn, "requestId", &d)) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

// A finite number >= 0, or `def` when absent.
bool weight(const Napi::CallbackInfo& info, size_t i, double def, const char* fn, const char* what, double* out) {
  if (absent(info, i)) {
    *out = def;
    return true;
  }
  const double d = info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && std::isfinite(d))) {
    Throw(info.Env(), kInvalidArg, std::string(fn) + ": " + what + " must be a finite number >= 0");
    return false;
  }
  *out = d;
  return true;
}

// Approximate mode's clock: the caller's nowMs, or the native monotonic clock when absent.
bool now_ms(const Napi::CallbackInfo& info, size_t i, const char* fn, double* out) {
  if (absent(info, i)) {
    *out = steady_ms();
    return true;
  }
  const double d = info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d)) {
    Throw(info.Env(), kInvalidArg, std::string(fn) + ": nowMs must be a finite number");
    return false;
  }
  *out = d;
  return true;
}

// Any 64-bit pattern: a bigint in [-2^63, 2^64).
bool hash64(const Napi::Value& v, uint64_t* out) {
  if (!v.IsBigInt()) return false;
  bool lossless = false;
  const int64_t s = v.As<Napi::BigInt>().Int64Value(&lossless);
  if (lossless) {
    *out = static_cast<uint64_t>(s);
    return true;
  }
  *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  return lossless;
}

bool seed_value(const Napi::Value& v, const char* fn, uint64_t* out) {
  if (hash64(v, out)) return true;
  double d;
  if (v.IsNumber() && integer(v, kMaxSafeInteger, fn, "seed", &d)) {
    *out = static_cast<uint64_t>(d);
    return true;
  }
  if (!v.Env().IsExceptionPending())
    Throw(v.Env(), kInvalidArg, std::string(fn) + ": seed must be a bigint or an integer");
  return false;
}

bool policy_of(const std::string& s, Policy* out) {
  static const std::pair<const char*, Policy> kNames[] = {{"kv", Policy::kKv},
                                                          {"round-robin", Policy::kRoundRobin},
                                                          {"random", Policy::kRandom},
                                                          {"power-of-two", Policy::kPowerOfTwo},
                                                          {"least-loaded", Policy::kLeastLoaded}};
  for (const auto& [name, p] : kNames) {
    if (s == name) {
      *out = p;
      return true;
    }
  }
  return false;
}

const char* store_status_name(KvIndex::Status s) {
  switch (s) {
    case KvIndex::Status::kOk: return "ok";
    case KvIndex::Status::kUnknownParent: return "unknown-parent";
    case KvIndex::Status::kBlockSizeMismatch: return "block-size-mismatch";
    case KvIndex::Status::kLimit: return "limit";
  }
  return "ok";
}

class RouterWrap : public Napi::ObjectWrap<RouterWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "KvRouter",
                       {
                           InstanceAccessor<&RouterWrap::BlockSize>("blockSize"),
                           InstanceMethod<&RouterWrap::AddWorker>("addWorker"),
                           InstanceMethod<&RouterWrap::RemoveWorker>("removeWorker"),
                           InstanceMethod<&RouterWrap::ClearWorker>("clearWorker"),
                           InstanceMethod<&RouterWrap::SetBusy>("setBusy"),
                           InstanceMethod<&RouterWrap::ApplyStored>("applyStored"),
                           InstanceMethod<&RouterWrap::ApplyRemoved>("applyRemoved"),
                           InstanceMethod<&RouterWrap::ApplyEvents>("applyEvents"),
                           InstanceMethod<&RouterWrap::FindMatches>("findMatches"),
                           InstanceMethod<&RouterWrap::Route>("route"),
                           InstanceMethod<&RouterWrap::Score>("score"),
                           InstanceMethod<&RouterWrap::AddRouted>("addRouted"),
                           InstanceMethod<&RouterWrap::MarkPrefillDone>("markPrefillDone"),
                           InstanceMethod<&RouterWrap::Free>("free"),
                           InstanceMethod<&RouterWrap::Expire>("expire"),
                           InstanceMethod<&RouterWrap::SetSeed>("setSeed"),
                           InstanceMethod<&RouterWrap::Stats>("stats"),
                           InstanceMethod<&RouterWrap::Units>("units"),
                           InstanceMethod<&RouterWrap::Close>("close"),
                       });
  }

  explicit RouterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RouterWrap>(info) {
    Napi::Env env = info.Env();
    const char* fn = "KvRouter";
    if (info.Length() < 1 || !info[0].IsObject()) {
      Throw(env, kInvalidArg, "KvRouter: options must be an object with at least blockSize");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    static const char* const kKnown[] = {
        "blockSize",        "policy",      "overlapWeight",   "temperature",      "seed",
        "approx",           "approxTtlMs", "approxMaxBlocks", "approxPruneRatio", "pendingWeight",
        "pendingTimeoutMs", "fullScan",    "ownWeight",       "ownQueueWeight"};
    if (!only_known_keys(env, o, kKnown, "KvRouter")) return;
    RouterConfig c;
    Napi::Value bs = o.Get("blockSize");
    double d;
    if (!integer(bs, kMaxBlockSize, fn, "blockSize", &d)) return;
    if (d < 1) {
      Throw(env, kInvalidArg, "KvRouter: blockSize must be an integer in [1, 1024]");
      return;
    }
    c.block_size = static_cast<uint32_t>(d);
    Napi::Value policy = o.Get("policy");
    if (!policy.IsUndefined() && !(policy.IsString() && policy_of(policy.As<Napi::String>().Utf8Value(), &c.policy))) {
      Throw(env, kInvalidArg, "KvRouter: policy must be one of kv, round-robin, random, power-of-two, least-loaded");
      return;
    }
    if (!option_number(o, "overlapWeight", &c.overlap_weight, 0, false)) return;
    if (!option_number(o, "temperature", &c.temperature, 0, false)) return;
    if (!option_number(o, "pendingWeight", &c.pending_weight, 0, false)) return;
    if (!option_number(o, "pendingTimeoutMs", &c.pending_timeout_ms, 0, true)) return;
    if (!option_number(o, "ownWeight", &c.own_weight, 0, false)) return;
    if (!option_number(o, "ownQueueWeight", &c.own_queue_weight, 0, false)) return;
    Napi::Value seed = o.Get("seed");
    if (seed.IsUndefined()) {
      std::random_device rd;
      c.seed = (uint64_t{rd()} << 32) | rd();
    } else if (!seed_value(seed, fn, &c.seed)) {
      return;
    }
    Napi::Value approx = o.Get("approx");
    if (!approx.IsUndefined() && !approx.IsBoolean()) {
      Throw(env, kInvalidArg, "KvRouter: approx must be a boolean");
      return;
    }
    c.approx = approx.IsBoolean() && approx.As<Napi::Boolean>().Value();
    Napi::Value full_scan = o.Get("fullScan");
    if (!full_scan.IsUndefined() && !full_scan.IsBoolean()) {
      Throw(env, kInvalidArg, "KvRouter: fullScan must be a boolean");
      return;
    }
    c.full_scan = full_scan.IsBoolean() && full_scan.As<Napi::Boolean>().Value();
    if (!option_number(o, "approxTtlMs", &c.approx_ttl_ms, 0, true)) return;
    Napi::Value max_blocks = o.Get("approxMaxBlocks");
    if (!max_blocks.IsUndefined()) {
      // An integer up to 2^53 - 1: converting anything larger (or not finite) to uint64 is UB.
      const double d = max_blocks.IsNumber() ? max_blocks.As<Napi::Number>().DoubleValue() : NAN;
      if (!(d >= 1 && d <= kMaxSafeInteger && d == std::floor(d))) {
        Throw(env, kInvalidArg, "KvRouter: approxMaxBlocks must be an integer in [1, 2^53)");
        return;
      }
      c.approx_max_blocks = static_cast<uint64_t>(d);
    }
    if (!option_number(o, "approxPruneRatio", &c.approx_prune_ratio, 0, true)) return;
    if (c.approx_prune_ratio > 1) {
      Throw(env, kInvalidArg, "KvRouter: approxPruneRatio must be in (0, 1]");
      return;
    }
    router_ = std::make_unique<KvRouter>(c);
  }

 private:
  // Reads an optional finite number option >= min (> min when `exclusive`) into *out.
  bool option_number(Napi::Object o, const char* name, double* out, double min, bool exclusive) {
    Napi::Value v = o.Get(name);
    if (v.IsUndefined()) return true;
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d < min || (exclusive && d == min)) {
      Throw(o.Env(), kInvalidArg,
            std::string("KvRouter: ") + name + " must be a finite number " + (exclusive ? "> " : ">= ") +
                std::to_string(static_cast<int>(min)));
      return false;
    }
    *out = d;
    return true;
  }

  // The router, or nullptr after throwing ERR_CLOSED.
  KvRouter* open(const Napi::CallbackInfo& info, const char* fn) {
    if (!router_) Throw(info.Env(), kClosed, std::string(fn) + ": the router is closed");
    return router_.get();
  }

  // worker, then an optional rank (kAllRanks when absent and `all_ranks` is allowed).
  static constexpr uint32_t kAllRanks = UINT32_MAX;
  bool unit_args(const Napi::CallbackInfo& info, const char* fn, bool all_ranks, uint32_t* worker, uint32_t* rank) {
    if (!u32(info.Length() > 0 ? info[0] : info.Env().Undefined(), fn, "worker", worker)) return false;
    if (absent(info, 1)) {
      *rank = all_ranks ? kAllRanks : 0;
      return true;
    }
    return u32(info[1], fn, "rank", rank);
  }

  bool hashes_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const int64_t** data, size_t* len) {
    int64_t* p = nullptr;
    if (info.Length() > i && typed(info[i], napi_bigint64_array, napi_biguint64_array, &p, len)) {
      *data = p;
      return true;
    }
    Throw(info.Env(), kInvalidArg, std::string(fn) + ": blockHashes must be a BigInt64Array or BigUint64Array");
    return false;
  }

  bool tokens_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const uint32_t** data, size_t* len) {
    uint32_t* p = nullptr;
    if (info.Length() > i && typed(info[i], napi_uint32_array, napi_uint32_array, &p, len)) {
      *data = p;
      return true;
    }
    Throw(info.Env(), kInvalidArg, std::string(fn) + ": tokens must be a Uint32Array");
    return false;
  }

  template <typename T>
  bool out_arg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, size_t need, const char* fn,
               const char* what, T** data, size_t* out_len = nullptr) {
    size_t len = 0;
    if (out_len == nullptr) out_len = &len;
    if (info.Length() > i && typed(info[i], type, type, data, out_len) && *out_len >= need) return true;
    Throw(info.Env(), kInvalidArg,
          std::string(fn) + ": " + what + " must be a " +
              (type == napi_float64_array ? "Float64Array" : "Uint32Array") + " of length >= " + std::to_string(need));
    return false;
  }

  Napi::Value BlockSize(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "blockSize");
    return r ? Napi::Number::New(info.Env(), r->config().block_size) : info.Env().Undefined();
  }

  Napi::Value AddWorker(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "addWorker");
    uint32_t worker, rank;
    if (!r || !unit_args(info, "addWorker", false, &worker, &rank)) return info.Env().Undefined();
    bool approx = r->config().approx;
    if (!absent(info, 2)) {
      if (!info[2].IsBoolean()) return Throw(info.Env(), kInvalidArg, "addWorker: approx must be a boolean");
      approx = info[2].As<Napi::Boolean>().Value();
    }
    if (!r->add_unit(worker, rank, approx))
      return Throw(info.Env(), kLimit, "addWorker: 65535 (worker, rank) units in use");
    return info.Env().Undefined();
  }

  Napi::Value RemoveWorker(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "removeWorker");
    uint32_t worker, rank;
    if (!r || !unit_args(info, "removeWorker", true, &worker, &rank)) return info.Env().Undefined();
    if (rank == kAllRanks) {
      r->remove_worker(worker);
    } else {
      r->remove_unit(worker, rank);
    }
    return info.Env().Undefined();
  }

  Napi::Value ClearWorker(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "clearWorker");
    uint32_t worker, rank;
    if (!r || !unit_args(info, "clearWorker", true, &worker, &rank)) return info.Env().Undefined();
    if (rank == kAllRanks) {
      r->clear_worker(worker);
    } else {
      r->clear_unit(worker, rank);
    }
    return info.Env().Undefined();
  }

  Napi::Value SetBusy(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "setBusy");
    uint32_t worker;
    if (!r || !u32(info.Length() > 0 ? info[0] : info.Env().Undefined(), "setBusy", "worker", &worker)) {
      return info.Env().Undefined();
    }
    if (info.Length() < 2 || !info[1].IsBoolean())
      return Throw(info.Env(), kInvalidArg, "setBusy: busy must be a boolean");
    r->set_busy(worker, info[1].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }

  Napi::Value ApplyStored(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "applyStored";
    KvRouter* r = open(info, fn);
    uint32_t worker, rank;
    if (!r || !unit_args(info, fn, false, &worker, &rank)) return env.Undefined();
    uint64_t parent = 0;
    const bool has_parent = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined();
    if (has_parent && !hash64(info[2], &parent)) {
      return Throw(env, kInvalidArg, "applyStored: parentHash must be a 64-bit bigint or null");
    }
    const uint32_t* tokens;
    const int64_t* hashes;
    size_t n_tokens, n_hashes;
    if (!tokens_arg(info, 3, fn, &tokens, &n_tokens) || !hashes_arg(info, 4, fn, &hashes, &n_hashes)) {
      return env.Undefined();
    }
    const int64_t parent_signed = static_cast<int64_t>(parent);
    const KvIndex::Status s =
        r->apply_stored(worker, rank, has_parent ? &parent_signed : nullptr, tokens, n_tokens, hashes, n_hashes);
    return Napi::String::New(env, store_status_name(s));
  }

  Napi::Value ApplyRemoved(const Napi::CallbackInfo& info) {
    const char* fn = "applyRemoved";
    KvRouter* r = open(info, fn);
    uint32_t worker, rank;
    const int64_t* hashes;
    size_t n;
    if (!r || !unit_args(info, fn, false, &worker, &rank) || !hashes_arg(info, 2, fn, &hashes, &n)) {
      return info.Env().Undefined();
    }
    return Napi::Number::New(info.Env(), static_cast<double>(r->apply_removed(worker, rank, hashes, n)));
  }

  Napi::Value ApplyEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "applyEvents";
    KvRouter* r = open(info, fn);
    uint32_t worker, rank;
    if (!r || !unit_args(info, fn, false, &worker, &rank)) return env.Undefined();
    uint8_t* bytes = nullptr;
    size_t len = 0;
    if (info.Length() < 3 || !typed(info[2], napi_uint8_array, napi_uint8_array, &bytes, &len)) {
      return Throw(env, kInvalidArg, "applyEvents: bytes must be a Uint8Array");
    }
    uint32_t* out = nullptr;
    size_t out_len = 0;
    if (!absent(info, 3) && !out_arg(info, 3, napi_uint32_array, 4, fn, "out", &out, &out_len)) return env.Undefined();
    BatchResult res;
    const KvEventError err = r->apply_batch(worker, rank, bytes, len, &res);
    if (err != KvEventError::kOk) {
      return Throw(env, kMalformed, std::string("applyEvents: malformed KV-event batch: ") + kv_event_error_name(err));
    }
    if (out) {
      out[0] = res.events;
      out[1] = res.applied;
      out[2] = res.ignored;
      out[3] = res.errors;
      if (out_len > 4) out[4] = res.rank;
    }
    return Napi::Number::New(env, res.errors);
  }

  Napi::Value FindMatches(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "findMatches";
    KvRouter* r = open(info, fn);
    if (!r) return env.Undefined();
    uint32_t* tokens = nullptr;
    uint64_t* local = nullptr;
    size_t n = 0;
    if (info.Length() > 0 && typed(info[0], napi_uint32_array, napi_uint32_array, &tokens, &n)) {
      const uint32_t bs = r->config().block_size;
      local_.resize(n / bs);
      compute_block_hashes(tokens, n, bs, local_.data());
      local = local_.data();
      n = local_.size();
    } else if (!(info.Length() > 0 && typed(info[0], napi_biguint64_array, napi_biguint64_array, &local, &n))) {
      return Throw(env, kInvalidArg,
                   "findMatches: query must be a Uint32Array of tokens or a BigUint64Array of local block hashes");
    }
    uint32_t *workers, *ranks, *depths;
    const size_t need = r->unit_count();
    if (!out_arg(info, 1, napi_uint32_array, need, fn, "outWorkers", &workers) ||
        !out_arg(info, 2, napi_uint32_array, need, fn, "outRanks", &ranks) ||
        !out_arg(info, 3, napi_uint32_array, need, fn, "outDepths", &depths)) {
      return env.Undefined();
    }
    const size_t rows = r->find_matches(local, n, MatchRows{workers, ranks, depths});
    return Napi::Number::New(env, static_cast<double>(rows));
  }

  Napi::Value Route(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "route";
    KvRouter* r = open(info, fn);
    const uint32_t* tokens;
    size_t n;
    uint64_t id;
    uint32_t* out;
    if (!r || !tokens_arg(info, 0, fn, &tokens, &n) ||
        !request_id(info.Length() > 1 ? info[1] : env.Undefined(), fn, &id) ||
        !out_arg(info, 2, napi_uint32_array, 3, fn, "out", &out)) {
      return env.Undefined();
    }
    double w, t, now;
    if (!weight(info, 3, r->config().overlap_weight, fn, "overlapWeight", &w) ||
        !weight(info, 4, r->config().temperature, fn, "temperature", &t) || !now_ms(info, 5, fn, &now)) {
      return env.Undefined();
    }
    RouteResult res;
    switch (r->route(tokens, n, id, w, t, now, &res)) {
      case RouteStatus::kOk:
        out[0] = res.worker;
        out[1] = res.rank;
        out[2] = res.overlap;
        return Napi::Boolean::New(env, true);
      case RouteStatus::kNoWorkers: return Napi::Boolean::New(env, false);
      case RouteStatus::kDuplicateRequest:
        return Throw(env, kInvalidArg, "route: request " + std::to_string(id) + " is already active");
      case RouteStatus::kUnitFull:
        return Throw(env, kLimit, "route: the chosen unit already has 65535 active requests");
    }
    return env.Undefined();
  }

  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "score";
    KvRouter* r = open(info, fn);
    const uint32_t* tokens;
    size_t n;
    double w;
    if (!r || !tokens_arg(info, 0, fn, &tokens, &n) ||
        !weight(info, 5, r->config().overlap_weight, fn, "overlapWeight", &w)) {
      return env.Undefined();
    }
    const size_t need = r->candidate_count();
    uint32_t *workers, *ranks, *overlap;
    double* costs;
    if (!out_arg(info, 1, napi_uint32_array, need, fn, "outWorkers", &workers) ||
        !out_arg(info, 2, napi_uint32_array, need, fn, "outRanks", &ranks) ||
        !out_arg(info, 3, napi_uint32_array, need, fn, "outOverlap", &overlap) ||
        !out_arg(info, 4, napi_float64_array, need, fn, "outCosts", &costs)) {
      return env.Undefined();
    }
    r->score(tokens, n, w, &scores_);
    for (size_t i = 0; i < scores_.size(); i++) {
      workers[i] = scores_[i].worker;
      ranks[i] = scores_[i].rank;
      overlap[i] = scores_[i].candidate.overlap;
      costs[i] = scores_[i].logit;
    }
    return Napi::Number::New(env, static_cast<double>(scores_.size()));
  }

  Napi::Value AddRouted(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* fn = "addRouted";
    KvRouter* r = open(info, fn);
    const uint32_t* tokens;
    size_t n;
    uint64_t id;
    uint32_t worker, rank, prefill;
    if (!r || !tokens_arg(info, 0, fn, &tokens, &n) ||
        !request_id(info.Length() > 1 ? info[1] : env.Undefined(), fn, &id) ||
        !u32(info.Length() > 2 ? info[2] : env.Undefined(), fn, "worker", &worker) ||
        !u32(info.Length() > 3 ? info[3] : env.Undefined(), fn, "rank", &rank) ||
        !u32(info.Length() > 4 ? info[4] : env.Undefined(), fn, "prefillTokens", &prefill)) {
      return env.Undefined();
    }
    switch (r->add_routed(tokens, n, id, worker, rank, prefill)) {
      case RouteStatus::kOk: return Napi::Boolean::New(env, true);
      case RouteStatus::kNoWorkers: return Napi::Boolean::New(env, false);
      case RouteStatus::kDuplicateRequest:
        return Throw(env, kInvalidArg, "addRouted: request " + std::to_string(id) + " is already active");
      case RouteStatus::kUnitFull: return Throw(env, kLimit, "addRouted: the unit already has 65535 active requests");
    }
    return env.Undefined();
  }

  Napi::Value MarkPrefillDone(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "markPrefillDone");
    uint64_t id;
    if (!r || !request_id(info.Length() > 0 ? info[0] : info.Env().Undefined(), "markPrefillDone", &id)) {
      return info.Env().Undefined();
    }
    return Napi::Boolean::New(info.Env(), r->mark_prefill_done(id));
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "free");
    uint64_t id;
    if (!r || !request_id(info.Length() > 0 ? info[0] : info.Env().Undefined(), "free", &id)) {
      return info.Env().Undefined();
    }
    return Napi::Boolean::New(info.Env(), r->free(id));
  }

  Napi::Value Expire(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "expire");
    double now;
    if (!r || !now_ms(info, 0, "expire", &now)) return info.Env().Undefined();
    r->expire(now);
    return info.Env().Undefined();
  }

  Napi::Value SetSeed(const Napi::CallbackInfo& info) {
    KvRouter* r = open(info, "setSeed");
    uint64_t seed;
    if (!r || !seed_value(info.Length() > 0 ? info[0] : info.Env().Undefined(), "setSeed", &seed)) {
      return info.Env().Undefined();
    }
    r->seed(seed);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    KvRouter* r = open(info, "stats");
    if (!r) return env.Undefined();
    const RouterStats s = r->stats();
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, static_cast<double>(v))); };
    num("blocks", s.index.blocks);
    num("pairs", s.index.pairs);
    num("indexUnits", s.index.units);
    num("indexBytes", s.index.bytes);
    num("candidates", s.candidates);
    num("busy", s.busy);
    num("units", s.units);
    num("activeRequests", s.active_requests);
    num("eventsApplied", s.events_applied);
    num("eventErrors", s.event_errors);
    num("approxBlocks", s.approx_blocks);
    num("pendingRequests", s.pending_requests);
    num("pendingBlocks", s.pending_blocks);
    num("bytes", s.bytes);
    return o;
  }

  Napi::Value Units(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    KvRouter* r = open(info, "units");
    if (!r) return env.Undefined();
    std::vector<UnitInfo> units;
    r->units(&units);
    Napi::Array a = Napi::Array::New(env, units.size());
    for (size_t i = 0; i < units.size(); i++) {
      const UnitInfo& u = units[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("worker", Napi::Number::New(env, u.worker));
      o.Set("rank", Napi::Number::New(env, u.rank));
      o.Set("candidate", Napi::Boolean::New(env, u.candidate));
      o.Set("activeBlocks", Napi::Number::New(env, static_cast<double>(u.load.active_blocks)));
      o.Set("prefillTokens", Napi::Number::New(env, static_cast<double>(u.load.prefill_tokens)));
      o.Set("activeRequests", Napi::Number::New(env, u.load.requests));
      o.Set("cachedBlocks", Napi::Number::New(env, static_cast<double>(u.cached_blocks)));
      a.Set(static_cast<uint32_t>(i), o);
    }
    return a;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    router_.reset();
    std::vector<UnitScore>().swap(scores_);
    std::vector<uint64_t>().swap(local_);
    return info.Env().Undefined();
  }

  std::unique_ptr<KvRouter> router_;
  std::vector<UnitScore> scores_;
  std::vector<uint64_t> local_;
};

}  // namespace

void InitRouter(Napi::Env env, Napi::Object exports) { exports.Set("KvRouter", RouterWrap::Define(env)); }

}  // namespace kvgate
