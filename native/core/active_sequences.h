// Requests in flight per unit: the router's own view of each worker's load (dynamo.md §2.7).
//
// A routed request is added with its blocks (sequence hashes of its full blocks, plus one
// for a trailing partial block) and its prefill tokens; its prefill tokens stop counting
// when the first output token arrives (mark_prefill_done), and everything is released on
// free. Blocks shared by several requests on one unit count once ("assume KV reuse"): the
// active blocks of a unit are its distinct active sequence hashes, and match() tells how
// many leading blocks of a new request are already active on each unit.
//
// Most of a request's blocks are its own (a conversation past a shared system prompt), and
// a node per block in the prefix table costs a cache miss to add and another to release. So
// only blocks some other request also holds are nodes: the rest, the request's tail, stays
// in the request as one array, keyed by its first hash. Every active block is either a node
// or in exactly one tail. A request's nodes are its leading blocks and its tail the rest, so
// a walk that stops at block d (no node) can only go on in the tail that starts with seq[d].
// When a new request shares a tail's leading blocks, they become nodes (promote()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/flat_map.h"
#include "core/prefix_table.h"

namespace kvgate {

struct UnitLoad {
  uint64_t active_blocks = 0;   // distinct active blocks (full blocks deduplicated, partial tails each)
  uint64_t prefill_tokens = 0;  // prompt tokens still to prefill (requests before their first token)
  uint32_t requests = 0;        // requests in flight
};

class ActiveSequences {
 public:
  enum class AddStatus { kOk, kDuplicate, kUnitFull };
  // A unit carries at most this many requests (the per-block hold counter's limit).
  static constexpr uint32_t kMaxRequestsPerUnit = PrefixTable::kMaxCount;

  ActiveSequences() = default;
  ActiveSequences(const ActiveSequences&) = delete;
  ActiveSequences& operator=(const ActiveSequences&) = delete;

  // Records request `id` on `unit` with the sequence hashes of its n_full full blocks
  // (chained, so no block repeats within a request). O(blocks), with a table access only
  // per block another request holds too. If another unit held no block in the table and
  // now does (its request's tail was shared and became nodes), *now_holding is set to it
  // (else U64Map::kNone): holds_any() changed for it.
  AddStatus add(uint64_t id, uint32_t unit, const uint64_t* seq, size_t n_full, bool partial_block,
                uint64_t prefill_tokens, uint32_t* now_holding = nullptr);
  bool contains(uint64_t id) const { return index_.find(id) != U64Map::kNone; }
  // The unit request `id` is on, or U64Map::kNone if unknown.
  uint32_t unit_of(uint64_t id) const {
    const uint32_t slot = index_.find(id);
    return slot == U64Map::kNone ? U64Map::kNone : requests_[slot].unit;
  }
  // The request's prefill is done: its prefill tokens leave the unit's load. False if the
  // request is unknown or already marked.
  bool mark_prefill_done(uint64_t id);
  // Releases the request. False if unknown (already freed: free is idempotent).
  bool free(uint64_t id);
  // Drops every request of the unit (the worker went away).
  void remove_unit(uint32_t unit);

  // Per unit, how many leading blocks of the query are active on it.
  void match(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
    table_.match(seq, n, out);
    extend_by_tail(seq, n, 0, out);
  }
  // See PrefixTable::match_past_common; the units it leaves out are those holds_any() names.
  size_t match_past_common(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
    const size_t k = table_.match_past_common(seq, n, out);
    extend_by_tail(seq, n, k, out);
    return k;
  }
  // Whether the unit holds a block in the table (a unit whose requests are all tails holds
  // none: match_past_common lists it where its tail matches, and it holds no common block).
  bool holds_any(uint32_t unit) const { return table_.holds_any(unit); }
  void prefetch(uint64_t seq) const { table_.prefetch(seq); }
  // How many leading blocks of seq[0..n) request `id` holds (0 if unknown). Its blocks are
  // a chain, so holding block i means holding every block before it: a binary search over
  // its nodes and tail, O(log n).
  uint32_t common_prefix(uint64_t id, const uint64_t* seq, size_t n) const;

  const UnitLoad& load(uint32_t unit) const { return unit < loads_.size() ? loads_[unit] : kIdle; }
  size_t requests() const { return index_.size(); }
  // Requests not yet marked prefill done, over every unit (the fleet's prompts queued or in
  // prefill: the own term's queue factor, scheduler.h).
  size_t prefilling() const { return prefilling_; }
  size_t bytes() const;

 private:
  struct Request {
    uint32_t unit = 0;
    bool partial = false;
    bool prefill_done = false;
    uint64_t prefill_tokens = 0;
    std::vector<uint32_t> nodes;  // its leading blocks, held in the table (node ids stay valid while held)
    std::vector<uint64_t> tail;   // the blocks after them, no other request's: not in the table
  };
  static const UnitLoad kIdle;

  void release(uint32_t slot);
  // How many leading blocks of seq[0..n) are nodes (they are a prefix: a binary search).
  size_t node_prefix(const uint64_t* seq, size_t n) const;
  // The first m blocks of request `slot`'s tail become nodes held by its unit (another
  // request shares them). Its unit's active blocks are unchanged: they were counted.
  void promote(uint32_t slot, size_t m);
  // A walk that found the query's nodes up to depth `base` or a listed unit's depth goes
  // on in the tail that starts where the nodes end, if any: that request's unit goes deeper.
  void extend_by_tail(const uint64_t* seq, size_t n, size_t base, std::vector<UnitDepth>* out) const;

  // Small and churned by every request: kept sparse for cheap inserts and erases. Nested: a
  // request holds its blocks from the first.
  PrefixTable table_{50, true};
  U64Map index_;                   // request id → slot in requests_
  U64Map tails_;                   // a tail's first hash → its request's slot
  std::vector<Request> requests_;  // slots are reused, keeping their node vectors' capacity
  std::vector<uint32_t> free_slots_;
  std::vector<UnitLoad> loads_;
  size_t prefilling_ = 0;
};

}  // namespace kvgate
