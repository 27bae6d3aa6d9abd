#include "core/active_sequences.h"

#include <algorithm>

namespace kvgate {

namespace {
// Load counters only shrink by what was added to them; saturating keeps a bookkeeping slip
// from wrapping a unit's load to 2^64 (which would keep the unit from ever being picked).
template <typename T>
void drop(T& counter, T by) {
  counter -= counter < by ? counter : by;
}
}  // namespace

const UnitLoad ActiveSequences::kIdle{};

ActiveSequences::AddStatus ActiveSequences::add(uint64_t id, uint32_t unit, const uint64_t* seq, size_t n_full,
                                                bool partial_block, uint64_t prefill_tokens) {
  if (contains(id)) return AddStatus::kDuplicate;
  if (unit >= loads_.size()) loads_.resize(unit + 1);
  UnitLoad& load = loads_[unit];
  if (load.requests >= kMaxRequestsPerUnit) return AddStatus::kUnitFull;

  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(requests_.size());
    requests_.emplace_back();
  }
  Request& r = requests_[slot];
  r.unit = unit;
  r.partial = partial_block;
  r.prefill_done = false;
  r.prefill_tokens = prefill_tokens;
  r.nodes.resize(n_full);
  load.active_blocks += table_.add_all(seq, n_full, unit, r.nodes.data());
  // A hold fails only if one request repeats a block kMaxCount times (chained hashes never
  // repeat): it is not taken, so it is not released either.
  r.nodes.erase(std::remove(r.nodes.begin(), r.nodes.end(), PrefixTable::kNoNode), r.nodes.end());
  if (partial_block) load.active_blocks++;
  load.prefill_tokens += prefill_tokens;
  load.requests++;
  prefilling_++;
  index_.put(id, slot);
  return AddStatus::kOk;
}

uint32_t ActiveSequences::common_prefix(uint64_t id, const uint64_t* seq, size_t n) const {
  const uint32_t slot = index_.find(id);
  if (slot == U64Map::kNone) return 0;
  const std::vector<uint32_t>& nodes = requests_[slot].nodes;
  size_t lo = 0, hi = std::min(n, nodes.size());  // blocks [0, lo) match, [hi, ...) do not
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (table_.seq_of(nodes[mid]) == seq[mid]) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return static_cast<uint32_t>(lo);
}

bool ActiveSequences::mark_prefill_done(uint64_t id) {
  const uint32_t slot = index_.find(id);
  if (slot == U64Map::kNone) return false;
  Request& r = requests_[slot];
  if (r.prefill_done) return false;
  r.prefill_done = true;
  drop(loads_[r.unit].prefill_tokens, r.prefill_tokens);
  prefilling_--;
  return true;
}

bool ActiveSequences::free(uint64_t id) {
  const uint32_t slot = index_.erase(id);
  if (slot == U64Map::kNone) return false;
  release(slot);
  return true;
}

void ActiveSequences::release(uint32_t slot) {
  Request& r = requests_[slot];
  UnitLoad& load = loads_[r.unit];
  // The blocks whose last hold on the unit went leave its active blocks.
  drop<uint64_t>(load.active_blocks, table_.remove_all(r.nodes.data(), r.nodes.size(), r.unit));
  if (r.partial) drop<uint64_t>(load.active_blocks, 1);
  if (!r.prefill_done) {
    drop(load.prefill_tokens, r.prefill_tokens);
    prefilling_--;
  }
  drop<uint32_t>(load.requests, 1);
  r.nodes.clear();
  free_slots_.push_back(slot);
}

void ActiveSequences::remove_unit(uint32_t unit) {
  if (unit >= loads_.size() || loads_[unit].requests == 0) return;
  std::vector<uint64_t> ids;
  index_.for_each([&](uint64_t id, uint32_t slot) {
    if (requests_[slot].unit == unit) ids.push_back(id);
  });
  for (uint64_t id : ids) free(id);
}

size_t ActiveSequences::bytes() const {
  size_t b = sizeof(*this) + table_.bytes() + index_.bytes() + requests_.capacity() * sizeof(Request) +
             free_slots_.capacity() * sizeof(uint32_t) + loads_.capacity() * sizeof(UnitLoad);
  for (const Request& r : requests_) b += r.nodes.capacity() * sizeof(uint32_t);
  return b;
}

}  // namespace kvgate
