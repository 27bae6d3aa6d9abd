// The scheduler (Dynamo 2026-04 cost and selection, dynamo.md §2.8.1), the active-sequence
// bookkeeping (§2.7), and the router that combines them with the index.
#include "core/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "core/active_sequences.h"
#include "core/block_hash.h"
#include "core/kv_router.h"
#include "tests/msgpack_writer.h"

namespace {

using kvgate::ActiveSequences;
using kvgate::BatchResult;
using kvgate::Candidate;
using kvgate::KvEventError;
using kvgate::KvIndex;
using kvgate::KvRouter;
using kvgate::Policy;
using kvgate::PrefixTable;
using kvgate::Rng;
using kvgate::RouterConfig;
using kvgate::RouteResult;
using kvgate::RouteStatus;
using kvgate::UnitDepth;
using kvgate::UnitInfo;
using kvgate::UnitScore;

TEST(Rng, IsSplitMix64) {
  // Published SplitMix64 outputs for seed 0.
  Rng rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.next(), 0x06C45D188009454FULL);
  Rng u(5);
  for (int i = 0; i < 1000; i++) {
    const double x = u.uniform();
    ASSERT_GE(x, 0.0);
    ASSERT_LT(x, 1.0);
    ASSERT_LT(u.below(7), 7u);
  }
}

TEST(KvCost, DocsExample) {
  // router-concepts.md, weight 1.0, a 10-block request: W1 cached 2 / prefill 8 / decode 10,
  // W2 5 / 5 / 5, W3 8 / 2 / 9 → costs 18, 10, 11, W2 chosen.
  const uint32_t bs = 16, isl = 160;
  Candidate w1{2, 0, 0, 0, 0}, w2{5, 5, 0, 0, 0}, w3{8, 1, 0, 0, 0};
  const double logits[] = {kvgate::kv_logit(w1, isl, bs, 1.0), kvgate::kv_logit(w2, isl, bs, 1.0),
                           kvgate::kv_logit(w3, isl, bs, 1.0)};
  EXPECT_DOUBLE_EQ(logits[0], 18);
  EXPECT_DOUBLE_EQ(logits[1], 10);
  EXPECT_DOUBLE_EQ(logits[2], 11);
  const uint64_t trees[] = {0, 0, 0};
  Rng rng(1);
  EXPECT_EQ(kvgate::select_kv(logits, trees, 3, 0.0, rng), 1u);
}

TEST(KvCost, Terms) {
  const uint32_t bs = 16;
  // Load already on the unit adds up: 32 prefill tokens = 2 blocks, 7 active blocks.
  Candidate c{0, 0, 7, 32, 0};
  // isl 40 → 40/16 = 2.5 new prefill blocks, ceil(40/16) = 3 new decode blocks.
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 1.0), (32 + 40) / 16.0 + 7 + 3);
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 2.5), 2.5 * (72 / 16.0) + 10);
  // Overlap: 2 cached blocks leave 8 tokens to prefill; 2 blocks already active.
  c.overlap = 2;
  c.active_overlap = 2;
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 1.0), (32 + 8) / 16.0 + 7 + 1);
  // Weight 0 (a decode pool): only decode blocks count.
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 0.0), 8);
  EXPECT_DOUBLE_EQ(kvgate::load_blocks(c, bs), 7 + 2);
}

TEST(SelectKv, TiesGoToTheSmallestTreeThenAtRandom) {
  const double logits[] = {5, 3, 3, 3, 4};
  const uint64_t trees[] = {0, 9, 2, 2, 0};
  std::map<size_t, int> seen;
  for (uint64_t seed = 0; seed < 400; seed++) {
    Rng rng(seed);
    seen[kvgate::select_kv(logits, trees, 5, 0.0, rng)]++;
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[2], 150);
  EXPECT_GT(seen[3], 150);
  // A unique minimum draws nothing from the generator.
  const double one[] = {2, 1};
  const uint64_t t2[] = {0, 0};
  Rng a(9), b(9);
  EXPECT_EQ(kvgate::select_kv(one, t2, 2, 0.0, a), 1u);
  EXPECT_EQ(a.next(), b.next());
}

TEST(SelectKv, TemperatureSamplesTheSoftmax) {
  const double logits[] = {10, 12, 14};
  const uint64_t trees[] = {0, 0, 0};
  const double t = 0.5;
  // p_i ∝ exp(-(logit_i / range) / T), range = 4.
  double w[3], sum = 0;
  for (int i = 0; i < 3; i++) sum += w[i] = std::exp(-(logits[i] / 4) / t);
  int counts[3] = {0, 0, 0};
  Rng rng(2024);
  const int n = 20000;
  for (int k = 0; k < n; k++) counts[kvgate::select_kv(logits, trees, 3, t, rng)]++;
  for (int i = 0; i < 3; i++) EXPECT_NEAR(counts[i] / double(n), w[i] / sum, 0.02) << i;
  // Equal logits: uniform.
  const double flat[] = {3, 3, 3, 3};
  const uint64_t t4[] = {0, 0, 0, 0};
  int c4[4] = {0, 0, 0, 0};
  for (int k = 0; k < 8000; k++) c4[kvgate::select_kv(flat, t4, 4, 1.0, rng)]++;
  for (int i = 0; i < 4; i++) EXPECT_NEAR(c4[i] / 8000.0, 0.25, 0.03);
}

TEST(SelectLoad, LeastLoadedAndPowerOfTwo) {
  const double loads[] = {4, 1, 3, 1};
  std::map<size_t, int> seen;
  Rng rng(3);
  for (int k = 0; k < 400; k++) seen[kvgate::select_least_loaded(loads, 4, rng)]++;
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 150);
  EXPECT_GT(seen[3], 150);
  // Power of two never picks the single most loaded (it always has a less loaded rival),
  // and reaches every other candidate.
  std::map<size_t, int> p2;
  for (int k = 0; k < 2000; k++) p2[kvgate::select_power_of_two(loads, 4, rng)]++;
  EXPECT_EQ(p2.count(0), 0u);
  EXPECT_EQ(p2.size(), 3u);
  EXPECT_EQ(kvgate::select_power_of_two(loads, 1, rng), 0u);
}

std::vector<uint64_t> seqs(uint64_t base, size_t n) {
  std::vector<uint64_t> s;
  for (size_t i = 0; i < n; i++) s.push_back(base + i);
  return s;
}

TEST(ActiveSequences, SharedBlocksCountOncePerUnit) {
  ActiveSequences a;
  const auto x = seqs(100, 4);
  ASSERT_EQ(a.add(1, 0, x.data(), 4, true, 70), ActiveSequences::AddStatus::kOk);
  ASSERT_EQ(a.add(2, 0, x.data(), 2, false, 30), ActiveSequences::AddStatus::kOk);
  ASSERT_EQ(a.add(3, 1, x.data(), 3, false, 48), ActiveSequences::AddStatus::kOk);
  EXPECT_EQ(a.add(2, 1, x.data(), 1, false, 1), ActiveSequences::AddStatus::kDuplicate);
  EXPECT_EQ(a.load(0).active_blocks, 5u);  // 4 distinct + 1 partial
  EXPECT_EQ(a.load(0).prefill_tokens, 100u);
  EXPECT_EQ(a.load(0).requests, 2u);
  EXPECT_EQ(a.load(1).active_blocks, 3u);
  std::vector<UnitDepth> m;
  a.match(x.data(), 4, &m);
  std::map<uint32_t, uint32_t> mm;
  for (auto& d : m) mm[d.unit] = d.depth;
  EXPECT_EQ(mm, (std::map<uint32_t, uint32_t>{{0, 4}, {1, 3}}));

  EXPECT_TRUE(a.mark_prefill_done(1));
  EXPECT_FALSE(a.mark_prefill_done(1));
  EXPECT_EQ(a.load(0).prefill_tokens, 30u);
  EXPECT_TRUE(a.free(1));
  EXPECT_FALSE(a.free(1));  // idempotent
  EXPECT_FALSE(a.mark_prefill_done(1));
  EXPECT_EQ(a.load(0).active_blocks, 2u);
  EXPECT_EQ(a.load(0).prefill_tokens, 30u);
  EXPECT_TRUE(a.free(2));  // freed before its first token: its prefill leaves too
  EXPECT_EQ(a.load(0).active_blocks, 0u);
  EXPECT_EQ(a.load(0).prefill_tokens, 0u);
  a.remove_unit(1);
  EXPECT_EQ(a.requests(), 0u);
  EXPECT_EQ(a.load(1).active_blocks, 0u);
  EXPECT_FALSE(a.free(3));
  // Unknown units are idle.
  EXPECT_EQ(a.load(77).requests, 0u);
}

TEST(ActiveSequences, CommonPrefixIsTheRequestsLeadingBlocksOfTheQuery) {
  ActiveSequences a;
  const auto x = seqs(100, 9);
  auto y = x;
  y[5] = 999;  // diverges at block 5 (chained hashes differ from there on)
  for (size_t i = 6; i < y.size(); i++) y[i] = 1000 + i;
  ASSERT_EQ(a.add(1, 0, x.data(), x.size(), false, 0), ActiveSequences::AddStatus::kOk);
  ASSERT_EQ(a.add(2, 0, x.data(), 3, false, 0), ActiveSequences::AddStatus::kOk);
  for (size_t n = 0; n <= x.size(); n++) EXPECT_EQ(a.common_prefix(1, x.data(), n), n);
  EXPECT_EQ(a.common_prefix(1, y.data(), y.size()), 5u);
  EXPECT_EQ(a.common_prefix(1, y.data(), 4), 4u);
  EXPECT_EQ(a.common_prefix(2, y.data(), y.size()), 3u);  // the request is shorter
  const auto other = seqs(5000, 9);                       // shares no block
  EXPECT_EQ(a.common_prefix(1, other.data(), other.size()), 0u);
  EXPECT_EQ(a.common_prefix(7, x.data(), x.size()), 0u);  // unknown request
  ASSERT_TRUE(a.free(1));
  EXPECT_EQ(a.common_prefix(1, x.data(), x.size()), 0u);
}

TEST(ActiveSequences, AUnitTakesAsManyRequestsAsABlockTakesHolds) {
  // Every request of one prompt on one unit holds its blocks once more: the unit takes
  // kMaxCount of them (the first a tail, its blocks nodes once the second shares them) and
  // refuses the next; freeing them all returns its load to exactly zero.
  ActiveSequences a;
  const auto x = seqs(78, 3);
  for (uint64_t id = 1; id <= ActiveSequences::kMaxRequestsPerUnit; id++) {
    ASSERT_EQ(a.add(id, 0, x.data(), x.size(), id == 1, 5), ActiveSequences::AddStatus::kOk) << id;
  }
  EXPECT_EQ(a.add(0, 0, x.data(), x.size(), false, 5), ActiveSequences::AddStatus::kUnitFull);
  EXPECT_EQ(a.load(0).active_blocks, 4u);  // 3 distinct + 1 partial
  EXPECT_EQ(a.common_prefix(1, x.data(), x.size()), 3u);
  for (uint64_t id = 1; id <= ActiveSequences::kMaxRequestsPerUnit; id++) ASSERT_TRUE(a.free(id));
  EXPECT_EQ(a.load(0).active_blocks, 0u);
  EXPECT_EQ(a.load(0).prefill_tokens, 0u);
  EXPECT_EQ(a.load(0).requests, 0u);
  std::vector<UnitDepth> m;
  a.match(x.data(), x.size(), &m);
  EXPECT_TRUE(m.empty());
}

TEST(ActiveSequences, TailsAndTheirPromotionAgreeWithNaiveModel) {
  // Prompts are random walks down a binary tree of blocks (block i's hash names the whole
  // path to it, as a chained hash does), so requests share prefixes of every length: tails
  // are promoted at every depth, from block 0 on, on the same unit and across units. After
  // every add and free: each unit's load, match() and match_past_common() of random queries
  // (with the units it leaves out read as holds_any() says), common_prefix() of every live
  // request, and that add() names the other unit whose holds_any() it turned on.
  for (uint64_t seed = 1; seed <= 6; seed++) {
    std::mt19937_64 rng(seed);
    constexpr uint32_t kUnits = 6;
    const auto walk = [&](size_t len) {
      std::vector<uint64_t> p(len);
      uint64_t h = 0;
      for (size_t i = 0; i < len; i++) p[i] = h = h * 4 + 1 + rng() % (i == 0 ? 3 : 2);
      return p;
    };
    struct Request {
      std::vector<uint64_t> blocks;
      uint32_t unit;
      bool partial;
    };
    ActiveSequences a;
    std::map<uint64_t, Request> live;
    const auto naive_depth = [&](uint32_t u, const std::vector<uint64_t>& q) {
      uint32_t best = 0;
      for (auto& [id, r] : live) {
        if (r.unit != u) continue;
        uint32_t d = 0;
        while (d < r.blocks.size() && d < q.size() && r.blocks[d] == q[d]) d++;
        best = std::max(best, d);
      }
      return best;
    };
    const auto check = [&](const char* what) {
      for (uint32_t u = 0; u < kUnits; u++) {
        std::set<uint64_t> distinct;
        uint64_t partial = 0;
        for (auto& [id, r] : live) {
          if (r.unit != u) continue;
          distinct.insert(r.blocks.begin(), r.blocks.end());
          partial += r.partial;
        }
        ASSERT_EQ(a.load(u).active_blocks, distinct.size() + partial) << what << ", unit " << u;
      }
      for (int k = 0; k < 4; k++) {
        const auto q = walk(1 + rng() % 12);
        std::vector<UnitDepth> got;
        a.match(q.data(), q.size(), &got);
        std::map<uint32_t, uint32_t> m;
        for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << what << ": unit listed twice";
        std::vector<UnitDepth> past;
        const size_t base = a.match_past_common(q.data(), q.size(), &past);
        std::map<uint32_t, uint32_t> pm;
        for (auto& g : past) {
          ASSERT_TRUE(pm.emplace(g.unit, g.depth).second) << what << ": unit listed twice past the base";
          ASSERT_GT(g.depth, base) << what;
        }
        for (uint32_t u = 0; u < kUnits; u++) {
          const uint32_t want = naive_depth(u, q);
          ASSERT_EQ(m.count(u) ? m[u] : 0, want) << what << ", match, unit " << u;
          const uint32_t at_base = a.holds_any(u) ? static_cast<uint32_t>(base) : 0;
          ASSERT_EQ(pm.count(u) ? pm[u] : at_base, want) << what << ", match_past_common, unit " << u;
        }
      }
      for (auto& [id, r] : live) {
        const auto q = walk(1 + rng() % 12);
        uint32_t d = 0;
        while (d < r.blocks.size() && d < q.size() && r.blocks[d] == q[d]) d++;
        ASSERT_EQ(a.common_prefix(id, q.data(), q.size()), d) << what;
        ASSERT_EQ(a.common_prefix(id, r.blocks.data(), r.blocks.size()), r.blocks.size()) << what;
      }
    };
    uint64_t next_id = 1;
    size_t named = 0;  // adds that turned another unit's holds_any() on
    for (int step = 0; step < 400; step++) {
      if (live.size() < 12 && (live.size() < 4 || rng() % 2)) {
        Request r{walk(rng() % 10), static_cast<uint32_t>(rng() % kUnits), rng() % 2 == 0};
        std::vector<bool> before(kUnits);
        for (uint32_t u = 0; u < kUnits; u++) before[u] = a.holds_any(u);
        uint32_t now_holding = 0;
        ASSERT_EQ(a.add(next_id, r.unit, r.blocks.data(), r.blocks.size(), r.partial, 1, &now_holding),
                  ActiveSequences::AddStatus::kOk);
        for (uint32_t u = 0; u < kUnits; u++) {
          if (u == r.unit) continue;
          // Named only when it held nothing in the table and now does; otherwise unchanged.
          if (u == now_holding) ASSERT_FALSE(before[u]) << "seed " << seed << " step " << step;
          ASSERT_EQ(a.holds_any(u), before[u] || u == now_holding) << "seed " << seed << " step " << step;
        }
        named += now_holding != kvgate::U64Map::kNone && now_holding != r.unit;
        live[next_id++] = r;
      } else {
        auto it = live.begin();
        std::advance(it, static_cast<long>(rng() % live.size()));
        std::vector<bool> before(kUnits);
        for (uint32_t u = 0; u < kUnits; u++) before[u] = a.holds_any(u);
        ASSERT_TRUE(a.free(it->first));
        for (uint32_t u = 0; u < kUnits; u++) {
          if (u != it->second.unit) ASSERT_EQ(a.holds_any(u), before[u]) << "seed " << seed << " step " << step;
        }
        live.erase(it);
      }
      check(("seed " + std::to_string(seed) + " step " + std::to_string(step)).c_str());
      if (::testing::Test::HasFailure()) return;
    }
    for (auto& [id, r] : live) ASSERT_TRUE(a.free(id));
    for (uint32_t u = 0; u < kUnits; u++) EXPECT_EQ(a.load(u).active_blocks, 0u);
    EXPECT_GT(named, 3u) << "seed " << seed;
    EXPECT_LT(a.bytes(), 1u << 20);
  }
}

TEST(ActiveSequences, LargeTablesAgreeWithNaiveModel) {
  // Enough requests that the table holds over 32,768 blocks, where add prefetches the
  // blocks ahead (a smaller table skips it): 600 prompts of 256 blocks, each the first
  // 64 blocks of one of 8 system prompts and 192 of its own, on 50 units; requests take a
  // prompt's first blocks (all, or some) and are freed at random. Each unit's load and the
  // matches of a query must follow the model.
  std::mt19937_64 rng(21);
  constexpr uint32_t kUnits = 50;
  std::vector<std::vector<uint64_t>> prompts(600, std::vector<uint64_t>(256));
  for (size_t p = 0; p < prompts.size(); p++) {
    for (size_t i = 0; i < 256; i++) prompts[p][i] = i < 64 ? 1 + (p % 8) * 1000 + i : (p + 1) * 1000000 + i;
  }
  struct Request {
    size_t prompt, blocks;
    uint32_t unit;
    bool partial;
  };
  ActiveSequences a;
  std::map<uint64_t, Request> live;
  auto check_unit = [&](uint32_t u) {
    std::set<uint64_t> distinct;
    uint64_t partial = 0, requests = 0;
    for (auto& [id, r] : live) {
      if (r.unit != u) continue;
      distinct.insert(prompts[r.prompt].begin(), prompts[r.prompt].begin() + static_cast<long>(r.blocks));
      partial += r.partial;
      requests++;
    }
    EXPECT_EQ(a.load(u).active_blocks, distinct.size() + partial) << "unit " << u;
    EXPECT_EQ(a.load(u).requests, requests) << "unit " << u;
  };
  uint64_t next_id = 1;
  size_t large = 0;
  for (int step = 0; step < 1500; step++) {
    if (live.size() < 350 && (live.size() < 300 || rng() % 2)) {
      const Request r{rng() % prompts.size(), rng() % 4 ? 256 : 1 + rng() % 256, static_cast<uint32_t>(rng() % kUnits),
                      rng() % 2 == 0};
      ASSERT_EQ(a.add(next_id, r.unit, prompts[r.prompt].data(), r.blocks, r.partial, 10),
                ActiveSequences::AddStatus::kOk);
      live[next_id++] = r;
      check_unit(r.unit);
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      const uint32_t u = it->second.unit;
      ASSERT_TRUE(a.free(it->first));
      live.erase(it);
      check_unit(u);
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
    if (step % 10 == 0) {
      const std::vector<uint64_t>& q = prompts[rng() % prompts.size()];
      std::map<uint32_t, uint32_t> want;
      for (auto& [id, r] : live) {
        const std::vector<uint64_t>& p = prompts[r.prompt];
        uint32_t d = 0;
        while (d < r.blocks && p[d] == q[d]) d++;
        if (d > 0) want[r.unit] = std::max(want[r.unit], d);
      }
      std::vector<UnitDepth> got;
      a.match(q.data(), q.size(), &got);
      std::map<uint32_t, uint32_t> m;
      for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
      ASSERT_EQ(m, want) << "step " << step;
      std::set<uint64_t> blocks;
      for (auto& [id, r] : live)
        blocks.insert(prompts[r.prompt].begin(), prompts[r.prompt].begin() + static_cast<long>(r.blocks));
      large += blocks.size() > 32768;
    }
  }
  EXPECT_GT(large, 100u);  // most checks ran on a table past the prefetching threshold
  for (auto& [id, r] : live) ASSERT_TRUE(a.free(id));
  for (uint32_t u = 0; u < kUnits; u++) EXPECT_EQ(a.load(u).active_blocks, 0u);
}

// ---- KvRouter ----

TEST(KvCost, OwnWeightCountsThePromptsOwnUncachedBlocksAgain) {
  const uint32_t bs = 16;
  // 32 prefill tokens queued, 7 active blocks; a 40-token prompt with 1 block cached.
  Candidate c{1, 0, 7, 32, 0};
  const double base = kvgate::kv_logit(c, 40, bs, 8.0);
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 0, 0), base);
  // 24 tokens of its own left to compute: 1.5 blocks, at own weight 8.
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 0, 8.0), base + 8 * 1.5);
  // 2 more blocks pending there beyond the cached one: those 32 tokens are computed by
  // their own request (the backlog's shared part), so none of the prompt is its own.
  c.pending_overlap = 3;
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 4.0, 8.0), kvgate::kv_logit(c, 40, bs, 8.0, 4.0));
  // Without pending prefixes the pending blocks are not shared: the 24 tokens count.
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 0, 8.0), base + 8 * 1.5);
  // The shared part is at most the unit's backlog: 8 queued tokens leave 16 of its own.
  c.prefill_tokens = 8;
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 4.0, 2.0), kvgate::kv_logit(c, 40, bs, 8.0, 4.0) + 2 * 1.0);
  // All cached: nothing of its own.
  c = Candidate{3, 0, 7, 32, 0};
  EXPECT_DOUBLE_EQ(kvgate::kv_logit(c, 40, bs, 8.0, 0, 8.0), kvgate::kv_logit(c, 40, bs, 8.0));
}

constexpr uint32_t kBs = 4;

std::vector<uint32_t> prompt(uint32_t stream, size_t tokens) {
  std::vector<uint32_t> t(tokens);
  for (size_t i = 0; i < tokens; i++) t[i] = stream * 1000 + static_cast<uint32_t>(i);
  return t;
}

void store(KvRouter& r, uint32_t worker, uint32_t rank, const std::vector<uint32_t>& t, size_t blocks) {
  std::vector<int64_t> engine;
  for (size_t b = 0; b < blocks; b++) engine.push_back(static_cast<int64_t>(worker * 100000 + b));
  ASSERT_EQ(r.apply_stored(worker, rank, nullptr, t.data(), blocks * kBs, engine.data(), engine.size()),
            KvIndex::Status::kOk);
}

RouterConfig config(Policy p = Policy::kKv) {
  RouterConfig c;
  c.block_size = kBs;
  c.policy = p;
  c.seed = 1;
  return c;
}

TEST(KvRouter, RoutesToTheCachedWorkerAndTracksTheLoad) {
  KvRouter r(config());
  EXPECT_TRUE(r.add_unit(1, 0));
  EXPECT_TRUE(r.add_unit(2, 0));
  EXPECT_TRUE(r.add_unit(2, 1));
  const auto p = prompt(1, 40);  // 10 blocks
  store(r, 2, 1, p, 8);
  RouteResult res;
  ASSERT_EQ(r.route(p.data(), p.size(), 7, 1.0, 0.0, 0, &res), RouteStatus::kOk);
  EXPECT_EQ(res.worker, 2u);
  EXPECT_EQ(res.rank, 1u);
  EXPECT_EQ(res.overlap, 8u);
  EXPECT_EQ(r.route(p.data(), p.size(), 7, 1.0, 0.0, 0, &res), RouteStatus::kDuplicateRequest);

  std::vector<UnitInfo> units;
  r.units(&units);
  ASSERT_EQ(units.size(), 3u);
  EXPECT_EQ(units[2].worker, 2u);
  EXPECT_EQ(units[2].rank, 1u);
  EXPECT_EQ(units[2].load.active_blocks, 10u);
  EXPECT_EQ(units[2].load.prefill_tokens, 8u);  // 40 tokens, 32 cached
  EXPECT_EQ(units[2].cached_blocks, 8u);

  // Scores: the loaded unit now has the request's 10 blocks active (all of them match it).
  std::vector<UnitScore> scores;
  r.score(p.data(), p.size(), 1.0, &scores);
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_EQ(scores[0].worker, 1u);
  EXPECT_DOUBLE_EQ(scores[0].logit, 40 / 4.0 + 10);
  EXPECT_EQ(scores[2].candidate.active_overlap, 10u);
  EXPECT_DOUBLE_EQ(scores[2].logit, (8 + 8) / 4.0 + 10 + 0);

  EXPECT_TRUE(r.mark_prefill_done(7));
  EXPECT_TRUE(r.free(7));
  EXPECT_FALSE(r.free(7));
  EXPECT_EQ(r.stats().active_requests, 0u);
}

TEST(KvRouter, NoCandidatesAndUnitsNamedOnlyByEvents) {
  KvRouter r(config());
  const auto p = prompt(1, 8);
  RouteResult res;
  EXPECT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &res), RouteStatus::kNoWorkers);
  store(r, 5, 0, p, 2);  // indexed, not a candidate
  EXPECT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &res), RouteStatus::kNoWorkers);
  r.add_unit(6, 0);
  ASSERT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &res), RouteStatus::kOk);
  EXPECT_EQ(res.worker, 6u);
  EXPECT_EQ(res.overlap, 0u);
  EXPECT_EQ(r.stats().units, 2u);
  EXPECT_EQ(r.stats().candidates, 1u);
  // Removing the worker forgets its requests too.
  r.remove_worker(6);
  EXPECT_FALSE(r.free(1));
  EXPECT_EQ(r.stats().candidates, 0u);
}

TEST(KvRouter, RemoveAndClearWorkerCoverAllRanks) {
  KvRouter r(config());
  const auto p = prompt(2, 12);
  for (uint32_t rank = 0; rank < 3; rank++) {
    r.add_unit(4, rank);
    store(r, 4, rank, p, 3);
  }
  r.add_unit(9, 0);
  store(r, 9, 0, p, 1);
  std::vector<uint64_t> local(3);
  kvgate::compute_block_hashes(p.data(), p.size(), kBs, local.data());
  std::vector<kvgate::UnitMatch> m;
  r.find_matches(local.data(), 3, &m);
  EXPECT_EQ(m.size(), 4u);
  r.clear_unit(4, 1);
  r.find_matches(local.data(), 3, &m);
  EXPECT_EQ(m.size(), 3u);
  r.clear_worker(4);
  r.find_matches(local.data(), 3, &m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].worker, 9u);
  EXPECT_EQ(r.stats().candidates, 4u);  // clearing keeps candidacy
  r.remove_worker(4);
  EXPECT_EQ(r.stats().candidates, 1u);
  EXPECT_EQ(r.stats().units, 1u);
}

TEST(KvRouter, BusyWorkersArePassedOverWhileAnotherIsFree) {
  for (Policy policy : {Policy::kKv, Policy::kRoundRobin, Policy::kRandom, Policy::kLeastLoaded}) {
    KvRouter r(config(policy));
    r.add_unit(1, 0);
    r.add_unit(2, 0);
    r.add_unit(2, 1);
    const auto p = prompt(3, 40);
    store(r, 2, 1, p, 10);  // worker 2 holds the whole prompt: kv would pick it
    r.set_busy(2, true);
    EXPECT_EQ(r.stats().busy, 2u);  // both its ranks
    uint64_t id = 0;
    for (; id < 8; id++) {
      RouteResult res;
      ASSERT_EQ(r.route(p.data(), p.size(), id, 1.0, 0.0, 0, &res), RouteStatus::kOk);
      EXPECT_EQ(res.worker, 1u);
    }
    // Still a candidate: another frontend's requests are recorded, and it is scored.
    EXPECT_EQ(r.add_routed(p.data(), p.size(), id++, 2, 0, 0), RouteStatus::kOk);
    std::vector<UnitScore> scores;
    r.score(p.data(), p.size(), 1.0, &scores);
    EXPECT_EQ(scores.size(), 3u);
    // Every candidate busy: routed among all of them again.
    r.set_busy(1, true);
    EXPECT_EQ(r.stats().busy, 3u);
    std::set<uint32_t> seen;
    for (uint64_t k = 0; k < 16; k++, id++) {
      RouteResult res;
      ASSERT_EQ(r.route(p.data(), p.size(), id, 1.0, 0.0, 0, &res), RouteStatus::kOk);
      seen.insert(res.worker);
      r.free(id);
    }
    if (policy == Policy::kKv) {
      EXPECT_EQ(seen, (std::set<uint32_t>{2}));  // its cache wins again
    } else {
      EXPECT_EQ(seen.count(2), 1u);
    }
    // Free again; removing a worker drops its mark.
    r.set_busy(1, false);
    r.remove_worker(2);
    r.add_unit(2, 0);
    EXPECT_EQ(r.stats().busy, 0u);
    r.set_busy(7, true);  // unknown: nothing
    EXPECT_EQ(r.stats().busy, 0u);
  }
}

TEST(KvRouter, RoundRobinRandomAndLoadPolicies) {
  {
    KvRouter r(config(Policy::kRoundRobin));
    for (uint32_t w : {3u, 1u, 2u}) r.add_unit(w, 0);
    const auto p = prompt(1, 5);
    std::vector<uint32_t> order;
    for (uint64_t id = 0; id < 6; id++) {
      RouteResult res;
      ASSERT_EQ(r.route(p.data(), p.size(), id, 1, 0, 0, &res), RouteStatus::kOk);
      order.push_back(res.worker);
    }
    EXPECT_EQ(order, (std::vector<uint32_t>{1, 2, 3, 1, 2, 3}));  // candidates sorted by id
  }
  {
    KvRouter r(config(Policy::kLeastLoaded));
    r.add_unit(1, 0);
    r.add_unit(2, 0);
    const auto big = prompt(1, 400), small = prompt(2, 4);
    RouteResult a, b;
    ASSERT_EQ(r.route(big.data(), big.size(), 1, 1, 0, 0, &a), RouteStatus::kOk);
    ASSERT_EQ(r.route(small.data(), small.size(), 2, 1, 0, 0, &b), RouteStatus::kOk);
    EXPECT_NE(a.worker, b.worker);  // the second goes to the idle one
  }
  {
    KvRouter r(config(Policy::kRandom));
    for (uint32_t w = 0; w < 4; w++) r.add_unit(w, 0);
    std::map<uint32_t, int> seen;
    const auto p = prompt(1, 4);
    for (uint64_t id = 0; id < 200; id++) {
      RouteResult res;
      ASSERT_EQ(r.route(p.data(), p.size(), id, 1, 0, 0, &res), RouteStatus::kOk);
      seen[res.worker]++;
      r.free(id);
    }
    EXPECT_EQ(seen.size(), 4u);
  }
}

TEST(KvRouter, LoadSpreadsIdenticalRequests) {
  // Without cache, identical requests go to the unit with the least projected load.
  KvRouter r(config());
  for (uint32_t w = 0; w < 4; w++) r.add_unit(w, 0);
  const auto p = prompt(1, 64);
  std::map<uint32_t, int> seen;
  for (uint64_t id = 0; id < 8; id++) {
    RouteResult res;
    ASSERT_EQ(r.route(p.data(), p.size(), id, 1.0, 0.0, 0, &res), RouteStatus::kOk);
    seen[res.worker]++;
  }
  for (uint32_t w = 0; w < 4; w++) EXPECT_EQ(seen[w], 2) << w;
}

// A burst of one new prefix: 16 prompts of 128 shared blocks plus 8 of their own, routed
// before any KV event. Without pending prefixes they spread; with them they stay together.
std::vector<uint32_t> burst_prompt(uint32_t i) {
  std::vector<uint32_t> t = prompt(7, 128 * kBs);
  const auto own = prompt(100 + i, 8 * kBs);
  t.insert(t.end(), own.begin(), own.end());
  return t;
}

uint32_t busiest_of_burst(double pending_weight) {
  RouterConfig c = config();
  c.overlap_weight = 4;
  c.pending_weight = pending_weight;
  KvRouter r(c);
  for (uint32_t w = 0; w < 8; w++) r.add_unit(w, 0);
  uint32_t seen[8] = {};
  for (uint32_t i = 0; i < 16; i++) {
    const auto p = burst_prompt(i);
    RouteResult res;
    EXPECT_EQ(r.route(p.data(), p.size(), i, 4.0, 0.0, 0, &res), RouteStatus::kOk);
    seen[res.worker]++;
  }
  return *std::max_element(seen, seen + 8);
}

TEST(KvRouter, PendingPrefixesKeepABurstTogether) {
  EXPECT_LE(busiest_of_burst(0), 2u);
  EXPECT_EQ(busiest_of_burst(8), 16u);
}

// bench/README.md's prefill-heavy decision, scaled down: unit 1 caches 32 of the prompt's
// 34 blocks but has another 160-token prompt queued; unit 2 is idle. At overlap weight 8
// both costs are mostly wait (1: 8 x (160 + 8) / 4 + 40 + 34 = 410; 2: 8 x 136 / 4 + 34 =
// 306), so the prompt goes to unit 2 and recomputes its prefix there. Own weight 8 adds the
// prompt's own blocks (2 on unit 1, 34 on unit 2: 426 against 578): it stays with its prefix.
// Units 1 and 2 at overlap weight 8; the prompt (34 blocks) whose first 32 unit 1 caches.
std::vector<uint32_t> own_weight_fleet(KvRouter& r) {
  r.add_unit(1, 0);
  r.add_unit(2, 0);
  auto p = prompt(5, 32 * kBs);
  store(r, 1, 0, p, 32);
  const auto own = prompt(6, 2 * kBs);
  p.insert(p.end(), own.begin(), own.end());
  return p;
}

RouterConfig own_weight_config(double own_weight, bool full_scan) {
  RouterConfig c = config();
  c.overlap_weight = 8;
  c.own_weight = own_weight;
  c.full_scan = full_scan;
  return c;
}

uint32_t own_weight_pick(double own_weight, bool full_scan) {
  KvRouter r(own_weight_config(own_weight, full_scan));
  const auto p = own_weight_fleet(r);
  const auto queued = prompt(7, 160);
  EXPECT_EQ(r.add_routed(queued.data(), queued.size(), 1, 1, 0, 160), RouteStatus::kOk);
  std::vector<UnitScore> scores;
  r.score(p.data(), p.size(), 8.0, &scores);
  EXPECT_EQ(scores.size(), 2u);
  for (const UnitScore& s : scores) {
    EXPECT_DOUBLE_EQ(s.logit, s.worker == 1 ? 410 + 2 * own_weight : 306 + 34 * own_weight);
  }
  RouteResult res;
  EXPECT_EQ(r.route(p.data(), p.size(), 2, 8.0, 0.0, 0, &res), RouteStatus::kOk);
  return res.worker;
}

TEST(KvRouter, OwnWeightKeepsAPromptWithItsCachedPrefixBehindAQueue) {
  for (const bool full_scan : {false, true}) {
    EXPECT_EQ(own_weight_pick(0, full_scan), 2u) << "full scan " << full_scan;
    EXPECT_EQ(own_weight_pick(8, full_scan), 1u) << "full scan " << full_scan;
  }
}

// The same prompt with six 80-token prompts queued on unit 1 (prefill 480 tokens): at own
// weight 8 the wait wins (1: 8 x (480 + 8) / 4 + 120 + 34 + 2 x 8 = 1146; 2: 306 + 34 x 8 =
// 578) and the prompt recomputes its prefix on unit 2. With own queue weight 1 the fleet's six
// prompts before their first token over two units make the own weight 8 x (1 + 6 / 2) = 32
// (1: 1130 + 64 = 1194; 2: 306 + 1088 = 1394): it stays. The weight follows the queue as
// prompts pass their first token (four marked: 8 x 2) and leave (all freed: 8).
TEST(KvRouter, OwnQueueWeightGrowsTheOwnWeightWithTheFleetsPrefillQueue) {
  for (const bool full_scan : {false, true}) {
    for (const double queue_weight : {0.0, 1.0}) {
      RouterConfig c = own_weight_config(8, full_scan);
      c.own_queue_weight = queue_weight;
      KvRouter r(c);
      const auto p = own_weight_fleet(r);
      for (uint64_t id = 1; id <= 6; id++) {
        const auto queued = prompt(static_cast<uint32_t>(10 + id), 80);
        ASSERT_EQ(r.add_routed(queued.data(), queued.size(), id, 1, 0, 80), RouteStatus::kOk);
      }
      auto logits = [&] {
        std::vector<UnitScore> scores;
        r.score(p.data(), p.size(), 8.0, &scores);
        EXPECT_EQ(scores.size(), 2u);
        return std::pair<double, double>{scores[0].logit, scores[1].logit};
      };
      const double w = queue_weight > 0 ? 32 : 8;
      EXPECT_EQ(logits(), (std::pair<double, double>{1130 + 2 * w, 306 + 34 * w}));
      RouteResult res;
      ASSERT_EQ(r.route(p.data(), p.size(), 100, 8.0, 0.0, 0, &res), RouteStatus::kOk);
      EXPECT_EQ(res.worker, queue_weight > 0 ? 1u : 2u)
          << "full scan " << full_scan << ", queue weight " << queue_weight;
      ASSERT_TRUE(r.free(100));
      for (uint64_t id = 1; id <= 4; id++) ASSERT_TRUE(r.mark_prefill_done(id));
      const double w2 = queue_weight > 0 ? 16 : 8;
      EXPECT_EQ(logits(), (std::pair<double, double>{8 * (160 + 8) / 4 + 154 + 2 * w2, 306 + 34 * w2}));
      for (uint64_t id = 1; id <= 6; id++) ASSERT_TRUE(r.free(id));
      EXPECT_EQ(logits(), (std::pair<double, double>{8 * 8 / 4 + 34 + 2 * 8, 306 + 34 * 8}));
    }
  }
}

TEST(KvRouter, PendingBlocksGoWhenStoredFreedTimedOutOrTheirUnitGoes) {
  RouterConfig c = config();
  c.pending_weight = 8;
  c.pending_timeout_ms = 1000;
  KvRouter r(c);
  r.add_unit(1, 0);
  r.add_unit(2, 0);
  const auto p = prompt(3, 40);  // 10 blocks
  RouteResult a, b;
  ASSERT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &a), RouteStatus::kOk);
  EXPECT_EQ(r.stats().pending_requests, 1u);
  EXPECT_EQ(r.stats().pending_blocks, 10u);
  // The same prompt again goes where it is pending, and its prefill counts it as computed.
  ASSERT_EQ(r.route(p.data(), p.size(), 2, 1.0, 0.0, 10, &b), RouteStatus::kOk);
  EXPECT_EQ(b.worker, a.worker);
  EXPECT_EQ(b.overlap, 0u);  // overlap reports cached blocks only
  std::vector<UnitInfo> units;
  r.units(&units);
  EXPECT_EQ(units[a.worker == 1 ? 0 : 1].load.prefill_tokens, 40u);
  EXPECT_EQ(r.stats().pending_blocks, 20u);
  // Stored on another unit: nothing confirmed. Part of it on its own unit: not yet.
  store(r, a.worker == 1 ? 2 : 1, 0, p, 10);
  EXPECT_EQ(r.stats().pending_requests, 2u);
  store(r, a.worker, 0, p, 9);
  EXPECT_EQ(r.stats().pending_requests, 2u);
  // Its last full block stored there: both confirmed.
  store(r, a.worker, 0, p, 10);
  EXPECT_EQ(r.stats().pending_requests, 0u);
  EXPECT_EQ(r.stats().pending_blocks, 0u);
  r.free(1);
  r.free(2);
  // Freed, timed out, unit removed.
  const auto q = prompt(4, 40);
  ASSERT_EQ(r.route(q.data(), q.size(), 3, 1.0, 0.0, 100, &a), RouteStatus::kOk);
  EXPECT_TRUE(r.free(3));
  EXPECT_EQ(r.stats().pending_requests, 0u);
  ASSERT_EQ(r.route(q.data(), q.size(), 4, 1.0, 0.0, 200, &a), RouteStatus::kOk);
  r.expire(1199);
  EXPECT_EQ(r.stats().pending_requests, 1u);
  r.expire(1200);
  EXPECT_EQ(r.stats().pending_requests, 0u);
  EXPECT_EQ(r.stats().active_requests, 1u);  // still active: only its pending blocks went
  ASSERT_EQ(r.route(q.data(), q.size(), 5, 1.0, 0.0, 1300, &b), RouteStatus::kOk);
  r.remove_unit(b.worker, 0);
  EXPECT_EQ(r.stats().pending_requests, 0u);
  EXPECT_EQ(r.stats().pending_blocks, 0u);
}

TEST(KvRouter, PendingOverlapIsTheLongestPendingRequestsNotTheActiveOne) {
  // One unit, so every request lands there. Request 1 (prompt p) is confirmed by its
  // stored event but stays active; requests 2 and 3 share 2 and 5 leading blocks with p and
  // are pending. A query of p then overlaps 8 cached, 8 active and 5 pending blocks.
  RouterConfig c = config();
  c.pending_weight = 8;
  KvRouter r(c);
  r.add_unit(1, 0);
  const auto p = prompt(3, 32);  // 8 blocks
  auto sharing = [&](size_t blocks, uint32_t stream) {
    auto t = prompt(stream, 32);
    std::copy(p.begin(), p.begin() + static_cast<ptrdiff_t>(blocks * kBs), t.begin());
    return t;
  };
  auto pending_overlap = [&]() {
    std::vector<UnitScore> out;
    r.score(p.data(), p.size(), 1.0, &out);
    EXPECT_EQ(out.size(), 1u);
    return out.empty() ? 0u : out[0].candidate.pending_overlap;
  };
  RouteResult res;
  ASSERT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &res), RouteStatus::kOk);
  EXPECT_EQ(pending_overlap(), 8u);
  store(r, 1, 0, p, 8);
  EXPECT_EQ(r.stats().pending_requests, 0u);
  EXPECT_EQ(pending_overlap(), 0u);
  const auto two = sharing(2, 4), five = sharing(5, 5);
  ASSERT_EQ(r.route(two.data(), two.size(), 2, 1.0, 0.0, 0, &res), RouteStatus::kOk);
  EXPECT_EQ(pending_overlap(), 2u);
  ASSERT_EQ(r.route(five.data(), five.size(), 3, 1.0, 0.0, 0, &res), RouteStatus::kOk);
  std::vector<UnitScore> out;
  r.score(p.data(), p.size(), 1.0, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].candidate.overlap, 8u);
  EXPECT_EQ(out[0].candidate.active_overlap, 8u);
  EXPECT_EQ(out[0].candidate.pending_overlap, 5u);
  // Request 1 gone: every request left is pending, and the longest shares 5 blocks.
  ASSERT_TRUE(r.free(1));
  EXPECT_EQ(pending_overlap(), 5u);
  ASSERT_TRUE(r.free(3));
  EXPECT_EQ(pending_overlap(), 2u);
}

TEST(KvRouter, ApproximateModeRecordsRoutedBlocksWithATtl) {
  RouterConfig c = config();
  c.approx = true;
  c.approx_ttl_ms = 1000;
  c.approx_max_blocks = 20;
  KvRouter r(c);
  r.add_unit(1, 0);
  r.add_unit(2, 0);
  const auto p = prompt(1, 32);  // 8 blocks
  RouteResult first, again;
  ASSERT_EQ(r.route(p.data(), p.size(), 1, 1.0, 0.0, 0, &first), RouteStatus::kOk);
  EXPECT_EQ(first.overlap, 0u);
  r.free(1);
  EXPECT_EQ(r.stats().approx_blocks, 8u);
  ASSERT_EQ(r.route(p.data(), p.size(), 2, 1.0, 0.0, 500, &again), RouteStatus::kOk);
  EXPECT_EQ(again.worker, first.worker);  // predicted cache
  EXPECT_EQ(again.overlap, 8u);
  r.free(2);
  // Refreshed at 500: still there at 1200, gone after 1500.
  r.expire(1200);
  EXPECT_EQ(r.stats().approx_blocks, 8u);
  r.expire(1500);
  EXPECT_EQ(r.stats().approx_blocks, 0u);
  EXPECT_EQ(r.stats().index.blocks, 0u);
  // Size cap: 3 distinct prompts of 8 blocks exceed 20 blocks → pruned to 16.
  for (uint64_t id = 10; id < 13; id++) {
    const auto q = prompt(static_cast<uint32_t>(id), 32);
    RouteResult res;
    ASSERT_EQ(r.route(q.data(), q.size(), id, 1.0, 0.0, 2000, &res), RouteStatus::kOk);
  }
  EXPECT_LE(r.stats().approx_blocks, 16u);
  EXPECT_EQ(r.stats().index.pairs, r.stats().approx_blocks);
}

TEST(KvRouter, ApproximateMemoryFollowsTheRecordedBlocksNotTheRequestRate) {
  // One prompt routed 100k times records its blocks once: refreshing a recorded block's
  // TTL adds nothing (it used to queue 24 bytes per block per route: 615 MB per 100k
  // routes of a long prompt). Many distinct prompts stay within approx_max_blocks.
  RouterConfig c = config();
  c.approx = true;
  c.approx_max_blocks = 200;
  KvRouter r(c);
  r.add_unit(1, 0);
  r.add_unit(2, 0);
  const auto p = prompt(3, 64 * kBs + 1);  // 64 blocks and a partial one
  RouteResult res;
  uint64_t bytes = 0;
  for (uint64_t id = 1; id <= 100000; id++) {
    if (id == 100) bytes = r.stats().bytes;  // (after the scratch buffers have grown)
    ASSERT_EQ(r.route(p.data(), p.size(), id, 1.0, 0.0, static_cast<double>(id), &res), RouteStatus::kOk);
    ASSERT_TRUE(r.free(id));
  }
  EXPECT_EQ(r.stats().approx_blocks, 64u);
  EXPECT_EQ(r.stats().bytes, bytes);
  // Distinct prompts: at most the cap plus one prompt recorded at any time; memory stays
  // what the cap needs.
  uint64_t peak = 0;
  for (uint64_t id = 200000; id < 210000; id++) {
    if (id == 201000) bytes = r.stats().bytes;
    const auto q = prompt(static_cast<uint32_t>(id), 16 * kBs);
    ASSERT_EQ(r.route(q.data(), q.size(), id, 1.0, 0.0, 200000, &res), RouteStatus::kOk);
    ASSERT_TRUE(r.free(id));
    ASSERT_LE(r.stats().approx_blocks, 200u + 16u);
    ASSERT_EQ(r.stats().index.pairs, r.stats().approx_blocks);
    peak = std::max<uint64_t>(peak, r.stats().bytes);
  }
  EXPECT_LE(peak, bytes + 16u * 1024);
  // A unit leaving takes its recordings; the rest expire.
  r.remove_worker(1);
  r.expire(1e12);
  EXPECT_EQ(r.stats().approx_blocks, 0u);
  EXPECT_EQ(r.stats().index.blocks, 0u);
}

std::vector<uint8_t> stored_batch(const std::vector<uint32_t>& t, size_t blocks, bool dp_rank, int64_t rank) {
  kvgate::test::MsgpackWriter w;
  w.array(dp_rank ? 3 : 2).f64(1.0).array(static_cast<uint32_t>(blocks + 1));
  for (size_t b = 0; b < blocks; b++) {
    // One page per event, chained by parent, hashes negative like SGLang's signed int64s.
    w.array(7).str("BlockStored").array(1).int_(-1000 - static_cast<int64_t>(b));
    if (b == 0) {
      w.nil();
    } else {
      w.int_(-1000 - static_cast<int64_t>(b) + 1);
    }
    w.array(kBs);
    for (uint32_t i = 0; i < kBs; i++) w.int_(t[b * kBs + i]);
    w.int_(kBs).nil().str("GPU");
  }
  // A host-tier store is not device cache: ignored.
  w.array(7).str("BlockStored").array(1).int_(5).nil().array(kBs);
  for (uint32_t i = 0; i < kBs; i++) w.int_(t[i]);
  w.int_(kBs).nil().str("CPU_PINNED");
  if (dp_rank) w.int_(rank);
  return w.bytes;
}

TEST(KvRouter, AppliesARawSglangBatchOrNothing) {
  KvRouter r(config());
  r.add_unit(3, 0);
  r.add_unit(3, 2);
  const auto p = prompt(7, 20);
  std::vector<uint64_t> local(5);
  kvgate::compute_block_hashes(p.data(), p.size(), kBs, local.data());

  std::vector<uint8_t> bytes = stored_batch(p, 4, true, 2);
  BatchResult out;
  ASSERT_EQ(r.apply_batch(3, 0, bytes.data(), bytes.size(), &out), KvEventError::kOk);
  EXPECT_EQ(out.events, 5u);
  EXPECT_EQ(out.applied, 4u);
  EXPECT_EQ(out.ignored, 1u);
  EXPECT_EQ(out.errors, 0u);
  std::vector<kvgate::UnitMatch> m;
  r.find_matches(local.data(), 5, &m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].worker, 3u);
  EXPECT_EQ(m[0].rank, 2u);  // the batch's dp rank
  EXPECT_EQ(m[0].depth, 4u);

  // Truncated copies of a batch that would clear the unit change nothing.
  kvgate::test::MsgpackWriter clear;
  clear.array(3).f64(2.0).array(1).array(1).str("AllBlocksCleared").int_(2);
  for (size_t cut = 0; cut < clear.bytes.size(); cut++) {
    EXPECT_NE(r.apply_batch(3, 0, clear.bytes.data(), cut, &out), KvEventError::kOk);
  }
  r.find_matches(local.data(), 5, &m);
  EXPECT_EQ(m.size(), 1u);
  ASSERT_EQ(r.apply_batch(3, 0, clear.bytes.data(), clear.bytes.size(), &out), KvEventError::kOk);
  r.find_matches(local.data(), 5, &m);
  EXPECT_TRUE(m.empty());

  // A removal of blocks never stored counts as an error; the batch still applies the rest.
  kvgate::test::MsgpackWriter rm;
  rm.array(2).f64(3.0).array(1).array(3).str("BlockRemoved").array(1).int_(42).str("GPU");
  ASSERT_EQ(r.apply_batch(3, 0, rm.bytes.data(), rm.bytes.size(), &out), KvEventError::kOk);
  EXPECT_EQ(out.errors, 1u);
  EXPECT_GE(r.stats().event_errors, 1u);
}

// Random operations on a router (run under ASan/UBSan in CI): the counters stay consistent
// with each other, and once every worker is gone and every request freed, the index is
// empty and its memory is back near its empty size.
TEST(KvRouter, RandomOperationsKeepCountersConsistentAndFreeEverything) {
  for (uint64_t seed = 1; seed <= 20; seed++) {
    std::mt19937_64 rng(seed);
    RouterConfig c = config(static_cast<Policy>(seed % 5));
    c.block_size = 1 + static_cast<uint32_t>(rng() % 4);
    c.approx = seed % 3 == 0;
    c.approx_ttl_ms = 50;
    c.approx_max_blocks = 64;
    c.temperature = seed % 2 ? 0.0 : 0.7;
    KvRouter r(c);
    const size_t empty_bytes = r.stats().bytes;
    std::vector<uint64_t> live;
    uint64_t next_id = 1;
    double now = 0;
    auto tokens = [&](size_t n) {
      std::vector<uint32_t> t(n);
      for (auto& x : t) x = static_cast<uint32_t>(rng() % 3);  // tiny alphabet: shared prefixes
      return t;
    };
    for (int step = 0; step < 3000; step++) {
      const uint32_t w = static_cast<uint32_t>(rng() % 6), rank = static_cast<uint32_t>(rng() % 2);
      switch (rng() % 10) {
        case 0: r.add_unit(w, rank); break;
        case 1:
        case 2: {
          const auto t = tokens(rng() % 24);
          std::vector<int64_t> h(t.size() / c.block_size + rng() % 2);
          for (auto& x : h) x = static_cast<int64_t>(rng() % 40) - 20;
          const int64_t parent = static_cast<int64_t>(rng() % 40) - 20;
          r.apply_stored(w, rank, rng() % 2 ? &parent : nullptr, t.data(), t.size(), h.data(), h.size());
          break;
        }
        case 3: {
          std::vector<int64_t> h(1 + rng() % 4);
          for (auto& x : h) x = static_cast<int64_t>(rng() % 40) - 20;
          r.apply_removed(w, rank, h.data(), h.size());
          break;
        }
        case 4:
          if (rng() % 8 == 0) {
            if (rng() % 2) {
              r.remove_worker(w);
            } else {
              r.clear_worker(w);
            }
          }
          break;
        case 5:
        case 6:
        case 7: {
          const auto t = tokens(rng() % 40);
          RouteResult res;
          now += static_cast<double>(rng() % 20);
          if (r.route(t.data(), t.size(), next_id, 1.0, c.temperature, now, &res) == RouteStatus::kOk) {
            live.push_back(next_id);
          }
          next_id++;
          break;
        }
        default:
          if (!live.empty()) {
            const size_t i = rng() % live.size();
            if (rng() % 2) r.mark_prefill_done(live[i]);
            r.free(live[i]);
            live.erase(live.begin() + static_cast<ptrdiff_t>(i));
          }
      }
      std::vector<UnitInfo> units;
      r.units(&units);
      uint64_t cached = 0, requests = 0;
      for (const UnitInfo& u : units) {
        cached += u.cached_blocks;
        requests += u.load.requests;
        if (u.load.requests == 0) {
          ASSERT_EQ(u.load.active_blocks, 0u) << "seed " << seed << " step " << step;
          ASSERT_EQ(u.load.prefill_tokens, 0u) << "seed " << seed << " step " << step;
        }
      }
      const kvgate::RouterStats st = r.stats();
      ASSERT_EQ(st.index.pairs, cached) << "seed " << seed << " step " << step;
      ASSERT_EQ(st.active_requests, requests) << "seed " << seed << " step " << step;
      ASSERT_LE(st.index.blocks, st.index.pairs);
      if (c.approx) {
        ASSERT_LE(st.approx_blocks, 64u);
      }
    }
    for (uint64_t id : live) r.free(id);
    for (uint32_t w = 0; w < 6; w++) r.remove_worker(w);
    const kvgate::RouterStats end = r.stats();
    EXPECT_EQ(end.index.blocks, 0u) << seed;
    EXPECT_EQ(end.index.pairs, 0u) << seed;
    EXPECT_EQ(end.active_requests, 0u) << seed;
    EXPECT_EQ(end.approx_blocks, 0u) << seed;
    // What remains: the index's and the active table's one retained node chunk (384 KB each).
    EXPECT_LT(end.bytes, empty_bytes + (1u << 20)) << seed;
  }
}

}  // namespace
