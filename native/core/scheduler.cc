#include "core/scheduler.h"

#include <algorithm>
#include <cmath>

namespace kvgate {

double load_blocks(const Candidate& c, uint32_t block_size) {
  return static_cast<double>(c.active_blocks) + static_cast<double>(c.prefill_tokens) / block_size;
}

namespace {

// Index of the k-th (0-based) i with keep(i).
template <typename Keep>
size_t nth(size_t n, size_t k, Keep keep) {
  for (size_t i = 0; i < n; i++) {
    if (keep(i) && k-- == 0) return i;
  }
  return n - 1;
}

}  // namespace

size_t select_kv(const double* logits, const uint64_t* tree_sizes, size_t n, double temperature, Rng& rng) {
  double lo = logits[0], hi = logits[0];
  for (size_t i = 1; i < n; i++) {
    lo = std::min(lo, logits[i]);
    hi = std::max(hi, logits[i]);
  }
  if (temperature > 0) {
    const double range = hi - lo;
    if (range == 0) return rng.below(static_cast<uint32_t>(n));
    // z_i = -(logit_i / range) / T, shifted by max z (the smallest logit) for exp.
    const double zmax = -(lo / range) / temperature;
    auto weight = [&](size_t i) { return std::exp(-(logits[i] / range) / temperature - zmax); };
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += weight(i);
    const double r = rng.uniform() * sum;
    double cum = 0;
    for (size_t i = 0; i < n; i++) {
      cum += weight(i);
      if (r < cum) return i;
    }
    return n - 1;
  }
  uint64_t best_tree = UINT64_MAX;
  size_t ties = 0;
  for (size_t i = 0; i < n; i++) {
    if (logits[i] != lo) continue;
    if (tree_sizes[i] < best_tree) {
      best_tree = tree_sizes[i];
      ties = 1;
    } else if (tree_sizes[i] == best_tree) {
      ties++;
    }
  }
  const size_t k = ties > 1 ? rng.below(static_cast<uint32_t>(ties)) : 0;
  return nth(n, k, [&](size_t i) { return logits[i] == lo && tree_sizes[i] == best_tree; });
}

size_t select_least_loaded(const double* loads, size_t n, Rng& rng) {
  double lo = loads[0];
  size_t ties = 1;
  for (size_t i = 1; i < n; i++) {
    if (loads[i] < lo) {
      lo = loads[i];
      ties = 1;
    } else if (loads[i] == lo) {
      ties++;
    }
  }
  const size_t k = ties > 1 ? rng.below(static_cast<uint32_t>(ties)) : 0;
  return nth(n, k, [&](size_t i) { return loads[i] == lo; });
}

size_t select_power_of_two(const double* loads, size_t n, Rng& rng) {
  if (n == 1) return 0;
  const size_t a = rng.below(static_cast<uint32_t>(n));
  size_t b = rng.below(static_cast<uint32_t>(n - 1));
  if (b >= a) b++;
  return loads[b] < loads[a] ? b : a;
}

}  // namespace kvgate
