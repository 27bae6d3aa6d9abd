// The transfer coordinator: room draws without collisions, the state machine, rooms freed
// exactly once, a deadline per state, and what poll() costs.
#include "core/transfer_coordinator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace {

using kvgate::CoordinatorConfig;
using kvgate::ExpiredRoom;
using kvgate::RoomEvent;
using kvgate::RoomState;
using kvgate::TransferCoordinator;

constexpr int kUnknown = TransferCoordinator::kUnknownRoom;
constexpr int kNotAllowed = TransferCoordinator::kNotAllowed;

CoordinatorConfig config(double dispatched, double prefill_done, double decode, uint32_t bits = 63) {
  CoordinatorConfig c;
  c.timeout_ms[0] = dispatched;
  c.timeout_ms[1] = prefill_done;
  c.timeout_ms[2] = decode;
  c.room_bits = bits;
  c.seed = 42;
  return c;
}

int st(RoomState s) { return static_cast<int>(s); }

std::vector<ExpiredRoom> poll(TransferCoordinator& c, double now) {
  std::vector<ExpiredRoom> out;
  c.poll(now, &out);
  return out;
}

// A room brought to `s` (Dispatched, PrefillDone or FirstDecodeToken) at time 0.
uint64_t room_in(TransferCoordinator& c, RoomState s) {
  const uint64_t room = c.open(1, 2, 100, 0);
  if (s == RoomState::kPrefillDone) EXPECT_EQ(c.advance(room, RoomEvent::kPrefillDone, 0), 0);
  if (s == RoomState::kFirstDecodeToken) EXPECT_EQ(c.advance(room, RoomEvent::kFirstDecodeToken, 0), 0);
  EXPECT_EQ(c.state(room), st(s));
  return room;
}

TEST(TransferCoordinator, EveryTransition) {
  struct Row {
    RoomState from;
    RoomEvent ev;
    int result;
    int to;  // the state after, or kUnknown when freed
  };
  const Row rows[] = {
      {RoomState::kDispatched, RoomEvent::kPrefillDone, 0, st(RoomState::kPrefillDone)},
      {RoomState::kDispatched, RoomEvent::kFirstDecodeToken, 0, st(RoomState::kFirstDecodeToken)},
      {RoomState::kDispatched, RoomEvent::kFinished, 0, kUnknown},
      {RoomState::kDispatched, RoomEvent::kFailed, 0, kUnknown},
      {RoomState::kPrefillDone, RoomEvent::kPrefillDone, kNotAllowed, st(RoomState::kPrefillDone)},
      {RoomState::kPrefillDone, RoomEvent::kFirstDecodeToken, 0, st(RoomState::kFirstDecodeToken)},
      {RoomState::kPrefillDone, RoomEvent::kFinished, 0, kUnknown},
      {RoomState::kPrefillDone, RoomEvent::kFailed, 0, kUnknown},
      {RoomState::kFirstDecodeToken, RoomEvent::kPrefillDone, 0, st(RoomState::kFirstDecodeToken)},
      {RoomState::kFirstDecodeToken, RoomEvent::kFirstDecodeToken, kNotAllowed, st(RoomState::kFirstDecodeToken)},
      {RoomState::kFirstDecodeToken, RoomEvent::kFinished, 0, kUnknown},
      {RoomState::kFirstDecodeToken, RoomEvent::kFailed, 0, kUnknown},
  };
  for (const Row& row : rows) {
    TransferCoordinator c(config(100, 100, 100));
    const uint64_t room = room_in(c, row.from);
    EXPECT_EQ(c.advance(room, row.ev, 1), row.result) << st(row.from) << " " << static_cast<int>(row.ev);
    EXPECT_EQ(c.state(room), row.to) << st(row.from) << " " << static_cast<int>(row.ev);
    EXPECT_EQ(c.in_flight(), row.to == kUnknown ? 0u : 1u);
  }
}

TEST(TransferCoordinator, FreesExactlyOnce) {
  TransferCoordinator c(config(100, 100, 100));
  const uint64_t finished = c.open(1, 2, 10, 0), failed = c.open(1, 2, 10, 0), timed_out = c.open(1, 2, 10, 0);
  const uint64_t other = c.open(1, 2, 10, 50);
  EXPECT_EQ(c.advance(finished, RoomEvent::kFinished, 1), 0);
  EXPECT_EQ(c.advance(failed, RoomEvent::kFailed, 1), 0);
  ASSERT_EQ(poll(c, 100).size(), 1u);
  EXPECT_EQ(c.in_flight(), 1u);
  // Every later event on a freed room is unknown, and it never expires again.
  for (uint64_t room : {finished, failed, timed_out}) {
    for (RoomEvent ev :
         {RoomEvent::kPrefillDone, RoomEvent::kFirstDecodeToken, RoomEvent::kFinished, RoomEvent::kFailed}) {
      EXPECT_EQ(c.advance(room, ev, 2), kUnknown);
    }
  }
  EXPECT_EQ(c.state(other), st(RoomState::kDispatched));
  EXPECT_EQ(poll(c, 150).size(), 1u);
  EXPECT_TRUE(poll(c, 1e9).empty());
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(c.advance(0, RoomEvent::kFinished, 0), kUnknown);  // 0 is never a room
}

TEST(TransferCoordinator, DeadlinePerState) {
  TransferCoordinator c(config(100, 30, 500));
  const uint64_t dispatched = room_in(c, RoomState::kDispatched);  // due 100
  const uint64_t prefill_done = c.open(1, 2, 10, 0);
  ASSERT_EQ(c.advance(prefill_done, RoomEvent::kPrefillDone, 40), 0);  // due 70
  const uint64_t decoding = c.open(1, 2, 10, 0);
  ASSERT_EQ(c.advance(decoding, RoomEvent::kPrefillDone, 10), 0);
  ASSERT_EQ(c.advance(decoding, RoomEvent::kFirstDecodeToken, 20), 0);  // due 520
  ASSERT_EQ(c.advance(decoding, RoomEvent::kPrefillDone, 400), 0);      // no change, still due 520

  EXPECT_TRUE(poll(c, 69.999).empty());
  auto out = poll(c, 70);  // exactly at the deadline: due
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].room, prefill_done);
  EXPECT_EQ(out[0].state, RoomState::kPrefillDone);
  EXPECT_TRUE(poll(c, 99.5).empty());
  out = poll(c, 100);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].room, dispatched);
  EXPECT_EQ(out[0].state, RoomState::kDispatched);
  EXPECT_TRUE(poll(c, 519).empty());
  out = poll(c, 521);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].room, decoding);
  EXPECT_EQ(out[0].state, RoomState::kFirstDecodeToken);
}

TEST(TransferCoordinator, ZeroTimeoutMeansNoDeadline) {
  TransferCoordinator c(config(0, 50, 0));
  const uint64_t a = c.open(1, 2, 10, 0);
  const uint64_t b = c.open(1, 2, 10, 0);
  ASSERT_EQ(c.advance(b, RoomEvent::kPrefillDone, 0), 0);
  EXPECT_EQ(poll(c, 1e12).size(), 1u);
  ASSERT_EQ(c.advance(a, RoomEvent::kFirstDecodeToken, 1e12), 0);
  EXPECT_TRUE(poll(c, 2e12).empty());
  EXPECT_EQ(c.state(a), st(RoomState::kFirstDecodeToken));
}

TEST(TransferCoordinator, ClockSteppingBackDelaysNothingDue) {
  TransferCoordinator c(config(10, 10, 10));
  c.open(1, 2, 10, 1000);
  EXPECT_TRUE(poll(c, 1005).empty());
  const uint64_t late = c.open(1, 2, 10, 500);  // due 510, behind the wheel's cursor
  const auto out = poll(c, 1006);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].room, late);
}

TEST(TransferCoordinator, LongTimeoutsBeyondOneRevolution) {
  CoordinatorConfig cfg = config(1e9, 0, 0);
  cfg.tick_ms = 1;
  TransferCoordinator c(cfg);
  ASSERT_EQ(c.wheel_slots(), TransferCoordinator::kMaxWheelSlots);
  const uint64_t room = c.open(1, 2, 10, 0);
  for (double t = 0; t < 1e9; t += 3e5) ASSERT_TRUE(poll(c, t).empty());  // passes its slot many times
  const auto out = poll(c, 1e9);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].room, room);
}

TEST(TransferCoordinator, NoCollisionsWithSmallRooms) {
  TransferCoordinator c(config(0, 0, 0, 8));
  std::set<uint64_t> live;
  for (int i = 0; i < 200; i++) {
    const uint64_t room = c.open(1, 2, 10, 0);
    ASSERT_GE(room, 1u);
    ASSERT_LT(room, 256u);
    ASSERT_TRUE(live.insert(room).second) << "room " << room << " drawn twice";
  }
  // Churn at 200 of 255 in flight: free one, open one, never a room in flight.
  for (int i = 0; i < 5000; i++) {
    auto it = live.begin();
    std::advance(it, i % live.size());
    ASSERT_EQ(c.advance(*it, RoomEvent::kFinished, 0), 0);
    live.erase(it);
    const uint64_t room = c.open(1, 2, 10, 0);
    ASSERT_TRUE(room >= 1 && room < 256);
    ASSERT_TRUE(live.insert(room).second) << "room " << room << " drawn twice";
  }
  EXPECT_EQ(c.in_flight(), 200u);
  while (c.in_flight() < 255) ASSERT_TRUE(live.insert(c.open(1, 2, 10, 0)).second);
  EXPECT_EQ(c.open(1, 2, 10, 0), 0u);  // every room taken
}

TEST(TransferCoordinator, DrawsAreUniformTopBits) {
  // The top 31 bits of SplitMix64, seed 42: what the TypeScript reference computes too.
  TransferCoordinator c(config(0, 0, 0, 31));
  kvgate::Rng rng(42);
  for (int i = 0; i < 100; i++) {
    uint64_t want;
    do want = rng.next() >> 33;
    while (want == 0);
    EXPECT_EQ(c.open(1, 2, 10, 0), want);
  }
}

TEST(TransferCoordinator, PairStats) {
  TransferCoordinator c(config(0, 0, 0));
  const uint64_t a = c.open(3, 4, 1000, 0);
  c.advance(a, RoomEvent::kPrefillDone, 10);
  c.advance(a, RoomEvent::kFirstDecodeToken, 30);  // gap 20: 50 tokens/ms
  const uint64_t b = c.open(3, 4, 1000, 100);
  c.advance(b, RoomEvent::kPrefillDone, 100);
  c.advance(b, RoomEvent::kFirstDecodeToken, 100.5);  // gap 0.5: rate over 1 ms, 1000 tokens/ms
  const uint64_t late = c.open(3, 4, 1000, 0);
  c.advance(late, RoomEvent::kFirstDecodeToken, 5);  // no PrefillDone before it: no handoff
  const kvgate::PairStats* s = c.pair_stats(3, 4);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->handoffs, 2u);
  EXPECT_DOUBLE_EQ(s->gap_sum_ms / 2, 10.25);
  EXPECT_DOUBLE_EQ(s->gap_ewma_ms, 20 + 0.2 * (0.5 - 20));
  EXPECT_DOUBLE_EQ(s->tokens_per_ms_ewma, 50 + 0.2 * (1000 - 50));
  EXPECT_EQ(c.pair_stats(4, 3), nullptr);

  const uint64_t other = c.open(5, 6, 10, 0);
  c.advance(other, RoomEvent::kPrefillDone, 0);
  c.advance(other, RoomEvent::kFirstDecodeToken, 1);
  const uint64_t shared = c.open(6, 3, 10, 0);
  c.advance(shared, RoomEvent::kPrefillDone, 0);
  c.advance(shared, RoomEvent::kFirstDecodeToken, 1);
  c.forget_worker(3);
  EXPECT_EQ(c.pair_stats(3, 4), nullptr);
  EXPECT_EQ(c.pair_stats(6, 3), nullptr);
  ASSERT_NE(c.pair_stats(5, 6), nullptr);  // moved by the swap-remove, still found
  EXPECT_EQ(c.pair_stats(5, 6)->handoffs, 1u);
  EXPECT_EQ(c.in_flight(), 5u);  // forgetting stats leaves rooms alone
}

TEST(TransferCoordinator, PollCostFollowsExpiredAndTicks) {
  CoordinatorConfig cfg = config(1000, 1000, 1000);
  cfg.tick_ms = 10;
  TransferCoordinator c(cfg);
  // 10 rooms opened per ms for 1 s, polled every ms as a frontend would: nothing is due yet,
  // and the wheel is longer than the timeout, so no poll looks at any room.
  size_t expired = 0;
  for (int t = 0; t < 1000; t++) {
    for (int i = 0; i < 10; i++) c.open(1, 2, 10, t);
    expired += poll(c, t).size();
  }
  EXPECT_EQ(expired, 0u);
  EXPECT_EQ(c.poll_work().records, 0u);
  EXPECT_EQ(c.poll_work().slots, 1000u + 99);  // the current tick's slot, plus one per tick passed
  // Idle polls inside one tick look at one slot each.
  for (int i = 0; i < 100; i++) poll(c, 999.5);
  EXPECT_EQ(c.poll_work().slots, 1099u + 100);
  EXPECT_EQ(c.poll_work().records, 0u);
  // Through the deadlines: a room is looked at by each poll of its own tick until it is due
  // (at most 10 here, 5.5 on average), and by none before.
  for (int t = 1000; t < 2000; t++) expired += poll(c, t).size();
  EXPECT_EQ(expired, 10000u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_LE(c.poll_work().records, 10000u * 6);
  // A long pause costs one revolution of the wheel at most.
  for (size_t i = 0; i < 1000; i++) c.open(1, 2, 10, 3000);
  const kvgate::PollWork before = c.poll_work();
  EXPECT_EQ(poll(c, 1e9).size(), 1000u);
  EXPECT_LE(c.poll_work().slots - before.slots, c.wheel_slots());
  EXPECT_EQ(c.poll_work().records - before.records, 1000u);
}

TEST(TransferCoordinator, MemoryFollowsTheHighWaterMark) {
  TransferCoordinator c(config(100, 100, 100));
  const size_t empty = c.memory_bytes();
  std::vector<uint64_t> rooms;
  for (int i = 0; i < 10000; i++) rooms.push_back(c.open(1, 2, 10, 0));
  const size_t full = c.memory_bytes();
  EXPECT_GT(full, empty + 10000 * 48);
  EXPECT_LT(full, empty + 10000 * 120);
  for (uint64_t r : rooms) c.advance(r, RoomEvent::kFinished, 1);
  // Records are reused: the same number of rooms again needs no more memory.
  for (int i = 0; i < 10000; i++) c.open(1, 2, 10, 2);
  EXPECT_LE(c.memory_bytes(), full);
}

}  // namespace
