#include "core/prefix_table.h"

#include <algorithm>
#include <cstring>

namespace kvgate {

namespace {
constexpr size_t kMinTable = 16;
constexpr uint32_t kSpillBack = 2;  // a spilled node moves back inline at this many holders
}  // namespace

uint32_t PrefixTable::find(uint64_t seq) const {
  if (live_ == 0) return kNoNode;
  const uint32_t tag = static_cast<uint32_t>(seq);
  for (size_t i = home(seq);; i = next(i)) {
    const Slot& s = slots_[i];
    if (s.node == kNoNode) return kNoNode;
    if (s.tag == tag && at(s.node).seq == seq) return s.node;
  }
}

void PrefixTable::rehash(size_t new_cap) {
  std::unique_ptr<Slot[]> old = std::move(slots_);
  const size_t old_cap = cap_;
  slots_.reset(new Slot[new_cap]);
  for (size_t i = 0; i < new_cap; i++) slots_[i].node = kNoNode;
  cap_ = new_cap;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].node == kNoNode) continue;
    size_t j = home(at(old[i].node).seq);
    while (slots_[j].node != kNoNode) j = next(j);
    slots_[j] = old[i];
  }
}

void PrefixTable::table_insert(uint64_t seq, uint32_t id) {
  // live_ already counts the new node.
  if (live_ * 4 > cap_ * 3) rehash(cap_ ? cap_ + cap_ / 2 : kMinTable);
  size_t i = home(seq);
  while (slots_[i].node != kNoNode) i = next(i);
  slots_[i] = Slot{static_cast<uint32_t>(seq), id};
}

void PrefixTable::table_erase(uint64_t seq) {
  const uint32_t tag = static_cast<uint32_t>(seq);
  size_t i = home(seq);
  for (;; i = next(i)) {
    const Slot& s = slots_[i];
    if (s.node == kNoNode) return;  // absent (callers only erase live nodes)
    if (s.tag == tag && at(s.node).seq == seq) break;
  }
  // Backward shift deletion (see flat_map.h).
  for (size_t j = next(i);; j = next(j)) {
    const Slot s = slots_[j];
    if (s.node == kNoNode) break;
    if (dist(home(at(s.node).seq), j) >= dist(i, j)) {
      slots_[i] = s;
      i = j;
    }
  }
  slots_[i].node = kNoNode;
  // live_ already excludes the erased node.
  if (cap_ > kMinTable && live_ * 10 < cap_) rehash(std::max(kMinTable, live_ * 5 / 2));
}

uint32_t PrefixTable::new_node(uint64_t seq) {
  uint32_t id;
  if (free_head_ != kNoNode) {
    id = free_head_;
    free_head_ = at(id).next_free;
  } else {
    id = next_unused_++;
    if ((id >> kChunkBits) == chunks_.size()) chunks_.emplace_back(new Node[size_t{1} << kChunkBits]);
  }
  Node& nd = at(id);
  nd.seq = seq;
  nd.n = 0;
  nd.spilled = 0;
  live_++;
  table_insert(seq, id);
  return id;
}

void PrefixTable::free_node(uint32_t id) {
  Node& nd = at(id);
  live_--;
  table_erase(nd.seq);
  if (nd.spilled) {
    std::vector<Holder>().swap(spill_[nd.spill]);
    spill_free_.push_back(nd.spill);
  }
  nd.n = 0;
  nd.spilled = 0;
  nd.next_free = free_head_;
  free_head_ = id;
  if (live_ == 0 && chunks_.size() > 1) {
    // Empty: give the pool back (all but one chunk, so a table that keeps emptying and
    // refilling does not allocate each time).
    chunks_.resize(1);
    next_unused_ = 0;
    free_head_ = kNoNode;
  }
}

uint32_t PrefixTable::add(uint64_t seq, uint32_t unit, uint32_t* count_after) {
  uint32_t id = find(seq);
  if (id == kNoNode) id = new_node(seq);
  Node& nd = at(id);
  Holder* h = holders(nd);
  const uint16_t u = static_cast<uint16_t>(unit);
  const Holder* pos = std::lower_bound(h, h + nd.n, u, [](const Holder& a, uint16_t b) { return a.unit < b; });
  size_t k = static_cast<size_t>(pos - h);
  if (k < nd.n && h[k].unit == u) {
    if (h[k].count == kMaxCount) return kNoNode;
    *count_after = ++h[k].count;
    holds_++;
    return id;
  }
  if (nd.spilled) {
    std::vector<Holder>& v = spill_[nd.spill];
    v.insert(v.begin() + static_cast<ptrdiff_t>(k), Holder{u, 1});
  } else if (nd.n < kInline) {
    std::memmove(h + k + 1, h + k, (nd.n - k) * sizeof(Holder));
    h[k] = Holder{u, 1};
  } else {
    uint32_t s;
    if (!spill_free_.empty()) {
      s = spill_free_.back();
      spill_free_.pop_back();
    } else {
      s = static_cast<uint32_t>(spill_.size());
      spill_.emplace_back();
    }
    std::vector<Holder>& v = spill_[s];
    v.reserve(kInline + 2);
    v.assign(h, h + nd.n);
    v.insert(v.begin() + static_cast<ptrdiff_t>(k), Holder{u, 1});
    nd.spill = s;
    nd.spilled = 1;
  }
  nd.n++;
  holds_++;
  *count_after = 1;
  return id;
}

uint32_t PrefixTable::count(uint32_t node, uint32_t unit) const {
  const Node& nd = at(node);
  const Holder* h = holders(nd);
  for (uint16_t i = 0; i < nd.n; i++) {
    if (h[i].unit == unit) return h[i].count;
  }
  return 0;
}

uint32_t PrefixTable::remove(uint32_t node, uint32_t unit) {
  Node& nd = at(node);
  Holder* h = holders(nd);
  const uint16_t u = static_cast<uint16_t>(unit);
  const Holder* pos = std::lower_bound(h, h + nd.n, u, [](const Holder& a, uint16_t b) { return a.unit < b; });
  const size_t k = static_cast<size_t>(pos - h);
  if (k == nd.n || h[k].unit != u) return 0;  // not held: callers keep holds in step, nothing to do
  holds_--;
  if (--h[k].count > 0) return h[k].count;
  if (--nd.n == 0) {
    free_node(node);
    return 0;
  }
  if (nd.spilled) {
    std::vector<Holder>& v = spill_[nd.spill];
    v.erase(v.begin() + static_cast<ptrdiff_t>(k));
    if (nd.n <= kSpillBack) {
      const uint32_t s = nd.spill;
      std::memcpy(nd.inline_holders, v.data(), nd.n * sizeof(Holder));
      std::vector<Holder>().swap(v);
      spill_free_.push_back(s);
      nd.spilled = 0;
    }
  } else {
    std::memmove(h + k, h + k + 1, (nd.n - k) * sizeof(Holder));
  }
  return 0;
}

void PrefixTable::match(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
  out->clear();
  if (n == 0 || live_ == 0) return;
  active_.clear();
  // Blocks are looked up in batches: the table slots of a batch are prefetched together
  // and then its nodes, so the cache misses of a long query overlap instead of queueing.
  constexpr size_t kBatch = 16;
  uint32_t ids[kBatch];
  size_t depth = 0;
  while (depth < n) {
    const size_t start = depth;
    const size_t end = std::min(n, start + kBatch);
    for (size_t i = start; i < end; i++) __builtin_prefetch(&slots_[home(seq[i])]);
    size_t got = 0;
    for (size_t i = start; i < end; i++) {
      const uint32_t id = find(seq[i]);
      if (id == kNoNode) break;
      ids[got++] = id;
      __builtin_prefetch(&at(id));
    }
    for (size_t k = 0; k < got; k++, depth++) {
      const Node& nd = at(ids[k]);
      const Holder* h = holders(nd);
      if (depth == 0) {
        for (uint16_t i = 0; i < nd.n; i++) active_.push_back(h[i].unit);
        continue;
      }
      // active_ ∩= holders; units that drop out matched `depth` blocks.
      size_t w = 0, j = 0;
      for (size_t i = 0; i < active_.size(); i++) {
        const uint16_t u = active_[i];
        while (j < nd.n && h[j].unit < u) j++;
        if (j < nd.n && h[j].unit == u) {
          active_[w++] = u;
        } else {
          out->push_back(UnitDepth{u, static_cast<uint32_t>(depth)});
        }
      }
      active_.resize(w);
      if (w == 0) return;
    }
    if (got < end - start) break;  // a block is missing: the walk ends here
  }
  for (uint16_t u : active_) out->push_back(UnitDepth{u, static_cast<uint32_t>(depth)});
}

size_t PrefixTable::bytes() const {
  size_t b = sizeof(*this) + chunks_.capacity() * sizeof(chunks_[0]) +
             chunks_.size() * (sizeof(Node) << kChunkBits) + cap_ * sizeof(Slot) +
             spill_.capacity() * sizeof(spill_[0]) + spill_free_.capacity() * sizeof(uint32_t) +
             active_.capacity() * sizeof(uint16_t);
  for (const auto& v : spill_) b += v.capacity() * sizeof(Holder);
  return b;
}

}  // namespace kvgate
