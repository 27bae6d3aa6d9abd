// The benchmark fleet (block size 16, 64 workers): 32 system prompts of 64 blocks, each
// cached on 16 workers, and 5,440 conversations of 256 blocks (a system prompt plus 192
// blocks of its own), each cached on a worker holding its system prompt and a quarter of
// them on a second worker too: 1.05 M distinct blocks, 1.43 M (block, worker) pairs.
// Engine hashes are a function of the content, equal across workers (as SGLang's).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/block_hash.h"

namespace kvgate::bench {

constexpr uint32_t kBs = 16;
constexpr uint32_t kWorkers = 64;
constexpr uint32_t kSystemPrompts = 32, kSystemBlocks = 64, kSystemHolders = 16;
constexpr uint32_t kConversations = 5440, kConversationBlocks = 256;

// The worker holding system prompt s in holder slot h.
inline uint32_t system_holder(uint32_t s, uint32_t h) { return (s * 7 + h * 4) % kWorkers; }
// Engine hash of system prompt s's last block (parent of a sequence under it).
inline int64_t system_tail(uint32_t s) { return (int64_t{s} << 20) + kSystemBlocks - 1; }

inline std::vector<uint32_t> random_tokens(std::mt19937& rng, size_t n) {
  std::vector<uint32_t> t(n);
  for (auto& x : t) x = rng() % 151000;
  return t;
}

struct Conversations {
  std::vector<std::vector<uint32_t>> prompts;  // 4,096 tokens each
  std::vector<std::vector<uint64_t>> seq;      // their 256 sequence hashes
};

// Builds the fleet by calling store(worker, parent or nullptr, page tokens, engine hash) once
// per page, as SGLang's one-page BlockStored events.
template <typename Store>
Conversations build_fleet(Store&& store) {
  std::mt19937 rng(42);
  auto pages = [&](uint32_t worker, const uint32_t* tokens, size_t first, size_t last, int64_t base,
                   const int64_t* first_parent) {
    for (size_t b = first; b < last; b++) {
      const int64_t engine = base + static_cast<int64_t>(b);
      const int64_t parent = engine - 1;
      store(worker, b == first ? first_parent : &parent, tokens + b * kBs, engine);
    }
  };
  std::vector<std::vector<uint32_t>> system;
  for (uint32_t s = 0; s < kSystemPrompts; s++) {
    system.push_back(random_tokens(rng, kSystemBlocks * kBs));
    for (uint32_t h = 0; h < kSystemHolders; h++) {
      pages(system_holder(s, h), system[s].data(), 0, kSystemBlocks, int64_t{s} << 20, nullptr);
    }
  }
  Conversations out;
  for (uint32_t c = 0; c < kConversations; c++) {
    const uint32_t s = rng() % kSystemPrompts;
    std::vector<uint32_t> p = system[s];
    const auto own = random_tokens(rng, (kConversationBlocks - kSystemBlocks) * kBs);
    p.insert(p.end(), own.begin(), own.end());
    const uint32_t worker = system_holder(s, rng() % kSystemHolders);
    const int64_t tail = system_tail(s);
    pages(worker, p.data(), kSystemBlocks, kConversationBlocks, (int64_t{1} << 40) + int64_t{c} * 1024, &tail);
    if (c % 4 == 0) {
      const uint32_t second = (worker + 1 + rng() % (kWorkers - 1)) % kWorkers;
      pages(second, p.data(), 0, kConversationBlocks, (int64_t{2} << 40) + int64_t{c} * 1024, nullptr);
    }
    std::vector<uint64_t> seq(kConversationBlocks);
    compute_block_hashes(p.data(), p.size(), kBs, seq.data());
    compute_sequence_hashes(seq.data(), seq.size(), seq.data());
    out.prompts.push_back(std::move(p));
    out.seq.push_back(std::move(seq));
  }
  return out;
}

}  // namespace kvgate::bench
