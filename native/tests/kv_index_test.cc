// The KV index and its parts (flat map, prefix table): event semantics (dynamo.md §2.4),
// memory bounded by the holds, and randomized checks against plain std containers.
#include "core/kv_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "core/block_hash.h"
#include "core/flat_map.h"
#include "core/prefix_table.h"

namespace {

using kvgate::IndexStats;
using kvgate::KvIndex;
using kvgate::PrefixTable;
using kvgate::U64Map;
using kvgate::UnitDepth;
using Status = KvIndex::Status;

constexpr uint32_t kBs = 4;

// Tokens of `blocks` full blocks; block b's tokens are derived from (stream, b) so two
// streams share no block.
std::vector<uint32_t> tokens_of(uint32_t stream, size_t blocks) {
  std::vector<uint32_t> t;
  for (size_t b = 0; b < blocks; b++) {
    for (uint32_t i = 0; i < kBs; i++) t.push_back(stream * 100000 + static_cast<uint32_t>(b) * 10 + i);
  }
  return t;
}

std::vector<uint64_t> seq_of(const std::vector<uint32_t>& tokens) {
  std::vector<uint64_t> local(tokens.size() / kBs);
  kvgate::compute_block_hashes(tokens.data(), tokens.size(), kBs, local.data());
  std::vector<uint64_t> seq(local.size());
  kvgate::compute_sequence_hashes(local.data(), local.size(), seq.data());
  return seq;
}

std::map<uint32_t, uint32_t> match(KvIndex& index, const std::vector<uint32_t>& tokens) {
  std::vector<uint64_t> seq = seq_of(tokens);
  std::vector<UnitDepth> out;
  index.match(seq.data(), seq.size(), &out);
  std::map<uint32_t, uint32_t> m;
  for (const UnitDepth& d : out) {
    EXPECT_TRUE(m.emplace(d.unit, d.depth).second) << "unit reported twice";
  }
  return m;
}

// Stores tokens[first*bs, last*bs) for `unit` as one event, engine hashes base+first...,
// chained under base+first-1 (or the root when first == 0).
Status store(KvIndex& index, uint32_t unit, const std::vector<uint32_t>& tokens, size_t first, size_t last,
             int64_t base) {
  std::vector<int64_t> engine;
  for (size_t b = first; b < last; b++) engine.push_back(base + static_cast<int64_t>(b));
  const int64_t parent = base + static_cast<int64_t>(first) - 1;
  return index.apply_stored(unit, first ? &parent : nullptr, tokens.data() + first * kBs, (last - first) * kBs,
                            engine.data(), engine.size());
}

TEST(U64Map, AgreesWithUnorderedMapUnderRandomOps) {
  std::mt19937_64 rng(7);
  U64Map m;
  std::unordered_map<uint64_t, uint32_t> ref;
  const uint64_t special[] = {0, 1, UINT64_MAX, 0x8000000000000000ULL};
  for (int step = 0; step < 200000; step++) {
    // Small key space so inserts, overwrites and erases all happen; plus edge keys.
    uint64_t key = (step % 17 == 0) ? special[rng() % 4] : rng() % 5000;
    if (step > 100000) key *= 0x10000;  // clustered high keys stress probing after the growth phase
    const uint32_t val = static_cast<uint32_t>(rng() % 1000);
    if (rng() % 3 == 0) {
      auto it = ref.find(key);
      const uint32_t want = it == ref.end() ? U64Map::kNone : it->second;
      ASSERT_EQ(m.erase(key), want);
      ref.erase(key);
    } else {
      auto it = ref.find(key);
      const uint32_t want = it == ref.end() ? U64Map::kNone : it->second;
      ASSERT_EQ(m.put(key, val), want);
      ref[key] = val;
    }
    ASSERT_EQ(m.size(), ref.size());
  }
  for (const auto& [k, v] : ref) ASSERT_EQ(m.find(k), v);
  size_t seen = 0;
  m.for_each([&](uint64_t k, uint32_t v) {
    ASSERT_EQ(ref.at(k), v);
    seen++;
  });
  EXPECT_EQ(seen, ref.size());
  // Draining shrinks the table again.
  for (const auto& [k, v] : ref) m.erase(k);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_LE(m.capacity(), 16u);
}

TEST(PrefixTable, RejectsALoadFactorThatCouldFillTheTable) {
  // At 100% the table fills and a probe for an absent block never ends.
  EXPECT_THROW(PrefixTable(100), std::invalid_argument);
  EXPECT_THROW(PrefixTable(250), std::invalid_argument);
  EXPECT_THROW(PrefixTable(0), std::invalid_argument);
  PrefixTable t(99);
  uint32_t count;
  for (uint64_t s = 1; s <= 1000; s++) ASSERT_NE(t.add(s * 0x100000001ULL, 0, &count), PrefixTable::kNoNode);
  EXPECT_EQ(t.find(0xDEADBEEF), PrefixTable::kNoNode);
  EXPECT_EQ(t.blocks(), 1000u);
}

TEST(PrefixTable, RemoveTellsTheLastHoldFromNotHeld) {
  // Callers count a unit's blocks down on 0 only: "not held" must never look like 0.
  PrefixTable t;
  uint32_t count;
  const uint32_t a = t.add(42, 1, &count);
  ASSERT_EQ(t.add(42, 1, &count), a);
  ASSERT_EQ(t.add(42, 2, &count), a);
  EXPECT_EQ(t.remove(a, 3), PrefixTable::kNotHeld);  // never held by unit 3
  EXPECT_EQ(t.remove(a, 1), 1u);
  EXPECT_EQ(t.remove(a, 1), 0u);                     // unit 1's last hold
  EXPECT_EQ(t.remove(a, 1), PrefixTable::kNotHeld);  // already dropped
  EXPECT_EQ(t.holds(), 1u);
  EXPECT_EQ(t.remove(a, 2), 0u);  // the node is freed
  EXPECT_EQ(t.blocks(), 0u);
  EXPECT_EQ(t.remove(a, 2), PrefixTable::kNotHeld);  // a freed node
  EXPECT_EQ(t.remove(12345, 2), PrefixTable::kNotHeld);
  EXPECT_EQ(t.remove(a, PrefixTable::kMaxUnits), PrefixTable::kNotHeld);
  EXPECT_EQ(t.holds(), 0u);
}

// remove_all is remove() over a list with the blocks ahead prefetched (only in a table past
// ~32 K blocks, as here). Requests of whole prefixes (chains sharing their first blocks, so
// some blocks go dense) come and go on a nested table and a twin that removes one block at a
// time; the lists also name a block twice, blocks the unit never held and ids past every
// node (kNotHeld: not counted). Counts, holds and every block's holders must agree, and the
// last frees empty the table (which gives its pool back mid-list).
TEST(PrefixTable, RemoveAllAgreesWithRemovingOneByOne) {
  std::mt19937_64 rng(31);
  PrefixTable bulk{50, true}, single{50, true};
  struct Request {
    uint32_t unit;
    std::vector<uint64_t> seqs;
    std::vector<uint32_t> bulk_nodes, single_nodes;
  };
  std::vector<Request> live;
  auto seq = [](uint64_t chain, uint64_t d) { return d < 4 ? d + 1 : (chain << 16) + d + 1; };
  auto add = [&](uint32_t unit, uint64_t chain, uint64_t depth) {
    Request r{unit, {}, {}, {}};
    for (uint64_t d = 0; d < depth; d++) r.seqs.push_back(seq(chain, d));
    r.bulk_nodes.resize(depth);
    r.single_nodes.resize(depth);
    ASSERT_EQ(bulk.add_all(r.seqs.data(), depth, unit, r.bulk_nodes.data()),
              single.add_all(r.seqs.data(), depth, unit, r.single_nodes.data()));
    live.push_back(std::move(r));
  };
  auto free_one = [&](size_t i) {
    Request r = std::move(live[i]);
    live[i] = std::move(live.back());
    live.pop_back();
    // Extras: a block named twice, one of another request's blocks (most likely not held
    // by this unit), and an id past every node.
    if (rng() % 4 == 0) {
      const size_t k = rng() % r.seqs.size();
      r.bulk_nodes.push_back(r.bulk_nodes[k]);
      r.single_nodes.push_back(r.single_nodes[k]);
    }
    if (rng() % 4 == 0 && !live.empty()) {
      const Request& o = live[rng() % live.size()];
      const size_t k = rng() % o.seqs.size();
      r.bulk_nodes.insert(r.bulk_nodes.begin(), o.bulk_nodes[k]);
      r.single_nodes.insert(r.single_nodes.begin(), o.single_nodes[k]);
    }
    if (rng() % 8 == 0) {
      r.bulk_nodes.push_back(PrefixTable::kNoNode - 1);
      r.single_nodes.push_back(PrefixTable::kNoNode - 1);
    }
    size_t gone = 0;
    for (uint32_t node : r.single_nodes) gone += single.remove(node, r.unit) == 0;
    ASSERT_EQ(bulk.remove_all(r.bulk_nodes.data(), r.bulk_nodes.size(), r.unit), gone);
    ASSERT_EQ(bulk.holds(), single.holds());
    ASSERT_EQ(bulk.blocks(), single.blocks());
  };
  // Grow past 32 K blocks (600 units, 4 shared blocks then 60 of their own chain each).
  for (uint32_t u = 0; u < 600; u++) add(u, u, 64);
  ASSERT_GT(bulk.blocks(), 32768u);
  for (int step = 0; step < 3000; step++) {
    if (rng() % 2 == 0) {
      add(static_cast<uint32_t>(rng() % 600), rng() % 700, 1 + rng() % 80);
    } else {
      free_one(rng() % live.size());
    }
    if (step % 100 == 0) {
      for (int k = 0; k < 50; k++) {
        const uint64_t s = seq(rng() % 700, rng() % 80);
        const uint32_t u = static_cast<uint32_t>(rng() % 600);
        ASSERT_EQ(bulk.held_by(s, u), single.held_by(s, u)) << "step " << step;
      }
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
  }
  while (!live.empty()) {
    free_one(live.size() - 1);
    ASSERT_FALSE(::testing::Test::HasFailure());
  }
  EXPECT_EQ(bulk.blocks(), 0u);
  EXPECT_EQ(bulk.holds(), 0u);
}

// Per unit, the number of leading blocks of q it holds in `model` (seq → unit → count).
std::map<uint32_t, uint32_t> naive_match(std::map<uint64_t, std::map<uint32_t, uint32_t>>& model,
                                         const std::vector<uint64_t>& q) {
  std::map<uint32_t, uint32_t> want;
  if (q.empty() || !model.count(q[0])) return want;
  std::set<uint32_t> active;
  for (auto& [u, n] : model[q[0]]) active.insert(u);
  size_t depth = 1;
  for (; depth < q.size() && !active.empty(); depth++) {
    auto it_block = model.find(q[depth]);
    for (auto it = active.begin(); it != active.end();) {
      if (it_block == model.end() || !it_block->second.count(*it)) {
        want[*it] = static_cast<uint32_t>(depth);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (uint32_t u : active) want[u] = static_cast<uint32_t>(depth);
  return want;
}

// match_past_common against the model: a unit holding any block is listed with its depth
// if past the returned base k, and otherwise holds exactly k leading blocks; a unit
// holding nothing holds none. Returns k.
size_t check_past_common(PrefixTable& t, std::map<uint64_t, std::map<uint32_t, uint32_t>>& model,
                         const std::vector<uint64_t>& q, uint32_t units) {
  std::vector<UnitDepth> got;
  const size_t k = t.match_past_common(q.data(), q.size(), &got);
  const std::map<uint32_t, uint32_t> want = naive_match(model, q);
  std::set<uint32_t> holding;
  for (auto& [s, us] : model)
    for (auto& [u, n] : us) holding.insert(u);
  // The base is taken whenever every unit holding anything holds the first block.
  bool everyone = !q.empty() && !holding.empty();
  for (uint32_t u : holding) everyone = everyone && want.count(u) > 0;
  EXPECT_EQ(k > 0, everyone);
  std::map<uint32_t, uint32_t> listed;
  for (auto& g : got) {
    EXPECT_TRUE(listed.emplace(g.unit, g.depth).second) << "unit reported twice";
    EXPECT_GT(g.depth, k);
  }
  for (uint32_t u = 0; u < units; u++) {
    EXPECT_EQ(t.holds_any(u), holding.count(u) > 0) << "unit " << u;
    const uint32_t depth = want.count(u) ? want.at(u) : 0;
    const uint32_t reported = listed.count(u) ? listed.at(u) : holding.count(u) ? static_cast<uint32_t>(k) : 0;
    EXPECT_EQ(reported, depth) << "unit " << u << ", base " << k;
  }
  return k;
}

// A PrefixTable beside its naive model (block -> unit -> holds), changed together.
struct Modeled {
  PrefixTable t;
  std::map<uint64_t, std::map<uint32_t, uint32_t>> model;
  void add(uint64_t s, uint32_t u) {
    uint32_t count;
    ASSERT_NE(t.add(s, u, &count), PrefixTable::kNoNode);
    ASSERT_EQ(count, ++model[s][u]);
  }
  // Drops one of the unit's holds on the block, if the model has one.
  void remove(uint64_t s, uint32_t u) {
    if (!model.count(s) || !model[s].count(u)) return;
    const uint32_t node = t.find(s);
    ASSERT_NE(node, PrefixTable::kNoNode);
    const uint32_t left = --model[s][u];
    ASSERT_EQ(t.remove(node, u), left);
    if (left == 0) model[s].erase(u);
    if (model[s].empty()) model.erase(s);
  }
};

// A nested table and a plain one given the same whole-prefix holds, beside their naive model.
struct NestedTwin {
  PrefixTable nested{50, true}, plain{50};
  std::map<uint64_t, std::map<uint32_t, uint32_t>> model;
  void add(uint64_t s, uint32_t u) {
    uint32_t a, b;
    ASSERT_NE(nested.add(s, u, &a), PrefixTable::kNoNode);
    ASSERT_NE(plain.add(s, u, &b), PrefixTable::kNoNode);
    ASSERT_EQ(a, ++model[s][u]);
  }
  void remove(uint64_t s, uint32_t u) {
    const uint32_t left = --model[s][u];
    ASSERT_EQ(nested.remove(nested.find(s), u), left);
    ASSERT_EQ(plain.remove(plain.find(s), u), left);
    if (left == 0) model[s].erase(u);
    if (model[s].empty()) model.erase(s);
  }
};

TEST(PrefixTable, AgreesWithNaiveModelUnderRandomOps) {
  // Model: seq → unit → count; match = walk while the intersection is non-empty. Chains are
  // 150 blocks deep, so walks cross match()'s 64-block batches (units drop out in the
  // second and third batch, or survive to the end), and chain 3's blocks have the same
  // 32-bit tags as chain 0's (every lookup there takes the tag-collision fallback).
  std::mt19937_64 rng(11);
  Modeled m;
  PrefixTable& t = m.t;
  auto& model = m.model;
  constexpr uint64_t kDepth = 150;
  auto seq = [](uint64_t c, uint64_t d) { return (c == 3 ? uint64_t{1} << 32 : 0) + (c % 3) * 1000 + d + 1; };
  auto add = [&](uint64_t s, uint32_t u) { m.add(s, u); };
  auto remove = [&](uint64_t s, uint32_t u) { m.remove(s, u); };
  for (int step = 0; step < 60000; step++) {
    const uint64_t c = rng() % 4, d = rng() % kDepth;
    const uint32_t u = static_cast<uint32_t>(rng() % 10);  // some blocks spill beyond 3 inline holders
    const unsigned op = rng() % 16;
    if (op < 6) {
      add(seq(c, d), u);
    } else if (op == 6) {
      for (uint64_t dd = 0; dd < d; dd++) add(seq(c, dd), u);  // a whole prefix
    } else if (op == 7) {
      for (uint64_t dd = d; dd < kDepth; dd++) remove(seq(c, dd), u);  // a whole suffix
    } else {
      remove(seq(c, d), u);
    }
    if (step % 97 == 0) {
      size_t holds = 0;
      for (auto& [k, us] : model)
        for (auto& [uu, n] : us) holds += n;
      ASSERT_EQ(t.blocks(), model.size());
      ASSERT_EQ(t.holds(), holds);
      const uint64_t qc = rng() % 4;
      std::vector<uint64_t> q;
      for (uint64_t dd = 0; dd < kDepth; dd++) q.push_back(seq(qc, dd));
      if (rng() % 4 == 0) q.resize(1 + rng() % kDepth);
      std::vector<UnitDepth> got;
      t.match(q.data(), q.size(), &got);
      std::map<uint32_t, uint32_t> gotm;
      for (auto& g : got) ASSERT_TRUE(gotm.emplace(g.unit, g.depth).second) << "unit reported twice";
      ASSERT_EQ(gotm, naive_match(model, q)) << "step " << step;
      check_past_common(t, model, q, 10);
      ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
    }
  }
}

TEST(PrefixTable, NestedAgreesWithNaiveModelUnderWholePrefixRequests) {
  // A nested table (the active requests, the pending prefixes) holds whole prefixes only: a
  // request takes blocks [0, d) of a chain on a unit and later gives them all back. match()
  // then skips the holder compare wherever the count did not shrink; it must still agree
  // with the model, and with a table that compares (units drop out at every depth, and
  // several requests share prefixes on one unit, so counts exceed 1).
  std::mt19937_64 rng(12);
  NestedTwin twin;
  PrefixTable &nested = twin.nested, &plain = twin.plain;
  auto& model = twin.model;
  struct Request {
    uint64_t chain, depth;
    uint32_t unit;
  };
  std::vector<Request> live;
  int past_common = 0;
  constexpr uint64_t kDepth = 150;
  // Chains 0-2 share their first 40 blocks (a system prompt), then diverge.
  auto seq = [](uint64_t c, uint64_t d) { return d < 40 ? d + 1 : c * 1000 + d + 1; };
  for (int step = 0; step < 20000; step++) {
    if (live.empty() || rng() % 3 != 0) {
      const Request r{rng() % 3, 1 + rng() % kDepth, static_cast<uint32_t>(rng() % 12)};
      for (uint64_t d = 0; d < r.depth; d++) twin.add(seq(r.chain, d), r.unit);
      live.push_back(r);
    } else {
      const size_t i = rng() % live.size();
      const Request r = live[i];
      live[i] = live.back();
      live.pop_back();
      for (uint64_t d = 0; d < r.depth; d++) twin.remove(seq(r.chain, d), r.unit);
    }
    if (step % 13 == 0) {
      std::vector<uint64_t> q;
      const uint64_t qc = rng() % 3;
      for (uint64_t d = 0; d < kDepth; d++) q.push_back(seq(qc, d));
      std::vector<UnitDepth> got, got_plain;
      nested.match(q.data(), q.size(), &got);
      plain.match(q.data(), q.size(), &got_plain);
      std::map<uint32_t, uint32_t> m, m_plain;
      for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
      for (auto& g : got_plain) m_plain.emplace(g.unit, g.depth);
      ASSERT_EQ(m, naive_match(model, q)) << "step " << step;
      ASSERT_EQ(m, m_plain) << "step " << step;
      // Every unit's requests start with the shared blocks: the base path, on both tables.
      if (!live.empty()) past_common += check_past_common(nested, model, q, 12) >= 40;
      check_past_common(plain, model, q, 12);
      ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
    }
  }
  EXPECT_GT(past_common, 1000);
}

// A nested block with more than 256 holders (unit ids not too sparse) keeps them dense: a
// count and a bit per unit id; below 128, or when much sparser, a sorted array again. Here
// requests (whole prefixes of a few chains under a shared 3-block prompt) come and go in
// waves: the shared blocks grow past the threshold and shrink to nothing again, units
// join and leave in random order, some hold a block several times, and one wave uses
// sparse unit ids (dense late, back early). Every walk (match, match_past_common, through
// the dense blocks and past them), held_by and the counts agree with the model and with a
// table that never goes dense (not nested).
TEST(PrefixTable, NestedDenseHoldersCrossTheThresholdBothWays) {
  std::mt19937_64 rng(21);
  NestedTwin twin;
  PrefixTable &nested = twin.nested, &plain = twin.plain;
  auto& model = twin.model;
  struct Request {
    uint64_t chain, depth;
    uint32_t unit;
  };
  std::vector<Request> live;
  constexpr uint64_t kDepth = 12;
  auto seq = [](uint64_t c, uint64_t d) { return d < 3 ? d + 1 : c * 1000 + d + 1; };
  auto check = [&](int step, uint32_t units) {
    size_t holds = 0;
    for (auto& [k, us] : model)
      for (auto& [u, n] : us) holds += n;
    ASSERT_EQ(nested.blocks(), model.size());
    ASSERT_EQ(nested.holds(), holds);
    std::vector<uint64_t> q;
    const uint64_t qc = rng() % 4;
    for (uint64_t d = 0; d < kDepth; d++) q.push_back(seq(qc, d));
    if (rng() % 3 == 0) q.resize(1 + rng() % kDepth);
    std::vector<UnitDepth> got, got_plain;
    nested.match(q.data(), q.size(), &got);
    plain.match(q.data(), q.size(), &got_plain);
    std::map<uint32_t, uint32_t> m, m_plain;
    for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
    for (auto& g : got_plain) m_plain.emplace(g.unit, g.depth);
    ASSERT_EQ(m, naive_match(model, q)) << "step " << step;
    ASSERT_EQ(m, m_plain) << "step " << step;
    check_past_common(nested, model, q, units);
    for (int i = 0; i < 20; i++) {
      const uint64_t s = seq(rng() % 4, rng() % kDepth);
      const uint32_t u = static_cast<uint32_t>(rng() % units);
      const bool want = model.count(s) && model[s].count(u);
      ASSERT_EQ(nested.held_by(s, u), want) << "step " << step;
      if (!want && model.count(s)) {
        ASSERT_EQ(nested.remove(nested.find(s), u), PrefixTable::kNotHeld);
      }
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
  };
  int step = 0;
  size_t peak = 0;
  for (int wave = 0; wave < 4; wave++) {
    // Wave 2: unit ids spread over 0..4999 (dense only past ~625 holders).
    const uint32_t units = wave == 2 ? 5000 : 700;
    const size_t top = wave == 2 ? 1500 : 900;
    for (int phase = 0; phase < 2; phase++) {
      const bool grow = phase == 0;
      while (grow ? live.size() < top : !live.empty()) {
        step++;
        if (grow ? rng() % 5 != 0 : rng() % 5 == 0) {
          const Request r{rng() % 4, 1 + rng() % kDepth, static_cast<uint32_t>(rng() % units)};
          for (uint64_t d = 0; d < r.depth; d++) twin.add(seq(r.chain, d), r.unit);
          live.push_back(r);
        } else if (!live.empty()) {
          const size_t i = rng() % live.size();
          const Request r = live[i];
          live[i] = live.back();
          live.pop_back();
          for (uint64_t d = 0; d < r.depth; d++) twin.remove(seq(r.chain, d), r.unit);
        }
        if (model.count(seq(0, 0))) peak = std::max(peak, model[seq(0, 0)].size());
        if (step % 11 == 0) check(step, units);
      }
      check(step, units);
    }
  }
  EXPECT_GT(peak, 600u);  // the shared blocks went dense (over 256 holders, and 625 in the sparse wave)
  EXPECT_EQ(nested.blocks(), 0u);
}

// A dense block counts holds per unit up to the same limit as a sorted one.
TEST(PrefixTable, DenseBlockRefusesAHoldPastTheCountLimit) {
  PrefixTable t(50, true);
  uint32_t count;
  for (uint32_t u = 0; u < 400; u++) ASSERT_NE(t.add(7, u, &count), PrefixTable::kNoNode);
  uint32_t node = PrefixTable::kNoNode;
  for (uint32_t i = 1; i < PrefixTable::kMaxCount; i++) node = t.add(7, 5, &count);
  ASSERT_NE(node, PrefixTable::kNoNode);
  EXPECT_EQ(count, PrefixTable::kMaxCount);
  EXPECT_EQ(t.add(7, 5, &count), PrefixTable::kNoNode);
  EXPECT_EQ(t.holds(), 400u + PrefixTable::kMaxCount - 1);
  EXPECT_EQ(t.remove(node, 5), PrefixTable::kMaxCount - 1);
  EXPECT_EQ(t.remove(node, 400), PrefixTable::kNotHeld);
  EXPECT_EQ(t.remove(node, 60000), PrefixTable::kNotHeld);
  // A unit id far past the others grows the dense arrays.
  ASSERT_EQ(t.add(7, 65000, &count), node);
  EXPECT_TRUE(t.held_by(7, 65000));
  EXPECT_EQ(t.remove(node, 65000), 0u);
  EXPECT_FALSE(t.held_by(7, 65000));
}

// A nested table's walk looks up only enough blocks to locate where the holder count drops
// (a galloping search, then a search of the gap). These chains are long (700 blocks: the
// gallop's doublings pass 512, a gap takes several rounds), branch off a common chain at
// various depths, and requests end anywhere, often at the depths the searches probe or
// next to them, so units drop out alone, together, on adjacent blocks, on the last block,
// and in the middle of long runs; queries end before, at or past the held blocks (blocks
// nobody holds end the walk). Checked against the model and a table that compares.
TEST(PrefixTable, NestedWalkFindsEveryDropAcrossLongRuns) {
  std::mt19937_64 rng(14);
  constexpr uint64_t kDepth = 700;
  constexpr uint32_t kUnits = 20;
  const uint64_t share[] = {kDepth, 64, 1, 300, kDepth - 1, 0};  // chain c's first blocks are chain 0's
  auto seq = [&](uint64_t c, uint64_t d) { return d < share[c] ? d + 1 : c * 100000 + d + 1; };
  const std::vector<uint64_t> edges = {1,  2,   3,   15,  16,  17,  31,  32,  33,  63,  64,
                                       65, 129, 256, 299, 300, 301, 512, 513, 698, 699, 700};
  NestedTwin twin;
  PrefixTable &nested = twin.nested, &plain = twin.plain;
  auto& model = twin.model;
  struct Request {
    uint64_t chain, depth;
    uint32_t unit;
  };
  std::vector<Request> live;
  auto take = [&](const Request& r, bool add) {
    for (uint64_t d = 0; d < r.depth; d++) {
      if (add) {
        twin.add(seq(r.chain, d), r.unit);
      } else {
        twin.remove(seq(r.chain, d), r.unit);
      }
    }
  };
  size_t bases = 0, drops = 0;
  for (int step = 0; step < 3000; step++) {
    if (live.size() < 4 || (live.size() < 40 && rng() % 3 != 0)) {
      Request r{rng() % 6, 0, static_cast<uint32_t>(rng() % kUnits)};
      const uint64_t e = edges[rng() % edges.size()];
      r.depth = rng() % 2 ? 1 + rng() % kDepth : rng() % 3 == 0 ? std::min(kDepth, share[r.chain] + 1) : e;
      if (r.depth == 0) r.depth = 1;
      take(r, true);
      live.push_back(r);
    } else {
      const size_t i = rng() % live.size();
      take(live[i], false);
      live[i] = live.back();
      live.pop_back();
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
    std::vector<uint64_t> q;
    const uint64_t qc = rng() % 6;
    const uint64_t len = rng() % 3 == 0 ? 1 + rng() % (kDepth + 40) : rng() % 2 ? kDepth : edges[rng() % edges.size()];
    for (uint64_t d = 0; d < len; d++) q.push_back(d < kDepth ? seq(qc, d) : qc * 100000 + d + 1);
    std::vector<UnitDepth> got, got_plain;
    nested.match(q.data(), q.size(), &got);
    plain.match(q.data(), q.size(), &got_plain);
    std::map<uint32_t, uint32_t> m, m_plain;
    for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
    for (auto& g : got_plain) m_plain.emplace(g.unit, g.depth);
    const std::map<uint32_t, uint32_t> want = naive_match(model, q);
    ASSERT_EQ(m, want) << "step " << step;
    ASSERT_EQ(m, m_plain) << "step " << step;
    std::set<uint32_t> depths;
    for (auto& [u, d] : want) depths.insert(d);
    drops += depths.size();
    bases += check_past_common(nested, model, q, kUnits) > 0;
    ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
  }
  // Walks with many distinct depths ran, and walks past a base (every unit on block 0).
  EXPECT_GT(drops, 3 * 3000u);
  EXPECT_GT(bases, 100u);
}

TEST(PrefixTable, NestedWalkReportsDropsInsideRunsAndAtMissingBlocks) {
  // One chain of 256 blocks. Unit 1 holds all 256, unit 2 the first 192, units 3 and 4 the
  // first 65, unit 5 the first 64, unit 6 the first 63, unit 7 block 0 only; unit 8 holds
  // 100 blocks of a chain that branches off after block 9.
  PrefixTable t(50, true);
  uint32_t count;
  auto chain = [](uint64_t d) { return 0x5000 + d; };
  auto branch = [&](uint64_t d) { return d < 10 ? chain(d) : 0x9000 + d; };
  const std::pair<uint32_t, uint64_t> holds[] = {{1, 256}, {2, 192}, {3, 65}, {4, 65}, {5, 64}, {6, 63}, {7, 1}};
  for (auto [u, depth] : holds)
    for (uint64_t d = 0; d < depth; d++) ASSERT_NE(t.add(chain(d), u, &count), PrefixTable::kNoNode);
  for (uint64_t d = 0; d < 100; d++) ASSERT_NE(t.add(branch(d), 8, &count), PrefixTable::kNoNode);
  auto match = [&](const std::vector<uint64_t>& q) {
    std::vector<UnitDepth> got;
    t.match(q.data(), q.size(), &got);
    std::map<uint32_t, uint32_t> m;
    for (auto& g : got) EXPECT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
    return m;
  };
  std::vector<uint64_t> q;
  for (uint64_t d = 0; d < 300; d++) q.push_back(chain(d));  // past every hold: blocks 256+ are missing
  EXPECT_EQ(match(q),
            (std::map<uint32_t, uint32_t>{{1, 256}, {2, 192}, {3, 65}, {4, 65}, {5, 64}, {6, 63}, {7, 1}, {8, 10}}));
  q.resize(192);  // ends where unit 2's hold ends
  EXPECT_EQ(match(q),
            (std::map<uint32_t, uint32_t>{{1, 192}, {2, 192}, {3, 65}, {4, 65}, {5, 64}, {6, 63}, {7, 1}, {8, 10}}));
  q.resize(64);
  EXPECT_EQ(match(q),
            (std::map<uint32_t, uint32_t>{{1, 64}, {2, 64}, {3, 64}, {4, 64}, {5, 64}, {6, 63}, {7, 1}, {8, 10}}));
  std::vector<uint64_t> b;
  for (uint64_t d = 0; d < 256; d++) b.push_back(branch(d));
  EXPECT_EQ(match(b),
            (std::map<uint32_t, uint32_t>{{1, 10}, {2, 10}, {3, 10}, {4, 10}, {5, 10}, {6, 10}, {7, 1}, {8, 100}}));
  // Past the common blocks: every unit holds block 0, unit 7 nothing more, so the base is 1.
  std::vector<UnitDepth> got;
  EXPECT_EQ(t.match_past_common(q.data(), q.size(), &got), 1u);
  std::map<uint32_t, uint32_t> m;
  for (auto& g : got) m.emplace(g.unit, g.depth);
  EXPECT_EQ(m, (std::map<uint32_t, uint32_t>{{1, 64}, {2, 64}, {3, 64}, {4, 64}, {5, 64}, {6, 63}, {8, 10}}));
  // Unit 7 gone: every unit holds the first 10 blocks.
  ASSERT_EQ(t.remove(t.find(chain(0)), 7), 0u);
  EXPECT_EQ(t.match_past_common(q.data(), q.size(), &got), 10u);
  m.clear();
  for (auto& g : got) m.emplace(g.unit, g.depth);
  EXPECT_EQ(m, (std::map<uint32_t, uint32_t>{{1, 64}, {2, 64}, {3, 64}, {4, 64}, {5, 64}, {6, 63}}));
  // A query the base covers whole: nothing listed.
  q.resize(7);
  EXPECT_EQ(t.match_past_common(q.data(), q.size(), &got), 7u);
  EXPECT_TRUE(got.empty());
}

TEST(PrefixTable, PastCommonListsOnlyTheUnitsPastTheBlocksEveryUnitHolds) {
  // A system prompt (blocks 0-9) cached on every unit, conversations past it on some, and
  // evictions: a unit that drops block 0 while holding others ends the base, one holding
  // nothing at all (a new worker) does not. Holder sets of 3+ spill, so the walk's equal-set
  // records run beside the base.
  std::mt19937_64 rng(13);
  Modeled m;
  PrefixTable& t = m.t;
  auto& model = m.model;
  constexpr uint32_t kUnits = 16;
  constexpr uint64_t kDepth = 80;
  auto seq = [](uint64_t c, uint64_t d) { return d < 10 ? d + 1 : c * 1000 + d + 1; };
  auto add = [&](uint64_t s, uint32_t u) { m.add(s, u); };
  auto remove = [&](uint64_t s, uint32_t u) { m.remove(s, u); };
  for (uint32_t u = 0; u + 2 < kUnits; u++) {
    for (uint64_t d = 0; d < 10; d++) add(seq(0, d), u);
  }
  size_t bases = 0, deep_bases = 0;
  for (int step = 0; step < 20000; step++) {
    const uint64_t c = rng() % 4, d = rng() % kDepth;
    const uint32_t u = static_cast<uint32_t>(rng() % kUnits);
    const unsigned op = rng() % 20;
    if (op < 8) {
      for (uint64_t dd = 0; dd <= d; dd++) add(seq(c, dd), u);  // a whole prefix
    } else if (op < 9) {
      for (uint64_t dd = 10; dd <= d; dd++) add(seq(c, dd), u);  // past a system prompt it lacks
    } else if (op < 14) {
      for (uint64_t dd = d; dd < kDepth; dd++) remove(seq(c, dd), u);  // a whole suffix
    } else if (op < 15) {
      remove(seq(c, rng() % 2 == 0 ? 0 : d % 12), u);  // an eviction near the front
    } else if (op < 16) {
      for (auto& [s, us] : std::map<uint64_t, std::map<uint32_t, uint32_t>>(model)) {
        for (uint32_t n = us.count(u) ? us.at(u) : 0; n > 0; n--) remove(s, u);  // the unit cleared
      }
    }
    if (step % 7 == 0) {
      std::vector<uint64_t> q;
      const uint64_t qc = rng() % 4;
      for (uint64_t dd = 0; dd < kDepth; dd++) q.push_back(seq(qc, dd));
      if (rng() % 4 == 0) q.resize(1 + rng() % kDepth);
      const size_t k = check_past_common(t, model, q, kUnits);
      ASSERT_FALSE(::testing::Test::HasFailure()) << "step " << step;
      bases += k > 0;
      deep_bases += k > 10;
    }
  }
  // Both the base and its absence ran, and bases past the system prompt too.
  EXPECT_GT(bases, 300u);
  EXPECT_LT(bases, 2500u);
  EXPECT_GT(deep_bases, 5u);
  std::printf("%zu of 2858 walks past a base, %zu past the system prompt\n", bases, deep_bases);
}

TEST(PrefixTable, EqualCountsAreComparedUnlessNested) {
  // Unit 1 holds block a, unit 2 holds only its child b (its hold on a went): one holder
  // each, different units. A plain table must end unit 1 at depth 1.
  PrefixTable t;
  uint32_t count;
  const uint64_t q[] = {0xA, 0xB};
  ASSERT_NE(t.add(q[0], 1, &count), PrefixTable::kNoNode);
  ASSERT_NE(t.add(q[1], 2, &count), PrefixTable::kNoNode);
  std::vector<UnitDepth> got;
  t.match(q, 2, &got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].unit, 1u);
  EXPECT_EQ(got[0].depth, 1u);
}

TEST(PrefixTable, TagCollisionsFallBackToTheFullHash) {
  // Blocks whose low 32 bits (the slot tag) equal another held block's: the walk must
  // verify the full hash, find the right node, and stop at a block only its twin holds.
  PrefixTable t;
  uint32_t count;
  constexpr uint64_t kTwin = uint64_t{7} << 32;
  std::vector<uint64_t> chain, twin;
  for (uint64_t d = 0; d < 200; d++) {
    chain.push_back(0x1000 + d);
    twin.push_back(kTwin + 0x1000 + d);
  }
  // Unit 1 holds the twin chain (same tags) to depth 200, unit 2 the real chain to 150,
  // unit 3 the real chain to 70. The twins were stored first, so a probe meets them first.
  for (uint64_t d = 0; d < 200; d++) ASSERT_NE(t.add(twin[d], 1, &count), PrefixTable::kNoNode);
  for (uint64_t d = 0; d < 150; d++) ASSERT_NE(t.add(chain[d], 2, &count), PrefixTable::kNoNode);
  for (uint64_t d = 0; d < 70; d++) ASSERT_NE(t.add(chain[d], 3, &count), PrefixTable::kNoNode);
  std::vector<UnitDepth> got;
  t.match(chain.data(), chain.size(), &got);
  std::map<uint32_t, uint32_t> m;
  for (auto& g : got) m[g.unit] = g.depth;
  EXPECT_EQ(m, (std::map<uint32_t, uint32_t>{{2, 150}, {3, 70}}));
  t.match(twin.data(), twin.size(), &got);
  m.clear();
  for (auto& g : got) m[g.unit] = g.depth;
  EXPECT_EQ(m, (std::map<uint32_t, uint32_t>{{1, 200}}));
  // Only the twin of block 150 exists beyond the real chain's end: the walk stops there.
  std::vector<uint64_t> q(chain.begin(), chain.begin() + 151);
  t.match(q.data(), q.size(), &got);
  m.clear();
  for (auto& g : got) m[g.unit] = g.depth;
  EXPECT_EQ(m, (std::map<uint32_t, uint32_t>{{2, 150}, {3, 70}}));
}

TEST(PrefixTable, EqualHoldersAreRecheckedAfterEitherBlockChanges) {
  // Blocks a, b, c held by units 1-5 (spilled: more than 3 holders). The first walk finds
  // b's holders equal to a's and c's to b's, and later walks skip comparing them; each
  // change below keeps the counts equal but not the sets, so a walk that trusted what it
  // found before would report the wrong depths.
  PrefixTable t;
  uint32_t count;
  const uint64_t q[] = {0xA, 0xB, 0xC};
  auto add = [&](uint64_t s, uint32_t u) { ASSERT_NE(t.add(s, u, &count), PrefixTable::kNoNode); };
  auto remove = [&](uint64_t s, uint32_t u) { ASSERT_EQ(t.remove(t.find(s), u), 0u); };
  auto match = [&] {
    std::vector<UnitDepth> got;
    t.match(q, 3, &got);
    std::map<uint32_t, uint32_t> m;
    for (auto& g : got) EXPECT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
    return m;
  };
  for (uint64_t s : q)
    for (uint32_t u = 1; u <= 5; u++) add(s, u);
  const std::map<uint32_t, uint32_t> all{{1, 3}, {2, 3}, {3, 3}, {4, 3}, {5, 3}};
  ASSERT_EQ(match(), all);
  ASSERT_EQ(match(), all);
  // A new holder on a and another on b: six holders each, different sets.
  add(q[0], 9);
  add(q[1], 8);
  EXPECT_EQ(match(), (std::map<uint32_t, uint32_t>{{1, 3}, {2, 3}, {3, 3}, {4, 3}, {5, 3}, {9, 1}}));
  // Back to equal sets (found equal again), then one holder fewer on each, different ones.
  remove(q[0], 9);
  remove(q[1], 8);
  ASSERT_EQ(match(), all);
  ASSERT_EQ(match(), all);
  remove(q[0], 1);
  remove(q[1], 2);
  EXPECT_EQ(match(), (std::map<uint32_t, uint32_t>{{2, 1}, {3, 3}, {4, 3}, {5, 3}}));
  // a's holders go inline and come back as the same set: b was found equal to a's old
  // state, which no longer stands; b and c are compared again and still agree.
  remove(q[1], 1);
  add(q[1], 2);
  ASSERT_EQ(match(), (std::map<uint32_t, uint32_t>{{2, 3}, {3, 3}, {4, 3}, {5, 3}}));
  for (uint32_t u : {2u, 3u}) remove(q[0], u);
  for (uint32_t u : {2u, 3u}) add(q[0], u);
  remove(q[2], 5);
  add(q[2], 7);
  EXPECT_EQ(match(), (std::map<uint32_t, uint32_t>{{2, 3}, {3, 3}, {4, 3}, {5, 2}}));
}

TEST(PrefixTable, RepeatedWalksAgreeWithNaiveModelWhileHoldersChange) {
  // Many units hold whole prefixes of a few chains (spilled blocks with their parent's
  // holders), single holds come and go anywhere, and the same few queries are walked
  // again and again: every walk must see every change since the walk before.
  std::mt19937_64 rng(13);
  Modeled m;
  PrefixTable& t = m.t;
  auto& model = m.model;
  constexpr uint64_t kDepth = 80;
  auto seq = [](uint64_t c, uint64_t d) { return d < 30 ? d + 1 : c * 1000 + d + 1; };
  auto add = [&](uint64_t s, uint32_t u) { m.add(s, u); };
  auto remove = [&](uint64_t s, uint32_t u) { m.remove(s, u); };
  for (int step = 0; step < 30000; step++) {
    const uint64_t c = rng() % 3, d = rng() % kDepth;
    const uint32_t u = static_cast<uint32_t>(rng() % 16);
    const unsigned op = rng() % 8;
    if (op == 0) {
      for (uint64_t dd = 0; dd <= d; dd++) add(seq(c, dd), u);
    } else if (op == 1) {
      for (uint64_t dd = d; dd < kDepth; dd++) remove(seq(c, dd), u);
    } else if (op < 5) {
      add(seq(c, d), u);
    } else {
      remove(seq(c, d), u);
    }
    if (step % 3 == 0) {
      std::vector<uint64_t> q;
      const uint64_t qc = rng() % 3;
      for (uint64_t dd = 0; dd < kDepth; dd++) q.push_back(seq(qc, dd));
      std::vector<UnitDepth> got;
      t.match(q.data(), q.size(), &got);
      std::map<uint32_t, uint32_t> m;
      for (auto& g : got) ASSERT_TRUE(m.emplace(g.unit, g.depth).second) << "unit reported twice";
      ASSERT_EQ(m, naive_match(model, q)) << "step " << step;
    }
  }
}

TEST(KvIndex, StoredChainMatchesPerUnitPrefix) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 6);
  ASSERT_EQ(store(index, 0, t, 0, 6, 100), Status::kOk);
  ASSERT_EQ(store(index, 1, t, 0, 2, 500), Status::kOk);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{0, 6}, {1, 2}}));
  // A query that diverges after block 3, and one longer than anything stored.
  auto q = t;
  q[3 * kBs] += 1;
  EXPECT_EQ(match(index, q), (std::map<uint32_t, uint32_t>{{0, 3}, {1, 2}}));
  auto longer = tokens_of(1, 9);
  EXPECT_EQ(match(index, longer), (std::map<uint32_t, uint32_t>{{0, 6}, {1, 2}}));
  // A query whose first block is unknown matches nothing; an empty one too.
  EXPECT_TRUE(match(index, tokens_of(2, 3)).empty());
  EXPECT_TRUE(match(index, {}).empty());
  const IndexStats s = index.stats();
  EXPECT_EQ(s.blocks, 6u);
  EXPECT_EQ(s.pairs, 8u);
  EXPECT_EQ(s.units, 2u);
  EXPECT_EQ(index.unit_blocks(0), 6u);
  EXPECT_EQ(index.unit_blocks(1), 2u);
}

TEST(KvIndex, PagesChainThroughParentEngineHashes) {
  // SGLang sends one page per event, each naming the previous page as parent.
  KvIndex index(kBs);
  const auto t = tokens_of(3, 5);
  for (size_t b = 0; b < 5; b++) ASSERT_EQ(store(index, 7, t, b, b + 1, 40), Status::kOk);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{7, 5}}));
  // The same blocks sent in one event by another unit land on the same nodes.
  ASSERT_EQ(store(index, 8, t, 0, 5, 900), Status::kOk);
  EXPECT_EQ(index.stats().blocks, 5u);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{7, 5}, {8, 5}}));
}

TEST(KvIndex, UnknownParentDropsTheWholeEvent) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 3);
  ASSERT_EQ(store(index, 0, t, 0, 1, 10), Status::kOk);
  // Parent 10+1 was never stored by unit 0; unit 1 never stored anything.
  EXPECT_EQ(store(index, 0, t, 2, 3, 10), Status::kUnknownParent);
  EXPECT_EQ(store(index, 1, t, 1, 3, 10), Status::kUnknownParent);
  EXPECT_EQ(index.stats().pairs, 1u);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{0, 1}}));
}

TEST(KvIndex, RemovingAParentKeepsTheChildAndStopsTheMatchThere) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 4);
  ASSERT_EQ(store(index, 0, t, 0, 4, 10), Status::kOk);
  ASSERT_EQ(store(index, 1, t, 0, 4, 10), Status::kOk);
  const int64_t block1 = 11;
  EXPECT_EQ(index.apply_removed(0, &block1, 1), 0u);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{0, 1}, {1, 4}}));
  EXPECT_EQ(index.stats().blocks, 4u);  // unit 1 still holds block 1; unit 0 still holds 2, 3
  // Re-storing the parent restores the whole prefix for unit 0 (its child holds remained).
  ASSERT_EQ(store(index, 0, t, 1, 2, 10), Status::kOk);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{0, 4}, {1, 4}}));
  // The child can still be named as a parent after its own parent went away.
  EXPECT_EQ(index.apply_removed(0, &block1, 1), 0u);
  const auto t5 = tokens_of(1, 5);
  EXPECT_EQ(store(index, 0, t5, 4, 5, 10), Status::kOk);
  EXPECT_EQ(index.unit_blocks(0), 4u);
  // Removing something not held is reported, and changes nothing.
  EXPECT_EQ(index.apply_removed(0, &block1, 1), 1u);
  const int64_t never = 12345;
  EXPECT_EQ(index.apply_removed(9, &never, 1), 1u);
}

TEST(KvIndex, ChildHeldByAnotherUnitAloneEndsTheMatch) {
  // Holds in the index are not nested (an evicted parent can leave its child held): unit 0
  // keeps block 0 only, unit 1 block 1 only. Equal holder counts at both blocks, but no
  // unit holds both, so the match is {0: 1} (a walk that trusted the count would say 2).
  KvIndex index(kBs);
  const auto t = tokens_of(1, 2);
  ASSERT_EQ(store(index, 0, t, 0, 2, 10), Status::kOk);
  ASSERT_EQ(store(index, 1, t, 0, 2, 20), Status::kOk);
  const int64_t child0 = 11, parent1 = 20;
  EXPECT_EQ(index.apply_removed(0, &child0, 1), 0u);
  EXPECT_EQ(index.apply_removed(1, &parent1, 1), 0u);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{0, 1}}));
}

TEST(KvIndex, NodesNobodyHoldsAreFreed) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 3);
  ASSERT_EQ(store(index, 0, t, 0, 3, 10), Status::kOk);
  const int64_t all[] = {10, 11, 12};
  const int64_t mid = 11;
  EXPECT_EQ(index.apply_removed(0, &mid, 1), 0u);
  EXPECT_EQ(index.stats().blocks, 2u);
  EXPECT_EQ(index.apply_removed(0, all, 3), 1u);
  const IndexStats s = index.stats();
  EXPECT_EQ(s.blocks, 0u);
  EXPECT_EQ(s.pairs, 0u);
  EXPECT_EQ(s.units, 0u);
  EXPECT_TRUE(match(index, t).empty());
}

TEST(KvIndex, PartialPagesAndPageSizeMismatch) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 2);
  const int64_t h[] = {1, 2};
  // One hash with fewer tokens than a block: SGLang's trailing partial page, ignored.
  EXPECT_EQ(index.apply_stored(0, nullptr, t.data(), kBs - 1, h, 1), Status::kOk);
  EXPECT_EQ(index.stats().pairs, 0u);
  // Two hashes, one and a half blocks of tokens: the full block is stored.
  EXPECT_EQ(index.apply_stored(0, nullptr, t.data(), kBs + 2, h, 2), Status::kOk);
  EXPECT_EQ(index.stats().pairs, 1u);
  // More tokens than hashes x block size: the engine's page is larger than our block.
  EXPECT_EQ(index.apply_stored(1, nullptr, t.data(), 2 * kBs, h, 1), Status::kBlockSizeMismatch);
  EXPECT_EQ(index.stats().pairs, 1u);
}

TEST(KvIndex, DuplicateAndMovedEngineHashes) {
  KvIndex index(kBs);
  const auto a = tokens_of(1, 2);
  const auto b = tokens_of(2, 2);
  ASSERT_EQ(store(index, 0, a, 0, 2, 10), Status::kOk);
  ASSERT_EQ(store(index, 0, a, 0, 2, 10), Status::kOk);  // duplicate: no change
  EXPECT_EQ(index.stats().pairs, 2u);
  // The same block under a second engine hash (e.g. another cache salt): held until both go.
  ASSERT_EQ(store(index, 0, a, 0, 1, 70), Status::kOk);
  EXPECT_EQ(index.stats().pairs, 3u);
  EXPECT_EQ(index.stats().blocks, 2u);
  const int64_t first = 10, second = 70;
  EXPECT_EQ(index.apply_removed(0, &first, 1), 0u);
  EXPECT_EQ(match(index, a), (std::map<uint32_t, uint32_t>{{0, 2}}));
  EXPECT_EQ(index.apply_removed(0, &second, 1), 0u);
  EXPECT_TRUE(match(index, a).empty());
  // Engine hash 11 now names a block of another chain: the hold moves.
  ASSERT_EQ(store(index, 0, b, 0, 1, 11 - 0), Status::kOk);
  EXPECT_EQ(index.stats().pairs, 1u);
  EXPECT_EQ(index.stats().blocks, 1u);
  EXPECT_EQ(match(index, b), (std::map<uint32_t, uint32_t>{{0, 1}}));
}

TEST(KvIndex, ClearUnitDropsOnlyThatUnit) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 3);
  for (uint32_t u = 0; u < 8; u++) ASSERT_EQ(store(index, u, t, 0, 3 - u % 3, 10), Status::kOk);
  index.clear_unit(3);
  auto m = match(index, t);
  EXPECT_EQ(m.count(3), 0u);
  EXPECT_EQ(m.size(), 7u);
  EXPECT_EQ(m[4], 2u);
  for (uint32_t u = 0; u < 8; u++) index.clear_unit(u);
  EXPECT_EQ(index.stats().blocks, 0u);
  // The unit can store again afterwards.
  ASSERT_EQ(store(index, 3, t, 0, 3, 10), Status::kOk);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{3, 3}}));
}

TEST(KvIndex, HoldingUnitsCountsTheUnitsWithAnyBlock) {
  KvIndex index(kBs);
  std::mt19937 g(7);
  constexpr uint32_t kUnits = 12;
  for (int step = 0; step < 4000; step++) {
    const auto u = static_cast<uint32_t>(g() % kUnits);
    const uint32_t op = g() % 10;
    const int64_t engine = static_cast<int64_t>(g() % 6);  // few engine hashes: stores move holds
    if (op < 4) {
      const auto t = tokens_of(g() % 3, 4);
      store(index, u, t, 0, 1 + g() % 4, engine);
    } else if (op < 5) {
      index.claim(u, engine, g() % 4);
    } else if (op < 9) {
      index.apply_removed(u, &engine, 1);
    } else {
      index.clear_unit(u);
    }
    size_t holding = 0;
    for (uint32_t v = 0; v < kUnits; v++) holding += index.holds_any(v);
    ASSERT_EQ(index.holding_units(), holding) << "step " << step;
    ASSERT_EQ(index.holding_units(), index.stats().units) << "step " << step;
  }
}

TEST(KvIndex, ManyUnitsOnOneBlockSpillAndShrinkBack) {
  KvIndex index(kBs);
  const auto t = tokens_of(1, 2);
  for (uint32_t u = 0; u < 300; u += 3) ASSERT_EQ(store(index, u, t, 0, 1 + (u % 2), 10), Status::kOk);
  auto m = match(index, t);
  ASSERT_EQ(m.size(), 100u);
  for (auto& [u, d] : m) EXPECT_EQ(d, 1u + (u % 2)) << u;
  for (uint32_t u = 0; u < 297; u += 3) index.clear_unit(u);
  EXPECT_EQ(match(index, t), (std::map<uint32_t, uint32_t>{{297, 2}}));
}

TEST(KvIndex, MemoryFollowsTheHolds) {
  // Fill, drain, fill again: memory returns near empty and does not grow across rounds.
  KvIndex index(16);
  std::mt19937 rng(3);
  std::vector<uint32_t> tokens(64 * 16);
  size_t peak[2] = {0, 0};
  for (int round = 0; round < 2; round++) {
    for (uint32_t seqno = 0; seqno < 2000; seqno++) {
      for (auto& x : tokens) x = rng();
      std::vector<int64_t> engine(64);
      for (int b = 0; b < 64; b++) engine[b] = int64_t{seqno} * 64 + b;
      ASSERT_EQ(index.apply_stored(seqno % 8, nullptr, tokens.data(), tokens.size(), engine.data(), 64), Status::kOk);
    }
    const IndexStats full = index.stats();
    EXPECT_EQ(full.pairs, 2000u * 64);
    peak[round] = full.bytes;
    // Below the design target of 64 bytes per (block, unit) pair even with one holder each.
    EXPECT_LT(static_cast<double>(full.bytes) / full.pairs, 64.0);
    for (uint32_t u = 0; u < 8; u++) index.clear_unit(u);
    const IndexStats empty = index.stats();
    EXPECT_EQ(empty.blocks, 0u);
    EXPECT_LT(empty.bytes, full.bytes / 4);  // the node pool is kept for reuse, tables shrink
  }
  EXPECT_EQ(peak[0], peak[1]);
}

}  // namespace
