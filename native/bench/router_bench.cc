// KvRouter::route in C++ (the cost under the JS binding): hash + match + score + pick +
// record, on the fleet of fleet.h with 64 candidate workers, 32 requests in flight (as
// bench/router/route.bench.ts); the active-sequence bookkeeping alone; and raw SGLang
// msgpack batches applied (parse + hash + index).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "bench/fleet.h"
#include "core/active_sequences.h"
#include "core/kv_router.h"

namespace {

using namespace kvgate::bench;
using kvgate::KvRouter;

struct RouterFleet {
  std::unique_ptr<KvRouter> router;
  Conversations conv;
};

RouterFleet& router_fleet() {
  static RouterFleet* f = [] {
    auto* f = new RouterFleet;
    kvgate::RouterConfig c;
    c.block_size = kBs;
    c.seed = 1;
    f->router = std::make_unique<KvRouter>(c);
    for (uint32_t w = 0; w < kWorkers; w++) f->router->add_unit(w, 0);
    f->conv = build_fleet([&](uint32_t worker, const int64_t* parent, const uint32_t* tokens, int64_t engine) {
      f->router->apply_stored(worker, 0, parent, tokens, kBs, &engine, 1);
    });
    return f;
  }();
  return *f;
}

double ns_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
}

void BM_Route_4096_tokens_64_workers(benchmark::State& state) {
  RouterFleet& f = router_fleet();
  constexpr uint64_t kInFlight = 32;
  std::mt19937 rng(7);
  std::vector<double> route_ns, free_ns;
  uint64_t id = 1'000'000;  // distinct from other runs' ids
  const uint64_t first = id;
  kvgate::RouteResult res;
  std::vector<uint32_t> p(kConversationBlocks * kBs);
  for (auto _ : state) {
    // The prompt as the tokenizer just wrote it: warm in cache.
    p = f.conv.prompts[rng() % kConversations];
    auto t0 = std::chrono::steady_clock::now();
    f.router->route(p.data(), p.size(), id, 1.0, 0.0, 0, &res);
    route_ns.push_back(ns_since(t0));
    if (id - first >= 8) f.router->mark_prefill_done(id - 8);
    if (id - first >= kInFlight) {
      t0 = std::chrono::steady_clock::now();
      f.router->free(id - kInFlight);
      free_ns.push_back(ns_since(t0));
    }
    id++;
  }
  for (uint64_t i = std::max(first, id - kInFlight); i < id; i++) f.router->free(i);
  std::sort(route_ns.begin(), route_ns.end());
  std::sort(free_ns.begin(), free_ns.end());
  state.counters["route_p50_us"] = route_ns[route_ns.size() / 2] / 1000;
  state.counters["route_p99_us"] = route_ns[route_ns.size() * 99 / 100] / 1000;
  if (!free_ns.empty()) state.counters["free_p50_us"] = free_ns[free_ns.size() / 2] / 1000;
}
BENCHMARK(BM_Route_4096_tokens_64_workers);

// The bookkeeping of one request alone: add 256 blocks to a unit, then free them, with 32
// other requests (distinct blocks) active.
void BM_ActiveSequences_AddFree_256_blocks(benchmark::State& state) {
  kvgate::ActiveSequences a;
  std::mt19937_64 rng(9);
  std::vector<std::vector<uint64_t>> chains(64, std::vector<uint64_t>(256));
  for (auto& c : chains)
    for (auto& x : c) x = rng();
  for (uint64_t r = 0; r < 32; r++) a.add(r, static_cast<uint32_t>(r % 64), chains[r].data(), 256, true, 100);
  uint64_t id = 100;
  for (auto _ : state) {
    a.add(id, 5, chains[32 + id % 32].data(), 256, true, 1000);
    a.free(id);
    id++;
  }
  state.counters["blocks/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 512, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ActiveSequences_AddFree_256_blocks);

// The active table of a 10,000-unit fleet with one request in flight per unit, as the
// router-cost bench keeps it (bench/sim/cost_fleets.ts): per iteration the walk a route does
// (match_past_common, its slots prefetched first as hash_prompt does), the request added to
// its unit, after that unit's previous request is freed.
// Arg 0, shared-prefix: 256-block prompts, 64 system prompts of 64 blocks, 4,096
// conversations. Arg 1, Mooncake-like: 23-block prompts whose block 0 every request shares
// (its node has ~10,000 holders).
void BM_ActiveSequences_10000_units(benchmark::State& state) {
  constexpr uint32_t kUnits = 10000;
  const bool mooncake = state.range(0) == 1;
  const size_t blocks = mooncake ? 23 : 256, system = mooncake ? 1 : 64;
  std::mt19937_64 rng(10);
  std::vector<std::vector<uint64_t>> prompts(4096, std::vector<uint64_t>(blocks));
  std::vector<std::vector<uint64_t>> systems(64, std::vector<uint64_t>(system));
  for (auto& sys : systems)
    for (auto& x : sys) x = rng();
  for (auto& p : prompts) {
    const auto& sys = systems[mooncake ? 0 : rng() % 64];
    std::copy(sys.begin(), sys.end(), p.begin());
    for (size_t i = system; i < blocks; i++) p[i] = rng();
  }
  kvgate::ActiveSequences a;
  std::vector<kvgate::UnitDepth> out;
  uint64_t id = 0;
  auto decide = [&] {
    const std::vector<uint64_t>& p = prompts[rng() % prompts.size()];
    for (uint64_t x : p) a.prefetch(x);  // as the router's hash_prompt does
    benchmark::DoNotOptimize(a.match_past_common(p.data(), p.size(), &out));
    if (id >= kUnits) a.free(id - kUnits);  // the unit's previous request: it is idle until this one
    a.add(id, static_cast<uint32_t>(id % kUnits), p.data(), p.size(), true, 1000);
    id++;
  };
  while (id < kUnits) decide();
  for (auto _ : state) decide();
  state.counters["nodes"] = static_cast<double>(a.bytes());
}
BENCHMARK(BM_ActiveSequences_10000_units)->Arg(0)->Arg(1);

// Minimal msgpack for SGLang batches (reference/sglang.md §2.4).
struct Msgpack {
  std::vector<uint8_t> b;
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void array(uint32_t n) {
    if (n < 16) {
      b.push_back(static_cast<uint8_t>(0x90 | n));
    } else {
      b.push_back(0xdc);
      be(n, 2);
    }
  }
  void str(const char* s) {
    const size_t n = std::strlen(s);
    b.push_back(static_cast<uint8_t>(0xa0 | n));
    b.insert(b.end(), s, s + n);
  }
  void i64(int64_t v) {
    b.push_back(0xd3);
    be(static_cast<uint64_t>(v), 8);
  }
  void u32(uint32_t v) {
    b.push_back(0xce);
    be(v, 4);
  }
  void nil() { b.push_back(0xc0); }
};

// One batch caching a 64-page sequence under a system prompt (64 one-page BlockStored
// events, as SGLang publishes them), then one evicting it (a BlockRemoved of 64 hashes).
// Counts stored + removed blocks.
void BM_ApplyBatch_Msgpack_StoreEvict(benchmark::State& state) {
  RouterFleet& f = router_fleet();
  std::mt19937 rng(11);
  constexpr uint32_t kPages = 64;
  const auto tokens = random_tokens(rng, kPages * kBs);
  Msgpack stored, removed;
  const uint32_t s = 3;
  const uint32_t worker = system_holder(s, 0);
  const int64_t base = int64_t{5} << 40;
  stored.array(2);
  stored.b.push_back(0xcb);
  stored.be(0, 8);
  stored.array(kPages);
  for (uint32_t p = 0; p < kPages; p++) {
    stored.array(7);
    stored.str("BlockStored");
    stored.array(1);
    stored.i64(base + p);
    stored.i64(p == 0 ? system_tail(s) : base + p - 1);
    stored.array(kBs);
    for (uint32_t t = 0; t < kBs; t++) stored.u32(tokens[p * kBs + t]);
    stored.u32(kBs);
    stored.nil();
    stored.str("GPU");
  }
  removed.array(2);
  removed.b.push_back(0xcb);
  removed.be(0, 8);
  removed.array(1);
  removed.array(3);
  removed.str("BlockRemoved");
  removed.array(kPages);
  for (uint32_t p = 0; p < kPages; p++) removed.i64(base + p);
  removed.str("GPU");
  kvgate::BatchResult in, out;
  for (auto _ : state) {
    f.router->apply_batch(worker, 0, stored.b.data(), stored.b.size(), &in);
    f.router->apply_batch(worker, 0, removed.b.data(), removed.b.size(), &out);
  }
  if (in.applied != kPages || out.applied != 1) state.SkipWithError("the batches did not apply");
  state.counters["block_ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2 * kPages, benchmark::Counter::kIsRate);
  state.counters["batch_bytes"] = static_cast<double>(stored.b.size());
}
BENCHMARK(BM_ApplyBatch_Msgpack_StoreEvict);

}  // namespace
