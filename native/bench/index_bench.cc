// KV index benchmarks (npm run bench:native): find_matches latency for a 4,096-token query
// against an index of about 1 M blocks over 64 workers, KV events applied per second, the
// combined event + lookup block throughput, and index memory per (block, worker) pair.
//
// The index is the fleet of fleet.h; queries are whole conversations, so the walk goes 256
// blocks deep through a 16-40-holder prefix and 1-2 holders after it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "bench/fleet.h"
#include "core/block_hash.h"
#include "core/kv_index.h"

namespace {

using kvgate::KvIndex;

using namespace kvgate::bench;

struct Fleet {
  KvIndex index{kBs};
  Conversations conv;
  size_t build_ms = 0;
};

// Stores `blocks` pages of `tokens` for `unit` under the root (engine hashes base + block).
void store_pages(KvIndex& index, uint32_t unit, const uint32_t* tokens, size_t blocks, int64_t base) {
  for (size_t b = 0; b < blocks; b++) {
    const int64_t engine = base + static_cast<int64_t>(b);
    const int64_t parent = engine - 1;
    index.apply_stored(unit, b == 0 ? nullptr : &parent, tokens + b * kBs, kBs, &engine, 1);
  }
}

Fleet& fleet() {
  static const std::unique_ptr<Fleet> f = [] {
    auto f = std::make_unique<Fleet>();
    const auto t0 = std::chrono::steady_clock::now();
    f->conv = build_fleet([&](uint32_t worker, const int64_t* parent, const uint32_t* tokens, int64_t engine) {
      f->index.apply_stored(worker, parent, tokens, kBs, &engine, 1);
    });
    f->build_ms = static_cast<size_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
    return f;
  }();
  return *f;
}

void percentiles(benchmark::State& state, std::vector<double>& ns) {
  std::sort(ns.begin(), ns.end());
  state.counters["p50_us"] = ns[ns.size() / 2] / 1000;
  state.counters["p99_us"] = ns[ns.size() * 99 / 100] / 1000;
}

// find_matches on precomputed sequence hashes (the index alone), random conversations.
void BM_FindMatches_1M_64w_256blocks(benchmark::State& state) {
  Fleet& f = fleet();
  std::vector<kvgate::UnitDepth> out;
  std::vector<double> ns;
  std::mt19937 rng(1);
  size_t units = 0;
  for (auto _ : state) {
    const auto& q = f.conv.seq[rng() % kConversations];
    const auto t0 = std::chrono::steady_clock::now();
    f.index.match(q.data(), q.size(), &out);
    ns.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
    units += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  percentiles(state, ns);
  state.counters["units_matched"] = static_cast<double>(units) / static_cast<double>(state.iterations());
  state.counters["block_ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kConversationBlocks, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FindMatches_1M_64w_256blocks);

// KV events: a worker caches a new 64-block sequence under a system prompt (64 one-page
// stored events, each hashed by the router) and later evicts it (one removed event of 64
// blocks). Counts stored + removed blocks.
void BM_ApplyEvents_StoreEvict(benchmark::State& state) {
  Fleet& f = fleet();
  std::mt19937 rng(3);
  std::vector<std::vector<uint32_t>> pool;
  for (int i = 0; i < 64; i++) pool.push_back(random_tokens(rng, 64 * kBs));
  std::vector<int64_t> engine(64);
  int64_t next = int64_t{3} << 40;
  for (auto _ : state) {
    const uint32_t s = rng() % kSystemPrompts;
    const uint32_t unit = system_holder(s, rng() % kSystemHolders);
    const auto& t = pool[rng() % pool.size()];
    for (uint32_t b = 0; b < 64; b++) {
      engine[b] = next++;
      const int64_t parent = b == 0 ? system_tail(s) : engine[b - 1];
      f.index.apply_stored(unit, &parent, t.data() + b * kBs, kBs, &engine[b], 1);
    }
    f.index.apply_removed(unit, engine.data(), engine.size());
  }
  state.counters["block_ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 128, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ApplyEvents_StoreEvict);

// Combined: per request, one find_matches of a 256-block conversation, then the serving
// worker stores 32 new blocks (one-page events) and evicts 32 (the oldest it stored).
// Block ops = 256 looked up + 32 stored + 32 removed.
void BM_Combined_EventsAndLookups(benchmark::State& state) {
  Fleet& f = fleet();
  std::mt19937 rng(4);
  std::vector<kvgate::UnitDepth> out;
  const auto tokens = random_tokens(rng, 32 * kBs * 16);
  // The last 64 stored chains, evicted oldest first.
  constexpr size_t kRing = 64;
  std::vector<std::vector<int64_t>> ring(kRing, std::vector<int64_t>(32));
  std::vector<uint32_t> ring_unit(kRing);
  size_t stored = 0;
  int64_t next = int64_t{4} << 40;
  for (auto _ : state) {
    const uint32_t c = rng() % kConversations;
    f.index.match(f.conv.seq[c].data(), kConversationBlocks, &out);
    const uint32_t unit = out.empty() ? 0 : out[0].unit;
    const uint32_t* t = tokens.data() + (rng() % 16) * 32 * kBs;
    std::vector<int64_t>& engine = ring[stored % kRing];
    if (stored >= kRing) f.index.apply_removed(ring_unit[stored % kRing], engine.data(), 32);
    for (uint32_t b = 0; b < 32; b++) {
      engine[b] = next++;
      f.index.apply_stored(unit, b == 0 ? nullptr : &engine[b - 1], t + b * kBs, kBs, &engine[b], 1);
    }
    ring_unit[stored % kRing] = unit;
    stored++;
  }
  state.counters["block_ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * (256 + 32 + 32), benchmark::Counter::kIsRate);
  // Leave the index as it was for later benchmarks.
  for (size_t i = 0; i < std::min(stored, kRing); i++) f.index.apply_removed(ring_unit[i], ring[i].data(), 32);
}
BENCHMARK(BM_Combined_EventsAndLookups);

// Memory: bytes per (block, worker) pair of the fleet index, and of an index where every
// block has a single holder (the worst case: nothing shared).
void BM_Memory_BytesPerPair(benchmark::State& state) {
  Fleet& f = fleet();
  KvIndex single(kBs);
  std::mt19937 rng(5);
  const auto t = random_tokens(rng, 1024 * kBs);
  for (auto _ : state) {
    // 1 M single-holder blocks: 1,024 distinct 1,024-block chains spread over 64 workers.
    for (uint32_t c = 0; c < 1024; c++) {
      std::vector<uint32_t> p = t;
      p[0] = 200000 + c;  // a distinct first token makes a distinct chain
      store_pages(single, c % kWorkers, p.data(), 1024, int64_t{c} << 20);
    }
  }
  const kvgate::IndexStats fs = f.index.stats(), ss = single.stats();
  state.counters["fleet_blocks"] = static_cast<double>(fs.blocks);
  state.counters["fleet_pairs"] = static_cast<double>(fs.pairs);
  state.counters["fleet_bytes_per_pair"] = static_cast<double>(fs.bytes) / static_cast<double>(fs.pairs);
  state.counters["fleet_build_ms"] = static_cast<double>(f.build_ms);
  state.counters["single_blocks"] = static_cast<double>(ss.blocks);
  state.counters["single_bytes_per_pair"] = static_cast<double>(ss.bytes) / static_cast<double>(ss.pairs);
}
BENCHMARK(BM_Memory_BytesPerPair)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
