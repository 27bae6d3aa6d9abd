#include "core/kv_index.h"

#include "core/block_hash.h"

namespace kvgate {

KvIndex::KvIndex(uint32_t block_size) : block_size_(block_size) {}

U64Map& KvIndex::lookup(uint32_t unit) {
  if (unit >= lookups_.size()) lookups_.resize(unit + 1);
  return lookups_[unit];
}

KvIndex::Status KvIndex::apply_stored(uint32_t unit, const int64_t* parent, const uint32_t* tokens, size_t n_tokens,
                                      const int64_t* engine, size_t n_engine) {
  if (n_tokens > n_engine * size_t{block_size_}) return Status::kBlockSizeMismatch;
  const size_t count = n_tokens / block_size_;
  // scratch_ = [parent seq, local hashes...]: store_local chains from there in place.
  scratch_.resize(count + 1);
  compute_block_hashes(tokens, count * block_size_, block_size_, scratch_.data() + 1);
  return store_local(unit, parent, scratch_.data() + 1, engine, count);
}

KvIndex::Status KvIndex::store_local(uint32_t unit, const int64_t* parent, const uint64_t* local, const int64_t* engine,
                                     size_t count) {
  uint64_t parent_seq = 0;
  if (parent) {
    const uint32_t node = unit < lookups_.size() ? lookups_[unit].find(static_cast<uint64_t>(*parent)) : U64Map::kNone;
    if (node == U64Map::kNone) return Status::kUnknownParent;
    parent_seq = table_.seq_of(node);
  }
  if (count == 0) return Status::kOk;
  // Sequence hashes: under the root seq[0] = local[0]; under a parent, chaining
  // [parent_seq, local...] makes element i+1 the hash of block i.
  uint64_t* seq;
  if (parent) {
    if (local != scratch_.data() + 1) {
      scratch_.resize(count + 1);
      for (size_t i = 0; i < count; i++) scratch_[i + 1] = local[i];
    }
    scratch_[0] = parent_seq;
    compute_sequence_hashes(scratch_.data(), count + 1, scratch_.data());
    seq = scratch_.data() + 1;
  } else {
    scratch_.resize(count + 1);
    compute_sequence_hashes(local, count, scratch_.data() + 1);
    seq = scratch_.data() + 1;
  }
  Status status = Status::kOk;
  for (size_t i = 0; i < count; i++) {
    if (!claim(unit, engine[i], seq[i])) status = Status::kLimit;
  }
  return status;
}

bool KvIndex::claim(uint32_t unit, int64_t engine, uint64_t seq) {
  U64Map& map = lookup(unit);
  const uint64_t key = static_cast<uint64_t>(engine);
  const uint32_t old = map.find(key);
  if (old != U64Map::kNone && table_.seq_of(old) == seq) return true;  // already held there
  uint32_t count;
  const uint32_t node = table_.add(seq, unit, &count);
  if (node == PrefixTable::kNoNode) return false;
  if (map.size() == 0) holding_units_++;
  map.put(key, node);
  // The engine hash named another block: that hold moves (added first, so a block the new
  // one chains from is never freed in between).
  if (old != U64Map::kNone) table_.remove(old, unit);
  return true;
}

size_t KvIndex::apply_removed(uint32_t unit, const int64_t* engine, size_t n) {
  size_t missing = 0;
  for (size_t i = 0; i < n; i++) {
    if (!release(unit, engine[i])) missing++;
  }
  return missing;
}

bool KvIndex::release(uint32_t unit, int64_t engine) {
  if (unit >= lookups_.size()) return false;
  const uint32_t node = lookups_[unit].erase(static_cast<uint64_t>(engine));
  if (node == U64Map::kNone) return false;
  table_.remove(node, unit);
  if (lookups_[unit].size() == 0) holding_units_--;
  return true;
}

void KvIndex::clear_unit(uint32_t unit) {
  if (unit >= lookups_.size()) return;
  U64Map& map = lookups_[unit];
  if (map.size() > 0) holding_units_--;
  map.for_each([&](uint64_t, uint32_t node) { table_.remove(node, unit); });
  map.reset();
}

IndexStats KvIndex::stats() const {
  IndexStats s;
  s.blocks = table_.blocks();
  s.bytes =
      sizeof(*this) + table_.bytes() + lookups_.capacity() * sizeof(U64Map) + scratch_.capacity() * sizeof(uint64_t);
  for (const U64Map& m : lookups_) {
    s.pairs += m.size();
    s.units += m.size() > 0;
    s.bytes += m.bytes();
  }
  return s;
}

}  // namespace kvgate
