#include "core/prefix_table.h"

#include <algorithm>
#include <stdexcept>

namespace kvgate {

namespace {
constexpr size_t kMinTable = 16;
constexpr uint32_t kSpillBack = 2;  // a spilled node moves back inline at this many holders
// Below this many nodes a table mostly stays in cache (about 1 MB of nodes and slots), and
// add_all skips its prefetching (pure overhead there).
constexpr size_t kCached = size_t{1} << 15;
// A nested node goes dense (see PrefixTable::Dense) past this many holders, if its largest
// unit id is below kDenseSpread times its holders (at most ~4x the sorted array's memory).
constexpr uint32_t kDenseAt = 256;
constexpr uint32_t kDenseSpread = 8;

// f(i) for each set bit i of bits[0, words), in increasing order.
template <typename F>
void each_bit(const uint64_t* bits, uint32_t words, F f) {
  for (uint32_t w = 0; w < words; w++) {
    for (uint64_t b = bits[w]; b != 0; b &= b - 1) f(w * 64 + static_cast<uint32_t>(__builtin_ctzll(b)));
  }
}

}  // namespace

PrefixTable::PrefixTable(unsigned max_load_pct, bool nested) : max_load_pct_(max_load_pct), nested_(nested) {
  if (max_load_pct < 1 || max_load_pct > 99)
    throw std::invalid_argument("PrefixTable: max_load_pct must be in [1, 99]");
}

PrefixTable::~PrefixTable() {
  for (uint32_t id = 0; id < next_unused_; id++) {
    const Node& nd = at(id);
    if (nd.n > 0 && nd.spilled == kDenseForm) delete dense(nd);
    if (nd.n > 0 && nd.spilled == kSpillForm) delete[] heap(nd).ptr;
  }
}

uint32_t PrefixTable::find(uint64_t seq) const {
  if (live_ == 0) return kNoNode;
  const uint32_t tag = static_cast<uint32_t>(seq);
  for (size_t i = home(tag);; i = next(i)) {
    const Slot& s = slots_[i];
    if (s.node == kNoNode) return kNoNode;
    if (s.tag == tag && at(s.node).seq == seq) return s.node;
  }
}

bool PrefixTable::held_by(uint64_t seq, uint32_t unit) const {
  const uint32_t node = find(seq);
  if (node == kNoNode || unit >= kMaxUnits) return false;
  const Node& nd = at(node);
  if (nd.spilled == kDenseForm) return dense_has(*dense(nd), unit);
  const Holder* h = holders(nd);
  const uint16_t u = static_cast<uint16_t>(unit);
  const Holder* pos = std::lower_bound(h, h + nd.n, u, [](const Holder& a, uint16_t b) { return a.unit < b; });
  return pos != h + nd.n && pos->unit == u;
}

void PrefixTable::rehash(size_t new_cap) {
  std::unique_ptr<Slot[]> old = std::move(slots_);
  const size_t old_cap = cap_;
  slots_.reset(new Slot[new_cap]);
  for (size_t i = 0; i < new_cap; i++) slots_[i].node = kNoNode;
  cap_ = new_cap;
  for (size_t i = 0; i < old_cap; i++) {
    if (old[i].node == kNoNode) continue;
    size_t j = home(old[i].tag);
    while (slots_[j].node != kNoNode) j = next(j);
    slots_[j] = old[i];
  }
}

void PrefixTable::table_erase(uint32_t tag, uint32_t id) {
  size_t i = home(tag);
  for (;; i = next(i)) {
    if (slots_[i].node == id) break;
    if (slots_[i].node == kNoNode) return;  // absent (callers only erase live nodes)
  }
  // Backward shift deletion (see flat_map.h).
  for (size_t j = next(i);; j = next(j)) {
    const Slot s = slots_[j];
    if (s.node == kNoNode) break;
    if (dist(home(s.tag), j) >= dist(i, j)) {
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
    std::memcpy(&free_head_, at(id).body.raw, sizeof free_head_);
  } else {
    id = next_unused_++;
    if ((id >> kChunkBits) == chunks_.size()) chunks_.emplace_back(new Node[size_t{1} << kChunkBits]);
  }
  Node& nd = at(id);
  nd.seq = seq;
  nd.n = 0;
  nd.spilled = 0;
  live_++;
  return id;
}

void PrefixTable::free_node(uint32_t id) {
  Node& nd = at(id);
  live_--;
  table_erase(static_cast<uint32_t>(nd.seq), id);
  if (nd.spilled == kDenseForm) {
    heap_bytes_ -= dense_bytes(dense(nd)->units);
    delete dense(nd);
  } else if (nd.spilled) {
    const Heap h = heap(nd);
    heap_bytes_ -= (kHead + h.cap) * sizeof(Holder);
    delete[] h.ptr;
  }
  nd.n = 0;
  nd.spilled = 0;
  std::memcpy(nd.body.raw, &free_head_, sizeof free_head_);
  free_head_ = id;
  if (live_ == 0 && chunks_.size() > 1) {
    // Empty: give the pool back (all but one chunk, so a table that keeps emptying and
    // refilling does not allocate each time).
    chunks_.resize(1);
    next_unused_ = 0;
    free_head_ = kNoNode;
  }
}

void PrefixTable::insert_holder(Node& nd, size_t k, uint16_t unit) {
  Holder* h = holders(nd);
  if (!nd.spilled && nd.n < kInline) {
    std::memmove(h + k + 1, h + k, (nd.n - k) * sizeof(Holder));
    h[k] = Holder{unit, 1};
    nd.n++;
    return;
  }
  const uint32_t cap = nd.spilled ? heap(nd).cap : 0;
  if (!nd.spilled || nd.n == cap) {
    // Grow (or spill) into a new array with the new holder in place.
    const uint32_t new_cap = std::max<uint32_t>(8, cap * 2);
    Holder* base = new Holder[kHead + new_cap];
    Holder* a = base + kHead;
    std::memcpy(a, h, k * sizeof(Holder));
    a[k] = Holder{unit, 1};
    std::memcpy(a + k + 1, h + k, (nd.n - k) * sizeof(Holder));
    if (nd.spilled) {
      delete[] heap(nd).ptr;
      heap_bytes_ -= (kHead + cap) * sizeof(Holder);
    }
    heap_bytes_ += (kHead + new_cap) * sizeof(Holder);
    set_heap(nd, base, new_cap);
    nd.spilled = 1;
  } else {
    std::memmove(h + k + 1, h + k, (nd.n - k) * sizeof(Holder));
    h[k] = Holder{unit, 1};
  }
  nd.n++;
  touch(nd);
  if (nested_ && nd.n > kDenseAt && uint32_t{holders(nd)[nd.n - 1].unit} < kDenseSpread * nd.n) to_dense(nd);
}

void PrefixTable::grow_dense(Dense& d, uint32_t unit) {
  const uint32_t units = std::max(unit + 1, d.units * 2 > kMaxUnits ? kMaxUnits + 1 : d.units * 2);
  const uint32_t rounded = (units + 63) / 64 * 64;
  std::unique_ptr<uint64_t[]> bits(new uint64_t[rounded / 64]());
  std::unique_ptr<uint16_t[]> counts(new uint16_t[rounded]());
  if (d.units > 0) {
    std::memcpy(bits.get(), d.bits.get(), d.units / 8);
    std::memcpy(counts.get(), d.counts.get(), d.units * sizeof(uint16_t));
  }
  heap_bytes_ += dense_bytes(rounded) - dense_bytes(d.units);
  d.units = rounded;
  d.bits = std::move(bits);
  d.counts = std::move(counts);
}

void PrefixTable::to_dense(Node& nd) {
  const Heap old = heap(nd);
  const Holder* h = old.ptr + kHead;
  auto d = std::make_unique<Dense>();
  d->units = 0;
  heap_bytes_ += dense_bytes(0);
  grow_dense(*d, h[nd.n - 1].unit);
  for (uint16_t i = 0; i < nd.n; i++) {
    d->counts[h[i].unit] = h[i].count;
    d->bits[h[i].unit >> 6] |= uint64_t{1} << (h[i].unit & 63);
  }
  heap_bytes_ -= (kHead + old.cap) * sizeof(Holder);
  delete[] old.ptr;
  Dense* raw = d.release();
  std::memcpy(nd.body.raw, &raw, kPtrBytes);
  nd.spilled = kDenseForm;
}

void PrefixTable::to_sorted(Node& nd) {
  const Dense* d = dense(nd);
  uint32_t cap = 8;
  while (cap < 2u * nd.n) cap *= 2;
  Holder* base = new Holder[kHead + cap];
  Holder* a = base + kHead;
  size_t k = 0;
  each_bit(d->bits.get(), d->units / 64, [&](uint32_t u) { a[k++] = Holder{static_cast<uint16_t>(u), d->counts[u]}; });
  heap_bytes_ -= dense_bytes(d->units);
  heap_bytes_ += (kHead + cap) * sizeof(Holder);
  delete d;
  set_heap(nd, base, cap);
  nd.spilled = kSpillForm;
  set_head(nd, SpillHead{++clock_, 0});
}

uint32_t PrefixTable::remove_dense(Node& nd, uint32_t unit) {
  Dense& d = *dense(nd);
  if (!dense_has(d, unit)) return kNotHeld;
  holds_--;
  if (--unit_holds_[unit] == 0) holding_units_--;
  if (--d.counts[unit] > 0) return d.counts[unit];
  d.bits[unit >> 6] &= ~(uint64_t{1} << (unit & 63));
  nd.n--;
  if (nd.n < kDenseAt / 2 || d.units > 2 * kDenseSpread * nd.n) to_sorted(nd);
  return 0;
}

void PrefixTable::erase_holder(Node& nd, size_t k) {
  Holder* h = holders(nd);
  std::memmove(h + k, h + k + 1, (nd.n - k - 1) * sizeof(Holder));
  nd.n--;
  if (!nd.spilled) return;
  if (nd.n <= kSpillBack) {
    const Heap old = heap(nd);
    std::memcpy(nd.body.inline_holders, old.ptr + kHead, nd.n * sizeof(Holder));
    heap_bytes_ -= (kHead + old.cap) * sizeof(Holder);
    delete[] old.ptr;
    nd.spilled = 0;
  } else {
    touch(nd);
  }
}

uint32_t PrefixTable::add(uint64_t seq, uint32_t unit, uint32_t* count_after) {
  if ((live_ + 1) * 100 > cap_ * max_load_pct_) rehash(cap_ ? cap_ + cap_ / 2 : kMinTable);
  // One probe finds the block or the empty slot where it goes.
  const uint32_t tag = static_cast<uint32_t>(seq);
  uint32_t id;
  for (size_t i = home(tag);; i = next(i)) {
    Slot& s = slots_[i];
    if (s.node == kNoNode) {
      id = new_node(seq);
      s = Slot{tag, id};
      break;
    }
    if (s.tag == tag && at(s.node).seq == seq) {
      id = s.node;
      break;
    }
  }
  Node& nd = at(id);
  const uint16_t u = static_cast<uint16_t>(unit);
  if (nd.spilled == kDenseForm) {
    Dense& d = *dense(nd);
    if (u >= d.units) grow_dense(d, u);
    uint16_t& c = d.counts[u];
    if (c == kMaxCount) return kNoNode;
    if (c++ == 0) {
      d.bits[u >> 6] |= uint64_t{1} << (u & 63);
      nd.n++;
    }
    *count_after = c;
    holds_++;
    if (unit >= unit_holds_.size()) unit_holds_.resize(unit + 1);
    if (unit_holds_[unit]++ == 0) holding_units_++;
    return id;
  }
  Holder* h = holders(nd);
  const Holder* pos = std::lower_bound(h, h + nd.n, u, [](const Holder& a, uint16_t b) { return a.unit < b; });
  const size_t k = static_cast<size_t>(pos - h);
  if (k < nd.n && h[k].unit == u) {
    if (h[k].count == kMaxCount) return kNoNode;
    *count_after = ++h[k].count;
  } else {
    insert_holder(nd, k, u);
    *count_after = 1;
  }
  holds_++;
  if (unit >= unit_holds_.size()) unit_holds_.resize(unit + 1);
  if (unit_holds_[unit]++ == 0) holding_units_++;
  return id;
}

uint32_t PrefixTable::remove(uint32_t node, uint32_t unit) {
  if (node >= next_unused_ || unit >= kMaxUnits) return kNotHeld;
  Node& nd = at(node);
  if (nd.spilled == kDenseForm) return remove_dense(nd, unit);
  Holder* h = holders(nd);
  const uint16_t u = static_cast<uint16_t>(unit);
  const Holder* pos = std::lower_bound(h, h + nd.n, u, [](const Holder& a, uint16_t b) { return a.unit < b; });
  const size_t k = static_cast<size_t>(pos - h);
  if (k == nd.n || h[k].unit != u) return kNotHeld;  // (a free node has no holders)
  holds_--;
  if (--unit_holds_[unit] == 0) holding_units_--;
  if (--h[k].count > 0) return h[k].count;
  if (nd.n == 1) {
    free_node(node);
  } else {
    erase_holder(nd, k);
  }
  return 0;
}

// Starts loading up to kHolderLines cache lines of a spilled node's holders (add and remove
// binary-search them and shift those past the unit).
void PrefixTable::prefetch_holders(const Node& nd, uint32_t unit) {
  constexpr size_t kHolderLines = 16;
  if (nd.spilled == kDenseForm) {
    const Dense& d = *dense(nd);
    if (unit < d.units) {
      __builtin_prefetch(&d.counts[unit]);
      __builtin_prefetch(&d.bits[unit >> 6]);
    }
    return;
  }
  if (!nd.spilled) return;
  const auto* p = reinterpret_cast<const char*>(heap(nd).ptr + kHead);
  const size_t lines = std::min(kHolderLines, (nd.n * sizeof(Holder) + 63) / 64);
  for (size_t l = 0; l < lines; l++) __builtin_prefetch(p + l * 64);
}

size_t PrefixTable::add_all(const uint64_t* seq, size_t n, uint32_t unit, uint32_t* nodes) {
  // In a large table, stages kAhead blocks apart, each level of indirection a stage: block
  // i + 3 kAhead's slot is prefetched, block i + 2 kAhead's candidate node (by tag; kept in
  // `ring`), block i + kAhead's holders, and block i is added. (Only hints: a tag collision,
  // a rehash or a new node in between changes no result.)
  constexpr size_t kAhead = 8, kRing = 4 * kAhead;
  uint32_t ring[kRing];
  const bool ahead = live_ >= kCached;
  auto candidate = [&](size_t k) {
    const uint32_t tag = static_cast<uint32_t>(seq[k]);
    uint32_t id = kNoNode;
    for (size_t j = home(tag); slots_[j].node != kNoNode; j = next(j)) {
      if (slots_[j].tag == tag) {
        id = slots_[j].node;
        __builtin_prefetch(&at(id));
        break;
      }
    }
    ring[k % kRing] = id;
  };
  if (ahead) {
    for (size_t i = 0; i < std::min(n, 3 * kAhead); i++) prefetch(seq[i]);
    for (size_t i = 0; i < std::min(n, 2 * kAhead); i++) candidate(i);
  }
  size_t fresh = 0;
  for (size_t i = 0; i < n; i++) {
    if (ahead) {
      if (i + 3 * kAhead < n) prefetch(seq[i + 3 * kAhead]);
      if (i + 2 * kAhead < n) candidate(i + 2 * kAhead);
      const uint32_t id = i + kAhead < n ? ring[(i + kAhead) % kRing] : kNoNode;
      if (id != kNoNode) prefetch_holders(at(id), unit);
    }
    uint32_t count = 0;
    nodes[i] = add(seq[i], unit, &count);
    fresh += nodes[i] != kNoNode && count == 1;
  }
  return fresh;
}

size_t PrefixTable::remove_all(const uint32_t* nodes, size_t n, uint32_t unit) {
  // In a large table, block i + 2 kAhead's node is prefetched, block i + kAhead's holders,
  // and block i removed. (Only hints: a node is read ahead only while it can be live, ids
  // below next_unused_, so a table that empties and gives its pool back is never read.)
  constexpr size_t kAhead = 8;
  const bool ahead = live_ >= kCached;
  auto node_ahead = [&](size_t k) {
    if (nodes[k] < next_unused_) __builtin_prefetch(&at(nodes[k]));
  };
  auto holders_ahead = [&](size_t k) {
    if (nodes[k] < next_unused_) prefetch_holders(at(nodes[k]), unit);
  };
  if (ahead) {
    for (size_t i = 0; i < std::min(n, 2 * kAhead); i++) node_ahead(i);
    for (size_t i = 0; i < std::min(n, kAhead); i++) holders_ahead(i);
  }
  size_t gone = 0;
  for (size_t i = 0; i < n; i++) {
    if (ahead) {
      if (i + 2 * kAhead < n) node_ahead(i + 2 * kAhead);
      if (i + kAhead < n) holders_ahead(i + kAhead);
    }
    gone += remove(nodes[i], unit) == 0;
  }
  return gone;
}

size_t PrefixTable::walk(const uint64_t* seq, size_t n, size_t universe, std::vector<UnitDepth>* out) {
  out->clear();
  if (n == 0 || live_ == 0) return 0;
  if (nested_) return walk_nested(seq, n, universe, out);
  active_.clear();
  // Blocks every unit holds (universe holders: no unit can hold a block without being one of
  // them, so a count of `universe` is all of them). While that lasts active_ stays empty and
  // stands for everyone; `common` is the number of such leading blocks.
  size_t common = 0;
  bool everyone = false;
  // The walk is pipelined in batches, each level of indirection of a batch loaded at once
  // so that the cache misses of a long query overlap: table slots (prefetched a batch
  // ahead), then the nodes their tags point to, then spilled holder arrays.
  constexpr size_t kBatch = 64;
  uint32_t ids[kBatch];
  // The stamp of the block before, when it is spilled and active_ is exactly its holders;
  // else 0. A spilled block whose same_as is this stamp has exactly active_.
  uint64_t prev = 0;
  auto prefetch_slots = [&](size_t from) {
    for (size_t i = from; i < std::min(n, from + kBatch); i++) {
      __builtin_prefetch(&slots_[home(static_cast<uint32_t>(seq[i]))]);
    }
  };
  prefetch_slots(0);
  size_t depth = 0;
  while (depth < n) {
    const size_t start = depth;
    const size_t end = std::min(n, start + kBatch);
    // Candidate nodes by tag (verified below).
    size_t got = 0;
    for (size_t i = start; i < end; i++) {
      const uint32_t tag = static_cast<uint32_t>(seq[i]);
      uint32_t id = kNoNode;
      for (size_t j = home(tag); slots_[j].node != kNoNode; j = next(j)) {
        if (slots_[j].tag == tag) {
          id = slots_[j].node;
          break;
        }
      }
      if (id == kNoNode) break;
      ids[got++] = id;
      __builtin_prefetch(&at(id));
    }
    prefetch_slots(end);
    // Verify the full hash (a tag collision falls back to a full probe) and prefetch holders.
    for (size_t k = 0; k < got; k++) {
      if (at(ids[k]).seq != seq[start + k]) {
        ids[k] = find(seq[start + k]);
        if (ids[k] == kNoNode) {
          got = k;
          break;
        }
      }
      const Node& nd = at(ids[k]);
      if (nd.spilled) __builtin_prefetch(heap(nd).ptr);
    }
    for (size_t k = 0; k < got; k++, depth++) {
      const Node& nd = at(ids[k]);
      const Holder* h = holders(nd);
      if (depth == 0 && universe > 0 && nd.n == universe) everyone = true;
      if (everyone) {
        if (nd.n == universe) {
          common = depth + 1;
          continue;
        }
        // The first block not everyone holds: its holders (a subset of everyone) go on;
        // the units that stop here hold exactly `common` blocks and are not listed.
        everyone = false;
        start_with(nd);
        prev = nd.spilled ? head(nd).stamp : 0;
        continue;
      }
      if (depth == 0) {
        start_with(nd);
        if (nd.spilled) prev = head(nd).stamp;
        continue;
      }
      // Usually a block has the same holders as its parent: nothing to intersect.
      if (nd.n == active_.size()) {
        SpillHead sh{0, 0};
        if (nd.spilled) {
          sh = head(nd);
          if (prev != 0 && sh.same_as == prev) {
            prev = sh.stamp;
            continue;
          }
        }
        unsigned diff = 0;
        for (size_t i = 0; i < active_.size(); i++) diff |= h[i].unit ^ active_[i];
        if (diff == 0) {
          if (nd.spilled && prev != 0) set_head(nd, SpillHead{sh.stamp, prev});
          prev = sh.stamp;  // (0 for an inline block)
          continue;
        }
      }
      const size_t w = intersect(nd, depth, out);
      if (w == 0) return common;
      prev = nd.spilled && w == nd.n ? head(nd).stamp : 0;
    }
    if (got < end - start) break;  // a block is missing: the walk ends here
  }
  if (!everyone) finish(depth, out);
  return common;
}

// Nested: holders only shrink along the query, so a block's holder count (0 for an absent
// block) never grows with depth, and a block with as many holders as the units still
// matching has exactly them, as does every block before it back to the last drop. So only
// the blocks that locate each drop are looked up: a galloping search from the last drop d
// (d+1, d+2, d+4, ... and the query's last block), then a search of the gap where the count
// fell, kProbes evenly spaced blocks a round. Each round's lookups go out together, so a
// walk costs a few rounds of overlapping cache misses per drop instead of one lookup per block.
size_t PrefixTable::walk_nested(const uint64_t* seq, size_t n, size_t universe, std::vector<UnitDepth>* out) {
  constexpr size_t kProbes = 16;
  constexpr size_t kMaxRound = 2 + 64;  // block 0, d + 2^i for every bit of size_t, the last block
  size_t pos[kMaxRound];
  uint32_t ids[kMaxRound];
  size_t d = 0;           // blocks (last drop d .. hi) have exactly the units still matching
  size_t c = 0;           // how many units those are (universe while everyone matches)
  bool everyone = false;  // as in walk(): active_ unused, every holding unit still matches
  size_t common = 0;
  bool first = true;
  for (;;) {
    size_t m = 0;
    if (first) pos[m++] = 0;  // block 0's lookup goes with the first gallop
    for (size_t s = 1; s < n - d; s *= 2) pos[m++] = d + s;
    if (n - 1 > d && pos[m - 1] != n - 1) pos[m++] = n - 1;
    lookup(seq, pos, m, ids);
    size_t i = 0;
    if (first) {
      first = false;
      i = 1;
      if (ids[0] == kNoNode) return 0;
      const Node& nd = at(ids[0]);
      c = nd.n;
      everyone = universe > 0 && c == universe;
      if (!everyone) start_with(nd);
    }
    // The first block in (lo, hi] has fewer than c holders (hi = n: none does).
    size_t lo = d, hi = n;
    uint32_t hi_id = kNoNode;
    for (; i < m; i++) {
      if (count_of(ids[i]) < c) {
        hi = pos[i];
        hi_id = ids[i];
        break;
      }
      lo = pos[i];
    }
    while (hi < n && hi - lo > 1) {
      const size_t gap = hi - lo;
      m = std::min(kProbes, gap - 1);
      for (size_t k = 0; k < m; k++) pos[k] = lo + (k + 1) * gap / (m + 1);  // strictly inside (lo, hi)
      lookup(seq, pos, m, ids);
      for (size_t k = 0; k < m; k++) {
        if (count_of(ids[k]) < c) {
          hi = pos[k];
          hi_id = ids[k];
          break;
        }
        lo = pos[k];
      }
    }
    // Blocks [d, hi) have the current units; block hi (if any) has fewer.
    if (everyone) {
      common = hi;
      if (hi == n || hi_id == kNoNode) return common;
      // The first block not everyone holds: its holders go on, the rest hold exactly `common`.
      everyone = false;
      start_with(at(hi_id));
      c = at(hi_id).n;
    } else if (hi == n || hi_id == kNoNode) {
      finish(hi, out);
      return common;
    } else {
      c = intersect(at(hi_id), hi, out);  // (its holders: a subset of the units matching)
    }
    d = hi;
  }
}

void PrefixTable::lookup(const uint64_t* seq, const size_t* pos, size_t m, uint32_t* ids) const {
  for (size_t i = 0; i < m; i++) __builtin_prefetch(&slots_[home(static_cast<uint32_t>(seq[pos[i]]))]);
  // Candidates by tag, their nodes prefetched; then the full hash verified (a tag collision
  // falls back to a full probe).
  for (size_t i = 0; i < m; i++) {
    const uint32_t tag = static_cast<uint32_t>(seq[pos[i]]);
    uint32_t id = kNoNode;
    for (size_t j = home(tag); slots_[j].node != kNoNode; j = next(j)) {
      if (slots_[j].tag == tag) {
        id = slots_[j].node;
        break;
      }
    }
    ids[i] = id;
    if (id != kNoNode) __builtin_prefetch(&at(id));
  }
  for (size_t i = 0; i < m; i++) {
    if (ids[i] != kNoNode && at(ids[i]).seq != seq[pos[i]]) ids[i] = find(seq[pos[i]]);
  }
}

void PrefixTable::start_with(const Node& nd) {
  if (nd.spilled == kDenseForm) {
    const Dense& d = *dense(nd);
    active_.resize(nd.n);
    size_t k = 0;
    each_bit(d.bits.get(), d.units / 64, [&](uint32_t u) { active_[k++] = static_cast<uint16_t>(u); });
    return;
  }
  const Holder* h = holders(nd);
  active_.resize(nd.n);
  for (uint16_t i = 0; i < nd.n; i++) active_[i] = h[i].unit;
}

size_t PrefixTable::intersect(const Node& nd, size_t depth, std::vector<UnitDepth>* out) {
  size_t w = 0;
  auto keep = [&](uint16_t u, bool held) {
    if (held) {
      active_[w++] = u;
    } else {
      out->push_back(UnitDepth{u, static_cast<uint32_t>(depth)});
    }
  };
  if (nd.spilled == kDenseForm) {  // a bit test per unit
    const Dense& d = *dense(nd);
    for (size_t i = 0; i < active_.size(); i++) {
      const uint16_t u = active_[i];
      keep(u, u < d.units && (d.bits[u >> 6] >> (u & 63) & 1) != 0);
    }
  } else {  // a merge with the sorted holders
    const Holder* h = holders(nd);
    size_t j = 0;
    for (size_t i = 0; i < active_.size(); i++) {
      const uint16_t u = active_[i];
      while (j < nd.n && h[j].unit < u) j++;
      keep(u, j < nd.n && h[j].unit == u);
    }
  }
  active_.resize(w);
  return w;
}

void PrefixTable::finish(size_t depth, std::vector<UnitDepth>* out) {
  const size_t o = out->size();
  out->resize(o + active_.size());
  for (size_t i = 0; i < active_.size(); i++) (*out)[o + i] = UnitDepth{active_[i], static_cast<uint32_t>(depth)};
}

size_t PrefixTable::bytes() const {
  return sizeof(*this) + chunks_.capacity() * sizeof(chunks_[0]) + chunks_.size() * (sizeof(Node) << kChunkBits) +
         cap_ * sizeof(Slot) + heap_bytes_ + active_.capacity() * sizeof(uint16_t) +
         unit_holds_.capacity() * sizeof(uint32_t);
}

}  // namespace kvgate
