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
                                                bool partial_block, uint64_t prefill_tokens, uint32_t* now_holding) {
  if (now_holding != nullptr) *now_holding = U64Map::kNone;
  if (contains(id)) return AddStatus::kDuplicate;
  if (unit >= loads_.size()) loads_.resize(unit + 1);
  if (loads_[unit].requests >= kMaxRequestsPerUnit) return AddStatus::kUnitFull;

  // Blocks [0, shared) are held by other requests: nodes already, or the leading blocks of
  // the one tail that starts where the nodes end, which become nodes now.
  size_t shared = node_prefix(seq, n_full);
  if (shared < n_full) {
    const uint32_t other = tails_.find(seq[shared]);
    if (other != U64Map::kNone) {
      const Request& o = requests_[other];
      size_t m = 1;  // its first block is seq[shared]
      while (shared + m < n_full && m < o.tail.size() && o.tail[m] == seq[shared + m]) m++;
      if (now_holding != nullptr && !table_.holds_any(o.unit)) *now_holding = o.unit;
      promote(other, m);
      shared += m;
    }
  }

  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(requests_.size());
    requests_.emplace_back();
  }
  Request& r = requests_[slot];
  UnitLoad& load = loads_[unit];
  r.unit = unit;
  r.partial = partial_block;
  r.prefill_done = false;
  r.prefill_tokens = prefill_tokens;
  r.nodes.resize(shared);
  load.active_blocks += table_.add_all(seq, shared, unit, r.nodes.data());
  // A hold fails only if one unit holds a block kMaxCount times, which kMaxRequestsPerUnit
  // rules out (chained hashes never repeat within a request): it is not taken, so it is not
  // released either.
  r.nodes.erase(std::remove(r.nodes.begin(), r.nodes.end(), PrefixTable::kNoNode), r.nodes.end());
  r.tail.assign(seq + shared, seq + n_full);
  if (!r.tail.empty()) tails_.put(r.tail[0], slot);
  load.active_blocks += r.tail.size() + (partial_block ? 1 : 0);
  load.prefill_tokens += prefill_tokens;
  load.requests++;
  prefilling_++;
  index_.put(id, slot);
  return AddStatus::kOk;
}

size_t ActiveSequences::node_prefix(const uint64_t* seq, size_t n) const {
  size_t lo = 0, hi = n;  // blocks [0, lo) are nodes, [hi, n) are not
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (table_.find(seq[mid]) != PrefixTable::kNoNode) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

void ActiveSequences::promote(uint32_t slot, size_t m) {
  Request& o = requests_[slot];
  tails_.erase(o.tail[0]);
  const size_t base = o.nodes.size();
  o.nodes.resize(base + m);
  table_.add_all(o.tail.data(), m, o.unit, o.nodes.data() + base);
  o.nodes.erase(std::remove(o.nodes.begin() + base, o.nodes.end(), PrefixTable::kNoNode), o.nodes.end());
  o.tail.erase(o.tail.begin(), o.tail.begin() + m);
  if (!o.tail.empty()) tails_.put(o.tail[0], slot);
}

void ActiveSequences::extend_by_tail(const uint64_t* seq, size_t n, size_t base, std::vector<UnitDepth>* out) const {
  if (tails_.size() == 0) return;
  size_t depth = base;  // where the query's nodes end
  for (const UnitDepth& u : *out) depth = std::max<size_t>(depth, u.depth);
  if (depth >= n) return;
  const uint32_t slot = tails_.find(seq[depth]);
  if (slot == U64Map::kNone) return;
  const Request& r = requests_[slot];
  size_t m = 1;
  while (depth + m < n && m < r.tail.size() && r.tail[m] == seq[depth + m]) m++;
  const auto deeper = static_cast<uint32_t>(depth + m);
  // Its unit holds the nodes before the tail: listed at `depth`, or left out at the base.
  for (UnitDepth& u : *out) {
    if (u.unit == r.unit) {
      u.depth = deeper;
      return;
    }
  }
  out->push_back(UnitDepth{r.unit, deeper});
}

uint32_t ActiveSequences::common_prefix(uint64_t id, const uint64_t* seq, size_t n) const {
  const uint32_t slot = index_.find(id);
  if (slot == U64Map::kNone) return 0;
  const Request& r = requests_[slot];
  const size_t held = r.nodes.size();
  const auto block = [&](size_t i) { return i < held ? table_.seq_of(r.nodes[i]) : r.tail[i - held]; };
  size_t lo = 0, hi = std::min(n, held + r.tail.size());  // blocks [0, lo) match, [hi, ...) do not
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (block(mid) == seq[mid]) {
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
  // Its tail and partial block, and the nodes whose last hold on the unit went, leave its
  // active blocks.
  const size_t gone = table_.remove_all(r.nodes.data(), r.nodes.size(), r.unit) + r.tail.size() + (r.partial ? 1 : 0);
  drop<uint64_t>(load.active_blocks, gone);
  if (!r.tail.empty()) tails_.erase(r.tail[0]);
  if (!r.prefill_done) {
    drop(load.prefill_tokens, r.prefill_tokens);
    prefilling_--;
  }
  drop<uint32_t>(load.requests, 1);
  r.nodes.clear();
  r.tail.clear();
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
  size_t b = sizeof(*this) + table_.bytes() + index_.bytes() + tails_.bytes() + requests_.capacity() * sizeof(Request) +
             free_slots_.capacity() * sizeof(uint32_t) + loads_.capacity() * sizeof(UnitLoad);
  for (const Request& r : requests_) b += r.nodes.capacity() * sizeof(uint32_t) + r.tail.capacity() * sizeof(uint64_t);
  return b;
}

}  // namespace kvgate
