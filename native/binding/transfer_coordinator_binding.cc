// The prefill/decode transfer coordinator exposed to JavaScript: one ObjectWrap,
// `TransferCoordinator`, over core/transfer_coordinator.h, and the RoomState / RoomEvent
// value objects. Rooms cross as bigints, workers as uint32 numbers. Declarations and costs in
// index.d.ts.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "binding/errors.h"
#include "binding/exports.h"
#include "core/transfer_coordinator.h"

namespace kvgate {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;
constexpr double kMaxTimeoutMs = 1099511627776.0;  // 2^40 ms (35 years): deadlines stay exact doubles

// A number in [min, max] (an integer when `whole`); throws ERR_INVALID_ARG naming `what` otherwise.
bool number_in(const Napi::Value& v, double min, double max, bool whole, const std::string& what, double* out) {
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= min && d <= max) || (whole && d != std::floor(d))) {
    Throw(v.Env(), kInvalidArg,
          "TransferCoordinator: " + what + " must be " + (whole ? "an integer" : "a number") + " in [" +
              std::to_string(static_cast<uint64_t>(min)) + ", " + std::to_string(static_cast<uint64_t>(max)) + "]");
    return false;
  }
  *out = d;
  return true;
}

bool worker_arg(const Napi::Value& v, const char* what, uint32_t* out) {
  double d;
  if (!number_in(v, 0, 4294967295.0, true, what, &d)) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

bool now_arg(const Napi::Value& v, double* out) { return number_in(v, 0, kMaxSafeInteger, false, "nowMs", out); }

// A room is a bigint in [0, 2^64); rooms never opened are simply unknown.
bool room_arg(const Napi::Value& v, uint64_t* out) {
  bool lossless = false;
  if (v.IsBigInt()) *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) Throw(v.Env(), kInvalidArg, "TransferCoordinator: room must be a bigint in [0, 2^64)");
  return lossless;
}

Napi::Object enum_object(Napi::Env env, std::initializer_list<const char*> names) {
  Napi::Object o = Napi::Object::New(env);
  int value = 0;
  for (const char* name : names) o.Set(name, Napi::Number::New(env, value++));
  o.Freeze();
  return o;
}

class CoordinatorWrap : public Napi::ObjectWrap<CoordinatorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TransferCoordinator",
                       {
                           InstanceMethod<&CoordinatorWrap::Open>("open"),
                           InstanceMethod<&CoordinatorWrap::Advance>("advance"),
                           InstanceMethod<&CoordinatorWrap::Poll>("poll"),
                           InstanceMethod<&CoordinatorWrap::State>("state"),
                           InstanceMethod<&CoordinatorWrap::PairStatsOf>("pairStats"),
                           InstanceMethod<&CoordinatorWrap::ForgetWorker>("forgetWorker"),
                           InstanceMethod<&CoordinatorWrap::MemoryBytes>("memoryBytes"),
                           InstanceAccessor<&CoordinatorWrap::InFlight>("inFlight"),
                       });
  }

  explicit CoordinatorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CoordinatorWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      Throw(env, kInvalidArg, "TransferCoordinator: options must be an object with the three timeouts");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    static const char* const kKnown[] = {
        "dispatchedTimeoutMs", "prefillDoneTimeoutMs", "decodeTimeoutMs", "roomBits", "tickMs", "seed"};
    if (!only_known_keys(env, o, kKnown, "TransferCoordinator")) return;
    CoordinatorConfig c;
    for (int s = 0; s < 3; s++) {
      if (!number_in(o.Get(kKnown[s]), 0, kMaxTimeoutMs, false, kKnown[s], &c.timeout_ms[s])) return;
    }
    double d;
    if (!o.Get("roomBits").IsUndefined()) {
      if (!number_in(o.Get("roomBits"), 8, 63, true, "roomBits", &d)) return;
      c.room_bits = static_cast<uint32_t>(d);
    }
    if (!o.Get("tickMs").IsUndefined()) {
      if (!number_in(o.Get("tickMs"), 1, 60000, false, "tickMs", &c.tick_ms)) return;
    }
    if (o.Get("seed").IsUndefined()) {
      std::random_device rd;
      c.seed = (uint64_t{rd()} << 32) | rd();
    } else {
      if (!number_in(o.Get("seed"), 0, kMaxSafeInteger, true, "seed", &d)) return;
      c.seed = static_cast<uint64_t>(d);
    }
    coord_ = std::make_unique<TransferCoordinator>(c);
  }

 private:
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t prefill, decode, prompt;
    double now;
    if (!worker_arg(info[0], "prefill", &prefill) || !worker_arg(info[1], "decode", &decode) ||
        !worker_arg(info[2], "promptTokens", &prompt) || !now_arg(info[3], &now))
      return env.Undefined();
    const uint64_t room = coord_->open(prefill, decode, prompt, now);
    if (room == 0) return Throw(env, kLimit, "TransferCoordinator.open: every room of roomBits is in flight");
    return Napi::BigInt::New(env, room);
  }

  Napi::Value Advance(const Napi::CallbackInfo& info) {
    uint64_t room;
    double ev, now;
    if (!room_arg(info[0], &room) || !number_in(info[1], 0, 3, true, "event", &ev) || !now_arg(info[2], &now))
      return info.Env().Undefined();
    return Napi::Number::New(info.Env(), coord_->advance(room, static_cast<RoomEvent>(ev), now));
  }

  // [[room, state], ...] in no particular order; an empty array when nothing expired.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double now;
    if (!now_arg(info[0], &now)) return env.Undefined();
    expired_.clear();
    coord_->poll(now, &expired_);
    Napi::Array out = Napi::Array::New(env, expired_.size());
    for (size_t i = 0; i < expired_.size(); i++) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::BigInt::New(env, expired_[i].room));
      pair.Set(1u, Napi::Number::New(env, static_cast<double>(expired_[i].state)));
      out.Set(static_cast<uint32_t>(i), pair);
    }
    return out;
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    uint64_t room;
    if (!room_arg(info[0], &room)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), coord_->state(room));
  }

  Napi::Value PairStatsOf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t prefill, decode;
    if (!worker_arg(info[0], "prefill", &prefill) || !worker_arg(info[1], "decode", &decode)) return env.Undefined();
    const PairStats* s = coord_->pair_stats(prefill, decode);
    if (s == nullptr) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("handoffs", Napi::Number::New(env, static_cast<double>(s->handoffs)));
    o.Set("gapMsMean", Napi::Number::New(env, s->gap_sum_ms / static_cast<double>(s->handoffs)));
    o.Set("gapMsEwma", Napi::Number::New(env, s->gap_ewma_ms));
    o.Set("tokensPerMs", Napi::Number::New(env, s->tokens_per_ms_ewma));
    return o;
  }

  Napi::Value ForgetWorker(const Napi::CallbackInfo& info) {
    uint32_t id;
    if (worker_arg(info[0], "id", &id)) coord_->forget_worker(id);
    return info.Env().Undefined();
  }

  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(),
                             static_cast<double>(coord_->memory_bytes() + expired_.capacity() * sizeof(ExpiredRoom)));
  }

  Napi::Value InFlight(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(coord_->in_flight()));
  }

  std::unique_ptr<TransferCoordinator> coord_;
  std::vector<ExpiredRoom> expired_;  // poll's scratch, kept to avoid an allocation per poll
};

}  // namespace

void InitTransferCoordinator(Napi::Env env, Napi::Object exports) {
  exports.Set("TransferCoordinator", CoordinatorWrap::Define(env));
  exports.Set("RoomState",
              enum_object(env, {"Dispatched", "PrefillDone", "FirstDecodeToken", "Finished", "Failed", "TimedOut"}));
  exports.Set("RoomEvent", enum_object(env, {"PrefillDone", "FirstDecodeToken", "Finished", "Failed"}));
}

}  // namespace kvgate
