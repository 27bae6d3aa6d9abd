#include "core/transfer_coordinator.h"

#include <algorithm>
#include <limits>

namespace kvgate {

namespace {

constexpr double kNoDeadline = std::numeric_limits<double>::infinity();

// Enough slots that the longest timeout fits in one revolution (each record is then visited
// once, when it is due), a power of two for the mask, bounded so an idle wheel stays small.
size_t wheel_size(const CoordinatorConfig& c) {
  const double longest = std::max({c.timeout_ms[0], c.timeout_ms[1], c.timeout_ms[2]});
  const double ticks = longest / c.tick_ms + 2;
  size_t n = 64;
  while (n < TransferCoordinator::kMaxWheelSlots && static_cast<double>(n) < ticks) n *= 2;
  return n;
}

}  // namespace

TransferCoordinator::TransferCoordinator(const CoordinatorConfig& config)
    : config_(config), rng_(config.seed), wheel_(wheel_size(config), kNil) {}

uint64_t TransferCoordinator::open(uint32_t prefill, uint32_t decode, uint32_t prompt_tokens, double now_ms) {
  const uint64_t rooms = (uint64_t{1} << config_.room_bits) - 1;
  if (index_.size() >= rooms) return 0;
  start(now_ms);
  // The top room_bits of a draw: uniform in [0, 2^room_bits); 0 and rooms in flight are
  // redrawn (expected draws: rooms / (rooms - in flight)).
  uint64_t room;
  do {
    room = rng_.next() >> (64 - config_.room_bits);
  } while (room == 0 || index_.find(room) != U64Map::kNone);

  uint32_t i = free_;
  if (i != kNil) {
    free_ = rooms_[i].next;
  } else {
    i = static_cast<uint32_t>(rooms_.size());
    rooms_.emplace_back();
  }
  Room& r = rooms_[i];
  r = Room{};
  r.room = room;
  r.prefill = prefill;
  r.decode = decode;
  r.prompt_tokens = prompt_tokens;
  index_.put(room, i);
  enter(i, RoomState::kDispatched, now_ms);
  return room;
}

int TransferCoordinator::advance(uint64_t room, RoomEvent ev, double now_ms) {
  const uint32_t i = index_.find(room);
  if (i == U64Map::kNone) return kUnknownRoom;
  Room& r = rooms_[i];
  switch (ev) {
    case RoomEvent::kFinished:
    case RoomEvent::kFailed: release(i); return 0;
    case RoomEvent::kPrefillDone:
      if (r.state == RoomState::kDispatched) {
        r.prefill_done_ms = now_ms;
        enter(i, RoomState::kPrefillDone, now_ms);
        return 0;
      }
      // The prefill leg's answer after the decode leg's first token: the transfer happened.
      return r.state == RoomState::kFirstDecodeToken ? 0 : kNotAllowed;
    case RoomEvent::kFirstDecodeToken:
      if (r.state == RoomState::kFirstDecodeToken) return kNotAllowed;
      if (r.state == RoomState::kPrefillDone) record_handoff(r, now_ms);
      enter(i, RoomState::kFirstDecodeToken, now_ms);
      return 0;
  }
  return kNotAllowed;
}

void TransferCoordinator::poll(double now_ms, std::vector<ExpiredRoom>* out) {
  start(now_ms);
  const uint64_t to = std::max(cursor_, tick_of(now_ms));
  // One revolution visits every slot: a longer pause costs no more than that.
  const uint64_t last = std::min(to, cursor_ + wheel_.size() - 1);
  const uint64_t mask = wheel_.size() - 1;
  work_.slots += last - cursor_ + 1;
  for (uint64_t t = cursor_; t <= last; t++) {
    for (uint32_t i = wheel_[t & mask]; i != kNil;) {
      work_.records++;
      const Room& r = rooms_[i];
      const uint32_t next = r.next;
      // A slot also holds later revolutions' rooms, and the current tick's not yet due.
      if (r.deadline <= now_ms) {
        out->push_back(ExpiredRoom{r.room, r.state});
        release(i);
      }
      i = next;
    }
  }
  // The tick `to` stays current: rooms due later in it are still in its slot.
  cursor_ = to;
}

int TransferCoordinator::state(uint64_t room) const {
  const uint32_t i = index_.find(room);
  return i == U64Map::kNone ? kUnknownRoom : static_cast<int>(rooms_[i].state);
}

const PairStats* TransferCoordinator::pair_stats(uint32_t prefill, uint32_t decode) const {
  const uint32_t p = pair_index_.find((uint64_t{prefill} << 32) | decode);
  return p == U64Map::kNone ? nullptr : &pairs_[p].stats;
}

void TransferCoordinator::forget_worker(uint32_t id) {
  for (size_t p = 0; p < pairs_.size();) {
    const uint64_t key = pairs_[p].key;
    if (static_cast<uint32_t>(key >> 32) != id && static_cast<uint32_t>(key) != id) {
      p++;
      continue;
    }
    // Swap-remove: the last pair takes this slot.
    pair_index_.erase(key);
    if (p + 1 != pairs_.size()) {
      pairs_[p] = pairs_.back();
      pair_index_.put(pairs_[p].key, static_cast<uint32_t>(p));
    }
    pairs_.pop_back();
  }
}

size_t TransferCoordinator::memory_bytes() const {
  return sizeof(*this) + index_.bytes() + rooms_.capacity() * sizeof(Room) + wheel_.capacity() * sizeof(uint32_t) +
         pair_index_.bytes() + pairs_.capacity() * sizeof(Pair);
}

// The wheel's cursor starts at the first clock reading, so the first poll does not walk
// from tick 0 to an epoch clock's present.
void TransferCoordinator::start(double now_ms) {
  if (started_) return;
  cursor_ = tick_of(now_ms);
  started_ = true;
}

// Moves the room into state `s` with that state's deadline.
void TransferCoordinator::enter(uint32_t i, RoomState s, double now_ms) {
  Room& r = rooms_[i];
  const double timeout = config_.timeout_ms[static_cast<int>(s)];
  unlink(i);
  r.state = s;
  r.deadline = timeout > 0 ? now_ms + timeout : kNoDeadline;
  link(i);
}

void TransferCoordinator::link(uint32_t i) {
  Room& r = rooms_[i];
  if (r.deadline == kNoDeadline) return;
  // A deadline already behind the cursor (the clock stepped back) goes in the current tick's
  // slot, which the next poll visits.
  const uint32_t slot = static_cast<uint32_t>(std::max(tick_of(r.deadline), cursor_) & (wheel_.size() - 1));
  r.prev = kHead | slot;
  r.next = wheel_[slot];
  if (r.next != kNil) rooms_[r.next].prev = i;
  wheel_[slot] = i;
}

void TransferCoordinator::unlink(uint32_t i) {
  Room& r = rooms_[i];
  if (r.prev == kNil) return;
  if (r.prev & kHead)
    wheel_[r.prev & ~kHead] = r.next;
  else
    rooms_[r.prev].next = r.next;
  if (r.next != kNil) rooms_[r.next].prev = r.prev;
  r.prev = r.next = kNil;
}

// Frees the room: out of the index and off the wheel, its record reused by a later open.
void TransferCoordinator::release(uint32_t i) {
  unlink(i);
  index_.erase(rooms_[i].room);
  rooms_[i].room = 0;
  rooms_[i].next = free_;
  free_ = i;
}

void TransferCoordinator::record_handoff(const Room& r, double now_ms) {
  const uint64_t key = (uint64_t{r.prefill} << 32) | r.decode;
  uint32_t p = pair_index_.find(key);
  if (p == U64Map::kNone) {
    p = static_cast<uint32_t>(pairs_.size());
    pairs_.push_back(Pair{key, PairStats{}});
    pair_index_.put(key, p);
  }
  PairStats& s = pairs_[p].stats;
  const double gap = std::max(0.0, now_ms - r.prefill_done_ms);
  const double rate = r.prompt_tokens / std::max(gap, 1.0);
  if (s.handoffs == 0) {
    s.gap_ewma_ms = gap;
    s.tokens_per_ms_ewma = rate;
  } else {
    s.gap_ewma_ms += kEwmaAlpha * (gap - s.gap_ewma_ms);
    s.tokens_per_ms_ewma += kEwmaAlpha * (rate - s.tokens_per_ms_ewma);
  }
  s.handoffs++;
  s.gap_sum_ms += gap;
}

}  // namespace kvgate
