// libFuzzer target: the input is a program of router operations. Two KvRouters run it side by
// side; batches built from the input go to one as SGLang array events and to the other as
// tagged-map events (raw input bytes go to both), so they must stay identical throughout;
// the second scores every candidate on every route (full_scan), the first prunes.
// Operations: apply a batch (raw bytes or built), register / remove / clear units and
// workers, route a token sequence, mark prefill done and free requests, match a query,
// expire (approximate mode, pending prefixes). Checked after every operation (any failure aborts):
//  - both routers agree: stats, route results, matches;
//  - a batch that does not parse changes nothing; one that does accounts for every event;
//  - counters agree with each other: index pairs = sum of units' cached blocks, blocks <=
//    pairs, active requests = live requests = sum of units' requests, an idle unit has no
//    load, candidates = units flagged candidate;
//  - a route goes to a registered candidate, with overlap <= the prompt's full blocks; with
//    no candidate it is kNoWorkers;
//  - matches name units in use, each at depth 1..query blocks.
// At the end every request is freed and every worker removed: the index must be empty and
// its memory back near its empty size (and LeakSanitizer sees no leak).
//
// Input layout, one byte per choice (the seeds in corpus/router_apply_fuzz are written so):
//   header   block_size - 1 (mod 4), policy (mod 5), mode (bit 0: temperature 0.7; bits 1-2
//            zero: approximate mode; bit 3: pending prefixes, weight 4, timeout 50; bit 4:
//            own weight 8; bit 5: with bit 4, own queue weight 1)
//   op       opcode (mod 12), worker (mod 6), rank (mod 3), then by opcode:
//     0      raw batch: length, bytes
//     1-3    built batch: ts, event count (mod 7), events, dp (mod 4; 0 = nil, else rank dp-1)
//            event: kind (mod 5: 0-2 stored, 3 removed, 4 cleared), medium (mod 6: 5 host
//            tier, else mod 2: nil / "GPU"), hash count (stored 1 + mod 3, else mod 4),
//            hashes (mod 13, minus 6); stored: has parent (bit 0), parent, shape (mod 4: 1
//            last page partial, 2 a token too many), tokens (mod 3); then the map form's key
//            rotation
//     4      register the unit       5  remove unit (bit 0) or worker
//     6      clear unit (bit 0) or worker
//     7-8    route: token count (mod 25), tokens (mod 3), time step (mod 31)
//     9      free a live request: which (mod live), mark prefill done first (bit 0)
//     10     match: token count (mod 25), tokens (mod 3)
//     11     expire: time step (mod 101)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/block_hash.h"
#include "core/kv_router.h"
#include "tests/msgpack_writer.h"

namespace {

using kvgate::BatchResult;
using kvgate::KvEventError;
using kvgate::KvRouter;
using kvgate::Policy;
using kvgate::RouterConfig;
using kvgate::RouteResult;
using kvgate::RouterStats;
using kvgate::RouteStatus;
using kvgate::UnitInfo;
using kvgate::UnitMatch;
using kvgate::test::MsgpackWriter;

constexpr uint32_t kWorkers = 6;
constexpr uint32_t kRanks = 3;

// Aborts naming the failed check's line.
void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "router_apply_fuzz.cc:%d: check failed\n", line);
  std::abort();
}
#define check(ok) check_at((ok), __LINE__)

bool same_stats(const RouterStats& a, const RouterStats& b) {
  return a.index.blocks == b.index.blocks && a.index.pairs == b.index.pairs && a.index.units == b.index.units &&
         a.candidates == b.candidates && a.units == b.units && a.active_requests == b.active_requests &&
         a.events_applied == b.events_applied && a.event_errors == b.event_errors &&
         a.approx_blocks == b.approx_blocks && a.pending_requests == b.pending_requests &&
         a.pending_blocks == b.pending_blocks;
}

// The program, read front to back one byte per choice (zeros once it runs out), so that a
// mutation changes one choice and seeds are easy to write.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ == end_; }
  uint8_t byte() { return p_ == end_ ? 0 : *p_++; }
  uint32_t upto(uint32_t max) { return byte() % (max + 1); }  // 0..max, max < 256
  bool flag() { return byte() & 1; }
  std::vector<uint8_t> bytes(size_t n) {
    n = std::min(n, static_cast<size_t>(end_ - p_));
    std::vector<uint8_t> out(p_, p_ + n);
    p_ += n;
    return out;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Tokens from a tiny alphabet, so that prompts and stored chains share prefixes.
std::vector<uint32_t> tokens(Input& in, uint32_t max) {
  std::vector<uint32_t> t(in.upto(max));
  for (uint32_t& x : t) x = in.upto(2);
  return t;
}

// Small engine hashes, so that parents and removals name blocks that were stored.
int64_t hash(Input& in) { return static_cast<int64_t>(in.upto(12)) - 6; }

// One map entry: key, then value.
using Entry = std::function<void(MsgpackWriter&)>;

// A valid batch built from the input, written in both wire forms.
struct BuiltBatch {
  MsgpackWriter array, map;
};

void write_medium(MsgpackWriter& w, uint8_t medium) {
  if (medium == 0)
    w.nil();
  else
    w.str(medium == 1 ? "GPU" : "CPU_PINNED");
}

BuiltBatch build_batch(Input& in, uint32_t block_size) {
  BuiltBatch b;
  const double ts = 1.7e9 + in.byte();
  const size_t count = in.upto(6);
  b.array.array(3).f64(ts).array(count);
  b.map.array(3).f64(ts).array(count);
  for (size_t e = 0; e < count; e++) {
    const uint8_t kind = static_cast<uint8_t>(in.upto(4));  // stored more often
    const uint8_t medium_choice = in.byte();                // nil, "GPU", 1 in 6 "CPU_PINNED"
    const uint8_t medium = medium_choice % 6 == 5 ? 2 : medium_choice % 2;
    std::vector<int64_t> hashes(kind <= 2 ? 1 + in.upto(2) : in.upto(3));
    for (int64_t& h : hashes) h = hash(in);
    std::vector<Entry> entries;  // the map form's entries after "type", in field order
    auto hashes_entry = [&hashes](MsgpackWriter& w) {
      w.str("block_hashes").array(hashes.size());
      for (int64_t h : hashes) w.int_(h);
    };
    if (kind <= 2) {
      const bool has_parent = in.flag();
      const int64_t parent = has_parent ? hash(in) : 0;
      // A page per hash; the last one may be partial (SGLang's trailing page: not indexed) or
      // one token too long (tokens beyond hashes x block_size: the router refuses the event).
      const uint8_t shape = in.byte() % 4;  // 1: last page partial, 2: a token too many
      const bool partial = shape == 1 && block_size > 1;
      std::vector<uint32_t> t(hashes.size() * block_size - partial + (shape == 2));
      for (uint32_t& x : t) x = in.upto(2);
      // SGLang's block_size is the page size, or a lone partial page's length.
      const uint32_t bs = partial && hashes.size() == 1 ? static_cast<uint32_t>(t.size()) : block_size;
      b.array.array(7).str("BlockStored").array(hashes.size());
      for (int64_t h : hashes) b.array.int_(h);
      if (has_parent)
        b.array.int_(parent);
      else
        b.array.nil();
      b.array.array(t.size());
      for (uint32_t x : t) b.array.uint_(x);
      b.array.uint_(bs).nil();
      write_medium(b.array, medium);
      entries.push_back(hashes_entry);
      entries.push_back([=](MsgpackWriter& w) {
        w.str("parent_block_hash");
        if (has_parent)
          w.int_(parent);
        else
          w.nil();
      });
      entries.push_back([t](MsgpackWriter& w) {
        w.str("token_ids").array(t.size());
        for (uint32_t x : t) w.uint_(x);
      });
      entries.push_back([bs](MsgpackWriter& w) { w.str("block_size").uint_(bs); });
      entries.push_back([](MsgpackWriter& w) { w.str("lora_id").nil(); });
      if (medium != 0) entries.push_back([medium](MsgpackWriter& w) { write_medium(w.str("medium"), medium); });
      entries.push_back([](MsgpackWriter& w) { w.str("session_id").str("s"); });  // unknown key
    } else if (kind == 3) {
      b.array.array(3).str("BlockRemoved").array(hashes.size());
      for (int64_t h : hashes) b.array.int_(h);
      write_medium(b.array, medium);
      entries.push_back(hashes_entry);
      if (medium != 0) entries.push_back([medium](MsgpackWriter& w) { write_medium(w.str("medium"), medium); });
    } else {
      b.array.array(1).str("AllBlocksCleared");
    }
    const char* tag = kind <= 2 ? "BlockStored" : kind == 3 ? "BlockRemoved" : "AllBlocksCleared";
    entries.insert(entries.begin(), [tag](MsgpackWriter& w) { w.str("type").str(tag); });
    // msgspec writes the tag first; any order must read the same.
    std::rotate(entries.begin(), entries.begin() + in.byte() % entries.size(), entries.end());
    b.map.map(entries.size());
    for (const Entry& write : entries) write(b.map);
  }
  const uint32_t dp = in.upto(kRanks);  // 0: nil (the caller's rank), else rank dp - 1
  if (dp == 0) {
    b.array.nil();
    b.map.nil();
  } else {
    b.array.uint_(dp - 1);
    b.map.uint_(dp - 1);
  }
  return b;
}

// The counters of one router agree with each other and with the live requests.
void check_consistent(const KvRouter& r, size_t live) {
  std::vector<UnitInfo> units;
  r.units(&units);
  const RouterStats st = r.stats();
  uint64_t cached = 0, requests = 0, candidates = 0, holding = 0;
  for (const UnitInfo& u : units) {
    cached += u.cached_blocks;
    requests += u.load.requests;
    candidates += u.candidate;
    holding += u.cached_blocks > 0;
    if (u.load.requests == 0) check(u.load.active_blocks == 0 && u.load.prefill_tokens == 0);
  }
  check(st.index.pairs == cached);
  check(st.index.blocks <= st.index.pairs);
  check(st.index.units == holding);
  check(st.active_requests == requests && requests == live);
  check(st.candidates == candidates && st.units == units.size());
}

bool is_candidate(const KvRouter& r, uint32_t worker, uint32_t rank) {
  std::vector<UnitInfo> units;
  r.units(&units);
  for (const UnitInfo& u : units) {
    if (u.worker == worker && u.rank == rank) return u.candidate;
  }
  return false;
}

// Applies `a` to r0 and `b` to r1 and checks the results agree and account for the batch.
void apply(KvRouter& r0, KvRouter& r1, uint32_t worker, uint32_t rank, const std::vector<uint8_t>& a,
           const std::vector<uint8_t>& b) {
  const RouterStats before = r0.stats();
  BatchResult out0, out1;
  const KvEventError e0 = r0.apply_batch(worker, rank, a.data(), a.size(), &out0);
  const KvEventError e1 = r1.apply_batch(worker, rank, b.data(), b.size(), &out1);
  check(e0 == e1);
  check(out0.events == out1.events && out0.applied == out1.applied && out0.ignored == out1.ignored &&
        out0.errors == out1.errors);
  const RouterStats after = r0.stats();
  if (e0 != KvEventError::kOk) {
    check(same_stats(before, after));
    return;
  }
  check(out0.events == out0.applied + out0.ignored + out0.errors);
  check(after.events_applied - before.events_applied == out0.applied);
  check(after.event_errors - before.event_errors == out0.errors);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  RouterConfig c;
  c.block_size = 1 + in.upto(3);
  c.policy = static_cast<Policy>(in.upto(4));
  // bit 0: temperature 0.7; bits 1-2 zero: approximate mode; bit 3: pending prefixes; bit 4: own
  // weight; bit 5: its queue weight
  const uint8_t mode = in.byte();
  c.temperature = mode & 1 ? 0.7 : 0.0;
  c.pending_weight = mode & 8 ? 4.0 : 0.0;
  c.own_weight = mode & 16 ? 8.0 : 0.0;
  c.own_queue_weight = mode & 32 ? 1.0 : 0.0;
  c.pending_timeout_ms = 50;
  c.seed = 1;
  c.approx = (mode & 6) == 0;
  c.approx_ttl_ms = 50;
  c.approx_max_blocks = 32;
  // r1 scores every candidate on every route: r0's pruned scan must pick the same units.
  RouterConfig full = c;
  full.full_scan = true;
  KvRouter r0(c), r1(full);
  const uint64_t empty_bytes = r0.stats().bytes;

  struct Live {
    uint64_t id;
    uint32_t worker, rank;
  };
  std::vector<Live> live;
  uint64_t next_id = 1;
  double now = 0;
  std::vector<UnitMatch> m0, m1;
  std::vector<uint64_t> local;
  for (int ops = 0; ops < 256 && !in.done(); ops++) {
    const uint8_t op = in.byte() % 12;
    const uint32_t worker = in.upto(kWorkers - 1);
    const uint32_t rank = in.upto(kRanks - 1);
    switch (op) {
      case 0: {  // raw bytes, mostly malformed
        const std::vector<uint8_t> raw = in.bytes(in.byte());
        apply(r0, r1, worker, rank, raw, raw);
        break;
      }
      case 1:
      case 2:
      case 3: {
        const BuiltBatch b = build_batch(in, c.block_size);
        apply(r0, r1, worker, rank, b.array.bytes, b.map.bytes);
        break;
      }
      case 4: check(r0.add_unit(worker, rank) && r1.add_unit(worker, rank)); break;
      case 5: {
        const bool unit = in.flag();
        if (unit) {
          r0.remove_unit(worker, rank);
          r1.remove_unit(worker, rank);
        } else {
          r0.remove_worker(worker);
          r1.remove_worker(worker);
        }
        // Requests on a removed unit are gone with it.
        live.erase(std::remove_if(live.begin(), live.end(),
                                  [&](const Live& l) { return l.worker == worker && (l.rank == rank || !unit); }),
                   live.end());
        break;
      }
      case 6:
        if (in.flag()) {
          r0.clear_unit(worker, rank);
          r1.clear_unit(worker, rank);
        } else {
          r0.clear_worker(worker);
          r1.clear_worker(worker);
        }
        break;
      case 7:
      case 8: {
        const std::vector<uint32_t> t = tokens(in, 24);
        now += in.upto(30);
        RouteResult a, b;
        const RouteStatus sa = r0.route(t.data(), t.size(), next_id, 1.0, c.temperature, now, &a);
        const RouteStatus sb = r1.route(t.data(), t.size(), next_id, 1.0, c.temperature, now, &b);
        check(sa == sb);
        check((sa == RouteStatus::kNoWorkers) == (r0.candidate_count() == 0));
        if (sa == RouteStatus::kOk) {
          check(a.worker == b.worker && a.rank == b.rank && a.overlap == b.overlap);
          check(is_candidate(r0, a.worker, a.rank));
          check(a.overlap <= t.size() / c.block_size);
          live.push_back(Live{next_id, a.worker, a.rank});
        }
        next_id++;
        break;
      }
      case 9:
        if (!live.empty()) {
          const size_t i = in.byte() % live.size();
          const uint64_t id = live[i].id;
          if (in.flag()) check(r0.mark_prefill_done(id) && r1.mark_prefill_done(id));
          check(r0.free(id) && r1.free(id));
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
      case 10: {
        const std::vector<uint32_t> t = tokens(in, 24);
        local.resize(t.size() / c.block_size);
        kvgate::compute_block_hashes(t.data(), t.size(), c.block_size, local.data());
        r0.find_matches(local.data(), local.size(), &m0);
        r1.find_matches(local.data(), local.size(), &m1);
        check(m0.size() == m1.size());
        std::vector<UnitInfo> units;
        r0.units(&units);
        for (size_t i = 0; i < m0.size(); i++) {
          check(m0[i].worker == m1[i].worker && m0[i].rank == m1[i].rank && m0[i].depth == m1[i].depth);
          check(m0[i].depth >= 1 && m0[i].depth <= local.size());
          check(std::any_of(units.begin(), units.end(),
                            [&](const UnitInfo& u) { return u.worker == m0[i].worker && u.rank == m0[i].rank; }));
        }
        break;
      }
      default:
        now += in.upto(100);
        r0.expire(now);
        r1.expire(now);
        break;
    }
    check(same_stats(r0.stats(), r1.stats()));
    check_consistent(r0, live.size());
    if (c.approx) check(r0.stats().approx_blocks <= c.approx_max_blocks);
    // Pending blocks belong to live requests only, at most a prompt's full blocks each.
    const RouterStats st = r0.stats();
    check(st.pending_requests <= st.active_requests && st.pending_blocks <= st.pending_requests * (24 / c.block_size));
    if (c.pending_weight == 0) check(st.pending_requests == 0);
  }

  for (const Live& l : live) check(r0.free(l.id) && r1.free(l.id));
  for (uint32_t w = 0; w < kWorkers; w++) {
    r0.remove_worker(w);
    r1.remove_worker(w);
  }
  const RouterStats end = r0.stats();
  check(end.index.blocks == 0 && end.index.pairs == 0 && end.active_requests == 0 && end.approx_blocks == 0);
  check(end.pending_requests == 0 && end.pending_blocks == 0);
  check(end.units == 0 && end.candidates == 0);
  // What may remain: the index's, the active and the pending tables' retained node chunks
  // (384 KB each).
  check(end.bytes < empty_bytes + (3u << 19));
  return 0;
}
