#include "core/kv_router.h"

#include <algorithm>
#include <cmath>

#include "core/block_hash.h"

namespace kvgate {

KvRouter::KvRouter(const RouterConfig& config)
    : config_(config),
      index_(config.block_size),
      rng_(config.seed),
      prune_(config.policy == Policy::kKv && !config.full_scan && std::isfinite(config.overlap_weight) &&
             config.overlap_weight >= 0) {}

uint32_t KvRouter::slot_for(uint32_t worker, uint32_t rank) {
  uint32_t s = find_slot(worker, rank);
  if (s != U64Map::kNone) return s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_.size() >= PrefixTable::kMaxUnits) return kNoSlot;
    s = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    marks_.emplace_back();
    slot_worker_.emplace_back();
    slot_rank_.emplace_back();
  }
  slots_[s] = Slot{worker, rank, true, false, false, false};
  slot_worker_[s] = worker;
  slot_rank_[s] = rank;
  slot_of_.put(unit_key(worker, rank), s);
  return s;
}

void KvRouter::release_slot(uint32_t s) {
  clear_slot(s);
  active_.remove_unit(s);
  pending_drop_slot(s);
  const bool was_candidate = slots_[s].candidate;
  slot_of_.erase(unit_key(slots_[s].worker, slots_[s].rank));
  slots_[s] = Slot{};
  free_slots_.push_back(s);
  if (was_candidate) rebuild_candidates();
}

void KvRouter::clear_slot(uint32_t s) {
  index_.clear_unit(s);
  if (s < approx_of_.size()) {
    approx_of_[s].for_each([&](uint64_t, uint32_t e) {
      approx_unlink(e);
      approx_pool_[e].next = approx_free_;
      approx_free_ = e;
    });
    approx_blocks_ -= approx_of_[s].size();
    approx_of_[s].reset();
  }
  refile(s);
}

void KvRouter::rebuild_candidates() {
  candidates_.clear();
  for (uint32_t s = 0; s < slots_.size(); s++) {
    if (slots_[s].candidate) candidates_.push_back(s);
  }
  std::sort(candidates_.begin(), candidates_.end(), [&](uint32_t a, uint32_t b) {
    return unit_key(slots_[a].worker, slots_[a].rank) < unit_key(slots_[b].worker, slots_[b].rank);
  });
  index_candidates();
}

void KvRouter::set_busy(uint32_t worker, bool busy) {
  bool changed = false;
  for (Slot& sl : slots_) {
    if (!sl.used || sl.worker != worker || sl.busy == busy) continue;
    sl.busy = busy;
    changed = true;
  }
  if (changed) rebuild_candidates();
}

void KvRouter::index_candidates() {
  not_busy_.clear();
  for (const uint32_t s : candidates_) {
    if (!slots_[s].busy) not_busy_.push_back(s);
  }
  const std::vector<uint32_t>& units = pool();
  pos_of_.assign(slots_.size(), kNoSlot);
  for (size_t i = 0; i < units.size(); i++) pos_of_[units[i]] = static_cast<uint32_t>(i);
  load_order_stale_ = true;
  load_order_.clear();
  // (Their flags stay set: refile_all files, and so unflags, every unit of the pool.)
  refiles_.clear();
}

void KvRouter::refile(uint32_t s) {
  if (load_order_stale_ || s >= pos_of_.size() || pos_of_[s] == kNoSlot || marks_[s].refile) return;
  marks_[s].refile = 1;
  refiles_.push_back(s);
}

bool KvRouter::add_active(uint64_t request_id, uint32_t s, size_t n_full, bool partial, uint64_t prefill) {
  uint32_t now_holding;
  if (active_.add(request_id, s, seq_.data(), n_full, partial, prefill, &now_holding) !=
      ActiveSequences::AddStatus::kOk) {
    return false;
  }
  refile(s);
  // Another unit's request shared its tail: that unit may hold active blocks in the table now.
  if (now_holding != U64Map::kNone) refile(now_holding);
  return true;
}

void KvRouter::flush_refiles() {
  for (const uint32_t s : refiles_) file(s);
  refiles_.clear();
}

void KvRouter::file(uint32_t s) {
  const UnitLoad& load = active_.load(s);
  Marks& mk = marks_[s];
  mk.refile = 0;
  mk.holds = 0;
  if (index_.holds_any(s)) mk.holds |= LoadOrder::kCached;
  if (active_.holds_any(s)) mk.holds |= LoadOrder::kActive;
  mk.active_blocks = load.active_blocks;
  mk.prefill_tokens = load.prefill_tokens;
  mk.tree = index_.unit_blocks(s);
  load_order_.put(pos_of_[s], mk.prefill_tokens, mk.active_blocks, mk.tree, mk.holds);
}

void KvRouter::refile_all() {
  const std::vector<uint32_t>& units = pool();
  load_order_.reset(config_.overlap_weight, config_.block_size, units.size());
  load_order_stale_ = false;
  for (const uint32_t s : units) file(s);
}

bool KvRouter::mark_prefill_done(uint64_t request_id) {
  const uint32_t s = active_.unit_of(request_id);
  if (!active_.mark_prefill_done(request_id)) return false;
  refile(s);
  return true;
}

bool KvRouter::free(uint64_t request_id) {
  pending_drop(request_id);
  const uint32_t s = active_.unit_of(request_id);
  if (!active_.free(request_id)) return false;
  refile(s);
  return true;
}

bool KvRouter::add_unit(uint32_t worker, uint32_t rank, bool approx) {
  const uint32_t s = slot_for(worker, rank);
  if (s == kNoSlot) return false;
  if (slots_[s].candidate && slots_[s].approx != approx) clear_slot(s);
  slots_[s].approx = approx;
  if (!slots_[s].candidate) {
    slots_[s].candidate = true;
    // In (worker, rank) order: adding a fleet one unit at a time stays O(units) per unit.
    const uint64_t key = unit_key(worker, rank);
    candidates_.insert(
        std::lower_bound(candidates_.begin(), candidates_.end(), key,
                         [&](uint32_t c, uint64_t k) { return unit_key(slots_[c].worker, slots_[c].rank) < k; }),
        s);
    index_candidates();
  }
  return true;
}

void KvRouter::remove_unit(uint32_t worker, uint32_t rank) {
  const uint32_t s = find_slot(worker, rank);
  if (s != U64Map::kNone) release_slot(s);
}

void KvRouter::remove_worker(uint32_t worker) {
  for (uint32_t s = 0; s < slots_.size(); s++) {
    if (slots_[s].used && slots_[s].worker == worker) release_slot(s);
  }
}

void KvRouter::clear_unit(uint32_t worker, uint32_t rank) {
  const uint32_t s = find_slot(worker, rank);
  if (s != U64Map::kNone) clear_slot(s);
}

void KvRouter::clear_worker(uint32_t worker) {
  for (uint32_t s = 0; s < slots_.size(); s++) {
    if (slots_[s].used && slots_[s].worker == worker) clear_slot(s);
  }
}

KvIndex::Status KvRouter::apply_stored(uint32_t worker, uint32_t rank, const int64_t* parent, const uint32_t* tokens,
                                       size_t n_tokens, const int64_t* engine, size_t n_engine) {
  const uint32_t s = slot_for(worker, rank);
  const KvIndex::Status st =
      s == kNoSlot ? KvIndex::Status::kLimit : index_.apply_stored(s, parent, tokens, n_tokens, engine, n_engine);
  if (s != kNoSlot) refile(s);
  if (st == KvIndex::Status::kOk) {
    if (s < pending_by_slot_.size() && !pending_by_slot_[s].empty()) pending_confirm(s);
    events_applied_++;
  } else {
    event_errors_++;
  }
  return st;
}

size_t KvRouter::apply_removed(uint32_t worker, uint32_t rank, const int64_t* engine, size_t n) {
  const uint32_t s = find_slot(worker, rank);
  const size_t missing = s == U64Map::kNone ? n : index_.apply_removed(s, engine, n);
  if (s != U64Map::kNone) refile(s);
  if (missing == 0) {
    events_applied_++;
  } else {
    event_errors_++;
  }
  return missing;
}

KvEventError KvRouter::apply_batch(uint32_t worker, uint32_t rank, const uint8_t* data, size_t len, BatchResult* out) {
  *out = BatchResult{};
  const KvEventError err = parse_kv_event_batch(data, len, &batch_);
  if (err != KvEventError::kOk) return err;
  if (batch_.has_dp_rank) rank = static_cast<uint32_t>(batch_.dp_rank);
  out->rank = rank;
  out->events = static_cast<uint32_t>(batch_.events.size());
  for (const KvEvent& ev : batch_.events) {
    if (!ev.gpu_medium) {
      out->ignored++;
      continue;
    }
    bool ok = true;
    switch (ev.kind) {
      case KvEventKind::kStored:
        ok = apply_stored(worker, rank, ev.has_parent ? &ev.parent_hash : nullptr, ev.token_ids.data(),
                          ev.token_ids.size(), ev.block_hashes.data(), ev.block_hashes.size()) == KvIndex::Status::kOk;
        break;
      case KvEventKind::kRemoved:
        ok = apply_removed(worker, rank, ev.block_hashes.data(), ev.block_hashes.size()) == 0;
        break;
      case KvEventKind::kCleared:
        clear_unit(worker, rank);
        events_applied_++;
        break;
    }
    if (ok) {
      out->applied++;
    } else {
      out->errors++;
    }
  }
  return KvEventError::kOk;
}

size_t KvRouter::find_matches(const uint64_t* local, size_t n, const MatchRows& rows) {
  seq_.resize(n);
  compute_sequence_hashes(local, n, seq_.data());
  // When every unit holding any block holds the query's first k blocks (a system prompt
  // cached everywhere: then the answer is every such unit), the walk lists only the units
  // deeper than k, and the rest are written at k from the per-slot arrays: block 0's
  // holders are never read, intersected or listed.
  const auto k = static_cast<uint32_t>(index_.match_past_common(seq_.data(), n, &matches_));
  if (k == 0) {
    for (size_t i = 0; i < matches_.size(); i++) {
      rows.worker[i] = slot_worker_[matches_[i].unit];
      rows.rank[i] = slot_rank_[matches_[i].unit];
      rows.depth[i] = matches_[i].depth;
    }
    return matches_.size();
  }
  // Rows in slot order, less the slots that hold nothing (gaps_, ascending): none when every
  // slot holds blocks, the free slots when every unit in use does, else found by a scan.
  // Each run between gaps is copied whole at depth k, then the deeper units are patched in
  // (a slot's row is the slot less the gaps before it).
  const auto slots = static_cast<uint32_t>(slots_.size());
  const size_t holding = index_.holding_units();
  gaps_.clear();
  if (holding + free_slots_.size() == slots) {
    gaps_.assign(free_slots_.begin(), free_slots_.end());
    std::sort(gaps_.begin(), gaps_.end());
  } else {
    for (uint32_t s = 0; s < slots; s++) {
      if (!index_.holds_any(s)) gaps_.push_back(s);
    }
  }
  size_t row = 0;
  uint32_t s = 0;
  for (size_t g = 0; g <= gaps_.size(); g++) {
    const uint32_t end = g < gaps_.size() ? gaps_[g] : slots;
    std::copy(slot_worker_.data() + s, slot_worker_.data() + end, rows.worker + row);
    std::copy(slot_rank_.data() + s, slot_rank_.data() + end, rows.rank + row);
    std::fill(rows.depth + row, rows.depth + row + (end - s), k);
    row += end - s;
    s = end + 1;
  }
  for (const UnitDepth& m : matches_) {
    const auto before = std::lower_bound(gaps_.begin(), gaps_.end(), m.unit) - gaps_.begin();
    rows.depth[m.unit - static_cast<size_t>(before)] = m.depth;
  }
  return row;
}

void KvRouter::find_matches(const uint64_t* local, size_t n, std::vector<UnitMatch>* out) {
  std::vector<uint32_t> worker(slots_.size()), rank(slots_.size()), depth(slots_.size());
  const size_t got = find_matches(local, n, MatchRows{worker.data(), rank.data(), depth.data()});
  out->resize(got);
  for (size_t i = 0; i < got; i++) (*out)[i] = UnitMatch{worker[i], rank[i], depth[i]};
}

void KvRouter::hash_prompt(const uint32_t* tokens, size_t n) {
  const uint32_t bs = config_.block_size;
  const size_t n_full = n / bs;
  seq_.resize(n_full);
  // Hash in chunks (block and sequence hashes in one pass, chaining from the chunk before)
  // and start loading each chunk's slots in the two tables mark_matches walks while the next
  // chunk is hashed (the walks then find most of them loaded: at 10,000 units their slots
  // are DRAM misses).
  constexpr size_t kChunk = 16;
  for (size_t i = 0; i < n_full; i += kChunk) {
    const size_t end = std::min(n_full, i + kChunk);
    compute_prompt_hashes(tokens + i * bs, end - i, bs, i == 0 ? nullptr : &seq_[i - 1], seq_.data() + i);
    for (size_t k = i; k < end; k++) {
      index_.prefetch(seq_[k]);
      active_.prefetch(seq_[k]);
    }
  }
}

void KvRouter::mark_matches(size_t n_full, bool past_common) {
  base_ = Candidate{};
  if (past_common) {
    base_.overlap = static_cast<uint32_t>(index_.match_past_common(seq_.data(), n_full, &matches_));
    base_.active_overlap = static_cast<uint32_t>(active_.match_past_common(seq_.data(), n_full, &active_matches_));
    // A unit left out has pending blocks only if it has active ones, and no more than its
    // base active overlap. Past its cached overlap they cost (kv_logit's extra): then list
    // every unit with active blocks, so that each one's pending depth is read. (Units
    // holding active blocks and no cached one are counted in the pool: only the pool is
    // left out.)
    if (pending_head_ != kNoEntry && base_.active_overlap > 0 &&
        (base_.active_overlap > base_.overlap || load_order_.filed_with(LoadOrder::kActive) > 0)) {
      base_.active_overlap = 0;
      active_.match(seq_.data(), n_full, &active_matches_);
    }
  } else {
    index_.match(seq_.data(), n_full, &matches_);
    active_.match(seq_.data(), n_full, &active_matches_);
  }
  pending_matches_.clear();
  if (pending_head_ != kNoEntry) {
    for (const UnitDepth& m : active_matches_) {
      const uint32_t d = pending_depth(m.unit, m.depth);
      if (d > 0) pending_matches_.push_back(UnitDepth{m.unit, d});
    }
  }
  for (const UnitDepth& m : matches_) marks_[m.unit].overlap = m.depth;
  for (const UnitDepth& m : active_matches_) marks_[m.unit].active = m.depth;
  for (const UnitDepth& m : pending_matches_) marks_[m.unit].pending = m.depth;
}

uint32_t KvRouter::pending_depth(uint32_t s, uint32_t active_depth) const {
  if (s >= pending_by_slot_.size() || pending_by_slot_[s].empty()) return 0;
  const std::vector<uint32_t>& list = pending_by_slot_[s];
  // Every request on the unit pending (the usual case before its KV events): their longest
  // common prefix with the query is the active one.
  if (list.size() == active_.load(s).requests) return active_depth;
  uint32_t depth = 0;
  for (const uint32_t e : list) {
    depth = std::max(depth, active_.common_prefix(pending_pool_[e].id, seq_.data(), active_depth));
    if (depth == active_depth) break;  // no pending request can go deeper than an active one
  }
  return depth;
}

void KvRouter::unmark_matches() {
  // (listed: select_pruned lists only units of these lists.)
  for (const UnitDepth& m : matches_) {
    marks_[m.unit].overlap = 0;
    marks_[m.unit].listed = 0;
  }
  for (const UnitDepth& m : active_matches_) {
    marks_[m.unit].active = 0;
    marks_[m.unit].listed = 0;
  }
  for (const UnitDepth& m : pending_matches_) marks_[m.unit].pending = 0;
}

Candidate KvRouter::candidate_of(uint32_t s) const {
  const UnitLoad& load = active_.load(s);
  Candidate c;
  const Marks& mk = marks_[s];
  c.overlap = mk.overlap;
  c.active_overlap = mk.active;
  // A unit not marked is at the base of what it holds (a marked one is past it).
  if (c.overlap == 0 && base_.overlap > 0 && index_.holds_any(s)) c.overlap = base_.overlap;
  if (c.active_overlap == 0 && base_.active_overlap > 0 && active_.holds_any(s)) {
    c.active_overlap = base_.active_overlap;
  }
  c.active_blocks = load.active_blocks;
  c.prefill_tokens = load.prefill_tokens;
  c.tree_size = index_.unit_blocks(s);
  c.pending_overlap = mk.pending;
  return c;
}

inline Candidate KvRouter::filed_candidate(uint32_t s) const {
  const Marks& mk = marks_[s];
  Candidate c;
  c.overlap = mk.overlap != 0 || (mk.holds & LoadOrder::kCached) == 0 ? mk.overlap : base_.overlap;
  c.active_overlap = mk.active != 0 || (mk.holds & LoadOrder::kActive) == 0 ? mk.active : base_.active_overlap;
  c.active_blocks = mk.active_blocks;
  c.prefill_tokens = mk.prefill_tokens;
  c.tree_size = mk.tree;
  c.pending_overlap = mk.pending;
  return c;
}

void KvRouter::gather(size_t n_full, const std::vector<uint32_t>& units) {
  mark_matches(n_full, false);
  cand_.resize(units.size());
  for (size_t i = 0; i < units.size(); i++) cand_[i] = candidate_of(units[i]);
  unmark_matches();
}

size_t KvRouter::select_pruned(size_t n_full, uint32_t isl, Candidate* picked) {
  if (load_order_stale_) {
    refile_all();
  } else {
    flush_refiles();
  }
  const double w = config_.overlap_weight, pw = config_.pending_weight, own = own_weight_now();
  const uint32_t bs = config_.block_size;
  // Units at the base (the blocks every unit holds, cached and active) are left to the
  // load order; only those past it are scored.
  mark_matches(n_full, true);
  // Written field by field in place (a struct built aside and copied in stalls on the copy).
  scored_.resize(matches_.size() + active_matches_.size());
  size_t n = 0;
  // (Units with pending overlap are among the active matches: a pending request is active.)
  for (const std::vector<UnitDepth>* ms : {&matches_, &active_matches_}) {
    for (const UnitDepth& m : *ms) {
      const uint32_t s = m.unit;
      if (s >= pos_of_.size() || pos_of_[s] == kNoSlot || marks_[s].listed) continue;  // not in the pool
      marks_[s].listed = 1;
      const Candidate c = filed_candidate(s);
      LoadOrder::Scored& sc = scored_[n++];
      sc.pos = pos_of_[s];
      sc.logit = kv_logit(c, isl, bs, w, pw, own);
      sc.tree = c.tree_size;
    }
  }
  scored_.resize(n);
  const std::vector<uint32_t>& units = pool();
  const uint32_t pos = load_order_.select(scored_, isl, pw, own, rng_, base_);
  // Still marked: the candidate it was scored as (an unmatched one: at the base).
  *picked = filed_candidate(units[pos]);
  unmark_matches();
  return pos;
}

RouteStatus KvRouter::route(const uint32_t* tokens, size_t n, uint64_t request_id, double overlap_weight,
                            double temperature, double now_ms, RouteResult* out) {
  // Busy units are passed over while another candidate is free.
  const std::vector<uint32_t>& units = pool();
  const size_t count = units.size();
  if (count == 0) return RouteStatus::kNoWorkers;
  if (active_.contains(request_id)) return RouteStatus::kDuplicateRequest;
  if (approx_head_ != kNoEntry || pending_head_ != kNoEntry) expire(now_ms);
  const uint32_t bs = config_.block_size;
  const uint32_t isl = static_cast<uint32_t>(n);
  hash_prompt(tokens, n);
  const size_t n_full = seq_.size();

  size_t pick = 0;
  Candidate picked;
  if (prune_ && temperature == 0 && overlap_weight == config_.overlap_weight) {
    pick = select_pruned(n_full, isl, &picked);
  } else {
    gather(n_full, units);
    values_.resize(count);
    switch (config_.policy) {
      case Policy::kKv: {
        const double own = own_weight_now();
        trees_.resize(count);
        for (size_t i = 0; i < count; i++) {
          values_[i] = kv_logit(cand_[i], isl, bs, overlap_weight, config_.pending_weight, own);
          trees_[i] = cand_[i].tree_size;
        }
        pick = select_kv(values_.data(), trees_.data(), count, temperature, rng_);
        break;
      }
      case Policy::kRoundRobin: pick = static_cast<size_t>(round_robin_++ % count); break;
      case Policy::kRandom: pick = rng_.below(static_cast<uint32_t>(count)); break;
      case Policy::kPowerOfTwo:
      case Policy::kLeastLoaded:
        for (size_t i = 0; i < count; i++) values_[i] = load_blocks(cand_[i], bs);
        pick = config_.policy == Policy::kPowerOfTwo ? select_power_of_two(values_.data(), count, rng_)
                                                     : select_least_loaded(values_.data(), count, rng_);
        break;
    }
    picked = cand_[pick];
  }

  const uint32_t s = units[pick];
  const uint32_t overlap = picked.overlap;
  // What the unit will compute: blocks pending there are computed once, by their request.
  const bool pending = config_.pending_weight > 0;
  const uint32_t computed = pending ? std::max(overlap, picked.pending_overlap) : overlap;
  const uint64_t cached = uint64_t{computed} * bs;
  const uint64_t prefill = n > cached ? n - cached : 0;
  if (!add_active(request_id, s, n_full, n % bs != 0, prefill)) return RouteStatus::kUnitFull;
  if (slots_[s].approx) {
    approx_record(s, n_full, now_ms);
  } else if (pending && n_full > 0 && config_.pending_timeout_ms > 0) {
    pending_record(s, request_id, n_full, now_ms);
  }
  *out = RouteResult{slots_[s].worker, slots_[s].rank, overlap};
  return RouteStatus::kOk;
}

RouteStatus KvRouter::add_routed(const uint32_t* tokens, size_t n, uint64_t request_id, uint32_t worker, uint32_t rank,
                                 uint64_t prefill) {
  const uint32_t s = find_slot(worker, rank);
  if (s == U64Map::kNone || !slots_[s].candidate) return RouteStatus::kNoWorkers;
  if (active_.contains(request_id)) return RouteStatus::kDuplicateRequest;
  hash_prompt(tokens, n);
  if (!add_active(request_id, s, seq_.size(), n % config_.block_size != 0, prefill)) return RouteStatus::kUnitFull;
  return RouteStatus::kOk;
}

void KvRouter::score(const uint32_t* tokens, size_t n, double overlap_weight, std::vector<UnitScore>* out) {
  hash_prompt(tokens, n);
  gather(seq_.size(), candidates_);
  out->clear();
  const double own = own_weight_now();
  for (size_t i = 0; i < candidates_.size(); i++) {
    const Slot& sl = slots_[candidates_[i]];
    out->push_back(UnitScore{
        sl.worker, sl.rank, cand_[i],
        kv_logit(cand_[i], static_cast<uint32_t>(n), config_.block_size, overlap_weight, config_.pending_weight, own)});
  }
}

void KvRouter::approx_record(uint32_t s, size_t n_full, double now_ms) {
  if (s >= approx_of_.size()) approx_of_.resize(s + 1);
  U64Map& of = approx_of_[s];
  const double expiry = now_ms + config_.approx_ttl_ms;
  for (size_t i = 0; i < n_full; i++) {
    const uint64_t seq = seq_[i];
    uint32_t e = of.find(seq);
    if (e != kNoEntry) {
      // Recorded already: refresh its TTL and move it to the back, in place.
      approx_pool_[e].expiry = expiry;
      approx_unlink(e);
      approx_link_back(e);
      continue;
    }
    if (approx_free_ == kNoEntry && approx_pool_.size() >= kNoEntry - 1) break;  // 2^32 entries: record no more
    // The recorded block's engine hash is its sequence hash: unique per prefix.
    if (!index_.claim(s, static_cast<int64_t>(seq), seq)) continue;
    if (approx_free_ != kNoEntry) {
      e = approx_free_;
      approx_free_ = approx_pool_[e].next;
    } else {
      e = static_cast<uint32_t>(approx_pool_.size());
      approx_pool_.emplace_back();
    }
    approx_pool_[e] = ApproxEntry{expiry, seq, s, kNoEntry, kNoEntry};
    approx_link_back(e);
    of.put(seq, e);
    approx_blocks_++;
  }
  refile(s);
  if (approx_blocks_ > config_.approx_max_blocks) {
    const double target = static_cast<double>(config_.approx_max_blocks) * config_.approx_prune_ratio;
    while (approx_head_ != kNoEntry && static_cast<double>(approx_blocks_) > target) approx_drop_front();
  }
}

void KvRouter::approx_link_back(uint32_t e) {
  ApproxEntry& x = approx_pool_[e];
  x.prev = approx_tail_;
  x.next = kNoEntry;
  if (approx_tail_ != kNoEntry) {
    approx_pool_[approx_tail_].next = e;
  } else {
    approx_head_ = e;
  }
  approx_tail_ = e;
}

void KvRouter::approx_unlink(uint32_t e) {
  const ApproxEntry& x = approx_pool_[e];
  if (x.prev != kNoEntry) {
    approx_pool_[x.prev].next = x.next;
  } else {
    approx_head_ = x.next;
  }
  if (x.next != kNoEntry) {
    approx_pool_[x.next].prev = x.prev;
  } else {
    approx_tail_ = x.prev;
  }
}

void KvRouter::approx_drop_front() {
  const uint32_t e = approx_head_;
  const ApproxEntry x = approx_pool_[e];
  approx_unlink(e);
  approx_pool_[e].next = approx_free_;
  approx_free_ = e;
  approx_of_[x.slot].erase(x.seq);
  approx_blocks_--;
  index_.release(x.slot, static_cast<int64_t>(x.seq));
  refile(x.slot);
}

void KvRouter::expire(double now_ms) {
  while (approx_head_ != kNoEntry && approx_pool_[approx_head_].expiry <= now_ms) approx_drop_front();
  pending_expire(now_ms);
}

void KvRouter::pending_record(uint32_t s, uint64_t request_id, size_t n_full, double now_ms) {
  uint32_t e;
  if (pending_free_ != kNoEntry) {
    e = pending_free_;
    pending_free_ = pending_pool_[e].next;
  } else {
    if (pending_pool_.size() >= kNoEntry - 1) return;  // 2^32 requests pending: record no more
    e = static_cast<uint32_t>(pending_pool_.size());
    pending_pool_.emplace_back();
  }
  if (s >= pending_by_slot_.size()) pending_by_slot_.resize(s + 1);
  PendingEntry& x = pending_pool_[e];
  x.id = request_id;
  x.expiry = now_ms + config_.pending_timeout_ms;
  x.last_seq = seq_[n_full - 1];
  x.slot = s;
  x.pos = static_cast<uint32_t>(pending_by_slot_[s].size());
  x.blocks = static_cast<uint32_t>(n_full);
  pending_blocks_ += n_full;
  pending_by_slot_[s].push_back(e);
  pending_of_.put(request_id, e);
  // Append to the expiry list (now_ms never decreases, so it stays sorted).
  x.prev = pending_tail_;
  x.next = kNoEntry;
  if (pending_tail_ != kNoEntry) {
    pending_pool_[pending_tail_].next = e;
  } else {
    pending_head_ = e;
  }
  pending_tail_ = e;
}

void KvRouter::pending_release(uint32_t e) {
  PendingEntry& x = pending_pool_[e];
  pending_blocks_ -= x.blocks;
  pending_of_.erase(x.id);
  std::vector<uint32_t>& list = pending_by_slot_[x.slot];
  const uint32_t moved = list.back();
  list[x.pos] = moved;
  pending_pool_[moved].pos = x.pos;
  list.pop_back();
  if (x.prev != kNoEntry) {
    pending_pool_[x.prev].next = x.next;
  } else {
    pending_head_ = x.next;
  }
  if (x.next != kNoEntry) {
    pending_pool_[x.next].prev = x.prev;
  } else {
    pending_tail_ = x.prev;
  }
  x.next = pending_free_;
  pending_free_ = e;
}

void KvRouter::pending_drop(uint64_t request_id) {
  const uint32_t e = pending_of_.find(request_id);
  if (e != U64Map::kNone) pending_release(e);
}

void KvRouter::pending_expire(double now_ms) {
  while (pending_head_ != kNoEntry && pending_pool_[pending_head_].expiry <= now_ms) pending_release(pending_head_);
}

void KvRouter::pending_confirm(uint32_t s) {
  std::vector<uint32_t>& list = pending_by_slot_[s];
  // Backwards: a release moves the last entry into the released one's place.
  for (size_t i = list.size(); i-- > 0;) {
    const uint32_t e = list[i];
    if (index_.holds(s, pending_pool_[e].last_seq)) pending_release(e);
  }
}

void KvRouter::pending_drop_slot(uint32_t s) {
  if (s >= pending_by_slot_.size()) return;
  while (!pending_by_slot_[s].empty()) pending_release(pending_by_slot_[s].back());
}

RouterStats KvRouter::stats() const {
  RouterStats s;
  s.index = index_.stats();
  s.candidates = candidate_count();
  s.busy = candidates_.size() - not_busy_.size();
  s.units = unit_count();
  s.active_requests = active_.requests();
  s.events_applied = events_applied_;
  s.event_errors = event_errors_;
  s.approx_blocks = approx_blocks_;
  s.pending_requests = pending_of_.size();
  s.pending_blocks = pending_blocks_;
  s.bytes = s.index.bytes + active_.bytes() + slot_of_.bytes() + slots_.capacity() * sizeof(Slot) +
            approx_pool_.capacity() * sizeof(ApproxEntry) + approx_of_.capacity() * sizeof(U64Map);
  for (const U64Map& m : approx_of_) s.bytes += m.bytes();
  s.bytes += pending_of_.bytes() + pending_pool_.capacity() * sizeof(PendingEntry) +
             pending_by_slot_.capacity() * sizeof(std::vector<uint32_t>);
  for (const auto& l : pending_by_slot_) s.bytes += l.capacity() * sizeof(uint32_t);
  s.bytes += load_order_.bytes() + pos_of_.capacity() * sizeof(uint32_t) + marks_.capacity() * sizeof(Marks) +
             scored_.capacity() * sizeof(LoadOrder::Scored) + refiles_.capacity() * sizeof(uint32_t);
  s.bytes += (slot_worker_.capacity() + slot_rank_.capacity() + gaps_.capacity()) * sizeof(uint32_t);
  return s;
}

void KvRouter::units(std::vector<UnitInfo>* out) const {
  out->clear();
  for (uint32_t s = 0; s < slots_.size(); s++) {
    const Slot& sl = slots_[s];
    if (!sl.used) continue;
    out->push_back(UnitInfo{sl.worker, sl.rank, sl.candidate, active_.load(s), index_.unit_blocks(s)});
  }
  std::sort(out->begin(), out->end(), [](const UnitInfo& a, const UnitInfo& b) {
    return unit_key(a.worker, a.rank) < unit_key(b.worker, b.rank);
  });
}

}  // namespace kvgate
