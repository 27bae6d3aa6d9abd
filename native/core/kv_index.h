// The KV index: which units (dense ids of (worker, dp rank) pairs) hold which prefix
// blocks, kept exact by the engines' KV events (dynamo.md §2.4 semantics).
//
// Blocks are placed by the router's own hashes of the event's token ids (local hash per
// block, chained into a sequence hash, block_hash.h); the engine's int64 block hashes are
// opaque ids, used only per unit to find the parent of a stored chain and the blocks of a
// removal. A unit holds a block while at least one of its engine hashes names it.
//
// Removal does not cascade: removing a block a child still depends on leaves the child in
// place, and match() then stops that unit at the removed block. Memory is bounded by the
// holds: per held (block, unit) pair about 24 bytes of per-unit lookup plus the shared node
// (prefix_table.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/flat_map.h"
#include "core/prefix_table.h"

namespace kvgate {

struct IndexStats {
  uint64_t blocks = 0;  // distinct blocks held by at least one unit
  uint64_t pairs = 0;   // (block, unit, engine hash) holds: per-unit lookup entries
  uint64_t units = 0;   // units holding at least one block
  uint64_t bytes = 0;   // memory owned by the index, approximately
};

class KvIndex {
 public:
  enum class Status {
    kOk,
    kUnknownParent,      // the parent engine hash is not held by the unit: nothing applied
    kBlockSizeMismatch,  // more tokens than hashes x block size (engine page size differs): nothing applied
    kLimit,              // a unit holds one block under 65535 engine hashes: that hold skipped
  };

  // block_size in [1, kMaxBlockSize] (block_hash.h); callers validate.
  explicit KvIndex(uint32_t block_size);
  KvIndex(const KvIndex&) = delete;
  KvIndex& operator=(const KvIndex&) = delete;

  // A stored event for `unit` (< PrefixTable::kMaxUnits): block i is tokens[i*bs, (i+1)*bs)
  // under engine hash engine[i], chained under the unit's block `*parent` or under the root
  // when parent is null. Only full blocks are stored: a trailing partial page is ignored.
  // Storing an engine hash the unit already holds elsewhere moves it (the old hold is
  // dropped). O(blocks).
  Status apply_stored(uint32_t unit, const int64_t* parent, const uint32_t* tokens, size_t n_tokens,
                      const int64_t* engine, size_t n_engine);
  // One hold of `unit` on the block with sequence hash `seq` under `engine` (approximate
  // mode records routed requests this way). False only on kLimit.
  bool claim(uint32_t unit, int64_t engine, uint64_t seq);

  // Drops the unit's holds named by the engine hashes. Returns how many were not held.
  size_t apply_removed(uint32_t unit, const int64_t* engine, size_t n);
  // Drops one hold; false if the unit does not hold `engine`.
  bool release(uint32_t unit, int64_t engine);
  // Drops every hold of the unit and frees its lookup.
  void clear_unit(uint32_t unit);

  // Per unit, the number of leading blocks of the query (sequence hashes) it holds.
  void match(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) { table_.match(seq, n, out); }
  // See PrefixTable::match_past_common.
  size_t match_past_common(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
    return table_.match_past_common(seq, n, out);
  }
  bool holds_any(uint32_t unit) const { return table_.holds_any(unit); }
  // Units holding any block.
  size_t holding_units() const { return holding_units_; }
  void prefetch(uint64_t seq) const { table_.prefetch(seq); }
  // Whether the unit holds the block with sequence hash `seq`.
  bool holds(uint32_t unit, uint64_t seq) const { return table_.held_by(seq, unit); }

  // Holds of one unit (Dynamo's tree size, a tie-breaker in scheduling).
  size_t unit_blocks(uint32_t unit) const { return unit < lookups_.size() ? lookups_[unit].size() : 0; }
  IndexStats stats() const;

 private:
  // apply_stored once the blocks' local hashes are computed (count blocks).
  Status store_local(uint32_t unit, const int64_t* parent, const uint64_t* local, const int64_t* engine, size_t count);
  U64Map& lookup(uint32_t unit);

  uint32_t block_size_;
  PrefixTable table_;
  std::vector<U64Map> lookups_;  // per unit: engine hash → node
  size_t holding_units_ = 0;     // units whose lookup is not empty
  std::vector<uint64_t> scratch_;
};

}  // namespace kvgate
