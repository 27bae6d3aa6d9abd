#include "core/block_hash.h"

#include "core/xxh3_inline.h"

namespace kvgate {

namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr bool kLittleEndian = false;
#else
constexpr bool kLittleEndian = true;
#endif

// The seed's derived secret for blocks over 240 bytes (60 tokens), made at compile time.
constexpr xxh3::Secret kBlockSecret = xxh3::derive_secret(kBlockHashSeed);

// The bytes hashed for a block: its tokens as little-endian u32. On a little-endian machine
// the u32 array already is that byte string; else it is written to `buf`.
inline const uint8_t* le_bytes(const uint32_t* block, uint32_t block_size, uint8_t* buf) {
  if (kLittleEndian) return reinterpret_cast<const uint8_t*>(block);
  for (uint32_t t = 0; t < block_size; t++) {
    for (int b = 0; b < 4; b++) buf[4 * t + b] = static_cast<uint8_t>(block[t] >> (8 * b));
  }
  return buf;
}

// Calls body(local_of), where local_of(i) is the local hash of block i of `tokens`: XXH3-64
// with the constant seed, inlined, its length class (the same for every block) picked once
// here, outside the caller's loop.
template <class Body>
inline void with_local_hash(const uint32_t* tokens, uint32_t block_size, Body body) {
  const size_t len = size_t{block_size} * sizeof(uint32_t);
  uint8_t buf[kLittleEndian ? 1 : kMaxBlockSize * sizeof(uint32_t)];
  auto of = [&](auto hash) {
    body([&](size_t i) { return hash(le_bytes(tokens + i * block_size, block_size, buf)); });
  };
  if (len > xxh3::kMidSizeMax) {
    of([len](const uint8_t* in) { return xxh3::hash_long(in, len, kBlockSecret.data()); });
  } else if (len > 128) {
    of([len](const uint8_t* in) { return xxh3::hash_129to240(in, len, kBlockHashSeed); });
  } else if (len > 16) {
    of([len](const uint8_t* in) { return xxh3::hash_17to128(in, len, kBlockHashSeed); });
  } else {
    of([len](const uint8_t* in) { return xxh3::hash(in, len, kBlockHashSeed, kBlockSecret.data()); });
  }
}

// One chain step: XXH3-64 of le_u64(prev) ++ le_u64(local), the 16-byte path on the two
// words (read as little-endian u64, the 16 bytes are these words: no bytes in between).
inline uint64_t chain(uint64_t prev, uint64_t local) { return xxh3::hash_9to16(prev, local, 16, kBlockHashSeed); }

}  // namespace

size_t compute_block_hashes(const uint32_t* tokens, size_t n, uint32_t block_size, uint64_t* local_out) {
  if (block_size == 0 || block_size > kMaxBlockSize) return 0;
  const size_t count = n / block_size;
  with_local_hash(tokens, block_size, [&](auto local_of) {
    for (size_t i = 0; i < count; i++) local_out[i] = local_of(i);
  });
  return count;
}

void compute_sequence_hashes(const uint64_t* local, size_t count, uint64_t* seq_out) {
  if (count == 0) return;
  // Read local[i] before writing seq_out[i], so seq_out may alias local (in place).
  uint64_t prev = local[0];
  seq_out[0] = prev;
  for (size_t i = 1; i < count; i++) {
    prev = chain(prev, local[i]);
    seq_out[i] = prev;
  }
}

void compute_prompt_hashes(const uint32_t* tokens, size_t count, uint32_t block_size, const uint64_t* parent,
                           uint64_t* seq_out) {
  if (block_size == 0 || block_size > kMaxBlockSize || count == 0) return;
  with_local_hash(tokens, block_size, [&](auto local_of) {
    uint64_t local = local_of(0);
    uint64_t prev = parent ? chain(*parent, local) : local;
    seq_out[0] = prev;
    for (size_t i = 1; i < count; i++) {
      local = local_of(i);
      prev = chain(prev, local);
      seq_out[i] = prev;
    }
  });
}

}  // namespace kvgate
