// KvRouter::find_matches against a naive model of every unit's cached blocks, on fleets where
// every unit caches the same leading blocks (a system prompt everywhere: the answer is every
// unit, most at that base depth) and where none does, under stores, removals (a unit left
// holding a block without its parent), clears and removed units.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "core/block_hash.h"
#include "core/kv_router.h"

namespace {

using kvgate::KvIndex;
using kvgate::KvRouter;
using kvgate::MatchRows;
using kvgate::RouterConfig;
using kvgate::UnitMatch;

constexpr uint32_t kBs = 4;
constexpr uint32_t kLevels = 8;

using Unit = std::pair<uint32_t, uint32_t>;  // (worker, rank)
using Path = std::vector<uint32_t>;          // the choice at each level: block i's tokens

// The sequence hash of block i of `path`, given its parent's (ignored for block 0).
uint64_t seq_of(const Path& path, size_t i, uint64_t parent_seq) {
  std::vector<uint32_t> tokens(kBs);
  for (uint32_t t = 0; t < kBs; t++) tokens[t] = static_cast<uint32_t>(i) * 100 + path[i] * 10 + t;
  uint64_t chain[2] = {parent_seq, 0};
  kvgate::compute_block_hashes(tokens.data(), kBs, kBs, &chain[1]);
  if (i == 0) return chain[1];
  kvgate::compute_sequence_hashes(chain, 2, chain);
  return chain[1];
}

std::vector<uint32_t> tokens_of(const Path& path, size_t from, size_t to) {
  std::vector<uint32_t> tokens;
  for (size_t i = from; i < to; i++) {
    for (uint32_t t = 0; t < kBs; t++) tokens.push_back(static_cast<uint32_t>(i) * 100 + path[i] * 10 + t);
  }
  return tokens;
}

// A router beside its model: per unit, engine hash → sequence hash of the block it names.
class Fleet {
 public:
  explicit Fleet(uint32_t seed) : rng_(seed), router_(config()) {}

  static RouterConfig config() {
    RouterConfig c;
    c.block_size = kBs;
    return c;
  }

  KvRouter& router() { return router_; }

  // Stores path[from, to) on the unit, chained under its block from - 1 (which it must hold).
  void store(Unit u, const Path& path, size_t from, size_t to) {
    std::vector<uint64_t> seqs;
    uint64_t parent_seq = 0;
    int64_t parent = 0;
    if (from > 0) {
      for (size_t i = 0; i < from; i++) parent_seq = seq_of(path, i, parent_seq);
      parent = engine_of(u, parent_seq);
      ASSERT_NE(parent, 0) << "the parent must be held";
    }
    std::vector<int64_t> engine;
    uint64_t s = parent_seq;
    for (size_t i = from; i < to; i++) {
      s = seq_of(path, i, s);
      engine.push_back(++next_engine_);
      model_[u][engine.back()] = s;
    }
    const std::vector<uint32_t> tokens = tokens_of(path, from, to);
    ASSERT_EQ(router_.apply_stored(u.first, u.second, from > 0 ? &parent : nullptr, tokens.data(), tokens.size(),
                                   engine.data(), engine.size()),
              KvIndex::Status::kOk);
  }

  // Drops one random hold of the unit (if it has any).
  void remove_one(Unit u) {
    auto it = model_.find(u);
    if (it == model_.end() || it->second.empty()) return;
    auto hold = it->second.begin();
    std::advance(hold, static_cast<long>(rng_() % it->second.size()));
    const int64_t engine = hold->first;
    it->second.erase(hold);
    ASSERT_EQ(router_.apply_removed(u.first, u.second, &engine, 1), 0u);
  }
  // Drops the unit's hold on block `seq`.
  void remove(Unit u, uint64_t seq) {
    const int64_t engine = engine_of(u, seq);
    ASSERT_NE(engine, 0);
    model_[u].erase(engine);
    ASSERT_EQ(router_.apply_removed(u.first, u.second, &engine, 1), 0u);
  }
  // Units holding any block.
  size_t holding() const {
    return static_cast<size_t>(
        std::count_if(model_.begin(), model_.end(), [](const auto& m) { return !m.second.empty(); }));
  }
  // Drops every hold of the unit: `remove` forgets the unit too.
  void clear(Unit u, bool remove) {
    model_.erase(u);
    if (remove) {
      router_.remove_unit(u.first, u.second);
    } else {
      router_.clear_unit(u.first, u.second);
    }
  }

  // The model's answer: each unit's leading query blocks held, where at least one.
  std::map<Unit, uint32_t> naive(const Path& path, size_t n) const {
    std::vector<uint64_t> seq;
    for (size_t i = 0; i < n; i++) seq.push_back(seq_of(path, i, i > 0 ? seq.back() : 0));
    std::map<Unit, uint32_t> want;
    for (const auto& [u, holds] : model_) {
      uint32_t d = 0;
      while (d < n && std::any_of(holds.begin(), holds.end(), [&](const auto& h) { return h.second == seq[d]; })) d++;
      if (d > 0) want[u] = d;
    }
    return want;
  }

  // find_matches' answer as a map; checks each unit comes once and the rows fit unit_count().
  std::map<Unit, uint32_t> got(const Path& path, size_t n) {
    std::vector<uint32_t> tokens = tokens_of(path, 0, n);
    std::vector<uint64_t> local(n);
    kvgate::compute_block_hashes(tokens.data(), tokens.size(), kBs, local.data());
    // One spare row each side: a row past unit_count() would show.
    const size_t units = router_.unit_count();
    std::vector<uint32_t> w(units + 1, kSentinel), r(units + 1, kSentinel), d(units + 1, kSentinel);
    const size_t rows = router_.find_matches(local.data(), n, MatchRows{w.data(), r.data(), d.data()});
    EXPECT_LE(rows, units);
    EXPECT_EQ(w[units], kSentinel);
    std::map<Unit, uint32_t> out;
    for (size_t i = 0; i < rows; i++) EXPECT_TRUE(out.emplace(Unit{w[i], r[i]}, d[i]).second) << "a unit listed twice";
    std::vector<UnitMatch> m;  // the vector form agrees
    router_.find_matches(local.data(), n, &m);
    EXPECT_EQ(m.size(), rows);
    for (const UnitMatch& x : m) EXPECT_EQ(out[Unit(x.worker, x.rank)], x.depth);
    return out;
  }

 private:
  static constexpr uint32_t kSentinel = 0xDEADBEEF;
  int64_t engine_of(Unit u, uint64_t seq) const {
    auto it = model_.find(u);
    if (it == model_.end()) return 0;
    for (const auto& [e, s] : it->second) {
      if (s == seq) return e;
    }
    return 0;
  }

  std::mt19937 rng_;
  KvRouter router_;
  std::map<Unit, std::map<int64_t, uint64_t>> model_;
  int64_t next_engine_ = 0;
};

TEST(FindMatches, EveryUnitSharingTheBaseIsListedAtItsDepth) {
  Fleet f(1);
  const Path base(kLevels, 0);
  Path other = base;
  other[3] = 1;
  for (uint32_t w = 0; w < 5; w++) {
    f.router().add_unit(w, 0);
    f.store({w, 0}, base, 0, 2);
  }
  f.store({3, 0}, base, 2, 4);
  f.store({4, 0}, other, 2, 5);
  // Every unit holds the first 2 blocks: all are listed, two of them deeper.
  std::map<Unit, uint32_t> want{{{0, 0}, 2}, {{1, 0}, 2}, {{2, 0}, 2}, {{3, 0}, 4}, {{4, 0}, 3}};
  EXPECT_EQ(f.got(base, 6), want);
  EXPECT_EQ(f.got(base, 6), f.naive(base, 6));
  EXPECT_EQ(f.got(other, 5), f.naive(other, 5));
  // A query off the base at block 0 matches nobody; an empty one too.
  Path off = base;
  off[0] = 1;
  EXPECT_TRUE(f.got(off, 3).empty());
  EXPECT_TRUE(f.got(base, 0).empty());
  // A cleared unit (still a candidate) and a removed one hold nothing: not listed.
  f.clear({2, 0}, false);
  f.clear({0, 0}, true);
  want.erase({2, 0});
  want.erase({0, 0});
  EXPECT_EQ(f.got(base, 6), want);
  // Unit 1 drops block 0 but keeps block 1: it holds a block, none of the query's leading ones.
  f.remove({1, 0}, seq_of(base, 0, 0));
  want.erase({1, 0});
  EXPECT_EQ(f.got(base, 6), want);
  EXPECT_EQ(f.got(base, 6), f.naive(base, 6));
  // A unit only named by events, and a removed unit.
  f.store({9, 2}, base, 0, 1);
  EXPECT_EQ(f.got(base, 6), f.naive(base, 6));
  EXPECT_EQ(f.got(base, 1), f.naive(base, 1));
}

// Random fleets: `choices` options at each level past `base` shared leading blocks (every
// unit stores them first, so that the fleet starts with a common base), random stores,
// removals, clears and removed units between queries.
void random_fleet(uint32_t seed, size_t base, uint32_t choices) {
  std::mt19937 g(seed);
  Fleet f(seed);
  auto path = [&] {
    Path p(kLevels);
    for (size_t i = 0; i < kLevels; i++) p[i] = i < base ? 0 : static_cast<uint32_t>(g() % choices);
    return p;
  };
  const uint32_t workers = 24;
  auto unit = [&] { return Unit{static_cast<uint32_t>(g() % workers), static_cast<uint32_t>(g() % 2)}; };
  for (uint32_t w = 0; w < workers; w++) {
    f.router().add_unit(w, 0);
    if (base > 0) f.store({w, 0}, path(), 0, base);
  }
  size_t common_answers = 0;
  for (int step = 0; step < 1500; step++) {
    const uint32_t op = g() % 100;
    if (op < 30) {
      const Unit u = unit();
      const Path p = path();
      const size_t to = 1 + g() % kLevels;
      // Extends what the unit holds of p when it holds block from - 1, else stores from block 0.
      size_t from = g() % to;
      if (from > 0 && f.naive(p, from)[u] != from) from = 0;
      f.store(u, p, from, to);
    } else if (op < 40) {
      f.remove_one(unit());
    } else if (op < 42) {
      f.clear(unit(), g() % 2 == 0);
    } else {
      const Path p = path();
      const size_t n = g() % (kLevels + 1);
      const std::map<Unit, uint32_t> want = f.naive(p, n);
      ASSERT_EQ(f.got(p, n), want) << "seed " << seed << " step " << step;
      if (base > 0 && n > 0 && want.size() == f.holding()) common_answers++;  // likely past a common base
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  if (base > 0) {
    EXPECT_GT(common_answers, 100u);  // the fleet kept a common base for a while
  }
}

TEST(FindMatches, AgreesWithNaiveModelWhenEveryUnitSharesABase) {
  for (uint32_t seed = 1; seed <= 6; seed++) {
    random_fleet(seed, 3, 3);
    if (HasFatalFailure()) return;
  }
}

TEST(FindMatches, AgreesWithNaiveModelWhenNoUnitSharesABase) {
  for (uint32_t seed = 11; seed <= 16; seed++) {
    random_fleet(seed, 0, 3);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
