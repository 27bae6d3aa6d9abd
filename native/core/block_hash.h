// Dynamo-compatible block hashing (shared/reference/dynamo.md §2.2).
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvgate {

constexpr uint64_t kBlockHashSeed = 1337;
constexpr uint32_t kMaxBlockSize = 1024;

// Local hash of each full block: XXH3-64(seed 1337) over the block's tokens as
// little-endian u32. Writes n / block_size hashes to `local_out` (the trailing
// partial block is not hashed) and returns that count. block_size in [1, 1024].
// A block_size outside that range hashes nothing and returns 0 (callers validate first).
size_t compute_block_hashes(const uint32_t* tokens, size_t n, uint32_t block_size, uint64_t* local_out);

// Chained sequence hashes: seq[0] = local[0];
// seq[i] = XXH3-64(le_u64(seq[i-1]) ++ le_u64(local[i]), 1337).
// seq_out may be the same array as local (computed in place); count 0 writes nothing.
void compute_sequence_hashes(const uint64_t* local, size_t count, uint64_t* seq_out);

// The sequence hashes of `count` full blocks of `tokens` (count * block_size tokens) in one
// pass, without storing the local hashes: what compute_block_hashes then
// compute_sequence_hashes give, faster (the chain is serial, each step waiting on the one
// before; interleaved with it, the independent block hashes run in its latency). With
// `parent` (the sequence hash of the block before tokens[0]) the chain continues from it:
// seq[0] = XXH3-64(le_u64(*parent) ++ le_u64(local[0]), 1337); without, seq[0] = local[0].
// A block_size outside [1, 1024] writes nothing.
void compute_prompt_hashes(const uint32_t* tokens, size_t count, uint32_t block_size, const uint64_t* parent,
                           uint64_t* seq_out);

}  // namespace kvgate
