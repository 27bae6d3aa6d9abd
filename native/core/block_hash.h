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

}  // namespace kvgate
