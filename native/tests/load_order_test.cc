// The pruned scan (load_order.h): a KvRouter scoring only matched units plus the least
// loaded of the rest must pick exactly what one scoring every candidate picks, draw for
// draw, over seeded random fleets and operations.
#include "core/load_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/kv_router.h"

namespace {

using kvgate::Candidate;
using kvgate::KvRouter;
using kvgate::LoadOrder;
using kvgate::Policy;
using kvgate::Rng;
using kvgate::RouterConfig;
using kvgate::RouteResult;
using kvgate::RouteStatus;

// Both routers get every operation; every route must agree on status, unit and overlap.
struct Pair {
  KvRouter pruned, full;
  static RouterConfig with_full_scan(RouterConfig c) {
    c.full_scan = true;
    return c;
  }
  explicit Pair(const RouterConfig& c) : pruned(c), full(with_full_scan(c)) {}
};

struct Fleet {
  uint32_t workers, ranks, block_size;
  double weight, pending_weight;
  bool approx;
  double own_weight;
  // Every prompt starts with a system prompt every unit caches (and, after a first round of
  // routes, has active): the pruned scan's base path.
  bool shared = false;
  // The own weight's growth with the fleet's prompts before their first token (they come
  // and go with every route, mark and free below, without a refile).
  double own_queue_weight = 0;
  // Pruned routes; those whose best cost and tree several units share (a draw), and
  // those among them where the tied units carry different loads; and those with a base of
  // cached blocks, and of active ones too.
  size_t routes = 0, ties = 0, mixed_ties = 0, based = 0, both_based = 0;
};

void count_ties(KvRouter& r, const std::vector<uint32_t>& t, double weight, Fleet* f) {
  std::vector<kvgate::UnitScore> s;
  r.score(t.data(), t.size(), weight, &s);
  if (s.empty()) return;
  f->routes++;
  // Every unit holding cached blocks caches the prompt's first one, and every one with
  // blocks in flight has it active (at least one of each).
  bool cached = true, active = true, any_cached = false, any_active = false;
  for (const auto& u : s) {
    any_cached = any_cached || u.candidate.tree_size > 0;
    any_active = any_active || u.candidate.active_blocks > 0;
    cached = cached && (u.candidate.tree_size == 0 || u.candidate.overlap > 0);
    active = active && (u.candidate.active_blocks == 0 || u.candidate.active_overlap > 0);
  }
  f->based += cached && any_cached;
  f->both_based += cached && any_cached && active && any_active;
  double best = s[0].logit;
  for (const auto& u : s) best = std::min(best, u.logit);
  uint64_t tree = UINT64_MAX;
  for (const auto& u : s) {
    if (u.logit == best) tree = std::min(tree, u.candidate.tree_size);
  }
  size_t n = 0;
  bool mixed = false;
  const kvgate::UnitScore* first = nullptr;
  for (const auto& u : s) {
    if (u.logit != best || u.candidate.tree_size != tree) continue;
    n++;
    if (first == nullptr) first = &u;
    mixed = mixed || u.candidate.prefill_tokens != first->candidate.prefill_tokens ||
            u.candidate.active_blocks != first->candidate.active_blocks ||
            u.candidate.overlap != first->candidate.overlap;
  }
  if (n > 1) f->ties++;
  if (n > 1 && mixed) f->mixed_ties++;
}

// One seeded random sequence on a fleet; returns the first disagreement, or "".
std::string run(uint64_t seed, Fleet* f, int steps) {
  std::mt19937_64 g(seed);
  RouterConfig c;
  c.block_size = f->block_size;
  c.policy = Policy::kKv;
  c.overlap_weight = f->weight;
  c.pending_weight = f->pending_weight;
  c.own_weight = f->own_weight;
  c.own_queue_weight = f->own_queue_weight;
  c.pending_timeout_ms = 500;
  c.approx = f->approx;
  c.approx_ttl_ms = 400;
  c.approx_max_blocks = 256;
  c.seed = seed;
  Pair p(c);
  auto both = [&](auto&& op) {
    op(p.pruned);
    op(p.full);
  };
  for (uint32_t w = 0; w < f->workers; w++) {
    for (uint32_t r = 0; r < f->ranks; r++) both([&](KvRouter& k) { k.add_unit(w, r); });
  }
  // Prompts: prefixes of a few documents over a tiny alphabet, so overlaps are common, and
  // short ones, so prefill loads are small and different loads often cost the same.
  std::vector<std::vector<uint32_t>> docs(4);
  const size_t system = f->shared ? (1 + g() % 2) * f->block_size : 0;
  for (auto& d : docs) {
    d.resize(8 * f->block_size);
    for (auto& t : d) t = static_cast<uint32_t>(g() % 3);
    for (size_t i = 0; i < system; i++) d[i] = docs[0][i];
  }
  auto prompt = [&] {
    const auto& d = docs[g() % docs.size()];
    // Shared: mostly past the system prompt (a prompt within it is all base).
    const size_t from = system > 0 && g() % 8 != 0 ? system : 0;
    return std::vector<uint32_t>(d.begin(), d.begin() + static_cast<ptrdiff_t>(from + 1 + g() % (d.size() - from)));
  };
  std::vector<uint64_t> live;
  uint64_t next_id = 1;
  double now = 0;
  if (f->shared) {
    // The system prompt on every unit, then a request on each.
    for (uint32_t w = 0; w < f->workers; w++) {
      for (uint32_t r = 0; r < f->ranks; r++) {
        std::vector<int64_t> h(system / f->block_size);
        for (size_t i = 0; i < h.size(); i++) h[i] = static_cast<int64_t>(w * 1000 + i);
        both([&](KvRouter& k) { k.apply_stored(w, r, nullptr, docs[0].data(), system, h.data(), h.size()); });
      }
    }
    for (uint32_t i = 0; i < f->workers * f->ranks; i++) {
      const auto t = prompt();
      RouteResult a, b;
      const RouteStatus sa = p.pruned.route(t.data(), t.size(), next_id, f->weight, 0, now, &a);
      const RouteStatus sb = p.full.route(t.data(), t.size(), next_id, f->weight, 0, now, &b);
      if (sa != sb || a.worker != b.worker || a.rank != b.rank || a.overlap != b.overlap) {
        return "first round, route " + std::to_string(i) + ": pruned and full scan differ";
      }
      live.push_back(next_id++);
    }
  }
  for (int step = 0; step < steps; step++) {
    const uint32_t w = static_cast<uint32_t>(g() % (f->workers + 1)), r = static_cast<uint32_t>(g() % f->ranks);
    switch (g() % 12) {
      case 0:
        if (g() % 4 == 0) both([&](KvRouter& k) { k.remove_unit(w, r); });
        {
          const bool approx = g() % 8 == 0;
          both([&](KvRouter& k) { k.add_unit(w, r, approx); });
        }
        break;
      case 1:
        if (g() % 4 == 0) both([&](KvRouter& k) { k.clear_unit(w, r); });
        if (g() % 4 == 0) {
          // Busy workers leave the pool route picks from (while another is free).
          const bool busy = g() % 3 != 0;
          both([&](KvRouter& k) { k.set_busy(w, busy); });
        }
        break;
      case 2:
      case 3: {
        const auto t = prompt();
        std::vector<int64_t> h(t.size() / f->block_size);
        for (size_t i = 0; i < h.size(); i++) h[i] = static_cast<int64_t>(w * 1000 + (g() % 2) * 100 + i);
        both([&](KvRouter& k) { k.apply_stored(w, r, nullptr, t.data(), t.size(), h.data(), h.size()); });
        break;
      }
      case 4: {
        const int64_t h = static_cast<int64_t>(w * 1000 + (g() % 2) * 100 + g() % 8);
        both([&](KvRouter& k) { k.apply_removed(w, r, &h, 1); });
        break;
      }
      case 5:
      case 6:
      case 7:
      case 8: {
        const auto t = prompt();
        now += static_cast<double>(g() % 50);
        // Mostly what the pruned scan serves; sometimes a route that takes the full scan on
        // both (another weight, a temperature) to keep the draws in step through it.
        const uint64_t kind = g() % 10;
        const double weight = kind == 0 ? f->weight + 1 : f->weight;
        const double temperature = kind == 1 ? 0.5 : 0;
        if (kind > 1) count_ties(p.full, t, weight, f);
        RouteResult a, b;
        const RouteStatus sa = p.pruned.route(t.data(), t.size(), next_id, weight, temperature, now, &a);
        const RouteStatus sb = p.full.route(t.data(), t.size(), next_id, weight, temperature, now, &b);
        if (sa != sb ||
            (sa == RouteStatus::kOk && (a.worker != b.worker || a.rank != b.rank || a.overlap != b.overlap))) {
          return "step " + std::to_string(step) + ": pruned picked (" + std::to_string(a.worker) + "," +
                 std::to_string(a.rank) + ") overlap " + std::to_string(a.overlap) + ", full scan (" +
                 std::to_string(b.worker) + "," + std::to_string(b.rank) + ") overlap " + std::to_string(b.overlap);
        }
        if (sa == RouteStatus::kOk) live.push_back(next_id);
        next_id++;
        break;
      }
      case 9:
      case 10:
        if (!live.empty()) {
          const uint64_t id = live[g() % live.size()];
          both([&](KvRouter& k) { k.mark_prefill_done(id); });
        }
        break;
      default:
        if (!live.empty()) {
          const size_t i = g() % live.size();
          both([&](KvRouter& k) { k.free(live[i]); });
          live.erase(live.begin() + static_cast<ptrdiff_t>(i));
        }
    }
  }
  return "";
}

TEST(LoadOrder, PrunedScanPicksWhatTheFullScanPicks) {
  const uint32_t sizes[][2] = {{1, 1}, {3, 1}, {8, 2}, {40, 1}, {150, 2}};
  const uint32_t block_sizes[] = {1, 2, 4, 16};
  const double weights[] = {0, 0.5, 1, 3, 8};
  const double pending[] = {0, 0, 4, 16};
  const double own[] = {0, 0, 2, 8};
  size_t routes = 0, ties = 0, mixed_ties = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    std::mt19937_64 g(seed * 7919);
    const auto& size = sizes[g() % 5];
    Fleet f{size[0], size[1], block_sizes[g() % 4], weights[g() % 5], pending[g() % 4], g() % 5 == 0, own[g() % 4]};
    f.own_queue_weight = seed % 2 == 0 ? 1 : 0;
    const std::string err = run(seed, &f, 400);
    ASSERT_EQ(err, "") << "seed " << seed << " (" << f.workers << "x" << f.ranks << " units, bs " << f.block_size
                       << ", weight " << f.weight << ", pending " << f.pending_weight << ", own " << f.own_weight
                       << " x queue " << f.own_queue_weight << ", approx " << f.approx << ")";
    routes += f.routes;
    ties += f.ties;
    mixed_ties += f.mixed_ties;
  }
  // The draws and the cross-load ties (the paths a wrong tie set would fail on) ran.
  EXPECT_GT(routes, 20000u);
  EXPECT_GT(ties, routes / 10);
  EXPECT_GT(mixed_ties, 100u);
  std::printf("%zu pruned routes, %zu tied, %zu across loads\n", routes, ties, mixed_ties);
}

TEST(LoadOrder, PrunedScanPicksWhatTheFullScanPicksWhenEveryUnitSharesTheFirstBlocks) {
  // As above, on fleets where every unit caches a system prompt and has a request in flight
  // sharing it: most candidates sit at that base, taken from the load order per class of
  // holds; events, removals, clears, new and busy units move them between classes.
  const uint32_t sizes[][2] = {{3, 1}, {8, 2}, {40, 1}, {150, 2}};
  const uint32_t block_sizes[] = {1, 2, 4, 16};
  const double weights[] = {0, 0.5, 1, 3, 8};
  const double pending[] = {0, 4, 16};
  const double own[] = {0, 0, 8};
  size_t routes = 0, ties = 0, based = 0, both_based = 0;
  for (uint64_t seed = 1; seed <= 200; seed++) {
    std::mt19937_64 g(seed * 104729);
    const auto& size = sizes[g() % 4];
    Fleet f{size[0],          size[1],      block_sizes[g() % 4], weights[g() % 5],
            pending[g() % 3], g() % 8 == 0, own[g() % 3],         true};
    f.own_queue_weight = seed % 2 == 0 ? 1 : 0;
    const std::string err = run(seed, &f, 300);
    ASSERT_EQ(err, "") << "seed " << seed << " (" << f.workers << "x" << f.ranks << " units, bs " << f.block_size
                       << ", weight " << f.weight << ", pending " << f.pending_weight << ", own " << f.own_weight
                       << " x queue " << f.own_queue_weight << ", approx " << f.approx << ")";
    routes += f.routes;
    ties += f.ties;
    based += f.based;
    both_based += f.both_based;
  }
  EXPECT_GT(based, routes / 2);
  EXPECT_GT(both_based, routes / 10);
  EXPECT_GT(ties, routes / 10);
  std::printf("%zu pruned routes, %zu tied, %zu with a base of cached blocks, %zu and of active ones\n", routes, ties,
              based, both_based);
}

// The tie rules by hand: the least load wins; equal costs from different loads, the
// smallest tree, then one draw over the tie in candidate order, matched or not.
TEST(LoadOrder, SelectsLikeSelectKv) {
  constexpr uint32_t kBs = 2;
  constexpr double kW = 1;
  auto logit = [&](uint64_t pt, uint64_t ab, uint32_t isl) {
    Candidate c;
    c.prefill_tokens = pt;
    c.active_blocks = ab;
    return kv_logit(c, isl, kBs, kW);
  };
  LoadOrder o;
  o.reset(kW, kBs, 6);
  // Loads (w * pt / bs + ab): 0:(2,0)=1  1:(0,1)=1  2:(0,1)=1 tree 5  3:(4,0)=2  4:(0,2)=2  5:(0,3)=3
  o.put(0, 2, 0, 0);
  o.put(1, 0, 1, 0);
  o.put(2, 0, 1, 5);
  o.put(3, 4, 0, 0);
  o.put(4, 0, 2, 0);
  o.put(5, 0, 3, 0);
  EXPECT_EQ(o.buckets(), 6u);
  // Unmatched only: 0 and 1 tie on cost and tree (2 has a larger tree): one draw of two.
  Rng a(9), b(9);
  const uint32_t pick = o.select({}, 4, 0, 0, a);
  EXPECT_EQ(pick, b.below(2) == 0 ? 0u : 1u);
  // A matched unit at the same cost and tree joins the tie in candidate order; a matched
  // member leaves its bucket (it is scored as given).
  Rng c(3), d(3);
  const std::vector<LoadOrder::Scored> matched = {{1, logit(0, 1, 4), 0}, {4, logit(0, 1, 4), 0}};
  const uint32_t k = d.below(3);
  EXPECT_EQ(o.select(matched, 4, 0, 0, c), (std::vector<uint32_t>{0, 1, 4})[k]);
  // A matched unit cheaper than every load wins without a draw.
  Rng e(1), e2(1);
  EXPECT_EQ(o.select({{5, 0.5, 99}}, 4, 0, 0, e), 5u);
  EXPECT_EQ(e.next(), e2.next());
  // Moving a unit refiles it: 0 at load 3 now, so 1 alone holds the best cost and tree.
  o.put(0, 0, 3, 0);
  Rng f(1);
  EXPECT_EQ(o.select({}, 4, 0, 0, f), 1u);
}

// LoadOrder alone against select_kv over every candidate, through random refiles that move
// units alone in their bucket (the bucket moves with them) or into a bucket filled already,
// empty buckets whose ids are reused, and random matched sets: the pick and the draws agree.
// Up to max_units units over `spread` values of each key field (and as many classes, at most
// kClasses): few values make crowded buckets.
void random_moves(uint64_t seed, size_t max_units, uint64_t spread) {
  constexpr uint32_t kBs = 4, kIsl = 20;
  std::mt19937_64 g(seed);
  size_t moves = 0, draws = 0;
  for (int round = 0; round < 300; round++) {
    const size_t n = 1 + g() % max_units;
    const double w = static_cast<double>(g() % 3);
    LoadOrder o;
    o.reset(w, kBs, n);
    std::vector<Candidate> at(n);
    std::vector<uint8_t> holds(n);
    auto file = [&](size_t i) {
      at[i].prefill_tokens = (g() % spread) * kBs;
      at[i].active_blocks = g() % spread;
      at[i].tree_size = g() % spread;
      holds[i] = static_cast<uint8_t>(g() % std::min<uint64_t>(spread, LoadOrder::kClasses));
      o.put(static_cast<uint32_t>(i), at[i].prefill_tokens, at[i].active_blocks, at[i].tree_size, holds[i]);
    };
    for (size_t i = 0; i < n; i++) file(i);
    Candidate base;
    base.overlap = static_cast<uint32_t>(g() % 3);
    base.active_overlap = static_cast<uint32_t>(g() % 3);
    for (int step = 0; step < 40; step++) {
      if (step == 20) {  // emptied (its node pool given back) and filed again from scratch
        o.reset(w, kBs, n);
        for (size_t j = 0; j < n; j++) file(j);
      }
      const size_t i = g() % n;
      file(i);
      moves++;
      // The own weight is the route's (it grows with the fleet's queue): any, at any select.
      const double own = static_cast<double>(g() % 3) * 0.75;
      // Matched units: scored as given, at any overlap past the base.
      std::vector<LoadOrder::Scored> matched;
      std::vector<double> logits(n);
      std::vector<uint64_t> trees(n);
      for (size_t j = 0; j < n; j++) {
        Candidate c = at[j];
        c.overlap = (holds[j] & LoadOrder::kCached) != 0 ? base.overlap : 0;
        c.active_overlap = (holds[j] & LoadOrder::kActive) != 0 ? base.active_overlap : 0;
        if (g() % 3 == 0) {
          c.overlap += static_cast<uint32_t>(g() % 2);
          c.active_overlap += static_cast<uint32_t>(g() % 2);
          c.tree_size += g() % 2;
          matched.push_back({static_cast<uint32_t>(j), kv_logit(c, kIsl, kBs, w, 0, own), c.tree_size});
        }
        logits[j] = kv_logit(c, kIsl, kBs, w, 0, own);
        trees[j] = c.tree_size;
      }
      const uint64_t seed = g();
      Rng a(seed), b(seed);
      const size_t want = kvgate::select_kv(logits.data(), trees.data(), n, 0, b);
      ASSERT_EQ(o.select(matched, kIsl, 0, own, a, base), want) << "round " << round << " step " << step;
      Rng fresh(seed), drawn = b;
      draws += fresh.next() != drawn.next();
      ASSERT_EQ(a.next(), b.next()) << "round " << round << " step " << step << ": draws differ";
    }
  }
  EXPECT_GT(draws, moves / 20);  // ties are common (about one select in ten draws)
  std::printf("%zu refiles, %zu selects that drew\n", moves, draws);
}

TEST(LoadOrder, SelectsLikeSelectKvThroughRandomMoves) {
  // Few loads and trees, so that units often share a bucket (and often leave one alone).
  random_moves(11, 12, 3);
}

TEST(LoadOrder, SelectsLikeSelectKvThroughRandomMovesInCrowdedBuckets) {
  // Up to 60 units on 2 values of each field: buckets of dozens of units, whose members
  // outgrow the two kept in the map node and shrink back, joined and left in any order.
  random_moves(12, 60, 2);
}

// A load whose smallest-tree bucket the request matched whole: the unmatched units of that
// load with a larger tree still hold its best (matched units are scored as given, here at
// weight 0 where an overlap saves nothing, as a unit holding blocks costs).
TEST(LoadOrder, SkipsABucketTheRequestMatchedWhole) {
  LoadOrder o;
  o.reset(0, 4, 3);
  o.put(0, 0, 1, 0);
  o.put(1, 0, 1, 5);
  o.put(2, 0, 2, 0);
  Candidate c;
  c.active_blocks = 1;
  c.overlap = 1;
  c.tree_size = 7;
  Rng g(1);
  // Unit 0, matched, costs as its load does but holds more blocks than unit 1.
  EXPECT_EQ(o.select({{0, kv_logit(c, 8, 4, 0), 7}}, 8, 0, 0, g), 1u);
}

}  // namespace
