#include "core/load_order.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <tuple>

namespace kvgate {

namespace {
// Loads and costs are sums of non-negative terms below 2^53, each computed within a few
// ulps (relative 1e-15); this slack is far above that, so a load it rules out provably
// costs more than the best (see select).
constexpr double kSlack = 1e-9;
}  // namespace

void* LoadOrder::NodePool::get(size_t bytes) {
  if (block_ == 0) block_ = std::max(bytes, sizeof(void*));
  if (bytes > block_) throw std::bad_alloc();  // (never: the map allocates only its nodes, one size)
  if (free_ != nullptr) {
    void* p = free_;
    std::memcpy(&free_, p, sizeof free_);
    return p;
  }
  if (used_ == kChunk) {
    chunks_.emplace_back(new char[kChunk * block_]);
    used_ = 0;
  }
  return chunks_.back().get() + block_ * used_++;
}

void LoadOrder::NodePool::put(void* p) {
  std::memcpy(p, &free_, sizeof free_);
  free_ = p;
}

void LoadOrder::NodePool::clear() {
  chunks_.clear();
  used_ = kChunk;
  free_ = nullptr;
}

void LoadOrder::reset(double weight, uint32_t block_size, size_t candidates) {
  weight_ = weight;
  block_size_ = block_size;
  buckets_.clear();
  pool_->clear();  // (every node is back)
  by_id_.clear();
  free_ids_.clear();
  excluded_.clear();
  std::fill(std::begin(class_size_), std::end(class_size_), 0);
  id_at_.assign(candidates, 0);
  filed_.assign(candidates, 0);
  matched_.assign(candidates, 0);
}

size_t LoadOrder::bytes() const {
  size_t b = sizeof(*this) + pool_->bytes() + by_id_.capacity() * sizeof(Buckets::iterator) +
             (free_ids_.capacity() + id_at_.capacity() + excluded_.capacity()) * sizeof(uint32_t) + filed_.capacity() +
             matched_.capacity() + ties_.capacity() * sizeof(Tie) + drawn_.capacity() * sizeof(uint32_t);
  for (const auto& node : buckets_) b += node.second.members.heap_bytes();
  return b;
}

uint32_t LoadOrder::new_id(Buckets::iterator b) {
  if (!free_ids_.empty()) {
    const uint32_t id = free_ids_.back();
    free_ids_.pop_back();
    by_id_[id] = b;
    return id;
  }
  by_id_.push_back(b);
  excluded_.push_back(0);
  return static_cast<uint32_t>(by_id_.size() - 1);
}

void LoadOrder::unfile(uint32_t pos) {
  const Buckets::iterator b = by_id_[id_at_[pos]];
  SmallVector<uint32_t, 2>& m = b->second.members;
  m.erase(static_cast<size_t>(std::lower_bound(m.begin(), m.end(), pos) - m.begin()));
  class_size_[b->first.holds]--;
  if (m.empty()) {
    free_ids_.push_back(b->second.id);
    buckets_.erase(b);
  }
  filed_[pos] = 0;
}

void LoadOrder::put(uint32_t pos, uint64_t prefill_tokens, uint64_t active_blocks, uint64_t tree, uint8_t holds) {
  const double load =
      weight_ * (static_cast<double>(prefill_tokens) / block_size_) + static_cast<double>(active_blocks);
  const Key key{holds, load, prefill_tokens, active_blocks, tree};
  Buckets::iterator b = buckets_.end();
  if (filed_[pos]) {
    const Buckets::iterator old = by_id_[id_at_[pos]];
    const Key& k = old->first;
    if (k.prefill_tokens == prefill_tokens && k.active_blocks == active_blocks && k.tree == tree && k.holds == holds)
      return;
    if (old->second.members.size() > 1) {
      unfile(pos);
    } else {
      // Alone in its bucket: the bucket moves to the new key, node, id and all.
      class_size_[k.holds]--;
      class_size_[holds]++;
      Buckets::node_type node = buckets_.extract(old);
      node.key() = key;
      auto moved = buckets_.insert(std::move(node));
      if (moved.inserted) {
        by_id_[moved.position->second.id] = moved.position;
        return;
      }
      // The key had a bucket already: join it (the moved node goes with its id).
      free_ids_.push_back(moved.node.mapped().id);
      b = moved.position;
    }
  }
  if (b == buckets_.end()) {
    bool inserted;
    std::tie(b, inserted) = buckets_.try_emplace(key);
    if (inserted) b->second.id = new_id(b);
    class_size_[holds]++;
  }
  SmallVector<uint32_t, 2>& m = b->second.members;
  m.insert(static_cast<size_t>(std::lower_bound(m.begin(), m.end(), pos) - m.begin()), pos);
  id_at_[pos] = b->second.id;
  filed_[pos] = 1;
}

uint32_t LoadOrder::select(const std::vector<Scored>& matched, uint32_t isl, double pending_weight, double own_weight,
                           Rng& rng, const Candidate& base) {
  double best = std::numeric_limits<double>::infinity();
  for (const Scored& s : matched) {
    best = std::min(best, s.logit);
    excluded_[id_at_[s.pos]]++;
  }
  // Per class of holds, each load's cheapest bucket with an unmatched member, while a
  // load can still reach the best cost. Unmatched units cost exactly load + idle (up to
  // rounding): once (load + idle) minus the slack exceeds the best, this load and every
  // later (larger) one of the class cost more than the best, so none of them can win or
  // tie. idle is the cost of an unloaded unit at the class's base (pending overlap 0: one
  // up to the cached overlap costs the same).
  ties_.clear();
  for (uint8_t holds = 0; holds < kClasses; holds++) {
    if (class_size_[holds] == 0) continue;
    Candidate c;
    c.overlap = (holds & kCached) != 0 ? base.overlap : 0;
    c.active_overlap = (holds & kActive) != 0 ? base.active_overlap : 0;
    const double idle = kv_logit(c, isl, block_size_, weight_, pending_weight, own_weight);
    auto in_class = [&](Buckets::iterator b) { return b != buckets_.end() && b->first.holds == holds; };
    for (Buckets::iterator it = buckets_.lower_bound(Key{holds, -1, 0, 0, 0}); in_class(it);) {
      const Key k = it->first;
      if ((k.load + idle) * (1 - kSlack) - kSlack > best) break;
      auto same_load = [&](Buckets::iterator b) {
        return in_class(b) && b->first.prefill_tokens == k.prefill_tokens && b->first.active_blocks == k.active_blocks;
      };
      Buckets::iterator b = it;
      while (same_load(b) && b->second.members.size() == excluded_[b->second.id]) ++b;
      if (same_load(b)) {
        c.prefill_tokens = k.prefill_tokens;
        c.active_blocks = k.active_blocks;
        const double logit = kv_logit(c, isl, block_size_, weight_, pending_weight, own_weight);
        if (logit <= best) {
          best = logit;
          ties_.push_back(Tie{b, logit});
        }
      }
      // Larger trees of this load lose the tie-break to b: skip to the next load.
      it = buckets_.upper_bound(Key{holds, k.load, k.prefill_tokens, k.active_blocks, UINT64_MAX});
    }
  }

  // The tie at the best cost: smallest tree first, then one draw over its members.
  uint64_t tree = UINT64_MAX;
  size_t count = 0, sources = 0;
  const Bucket* whole = nullptr;  // the one source, when it is a bucket with no matched member
  auto join = [&](uint64_t t) {
    if (t < tree) {
      tree = t;
      count = sources = 0;
      whole = nullptr;
    }
    if (t != tree) return false;
    sources++;
    return true;
  };
  for (const Scored& s : matched) {
    if (s.logit == best && join(s.tree)) count++;
  }
  for (const Tie& t : ties_) {
    if (t.logit != best || !join(t.bucket->first.tree)) continue;
    const Bucket& b = t.bucket->second;
    const uint32_t excluded = excluded_[b.id];
    count += b.members.size() - excluded;
    whole = excluded == 0 ? &b : nullptr;
  }
  const size_t k = count > 1 ? rng.below(static_cast<uint32_t>(count)) : 0;
  uint32_t pick;
  if (sources == 1 && whole != nullptr) {
    pick = whole->members[k];
  } else {
    // Several sources (or matched members among the bucket's): the k-th in candidate order.
    drawn_.clear();
    for (const Scored& s : matched) {
      matched_[s.pos] = 1;
      if (s.logit == best && s.tree == tree) drawn_.push_back(s.pos);
    }
    for (const Tie& t : ties_) {
      if (t.logit != best || t.bucket->first.tree != tree) continue;
      for (uint32_t pos : t.bucket->second.members) {
        if (!matched_[pos]) drawn_.push_back(pos);
      }
    }
    std::nth_element(drawn_.begin(), drawn_.begin() + static_cast<ptrdiff_t>(k), drawn_.end());
    pick = drawn_[k];
    for (const Scored& s : matched) matched_[s.pos] = 0;
  }

  for (const Scored& s : matched) excluded_[id_at_[s.pos]] = 0;
  return pick;
}

}  // namespace kvgate
