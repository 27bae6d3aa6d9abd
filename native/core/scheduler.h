// Worker selection: Dynamo's 2026-04 KV cost (dynamo.md §2.8.1) and the plain load
// balancing policies, over candidates described by plain numbers. No state here but the
// random generator, so the TypeScript reference (src/router/reference) can reproduce every
// decision bit for bit from the same seed.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace kvgate {

// SplitMix64: small, seedable, and cheap to reproduce in TypeScript with BigInt.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  void seed(uint64_t s) { state_ = s; }
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n), n > 0 (modulo bias below 2^-32 for any n < 2^32).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }

 private:
  uint64_t state_;
};

enum class Policy : uint8_t { kKv, kRoundRobin, kRandom, kPowerOfTwo, kLeastLoaded };

// What the scheduler knows about one candidate unit for one request.
struct Candidate {
  uint32_t overlap = 0;          // leading request blocks cached on the unit (KV index)
  uint32_t active_overlap = 0;   // leading request blocks already active on the unit
  uint64_t active_blocks = 0;    // the unit's active blocks (ActiveSequences)
  uint64_t prefill_tokens = 0;   // the unit's prompt tokens still to prefill
  uint64_t tree_size = 0;        // blocks the unit holds in the index
  uint32_t pending_overlap = 0;  // leading request blocks pending on the unit (routed there, not yet stored)
};

// Dynamo 2026-04 cost, lower is better:
//   prefill_blocks = (prefill_tokens + max(0, isl - overlap*bs)) / bs
//   decode_blocks  = active_blocks + ceil(isl/bs) - active_overlap
//   logit          = overlap_weight * prefill_blocks + decode_blocks
// With pending prefixes (pending_weight > 0), the blocks pending on the unit beyond its
// cached overlap, extra = max(0, pending_overlap - overlap), will be computed there once by
// the request that made them pending: that much of the unit's prefill load is left out
// (shared = min(prefill_tokens, extra*bs)), and each such block lowers the cost by
// pending_weight:
//   prefill_blocks = (prefill_tokens - shared + max(0, isl - overlap*bs)) / bs
//   logit          = overlap_weight * prefill_blocks + decode_blocks - pending_weight * extra
// With an own weight (own_weight > 0), the prompt's own part left to compute on the unit
// (neither cached nor pending there) is weighed once more, apart from the backlog it waits
// behind: it is prefill the fleet spends on this request, where a backlog only delays it.
//   own_tokens     = max(0, max(0, isl - overlap*bs) - shared)
//   logit         += own_weight * own_tokens / bs
// Without it a cached unit with a queued prompt and an idle unit cost about the same, and a
// prompt recomputes its prefix elsewhere (bench/README.md, prefill-heavy traffic).
// pending_weight 0 and own_weight 0 is Dynamo's cost exactly.
// (Inline: the router's scoring loops call it once per matched unit.)
inline double kv_logit(const Candidate& c, uint32_t isl, uint32_t block_size, double overlap_weight,
                       double pending_weight = 0, double own_weight = 0) {
  const uint64_t cached = uint64_t{c.overlap} * block_size;
  const uint64_t new_prefill = isl > cached ? isl - cached : 0;
  const uint32_t extra = pending_weight > 0 && c.pending_overlap > c.overlap ? c.pending_overlap - c.overlap : 0;
  const uint64_t shared = std::min<uint64_t>(c.prefill_tokens, uint64_t{extra} * block_size);
  const double prefill_blocks = static_cast<double>(c.prefill_tokens - shared + new_prefill) / block_size;
  const uint64_t request_blocks = (uint64_t{isl} + block_size - 1) / block_size;
  const uint64_t new_blocks = request_blocks > c.active_overlap ? request_blocks - c.active_overlap : 0;
  const double decode_blocks = static_cast<double>(c.active_blocks + new_blocks);
  const uint64_t own_tokens = new_prefill > shared ? new_prefill - shared : 0;
  const double own_blocks = static_cast<double>(own_tokens) / block_size;
  return overlap_weight * prefill_blocks + decode_blocks - pending_weight * extra + own_weight * own_blocks;
}

// The own weight a route passes to kv_logit. With a queue weight (own_queue_weight > 0) it
// grows with the fleet's prefill queue: the prefill a request adds to a unit delays every
// prompt that queues behind it there, and the longer the fleet's queues, the more prompts
// that is (a unit keeps its queue while the fleet is saturated, wherever later prompts go):
//   own = own_weight * (1 + own_queue_weight * prefilling / units)
// prefilling: the fleet's requests before their first token; units: its candidate units.
// An idle fleet weighs the own term as before; a saturated one keeps a prompt with its
// cached prefix behind a queue rather than recompute the prefix elsewhere (bench/README.md,
// Mooncake with plentiful KV).
inline double own_weight_at(double own_weight, double own_queue_weight, size_t prefilling, size_t units) {
  if (own_queue_weight <= 0 || units == 0) return own_weight;
  return own_weight * (1 + own_queue_weight * static_cast<double>(prefilling) / static_cast<double>(units));
}

// A unit's current load in blocks, for the load-balancing policies:
// active_blocks + prefill_tokens / bs.
double load_blocks(const Candidate& c, uint32_t block_size);

// Temperature 0: the minimum logit; ties go to the smallest tree size, then uniformly at
// random (one draw, only if a tie remains). Temperature > 0: a sample of
// softmax(-(logit / (max - min)) / T) (one draw; uniform if max == min). n > 0.
size_t select_kv(const double* logits, const uint64_t* tree_sizes, size_t n, double temperature, Rng& rng);
// The least loaded; ties uniformly at random (one draw, only if tied). n > 0.
size_t select_least_loaded(const double* loads, size_t n, Rng& rng);
// Two distinct candidates drawn at random (two draws; one candidate needs none), the less
// loaded of the two, the first drawn on a tie. n > 0.
size_t select_power_of_two(const double* loads, size_t n, Rng& rng);

}  // namespace kvgate
