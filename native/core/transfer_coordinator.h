// The bookkeeping of prefill/decode handoffs: one "room" per disaggregated request (SGLang's
// bootstrap_room, the rendezvous of the prefill and the decode leg), its state machine, a
// deadline per state, and per (prefill, decode) pair statistics of the handoff gap.
//
// Rooms are drawn at random (SplitMix64, redrawn on a collision with a room in flight) so that
// several gateways sharing engines are unlikely to collide either; they live in a U64Map from
// room to a slot of a dense record array. Deadlines live in a hashed timer wheel whose lists
// are threaded through the records themselves: scheduling, moving and cancelling a deadline is
// O(1), and poll() visits only the slots of the ticks that passed (at most one revolution),
// checking each record's exact deadline. No allocation per room once the arrays have grown.
//
// Time is the caller's clock in ms (any finite value >= 0, fractions allowed, normally
// non-decreasing; a clock that steps back delays nothing that is already due).
// test/reference/transfer_coordinator.ts is the naive TypeScript twin it is tested against.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/flat_map.h"
#include "core/scheduler.h"

namespace kvgate {

// Values shared with JavaScript (index.d.ts RoomState, RoomEvent): keep the numbers.
enum class RoomState : uint8_t { kDispatched, kPrefillDone, kFirstDecodeToken, kFinished, kFailed, kTimedOut };
enum class RoomEvent : uint8_t { kPrefillDone, kFirstDecodeToken, kFinished, kFailed };

struct CoordinatorConfig {
  // Max time in Dispatched, PrefillDone and FirstDecodeToken (indexed by RoomState); 0 = none.
  double timeout_ms[3] = {0, 0, 0};
  uint32_t room_bits = 63;  // rooms in [1, 2^room_bits), room_bits in [8, 63]
  double tick_ms = 10;      // timer wheel granularity, > 0
  uint64_t seed = 0;
};

struct PairStats {
  uint64_t handoffs = 0;          // PrefillDone seen before FirstDecodeToken
  double gap_sum_ms = 0;          // sum of the PrefillDone -> FirstDecodeToken gaps
  double gap_ewma_ms = 0;         // EWMA (kEwmaAlpha) of the gap
  double tokens_per_ms_ewma = 0;  // EWMA of prompt tokens / max(gap, 1 ms)
};

// What poll() has visited since the coordinator was made: the measure of its cost.
struct PollWork {
  uint64_t slots = 0;    // wheel slots visited
  uint64_t records = 0;  // rooms looked at in them (expired or not yet due)
};

struct ExpiredRoom {
  uint64_t room;
  RoomState state;  // the state it timed out in
};

class TransferCoordinator {
 public:
  static constexpr int kUnknownRoom = -1;  // never opened, or already freed
  static constexpr int kNotAllowed = -2;   // the event is not allowed in the room's state
  static constexpr double kEwmaAlpha = 0.2;
  static constexpr uint32_t kMaxWheelSlots = 1u << 16;

  explicit TransferCoordinator(const CoordinatorConfig& config);

  // A room no room in flight holds, in Dispatched; 0 when all 2^room_bits - 1 are in flight.
  uint64_t open(uint32_t prefill, uint32_t decode, uint32_t prompt_tokens, double now_ms);
  // 0, kUnknownRoom or kNotAllowed. Finished and Failed free the room.
  int advance(uint64_t room, RoomEvent ev, double now_ms);
  // Frees every room whose deadline is <= now_ms, appending it to `out` with its state.
  // O(expired + min(ticks passed, wheel slots) + rooms sharing the visited slots).
  void poll(double now_ms, std::vector<ExpiredRoom>* out);
  // The room's RoomState, or kUnknownRoom.
  int state(uint64_t room) const;
  size_t in_flight() const { return index_.size(); }
  // nullptr when the pair has no handoff recorded.
  const PairStats* pair_stats(uint32_t prefill, uint32_t decode) const;
  // Drops the stats of every pair naming the worker. O(pairs).
  void forget_worker(uint32_t id);
  size_t memory_bytes() const;
  size_t wheel_slots() const { return wheel_.size(); }
  const PollWork& poll_work() const { return work_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  // A record at the head of its wheel slot has prev = kHead | slot (the slot it must update
  // on unlink), so a record needs no separate slot field. Record indices stay below 2^31
  // (that many records would take 100 GB).
  static constexpr uint32_t kHead = 1u << 31;

  struct Room {
    uint64_t room = 0;  // 0: a free record (next = the next free record)
    double deadline = 0;
    double prefill_done_ms = 0;
    uint32_t prefill = 0, decode = 0, prompt_tokens = 0;
    uint32_t prev = kNil, next = kNil;  // wheel list links; prev == kNil: not on the wheel
    RoomState state = RoomState::kDispatched;
  };

  uint64_t tick_of(double ms) const { return static_cast<uint64_t>(ms / config_.tick_ms); }
  void start(double now_ms);
  void enter(uint32_t i, RoomState s, double now_ms);
  void link(uint32_t i);
  void unlink(uint32_t i);
  void release(uint32_t i);
  void record_handoff(const Room& r, double now_ms);

  CoordinatorConfig config_;
  Rng rng_;
  U64Map index_;                 // room -> record
  std::vector<Room> rooms_;      // records, in flight or free
  uint32_t free_ = kNil;         // first free record
  std::vector<uint32_t> wheel_;  // slot -> first record, kNil when empty
  uint64_t cursor_ = 0;          // the oldest tick not yet fully expired
  bool started_ = false;         // cursor_ set from the first clock reading
  PollWork work_;

  struct Pair {
    uint64_t key;  // prefill << 32 | decode
    PairStats stats;
  };
  U64Map pair_index_;  // key -> pairs_ slot
  std::vector<Pair> pairs_;
};

}  // namespace kvgate
