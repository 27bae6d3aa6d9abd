// libFuzzer target: the input is a program of transfer-coordinator operations (open, advance,
// poll, state, pair stats, forget a worker) with a moving clock, run against the coordinator
// and a plain std::map of the rooms in flight. Checked after every operation (any failure
// aborts):
//  - open returns a room in [1, 2^room_bits) that no room in flight holds, or 0 exactly when
//    every room is taken;
//  - advance's result and the room's next state follow the transition table; Finished and
//    Failed free the room, and a freed room is unknown to every later call;
//  - poll frees exactly the rooms whose deadline is <= now, each with the state it was in,
//    and visits at most one revolution of the wheel plus the slot it stopped at last time;
//  - in_flight matches the map after every operation, every room's state after each poll; pair stats count the handoffs
//  the map
//    saw, with finite, non-negative gaps and rates.
// At the end every room is finished: nothing is in flight and a poll far ahead finds nothing.
//
// Input layout, one byte per choice (the seeds in corpus/room_apply_fuzz are written so):
//   header   room bits (mod 4: 8, 9, 12, 63), tick (mod 4: 1, 3, 10, 50 ms), the three
//            timeouts (mod 5: 0, 1, 5, 20, 200 ms)
//   op       opcode (mod 6), time step (mod 8: 0, 0.5, 1, 2, 5, 20, 100, a reading 7 ms in
//            the past), then by opcode:
//     0-1    open: prefill (mod 4), decode (mod 4), prompt tokens (x 37)
//     2-3    advance: which room seen so far (mod count + 1; the extra one is never opened), event (mod 4)
//     4      poll (a past reading polls at the present)
//     5      forget worker (mod 4)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include "core/transfer_coordinator.h"

namespace {

using kvgate::CoordinatorConfig;
using kvgate::ExpiredRoom;
using kvgate::PairStats;
using kvgate::RoomEvent;
using kvgate::RoomState;
using kvgate::TransferCoordinator;

void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "room_apply_fuzz.cc:%d: check failed\n", line);
  std::abort();
}
#define check(ok) check_at((ok), __LINE__)

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ == end_; }
  uint8_t byte() { return p_ == end_ ? 0 : *p_++; }
  uint32_t upto(uint32_t max) { return byte() % (max + 1); }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

struct Shadow {
  RoomState state;
  double deadline;  // infinity: none
  uint32_t prefill, decode;
};

constexpr uint32_t kWorkers = 4;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  CoordinatorConfig c;
  static const uint32_t kBits[] = {8, 9, 12, 63};
  static const double kTicks[] = {1, 3, 10, 50};
  static const double kTimeouts[] = {0, 1, 5, 20, 200};
  static const double kSteps[] = {0, 0.5, 1, 2, 5, 20, 100};
  c.room_bits = kBits[in.upto(3)];
  c.tick_ms = kTicks[in.upto(3)];
  for (double& t : c.timeout_ms) t = kTimeouts[in.upto(4)];
  c.seed = 1;
  TransferCoordinator coord(c);
  const uint64_t capacity = (uint64_t{1} << c.room_bits) - 1;

  std::map<uint64_t, Shadow> live;
  std::vector<uint64_t> seen;             // every room opened, in order
  std::map<uint64_t, uint64_t> handoffs;  // (prefill << 32 | decode) -> count
  double now = 1000;
  std::vector<ExpiredRoom> expired;
  auto enter = [&](Shadow& s, RoomState st, double t) {
    s.state = st;
    const double timeout = c.timeout_ms[static_cast<int>(st)];
    s.deadline = timeout > 0 ? t + timeout : INFINITY;
  };

  for (int ops = 0; ops < 512 && !in.done(); ops++) {
    const uint8_t op = in.byte() % 6;
    const uint8_t step = in.byte() % 8;
    double t = now;
    if (step == 7)
      t = now - 7;
    else
      now = t = now + kSteps[step];
    switch (op) {
      case 0:
      case 1: {
        const uint32_t p = in.upto(kWorkers - 1), d = in.upto(kWorkers - 1);
        const uint32_t tokens = in.byte() * 37u;
        const uint64_t room = coord.open(p, d, tokens, t);
        if (live.size() == capacity) {
          check(room == 0);
          break;
        }
        check(room >= 1 && room <= capacity && live.count(room) == 0);
        Shadow s{RoomState::kDispatched, 0, p, d};
        enter(s, RoomState::kDispatched, t);
        live[room] = s;
        seen.push_back(room);
        break;
      }
      case 2:
      case 3: {
        const size_t which = in.byte() % (seen.size() + 1);
        const uint64_t room = which < seen.size() ? seen[which] : capacity + 1;  // never drawn
        const auto ev = static_cast<RoomEvent>(in.upto(3));
        const int got = coord.advance(room, ev, t);
        auto it = live.find(room);
        if (it == live.end()) {
          check(got == TransferCoordinator::kUnknownRoom);
          break;
        }
        Shadow& s = it->second;
        int want = 0;
        if (ev == RoomEvent::kFinished || ev == RoomEvent::kFailed) {
          live.erase(it);
        } else if (ev == RoomEvent::kPrefillDone) {
          if (s.state == RoomState::kDispatched)
            enter(s, RoomState::kPrefillDone, t);
          else if (s.state == RoomState::kPrefillDone)
            want = TransferCoordinator::kNotAllowed;
        } else if (s.state == RoomState::kFirstDecodeToken) {
          want = TransferCoordinator::kNotAllowed;
        } else {
          if (s.state == RoomState::kPrefillDone) handoffs[(uint64_t{s.prefill} << 32) | s.decode]++;
          enter(s, RoomState::kFirstDecodeToken, t);
        }
        check(got == want);
        check(coord.state(room) == (live.count(room) ? static_cast<int>(live[room].state) : -1));
        break;
      }
      case 4: {
        const kvgate::PollWork before = coord.poll_work();
        expired.clear();
        coord.poll(now, &expired);
        check(coord.poll_work().slots - before.slots <= coord.wheel_slots());
        std::map<uint64_t, RoomState> got;
        for (const ExpiredRoom& e : expired) check(got.emplace(e.room, e.state).second);
        for (auto it = live.begin(); it != live.end();) {
          if (it->second.deadline <= now) {
            auto g = got.find(it->first);
            check(g != got.end() && g->second == it->second.state);
            got.erase(g);
            it = live.erase(it);
          } else {
            ++it;
          }
        }
        check(got.empty());  // nothing expired that was not due
        break;
      }
      default: {
        const uint32_t w = in.upto(kWorkers - 1);
        coord.forget_worker(w);
        for (auto it = handoffs.begin(); it != handoffs.end();) {
          if (static_cast<uint32_t>(it->first >> 32) == w || static_cast<uint32_t>(it->first) == w)
            it = handoffs.erase(it);
          else
            ++it;
        }
        break;
      }
    }
    check(coord.in_flight() == live.size());
    // Every room's state after a poll (O(live); per operation it would dominate the run).
    if (op == 4) {
      for (const auto& [room, s] : live) check(coord.state(room) == static_cast<int>(s.state));
    }
    for (uint32_t p = 0; p < kWorkers; p++) {
      for (uint32_t d = 0; d < kWorkers; d++) {
        const PairStats* ps = coord.pair_stats(p, d);
        const auto h = handoffs.find((uint64_t{p} << 32) | d);
        check((ps == nullptr) == (h == handoffs.end()));
        if (ps == nullptr) continue;
        check(ps->handoffs == h->second);
        check(std::isfinite(ps->gap_sum_ms) && ps->gap_sum_ms >= 0 && ps->gap_ewma_ms >= 0);
        check(std::isfinite(ps->tokens_per_ms_ewma) && ps->tokens_per_ms_ewma >= 0);
      }
    }
  }

  for (const auto& [room, s] : live) check(coord.advance(room, RoomEvent::kFinished, now) == 0);
  check(coord.in_flight() == 0);
  expired.clear();
  coord.poll(now + 1e6, &expired);
  check(expired.empty());
  return 0;
}
