#include "core/block_hash.h"

#include <cstring>

#include "core/xxh3.h"

namespace kvgate {

namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr bool kLittleEndian = false;
#else
constexpr bool kLittleEndian = true;
#endif

// One 8-byte store (not eight byte stores), so the hash's 8-byte loads of the same bytes
// are store-forwarded instead of stalling.
inline void put_le64(uint8_t* p, uint64_t v) {
  if (!kLittleEndian) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof v);
}

}  // namespace

size_t compute_block_hashes(const uint32_t* tokens, size_t n, uint32_t block_size, uint64_t* local_out) {
  if (block_size == 0 || block_size > kMaxBlockSize) return 0;
  const size_t count = n / block_size;
  const size_t block_bytes = size_t{block_size} * sizeof(uint32_t);
  for (size_t i = 0; i < count; i++) {
    const uint32_t* block = tokens + i * block_size;
    if (kLittleEndian) {
      // The u32 array already is the little-endian byte string that is hashed.
      local_out[i] = xxh3_64(block, block_bytes, kBlockHashSeed);
    } else {
      uint8_t le[kMaxBlockSize * sizeof(uint32_t)];
      for (uint32_t t = 0; t < block_size; t++) {
        for (int b = 0; b < 4; b++) le[4 * t + b] = static_cast<uint8_t>(block[t] >> (8 * b));
      }
      local_out[i] = xxh3_64(le, block_bytes, kBlockHashSeed);
    }
  }
  return count;
}

void compute_sequence_hashes(const uint64_t* local, size_t count, uint64_t* seq_out) {
  if (count == 0) return;
  // Read local[i] before writing seq_out[i], so seq_out may alias local (in place).
  uint64_t prev = local[0];
  seq_out[0] = prev;
  uint8_t pair[16];
  for (size_t i = 1; i < count; i++) {
    put_le64(pair, prev);
    put_le64(pair + 8, local[i]);
    prev = xxh3_64(pair, sizeof pair, kBlockHashSeed);
    seq_out[i] = prev;
  }
}

}  // namespace kvgate
