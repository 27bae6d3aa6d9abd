// Requests in flight per unit: the router's own view of each worker's load (dynamo.md §2.7).
//
// A routed request is added with its blocks (sequence hashes of its full blocks, plus one
// for a trailing partial block) and its prefill tokens; its prefill tokens stop counting
// when the first output token arrives (mark_prefill_done), and everything is released on
// free. Blocks shared by several requests on one unit count once ("assume KV reuse"): the
// active blocks of a unit are its distinct active sequence hashes, and match() tells how
// many leading blocks of a new request are already active on each unit.
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

  // Records request `id` on `unit` with the sequence hashes of its n_full full blocks.
  // O(blocks).
  AddStatus add(uint64_t id, uint32_t unit, const uint64_t* seq, size_t n_full, bool partial_block,
                uint64_t prefill_tokens);
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
  void match(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) { table_.match(seq, n, out); }
  // See PrefixTable::match_past_common.
  size_t match_past_common(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
    return table_.match_past_common(seq, n, out);
  }
  bool holds_any(uint32_t unit) const { return table_.holds_any(unit); }
  void prefetch(uint64_t seq) const { table_.prefetch(seq); }
  // How many leading blocks of seq[0..n) request `id` holds (0 if unknown). Its blocks are
  // a chain, so holding block i means holding every block before it: a binary search,
  // O(log n). (A hold refused in add, only for a block one prompt repeats 65535 times,
  // shortens it.)
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
    std::vector<uint32_t> nodes;  // held blocks (node ids stay valid while held)
  };
  static const UnitLoad kIdle;

  void release(uint32_t slot);

  // Small and churned by every request: kept sparse for cheap inserts and erases. Nested: a
  // request holds its blocks from the first.
  PrefixTable table_{50, true};
  U64Map index_;                   // request id → slot in requests_
  std::vector<Request> requests_;  // slots are reused, keeping their node vectors' capacity
  std::vector<uint32_t> free_slots_;
  std::vector<UnitLoad> loads_;
  size_t prefilling_ = 0;
};

}  // namespace kvgate
