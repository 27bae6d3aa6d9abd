// The transfer coordinator in C++ (the cost under the JS binding): whole room lifecycles
// (open, PrefillDone, FirstDecodeToken, Finished) with N rooms in flight at mixed stages, the
// cost of poll() with N rooms in flight when nothing is due and when rooms time out, and the
// memory per room in flight (memory_bytes() / in_flight()).
#include <benchmark/benchmark.h>

#include <vector>

#include "core/transfer_coordinator.h"

namespace {

using kvgate::CoordinatorConfig;
using kvgate::ExpiredRoom;
using kvgate::RoomEvent;
using kvgate::TransferCoordinator;

// Flag-like timeouts: 30 s to finish the prefill, 10 s for the transfer, 10 min of decode.
CoordinatorConfig serving_config() {
  CoordinatorConfig c;
  c.timeout_ms[0] = 30'000;
  c.timeout_ms[1] = 10'000;
  c.timeout_ms[2] = 600'000;
  c.seed = 1;
  return c;
}

// Each iteration opens a room and moves three older ones on: the room opened N/3 ago gets
// PrefillDone, 2N/3 ago FirstDecodeToken, N ago Finished. So N rooms stay in flight, a third
// in each state, every step moving a deadline on the wheel. One poll per 100 rooms (at 1 µs
// per room on the clock: a poll per 100 µs, nothing due).
void BM_RoomLifecycle(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  TransferCoordinator c(serving_config());
  std::vector<uint64_t> ring(n);
  std::vector<ExpiredRoom> expired;
  double now = 0;
  size_t i = 0;
  for (; i < n; i++) {
    ring[i] = c.open(static_cast<uint32_t>(i % 8), static_cast<uint32_t>(8 + i % 8), 4096, now);
    if (i >= n / 3) c.advance(ring[i - n / 3], RoomEvent::kPrefillDone, now);
    if (i >= 2 * n / 3) c.advance(ring[i - 2 * n / 3], RoomEvent::kFirstDecodeToken, now);
  }
  for (auto _ : state) {
    now += 0.001;
    const size_t k = i % n;
    c.advance(ring[k], RoomEvent::kFinished, now);
    c.advance(ring[(i - n / 3) % n], RoomEvent::kPrefillDone, now);
    c.advance(ring[(i - 2 * n / 3) % n], RoomEvent::kFirstDecodeToken, now);
    ring[k] = c.open(static_cast<uint32_t>(i % 8), static_cast<uint32_t>(8 + i % 8), 4096, now);
    if (i % 100 == 0) c.poll(now, &expired);
    i++;
  }
  if (!expired.empty()) state.SkipWithError("a room timed out");
  state.SetItemsProcessed(state.iterations());  // rooms through their whole life
  state.counters["in_flight"] = static_cast<double>(c.in_flight());
  state.counters["bytes_per_room"] = static_cast<double>(c.memory_bytes()) / static_cast<double>(c.in_flight());
}
BENCHMARK(BM_RoomLifecycle)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

// poll() every tick (10 ms) with N decoding rooms in flight (due in 600 s), nothing due: the
// frontend's steady state. 50,000 polls (500 s of clock) stay inside the wheel's revolution, so
// no poll looks at a room: the cost is one slot per tick whatever N is.
void BM_PollNothingDue(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const CoordinatorConfig cfg = serving_config();
  TransferCoordinator c(cfg);
  for (size_t i = 0; i < n; i++) {
    const double t = static_cast<double>(i % 1000);
    c.advance(c.open(1, 2, 4096, t), RoomEvent::kFirstDecodeToken, t);
  }
  std::vector<ExpiredRoom> expired;
  double now = 1000;
  for (auto _ : state) {
    now += cfg.tick_ms;
    c.poll(now, &expired);
  }
  if (!expired.empty()) state.SkipWithError("a room timed out");
  state.counters["records_per_poll"] =
      static_cast<double>(c.poll_work().records) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_PollNothingDue)->Arg(1'000)->Arg(1'000'000)->Iterations(50'000);

// Rooms timing out: N rooms with deadlines spread over 1 s, polled every ms until all are
// gone (then reopened, untimed). Items: rooms expired.
void BM_PollExpiring(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  CoordinatorConfig cfg = serving_config();
  TransferCoordinator c(cfg);
  std::vector<ExpiredRoom> expired;
  double now = 0;
  size_t total = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < n; i++) c.open(1, 2, 4096, now + static_cast<double>(i % 1000));
    now += cfg.timeout_ms[0];
    state.ResumeTiming();
    for (int t = 0; t < 1000; t++) {
      expired.clear();
      c.poll(now + t, &expired);
      total += expired.size();
    }
    now += 1000;
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
}
BENCHMARK(BM_PollExpiring)->Arg(10'000)->Arg(100'000);

}  // namespace
