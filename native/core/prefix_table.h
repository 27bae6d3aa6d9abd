// The prefix tree behind the KV index and the active-sequence tracker, stored flat.
//
// A block is identified by its chained sequence hash (block_hash.h): seq[i] hashes the whole
// prefix up to and including block i, so one hash table keyed by seq is the radix tree of
// Dynamo's indexer (dynamo.md §2.4) without child maps: the child of node `p` for local
// hash `h` is the node of XXH3(le64(p.seq) ++ le64(h)). Each node records which units
// (dense ids of (worker, dp rank) pairs) hold the block, with a count per unit (a unit can
// hold one block under several engine hashes, or for several requests).
//
// A node nobody holds is freed at once. It can never be on a match (a unit's overlap ends
// at the first block it does not hold), so freeing it changes no result, and memory is
// bounded by the holds. A block held without its parent (a removed parent whose child
// stays) is simply a node whose holders are not a subset of the parent's; match() handles
// that by intersecting.
//
// A block usually has exactly its parent's holders (a shared system prompt: hundreds of
// holders on each of its blocks), and comparing them on every walk is most of a walk's
// cost. A nested table skips it (see the constructor); any other remembers, on a spilled
// node, that match() found its holders equal to its parent's, for as long as neither node's
// holder set changes (stamps from a table-wide clock; see SpillHead), and skips the
// compare while that holds. Both are exact.
//
// Memory: a node is 24 bytes (up to 3 holders inline, more spill to a heap array with a
// 16-byte header), the seq table 8 bytes per slot at 50-75% load (by default); freed nodes
// are reused, and the pool is released (but for one 384 KB chunk) when the table empties.
//
// A nested table's block with very many holders (a system prompt every active request
// starts with: one holder per unit, thousands) goes dense: a count per unit id and a bitmap
// of the holders, so adding or dropping a hold is O(1) instead of a binary search and a
// shift of a sorted array that every request's add and free would pay (see Dense).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace kvgate {

// One unit's overlap with a query: the number of leading query blocks it holds.
struct UnitDepth {
  uint32_t unit;
  uint32_t depth;
};

class PrefixTable {
 public:
  static constexpr uint32_t kNoNode = UINT32_MAX;
  static constexpr uint32_t kMaxUnits = 65535;      // unit ids are 0 .. kMaxUnits - 1
  static constexpr uint32_t kMaxCount = 65535;      // holds of one unit on one block
  static constexpr uint32_t kNotHeld = UINT32_MAX;  // remove(): the unit held no such block

  // max_load_pct: the seq table grows by 1.5x beyond this fill (percent, 1..99; throws
  // std::invalid_argument otherwise: a full table's probes would never end). Higher saves
  // memory (the KV index: 75), lower makes inserts and erases cheaper (active requests).
  //
  // nested: the caller promises that a unit holding a block holds its parent too (every
  // unit's holds are whole prefixes, as a request's blocks from its first: the active
  // requests). Then the holders along a query only shrink: a block whose holder count equals
  // the units still matching has exactly them, and so has every block before it back to the
  // last block with more. match() then looks up only the blocks that locate where the count
  // drops (a search, O(drops x log n) lookups) instead of every block. The KV index cannot
  // promise it (an evicted parent can leave its child held), and relies on the SpillHead
  // record instead.
  explicit PrefixTable(unsigned max_load_pct = 75, bool nested = false);
  ~PrefixTable();
  PrefixTable(const PrefixTable&) = delete;
  PrefixTable& operator=(const PrefixTable&) = delete;

  // The node of block `seq`, or kNoNode.
  uint32_t find(uint64_t seq) const;

  // Adds one hold of `unit` on block `seq`, creating the node. Returns the node and sets
  // *count_after to the unit's holds on it (1 = the unit newly holds the block). Returns
  // kNoNode (nothing changed) if the unit already has kMaxCount holds on it.
  uint32_t add(uint64_t seq, uint32_t unit, uint32_t* count_after);

  // add() for each block of seq[0..n) in turn, with the lookups of the blocks ahead
  // started early so that their cache misses overlap. nodes[i] gets block i's node (kNoNode:
  // refused, as add()). Returns how many blocks the unit newly holds (count 1 after).
  size_t add_all(const uint64_t* seq, size_t n, uint32_t unit, uint32_t* nodes);

  // Drops one hold of `unit` on `node`. Returns the unit's remaining holds (0: it just
  // dropped its last one), or kNotHeld, changing nothing, if the unit does not hold the
  // node or the node is not live. Frees the node when no unit holds it any more.
  uint32_t remove(uint32_t node, uint32_t unit);
  // remove() of `unit` from each of nodes[0..n) in turn, with the nodes and holders ahead
  // loaded early so that their cache misses overlap (a request's blocks at its free).
  // Returns how many the unit no longer holds (remove() returned 0; kNotHeld is not counted).
  size_t remove_all(const uint32_t* nodes, size_t n, uint32_t unit);

  uint64_t seq_of(uint32_t node) const { return at(node).seq; }
  // Whether `unit` holds block `seq`.
  bool held_by(uint64_t seq, uint32_t unit) const;
  // Starts loading the table slot of block `seq` (for a match() soon after).
  void prefetch(uint64_t seq) const {
    if (cap_) __builtin_prefetch(&slots_[home(static_cast<uint32_t>(seq))]);
  }

  // For each unit holding query block 0, the number of leading blocks of `seq[0..n)` it
  // holds (depth >= 1), in no particular order. Stops as soon as no unit is left.
  // Cost O(depth reached x holders per block), but a spilled block found to have its
  // parent's holders costs O(1) on later walks until either's holders change (and a nested
  // table looks up only O(drops x log n) blocks). Uses internal
  // scratch and writes those findings to the nodes (not reentrant).
  void match(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) { walk(seq, n, 0, out); }

  // As match(), but when every unit that holds any block here holds query block 0 (a
  // system prompt every unit caches), returns the number k >= 1 of leading blocks all of
  // them hold and lists only the units that hold more than k, with their depth: without
  // reading, comparing or listing the holders of the k blocks everyone holds. Otherwise
  // returns 0 and lists what match() lists. Either way a unit not listed holds exactly k
  // leading blocks if it holds any block here (holds_any), and none otherwise.
  size_t match_past_common(const uint64_t* seq, size_t n, std::vector<UnitDepth>* out) {
    return walk(seq, n, holding_units_, out);
  }
  // Whether `unit` holds any block.
  bool holds_any(uint32_t unit) const { return unit < unit_holds_.size() && unit_holds_[unit] > 0; }

  size_t blocks() const { return live_; }  // nodes with at least one holder
  size_t holds() const { return holds_; }  // sum of all counts
  size_t bytes() const;                    // memory owned, approximately

 private:
  struct Holder {
    uint16_t unit;
    uint16_t count;
  };
  static constexpr uint16_t kInline = 3;
  // The head of a spilled node's heap array (before its holders). `stamp` is the table's
  // clock when the node spilled or its set of holders last changed: each change takes a new
  // value (64 bits never wrap), so an unchanged stamp names one node in one state, even
  // across node reuse. `same_as`: the stamp of the node before it on a walk when match()
  // found the two holder sets equal (0 = none), valid while both stamps stand.
  struct SpillHead {
    uint64_t stamp;
    uint64_t same_as;
  };
  static constexpr size_t kHead = sizeof(SpillHead) / sizeof(Holder);  // holder slots the head takes
  // Node::spilled: where the holders are.
  static constexpr uint16_t kInlineForm = 0;  // in the node's body
  static constexpr uint16_t kSpillForm = 1;   // a sorted heap array (Heap)
  static constexpr uint16_t kDenseForm = 2;   // a Dense (nested tables only; walk() never sees one)
  // A nested node's holders once there are more than kDenseAt of them and their unit ids
  // are not too sparse (the largest below kDenseSpread x the holders): per unit id below
  // `units`, its count (0: not a holder) and a bit (the holders in unit order for start_with,
  // a test for intersect). 2 bytes and a bit per unit id instead of 4 bytes per holder. Back
  // to a sorted array below kDenseAt / 2 holders or when sparser than 2 x kDenseSpread
  // (hysteresis: a set at the threshold does not convert on every add and free).
  struct Dense {
    uint32_t units;  // a multiple of 64
    std::unique_ptr<uint64_t[]> bits;
    std::unique_ptr<uint16_t[]> counts;
  };
  // 24 bytes. Up to kInline holders live in `body`; beyond that (`spilled`) body holds a
  // heap array's pointer and capacity, and a free node holds the next free node's id.
  // Accessed through memcpy, so no member needs 8-byte alignment.
  struct Node {
    uint64_t seq;
    uint16_t n;        // distinct holders; 0 = free node
    uint16_t spilled;  // holders are on the heap
    union {
      Holder inline_holders[kInline];
      unsigned char raw[12];
    } body;
  };
  static_assert(sizeof(Node) == 24, "node must stay 24 bytes");
  struct Heap {
    Holder* ptr;   // the allocation: kHead slots of SpillHead, then the holders
    uint32_t cap;  // holders it has room for
  };
  // The pointer's bytes, then the capacity's, in body.raw.
  static constexpr size_t kPtrBytes = sizeof(uintptr_t);
  static_assert(sizeof(uintptr_t) == sizeof(void*) && kPtrBytes + sizeof(uint32_t) <= sizeof(Node::body),
                "a heap reference must fit a node's body");
  static Heap heap(const Node& nd) {
    Heap h;
    std::memcpy(&h.ptr, nd.body.raw, kPtrBytes);
    std::memcpy(&h.cap, nd.body.raw + kPtrBytes, sizeof h.cap);
    return h;
  }
  static void set_heap(Node& nd, Holder* ptr, uint32_t cap) {
    std::memcpy(nd.body.raw, &ptr, kPtrBytes);
    std::memcpy(nd.body.raw + kPtrBytes, &cap, sizeof cap);
  }

  struct Slot {
    uint32_t tag;   // low 32 bits of seq: places the block, and rejects most mismatches without a node load
    uint32_t node;  // kNoNode = empty
  };

  static constexpr unsigned kChunkBits = 14;
  static constexpr uint32_t kChunkMask = (1u << kChunkBits) - 1;

  Node& at(uint32_t id) { return chunks_[id >> kChunkBits][id & kChunkMask]; }
  const Node& at(uint32_t id) const { return chunks_[id >> kChunkBits][id & kChunkMask]; }
  // (Not of a dense node.)
  static Holder* holders(Node& nd) { return nd.spilled ? heap(nd).ptr + kHead : nd.body.inline_holders; }
  static const Holder* holders(const Node& nd) { return nd.spilled ? heap(nd).ptr + kHead : nd.body.inline_holders; }
  static Dense* dense(const Node& nd) {
    Dense* d;
    std::memcpy(&d, nd.body.raw, kPtrBytes);
    return d;
  }
  static bool dense_has(const Dense& d, uint32_t unit) { return unit < d.units && d.counts[unit] > 0; }
  static size_t dense_bytes(uint32_t units) { return sizeof(Dense) + units / 8 + units * sizeof(uint16_t); }
  void grow_dense(Dense& d, uint32_t unit);  // covers unit ids up to `unit`
  void to_dense(Node& nd);                   // a spilled node's holders into a Dense
  void to_sorted(Node& nd);                  // a dense node's holders back into a sorted array
  uint32_t remove_dense(Node& nd, uint32_t unit);
  static SpillHead head(const Node& nd) {
    SpillHead sh;
    std::memcpy(&sh, heap(nd).ptr, sizeof sh);
    return sh;
  }
  static void set_head(const Node& nd, const SpillHead& sh) { std::memcpy(heap(nd).ptr, &sh, sizeof sh); }
  // A spilled node's holder set changed: a new stamp, and no longer known equal to its parent's.
  // (A nested table's match() never reads them.)
  void touch(const Node& nd) {
    if (!nested_) set_head(nd, SpillHead{++clock_, 0});
  }
  // match() and match_past_common() (universe 0: no unit set is known to be everyone).
  size_t walk(const uint64_t* seq, size_t n, size_t universe, std::vector<UnitDepth>* out);
  // walk() on a nested table: looks up only the blocks that locate where the holder count drops.
  size_t walk_nested(const uint64_t* seq, size_t n, size_t universe, std::vector<UnitDepth>* out);
  // The nodes of blocks seq[pos[i]] (kNoNode if absent) into ids, looked up together so that
  // their cache misses overlap.
  void lookup(const uint64_t* seq, const size_t* pos, size_t m, uint32_t* ids) const;
  uint32_t count_of(uint32_t id) const { return id == kNoNode ? 0 : at(id).n; }
  void start_with(const Node& nd);  // active_ = the node's holders
  // active_ ∩= the node's holders (the walk's block `depth`); the units that drop out go to
  // `out` with `depth` blocks matched. Returns the units left.
  size_t intersect(const Node& nd, size_t depth, std::vector<UnitDepth>* out);
  void finish(size_t depth, std::vector<UnitDepth>* out);  // the units left matched `depth` blocks
  void insert_holder(Node& nd, size_t k, uint16_t unit);
  static void prefetch_holders(const Node& nd, uint32_t unit);
  void erase_holder(Node& nd, size_t k);

  // A block's slot depends on its tag only (multiply, then scale to [0, cap) as in
  // flat_map.h), so probing, erasing and rehashing never load a node to learn a home slot.
  size_t home(uint32_t tag) const { return static_cast<size_t>((uint64_t{tag * 0x9E3779B1u} * cap_) >> 32); }
  size_t next(size_t i) const { return i + 1 == cap_ ? 0 : i + 1; }
  size_t dist(size_t a, size_t b) const { return b >= a ? b - a : b + cap_ - a; }
  uint32_t new_node(uint64_t seq);
  void free_node(uint32_t id);
  void table_erase(uint32_t tag, uint32_t id);
  void rehash(size_t new_cap);

  std::vector<std::unique_ptr<Node[]>> chunks_;
  uint32_t next_unused_ = 0;      // nodes [0, next_unused_) have been handed out once
  uint32_t free_head_ = kNoNode;  // freed nodes, each holding the next one's id in its body
  size_t heap_bytes_ = 0;         // spilled holder arrays
  uint64_t clock_ = 0;            // the last SpillHead stamp handed out

  std::unique_ptr<Slot[]> slots_;
  size_t cap_ = 0;
  unsigned max_load_pct_;
  bool nested_;

  size_t live_ = 0;
  size_t holds_ = 0;
  std::vector<uint32_t> unit_holds_;  // by unit: its holds (sum of its counts)
  size_t holding_units_ = 0;          // units with a hold
  std::vector<uint16_t> active_;      // match() scratch
};

}  // namespace kvgate
