// The KV router's candidates ordered by load, so that a route scores only the units the
// request shares blocks with plus the least loaded of the rest, and still picks exactly
// what scoring every candidate would.
//
// For a unit with no cached, active or pending overlap with the request, the KV cost
// (scheduler.h: kv_logit) is
//   w * (prefill_tokens + isl) / bs + active_blocks + ceil(isl / bs) + own * isl / bs
//   = load + idle,  load = w * prefill_tokens / bs + active_blocks,
// where idle (an idle unit's cost, own term included: the whole prompt is its own to
// compute there) depends on the request alone. Such units therefore
// rank by load; ties go, as in select_kv, to the smallest tree size and then uniformly at
// random in candidate order. Units are filed in buckets of equal (load, prefill tokens,
// active blocks, tree size), in that order, each bucket's members (candidate positions)
// sorted, so select() visits the cheapest bucket of each load until no later load can
// reach the best cost, and draws the tie by index. O(matched + log candidates) per route,
// plus the size of a tie that spans several buckets or holds matched units.
//
// The same holds for units that share a base overlap with the request (a system prompt
// every unit caches, with a request in flight sharing it): for units of equal cached
// overlap o and active overlap a, and no pending overlap beyond o, kv_logit is
// load + idle(o, a), the idle term depending on the request and (o, a) alone (its own term
// too: the prompt past o is the request's own on each of them). Units are
// filed by what they hold (any cached block, any active block: `holds`), and select()
// takes, per such class, the base overlaps the caller knows every unmatched unit of the
// class has, so that only the units past the base need scoring.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "core/scheduler.h"
#include "core/small_vector.h"

namespace kvgate {

class LoadOrder {
 public:
  // A candidate the request shares blocks with, scored by the caller with kv_logit.
  struct Scored {
    uint32_t pos;  // candidate position
    double logit;
    uint64_t tree;
  };

  // Empties the order for `candidates` positions, costing with overlap weight `weight`
  // (finite, >= 0) at `block_size`.
  void reset(double weight, uint32_t block_size, size_t candidates);
  // Empties the order and frees its buckets (until the next reset).
  void clear() { reset(weight_, block_size_, 0); }
  // What a unit holds, for the base overlaps (bits of put's `holds`).
  static constexpr uint8_t kCached = 1;  // any block in the KV index
  static constexpr uint8_t kActive = 2;  // any block of a request in flight
  static constexpr uint8_t kClasses = 4;

  // Files candidate `pos` under its current load, tree size and holds (moving it if filed
  // under others). O(log buckets + bucket size) when it moves, O(1) otherwise; a unit alone
  // in its bucket moves with it (no allocation).
  void put(uint32_t pos, uint64_t prefill_tokens, uint64_t active_blocks, uint64_t tree, uint8_t holds = 0);
  // Candidates filed with these holds.
  size_t filed_with(uint8_t holds) const { return class_size_[holds]; }

  // The candidate position select_kv at temperature 0 would return for the request over
  // every candidate, the matched ones scored as given and every other one filed here at
  // cost load + idle (same draws from rng). Every candidate must be filed; `matched`
  // lists each matched position once. isl, pending_weight and own_weight are the request's,
  // as passed to kv_logit (the own term is part of idle, the same on every unmatched unit
  // of a class, so the own weight may change from route to route without a refile). Every
  // candidate not matched has base.overlap blocks of the
  // request cached if it holds any cached block (kCached), else none; base.active_overlap
  // active if it holds any active block (kActive), else none; and no more pending than
  // cached. (base's other fields are ignored; the default: no overlap of any kind.)
  uint32_t select(const std::vector<Scored>& matched, uint32_t isl, double pending_weight, double own_weight, Rng& rng,
                  const Candidate& base = Candidate{});

  size_t buckets() const { return buckets_.size(); }
  // Memory owned, approximately (a map node is counted as its value plus four pointers).
  size_t bytes() const;

 private:
  struct Key {
    uint8_t holds;
    double load;
    uint64_t prefill_tokens, active_blocks, tree;
    bool operator<(const Key& o) const {
      if (holds != o.holds) return holds < o.holds;
      if (load != o.load) return load < o.load;
      if (prefill_tokens != o.prefill_tokens) return prefill_tokens < o.prefill_tokens;
      if (active_blocks != o.active_blocks) return active_blocks < o.active_blocks;
      return tree < o.tree;
    }
  };
  struct Bucket {
    // Candidate positions, ascending. Most buckets hold one or two units (at 10,000 units
    // nearly every tree size is its own bucket), kept in the map node itself: no allocation,
    // and no second cache miss, when a unit joins or leaves them.
    SmallVector<uint32_t, 2> members;
    uint32_t id;  // its index in by_id_ and excluded_
  };
  // The map's nodes come from one pool of equal blocks, reused as buckets come and go: they
  // sit together (a route's refiles walk the tree from the root twice), not spread over the
  // heap between the tables' allocations, and cost no malloc.
  class NodePool {
   public:
    void* get(size_t bytes);
    void put(void* p);
    void clear();  // forgets every block: only once all are back
    size_t bytes() const { return chunks_.size() * kChunk * block_; }

   private:
    static constexpr size_t kChunk = 1024;  // blocks per chunk
    size_t block_ = 0;                      // the node size, from the first request
    std::vector<std::unique_ptr<char[]>> chunks_;
    size_t used_ = kChunk;  // blocks handed out of the last chunk
    void* free_ = nullptr;  // freed blocks, each holding the next one's address
  };
  template <typename T>
  struct PoolAllocator {
    using value_type = T;
    NodePool* pool;
    explicit PoolAllocator(NodePool* p) : pool(p) {}
    template <typename U>
    PoolAllocator(const PoolAllocator<U>& o) : pool(o.pool) {}  // NOLINT(google-explicit-constructor): rebinding
    T* allocate(size_t n) { return n == 1 ? static_cast<T*>(pool->get(sizeof(T))) : std::allocator<T>().allocate(n); }
    void deallocate(T* p, size_t n) {
      if (n == 1) {
        pool->put(p);
      } else {
        std::allocator<T>().deallocate(p, n);
      }
    }
    template <typename U>
    bool operator==(const PoolAllocator<U>& o) const {
      return pool == o.pool;
    }
    template <typename U>
    bool operator!=(const PoolAllocator<U>& o) const {
      return pool != o.pool;
    }
  };
  using Buckets = std::map<Key, Bucket, std::less<Key>, PoolAllocator<std::pair<const Key, Bucket>>>;
  struct Tie {
    Buckets::iterator bucket;
    double logit;
  };

  void unfile(uint32_t pos);
  uint32_t new_id(Buckets::iterator b);

  double weight_ = 0;
  uint32_t block_size_ = 1;
  std::unique_ptr<NodePool> pool_ = std::make_unique<NodePool>();  // (outlives buckets_: declared first)
  Buckets buckets_{Buckets::allocator_type(pool_.get())};
  // Buckets by a dense id (reused once freed), and by position the id of its bucket (valid
  // when filed_): select() counts each matched unit's bucket in excluded_, a small array,
  // not in the bucket's node.
  std::vector<Buckets::iterator> by_id_;
  std::vector<uint32_t> free_ids_;
  std::vector<uint32_t> id_at_;
  std::vector<uint8_t> filed_;
  size_t class_size_[kClasses] = {};
  std::vector<uint8_t> matched_;    // select() scratch, by position (drawing a tie only)
  std::vector<uint32_t> excluded_;  // select() scratch, by bucket id: members the request matched
  std::vector<Tie> ties_;
  std::vector<uint32_t> drawn_;
};

}  // namespace kvgate
