// The router core: the KV index, the active-sequence tracker and the scheduler over one set
// of candidate units, behind (worker id, dp rank) pairs. This is what the binding wraps.
//
// Units: a (worker, rank) pair gets a dense slot the first time it is registered as a
// candidate (add_unit) or named by a KV event; events for units that are not candidates are
// indexed (they may arrive before registration) but never routed to.
//
// Approximate mode (dynamo.md §2.10, for engines without KV events) is per unit: each
// request routed to an approximate unit has its full blocks recorded in the index as held
// by that unit, for a TTL (refreshed in place when routed again) and within a size cap
// (least recently routed dropped first). Memory follows the recorded blocks (at most the
// cap plus one prompt), never the request rate. Units with KV events are kept exact by
// them alone.
//
// Pending prefixes (pending_weight > 0): a request routed to an exact unit has its full
// blocks counted as pending there, so that requests routed before the engine's KV events
// arrive (a burst sharing a new prefix) see where it is being computed (scheduler.h:
// kv_logit). A request's pending blocks go when the unit's KV events store its last full
// block (confirmed: the index has them now), when it is freed, when its unit is removed,
// or pending_timeout_ms after it was routed. A pending request is an active one, so its
// blocks are already in the active requests' table: a unit's pending overlap is the
// longest common prefix of the query with its pending requests, which is its active
// overlap when every request on the unit is pending, and is read off the pending
// requests' blocks otherwise (pending_depth). Recording costs O(1), and a route walks one
// table for both. Memory follows the requests in flight.
//
// Pruned scan: a kv route at temperature 0 with the configured overlap weight scores only
// the units the request shares blocks with and takes the rest from the units it picks
// among (the candidates not busy) kept in load order (load_order.h); it picks exactly what
// scoring every candidate would, with the same random draws. When every unit holding
// cached blocks holds the request's first blocks (a system prompt cached everywhere), and
// likewise for active blocks, the units sharing only those are at one base overlap per
// class of what they hold, rank by load within it like idle ones, and are taken from the
// load order too: the route scores the units past the base alone
// (PrefixTable::match_past_common). Other routes (temperature > 0:
// the softmax weighs every candidate; a per-request overlap weight: the load order is for
// the configured one) and score() scan every candidate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/active_sequences.h"
#include "core/flat_map.h"
#include "core/kv_events.h"
#include "core/kv_index.h"
#include "core/load_order.h"
#include "core/scheduler.h"

namespace kvgate {

struct RouterConfig {
  uint32_t block_size = 16;  // in [1, kMaxBlockSize]; callers validate
  Policy policy = Policy::kKv;
  double overlap_weight = 1.0;  // default per-request weight of prefill blocks in the cost
  double temperature = 0.0;     // default per-request softmax temperature (0 = argmin)
  uint64_t seed = 0;
  bool approx = false;  // the mode of units registered without one
  double approx_ttl_ms = 120000;
  uint64_t approx_max_blocks = 1u << 20;
  double approx_prune_ratio = 0.8;    // a prune drops down to max * ratio
  double pending_weight = 0;          // cost of a pending block against a prefill block; 0 = no pending prefixes
  double pending_timeout_ms = 10000;  // a request's pending blocks go after this long, stored or not
  double own_weight = 0;              // weight of the prompt's own uncached blocks again (kv_logit); 0 = Dynamo's cost
  double own_queue_weight = 0;        // own weight's growth per prompt queued per unit (own_weight_at); 0 = fixed
  bool full_scan = false;             // score every candidate on every route (the pruned scan's yardstick)
};

struct UnitMatch {
  uint32_t worker, rank, depth;
};

// find_matches' output: three arrays with room for every unit in use (unit_count()).
struct MatchRows {
  uint32_t* worker;
  uint32_t* rank;
  uint32_t* depth;
};

struct UnitScore {
  uint32_t worker, rank;
  Candidate candidate;
  double logit;  // KV cost (lower is better), whatever the policy
};

struct UnitInfo {
  uint32_t worker, rank;
  bool candidate;
  UnitLoad load;
  uint64_t cached_blocks;  // index holds
};

struct RouteResult {
  uint32_t worker = 0, rank = 0, overlap = 0;
};

enum class RouteStatus { kOk, kNoWorkers, kDuplicateRequest, kUnitFull };

struct BatchResult {
  uint32_t events = 0;   // events in the batch
  uint32_t applied = 0;  // events applied without error
  uint32_t ignored = 0;  // events for another storage tier (not device cache)
  uint32_t errors = 0;   // stored with an unknown parent or a block size mismatch, removals of unheld blocks
  uint32_t rank = 0;     // the rank the events went to (the batch's dp_rank when it has one)
};

struct RouterStats {
  IndexStats index;
  uint64_t candidates = 0;
  uint64_t busy = 0;   // candidates set busy (routed to only while every candidate is)
  uint64_t units = 0;  // slots in use (candidates and units only named by events)
  uint64_t active_requests = 0;
  uint64_t events_applied = 0;
  uint64_t event_errors = 0;
  uint64_t approx_blocks = 0;     // holds recorded by approximate mode
  uint64_t pending_requests = 0;  // requests with pending blocks
  uint64_t pending_blocks = 0;    // their (block, unit) holds, a block counted once per request
  uint64_t bytes = 0;             // index + active sequences + router tables, approximately
};

class KvRouter {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  explicit KvRouter(const RouterConfig& config);
  KvRouter(const KvRouter&) = delete;
  KvRouter& operator=(const KvRouter&) = delete;

  const RouterConfig& config() const { return config_; }

  // Registers (worker, rank) as a candidate, approximate or kept exact by KV events.
  // Idempotent; registering it again in the other mode drops what the old mode cached.
  // False only at the unit limit.
  bool add_unit(uint32_t worker, uint32_t rank, bool approx);
  bool add_unit(uint32_t worker, uint32_t rank) { return add_unit(worker, rank, config_.approx); }
  // Forgets the unit (or every rank of the worker): its cached blocks, active requests
  // and candidacy.
  void remove_unit(uint32_t worker, uint32_t rank);
  void remove_worker(uint32_t worker);
  // Drops the unit's (or every rank's) cached blocks; it stays a candidate.
  void clear_unit(uint32_t worker, uint32_t rank);
  void clear_worker(uint32_t worker);
  // Marks every rank of the worker busy (its engine is saturated) or free again. route picks
  // among the free candidates while there is one, and among all when every one is busy; the
  // unit keeps its cache, its load and its candidacy (add_routed, score). The mark lasts
  // until cleared or the unit is removed.
  void set_busy(uint32_t worker, bool busy);

  // KV events for one unit (see KvIndex). kLimit also when no unit slot is left.
  KvIndex::Status apply_stored(uint32_t worker, uint32_t rank, const int64_t* parent, const uint32_t* tokens,
                               size_t n_tokens, const int64_t* engine, size_t n_engine);
  size_t apply_removed(uint32_t worker, uint32_t rank, const int64_t* engine, size_t n);
  // Parses a raw SGLang batch and, only if all of it parses, applies it to (worker, rank);
  // a dp_rank carried by the batch takes the place of `rank`. Events of another medium than
  // the device are ignored; AllBlocksCleared clears that one unit.
  KvEventError apply_batch(uint32_t worker, uint32_t rank, const uint8_t* data, size_t len, BatchResult* out);

  // For each unit holding the query's first block (local block hashes), the number of
  // leading query blocks it has cached (>= 1), one row per unit, in no particular order.
  // Returns the rows written. The vector form (tests) allocates.
  size_t find_matches(const uint64_t* local, size_t n, const MatchRows& rows);
  void find_matches(const uint64_t* local, size_t n, std::vector<UnitMatch>* out);

  // Hashes the prompt, matches, scores and picks a candidate by the configured policy, and
  // records the request as active there (and, on an approximate unit, its blocks as cached
  // at now_ms). overlap_weight and temperature apply to this request.
  RouteStatus route(const uint32_t* tokens, size_t n, uint64_t request_id, double overlap_weight, double temperature,
                    double now_ms, RouteResult* out);
  // What route would see, without picking or recording: one entry per candidate, in
  // candidate order (sorted by worker, then rank).
  void score(const uint32_t* tokens, size_t n, double overlap_weight, std::vector<UnitScore>* out);

  // Records a request another router (a frontend replica) routed to (worker, rank): its
  // blocks and `prefill` uncached prompt tokens count as that unit's load until
  // free(request_id), as if routed here; the index is not touched. kNoWorkers when the unit
  // is not a candidate here.
  RouteStatus add_routed(const uint32_t* tokens, size_t n, uint64_t request_id, uint32_t worker, uint32_t rank,
                         uint64_t prefill);
  bool mark_prefill_done(uint64_t request_id);
  bool free(uint64_t request_id);
  // Approximate mode: drops recorded blocks whose TTL ended by now_ms; and pending blocks
  // whose timeout ended.
  void expire(double now_ms);
  void seed(uint64_t s) { rng_.seed(s); }

  size_t candidate_count() const { return candidates_.size(); }
  size_t unit_count() const { return slots_.size() - free_slots_.size(); }
  RouterStats stats() const;
  // Every unit in use, sorted by worker then rank.
  void units(std::vector<UnitInfo>* out) const;

 private:
  struct Slot {
    uint32_t worker = 0, rank = 0;
    bool used = false, candidate = false, approx = false, busy = false;
  };
  // One recorded (unit, block), on a list in the order last routed (so in expiry order:
  // the TTL is constant); a free entry's `next` links the free list.
  static constexpr uint32_t kNoEntry = U64Map::kNone;
  struct ApproxEntry {
    double expiry;
    uint64_t seq;
    uint32_t slot;
    uint32_t prev, next;
  };

  static uint64_t unit_key(uint32_t worker, uint32_t rank) { return (uint64_t{worker} << 32) | rank; }
  uint32_t find_slot(uint32_t worker, uint32_t rank) const { return slot_of_.find(unit_key(worker, rank)); }
  uint32_t slot_for(uint32_t worker, uint32_t rank);  // creates; kNoSlot at the limit
  void release_slot(uint32_t slot);
  void clear_slot(uint32_t slot);
  void rebuild_candidates();
  void index_candidates();  // not_busy_ and pos_of_ from candidates_; the load order goes stale
  void hash_prompt(const uint32_t* tokens, size_t n);
  // marks_ and base_ from seq_[0..n_full): past_common (the pruned scan, its load order
  // fresh) marks only the units past the leading blocks every unit holding any holds
  // (base_: those counts), else every unit with an overlap (base_ zero).
  void mark_matches(size_t n_full, bool past_common);
  // The leading blocks of seq_ pending on slot s, which has active_depth of them active.
  uint32_t pending_depth(uint32_t s, uint32_t active_depth) const;
  void unmark_matches();
  Candidate candidate_of(uint32_t slot) const;                     // as marked, at least base_
  Candidate filed_candidate(uint32_t slot) const;                  // the same from marks_ alone (pool, fresh order)
  void gather(size_t n_full, const std::vector<uint32_t>& units);  // fills cand_ from seq_[0..n_full)
  // The pruned scan (kv, temperature 0, the configured overlap weight): the position in
  // pool() select_kv over the pool would pick, and its candidate in *picked.
  size_t select_pruned(size_t n_full, uint32_t isl, Candidate* picked);
  // The own weight at the fleet's prefill queue now (scheduler.h: own_weight_at).
  double own_weight_now() const {
    return own_weight_at(config_.own_weight, config_.own_queue_weight, active_.prefilling(), candidates_.size());
  }
  // Records the routed request (its blocks seq_[0..n_full)) in the active table on slot s and
  // refiles what that changed. False if the unit is full.
  bool add_active(uint64_t request_id, uint32_t s, size_t n_full, bool partial, uint64_t prefill);
  // The slot's load, tree size or holds may have changed: it is refiled (file) at the next
  // pruned route, once however many times it changed since (route, prefill done, free).
  void refile(uint32_t slot);
  void flush_refiles();
  void file(uint32_t slot);  // into the load order and its Marks, now
  void refile_all();
  void approx_record(uint32_t slot, size_t n_full, double now_ms);
  void approx_link_back(uint32_t e);
  void approx_unlink(uint32_t e);
  void approx_drop_front();
  void pending_record(uint32_t slot, uint64_t request_id, size_t n_full, double now_ms);
  void pending_release(uint32_t e);
  void pending_drop(uint64_t request_id);
  void pending_expire(double now_ms);
  void pending_confirm(uint32_t slot);
  void pending_drop_slot(uint32_t slot);

  RouterConfig config_;
  KvIndex index_;
  ActiveSequences active_;
  Rng rng_;
  uint64_t round_robin_ = 0;

  U64Map slot_of_;  // unit_key → slot
  std::vector<Slot> slots_;
  std::vector<uint32_t> slot_worker_, slot_rank_;  // slots_' units side by side (find_matches copies them whole)
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> candidates_;  // slots, sorted by (worker, rank)
  std::vector<uint32_t> not_busy_;    // the candidates not busy, in the same order
  // What route picks among: the candidates not busy, or all while every one is busy.
  const std::vector<uint32_t>& pool() const { return not_busy_.empty() ? candidates_ : not_busy_; }
  std::vector<uint32_t> pos_of_;  // by slot: position in pool(), or kNoSlot

  // The pruned scan: the pool in load order, each unit whose load, tree or holds changed
  // refiled at the next pruned route, and the whole pool after the pool changes (stale).
  bool prune_ = false;
  bool load_order_stale_ = true;
  LoadOrder load_order_;
  std::vector<uint32_t> refiles_;  // slots to refile (their Marks::refile set), while not stale

  uint64_t events_applied_ = 0, event_errors_ = 0;
  KvEventBatch batch_;

  // Approximate mode: the recorded entries (a pool with a free list), their list from the
  // least to the most recently routed, and per slot each recorded block's entry.
  std::vector<ApproxEntry> approx_pool_;
  uint32_t approx_free_ = kNoEntry;
  uint32_t approx_head_ = kNoEntry, approx_tail_ = kNoEntry;
  std::vector<U64Map> approx_of_;  // by slot: seq → entry
  uint64_t approx_blocks_ = 0;

  // Pending prefixes: the requests' entries (a pool with a free list through `next`) on one
  // list in routing order (so in expiry order), and per slot its entries (each entry knows
  // its position there).
  struct PendingEntry {
    uint64_t id;
    double expiry;
    uint64_t last_seq;  // the request's last full block: stored on the unit = confirmed
    uint32_t slot;
    uint32_t pos;  // in pending_by_slot_[slot]
    uint32_t prev, next;
    uint32_t blocks;  // full blocks
  };
  uint64_t pending_blocks_ = 0;  // sum of the entries' blocks
  std::vector<PendingEntry> pending_pool_;
  uint32_t pending_free_ = kNoEntry;
  uint32_t pending_head_ = kNoEntry, pending_tail_ = kNoEntry;
  U64Map pending_of_;  // request id → entry
  std::vector<std::vector<uint32_t>> pending_by_slot_;

  // Per-call scratch.
  std::vector<uint64_t> seq_;
  std::vector<UnitDepth> matches_, active_matches_, pending_matches_;
  std::vector<uint32_t> gaps_;  // find_matches: the slots holding no block, ascending
  // By slot: a route's overlaps of each kind and whether select_pruned scored the unit (zero
  // between calls), and beside them what the unit was last filed with (its load, tree size
  // and holds: current for every unit of the pool once select_pruned flushed), so that
  // scoring a matched unit loads one line, not six.
  struct alignas(64) Marks {
    uint32_t overlap = 0, active = 0, pending = 0;
    uint32_t listed = 0;
    uint64_t active_blocks = 0, prefill_tokens = 0, tree = 0;
    uint8_t holds = 0;   // LoadOrder::kCached, kActive
    uint8_t refile = 0;  // listed in refiles_ (or was, when the order went stale)
  };
  std::vector<Marks> marks_;
  // The overlap of every unit not marked (mark_matches) that holds any cached block, and
  // the active overlap of every one that holds any active block; such a unit has no
  // pending overlap beyond its overlap.
  Candidate base_;
  std::vector<Candidate> cand_;
  std::vector<double> values_;
  std::vector<uint64_t> trees_;
  std::vector<LoadOrder::Scored> scored_;
};

}  // namespace kvgate
