// XXH3-64 internals, from the xxHash specification (doc/xxhash_spec.md, "XXH3 Algorithm
// Description"; section names below follow it). Inline so that block_hash.cc compiles them
// with its constant seed and without a call per block: the short and medium paths (inputs
// of up to 240 bytes) and the 16-byte hash of the sequence-hash chain. The long path (over
// 240 bytes) is out of line in xxh3.cc, where it runs on SIMD code the CPU supports.
// Portable: every multi-byte read is a memcpy little-endian load; the 128-bit products use
// unsigned __int128 where the compiler has it.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kvgate::xxh3 {

constexpr uint64_t kPrime32_1 = 0x9E3779B1U;
constexpr uint64_t kPrime32_2 = 0x85EBCA77U;
constexpr uint64_t kPrime32_3 = 0xC2B2AE3DU;
constexpr uint64_t kPrime64_1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime64_2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime64_3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime64_4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kPrime64_5 = 0x27D4EB2F165667C5ULL;
constexpr uint64_t kPrimeMx1 = 0x165667919E3779F9ULL;
constexpr uint64_t kPrimeMx2 = 0x9FB21C651E98DF25ULL;

constexpr size_t kSecretSize = 192;
constexpr size_t kMidSizeMax = 240;
using Secret = std::array<uint8_t, kSecretSize>;

// The specification's defaultSecret, 16 bytes a line.
// clang-format off
alignas(64) inline constexpr Secret kDefaultSecret = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};
// clang-format on

// The little-endian u64 at byte `off` of a secret, at compile time.
constexpr uint64_t secret64(const Secret& s, size_t off) {
  uint64_t v = 0;
  for (size_t i = 8; i-- > 0;) v = (v << 8) | s[off + i];
  return v;
}

// deriveSecret: the secret of a seeded long hash (the default one for seed 0).
constexpr Secret derive_secret(uint64_t seed) {
  Secret out{};
  for (size_t i = 0; i < kSecretSize / 8; i++) {
    const uint64_t w = secret64(kDefaultSecret, 8 * i) + (i % 2 == 0 ? seed : 0 - seed);
    for (size_t b = 0; b < 8; b++) out[8 * i + b] = static_cast<uint8_t>(w >> (8 * b));
  }
  return out;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
inline uint32_t to_le32(uint32_t v) { return __builtin_bswap32(v); }
inline uint64_t to_le64(uint64_t v) { return __builtin_bswap64(v); }
#else
inline uint32_t to_le32(uint32_t v) { return v; }
inline uint64_t to_le64(uint64_t v) { return v; }
#endif

inline uint32_t read32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return to_le32(v);
}

inline uint64_t read64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return to_le64(v);
}

inline uint32_t bswap32(uint32_t v) { return (v >> 24) | ((v >> 8) & 0xff00U) | ((v << 8) & 0xff0000U) | (v << 24); }

inline uint64_t bswap64(uint64_t v) {
  return (uint64_t{bswap32(static_cast<uint32_t>(v))} << 32) | bswap32(static_cast<uint32_t>(v >> 32));
}

inline uint64_t rotl64(uint64_t v, int s) { return (v << s) | (v >> (64 - s)); }

// lowerHalf(a * b) xor higherHalf(a * b) of the full 128-bit product.
inline uint64_t mul128_fold64(uint64_t a, uint64_t b) {
#if defined(__SIZEOF_INT128__)
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
#else
  // Schoolbook 64x64 -> 128 from four 32x32 products.
  const uint64_t lo_lo = (a & 0xffffffffU) * (b & 0xffffffffU);
  const uint64_t hi_lo = (a >> 32) * (b & 0xffffffffU);
  const uint64_t lo_hi = (a & 0xffffffffU) * (b >> 32);
  const uint64_t hi_hi = (a >> 32) * (b >> 32);
  const uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffU) + lo_hi;
  const uint64_t upper = (hi_lo >> 32) + (cross >> 32) + hi_hi;
  const uint64_t lower = (cross << 32) | (lo_lo & 0xffffffffU);
  return lower ^ upper;
#endif
}

inline uint64_t avalanche(uint64_t x) {
  x ^= x >> 37;
  x *= kPrimeMx1;
  return x ^ (x >> 32);
}

inline uint64_t avalanche_xxh64(uint64_t x) {
  x ^= x >> 33;
  x *= kPrime64_2;
  x ^= x >> 29;
  x *= kPrime64_3;
  return x ^ (x >> 32);
}

// --- Small inputs (0-16 bytes) ---

inline uint64_t hash_empty(uint64_t seed) {
  return avalanche_xxh64(seed ^ secret64(kDefaultSecret, 56) ^ secret64(kDefaultSecret, 64));
}

inline uint64_t hash_1to3(const uint8_t* in, size_t len, uint64_t seed) {
  const uint32_t combined = uint32_t{in[len - 1]} | (static_cast<uint32_t>(len) << 8) | (uint32_t{in[0]} << 16) |
                            (uint32_t{in[len >> 1]} << 24);
  constexpr uint64_t kFlip = secret64(kDefaultSecret, 0) ^ (secret64(kDefaultSecret, 0) >> 32);
  return avalanche_xxh64(((kFlip & 0xffffffffU) + seed) ^ combined);
}

inline uint64_t hash_4to8(const uint8_t* in, size_t len, uint64_t seed) {
  const uint64_t modified_seed = seed ^ (uint64_t{bswap32(static_cast<uint32_t>(seed))} << 32);
  const uint64_t first = read32(in);
  const uint64_t last = read32(in + len - 4);
  const uint64_t combined = last | (first << 32);
  constexpr uint64_t kFlip = secret64(kDefaultSecret, 8) ^ secret64(kDefaultSecret, 16);
  uint64_t v = (kFlip - modified_seed) ^ combined;
  v ^= rotl64(v, 49) ^ rotl64(v, 24);
  v *= kPrimeMx2;
  v ^= (v >> 35) + len;
  v *= kPrimeMx2;
  return v ^ (v >> 28);
}

// 9-16 bytes, given as the input's first and last 8 (overlapping below 16 bytes). With
// len 16 this is the chain step of the sequence hashes, words instead of bytes.
inline uint64_t hash_9to16(uint64_t first, uint64_t last, size_t len, uint64_t seed) {
  constexpr uint64_t kFlipLo = secret64(kDefaultSecret, 24) ^ secret64(kDefaultSecret, 32);
  constexpr uint64_t kFlipHi = secret64(kDefaultSecret, 40) ^ secret64(kDefaultSecret, 48);
  const uint64_t lo = (kFlipLo + seed) ^ first;
  const uint64_t hi = (kFlipHi - seed) ^ last;
  return avalanche(len + bswap64(lo) + hi + mul128_fold64(lo, hi));
}

// --- Medium inputs (17-240 bytes) ---

inline uint64_t mix_step(const uint8_t* data, const uint8_t* secret, uint64_t seed) {
  return mul128_fold64(read64(data) ^ (read64(secret) + seed), read64(data + 8) ^ (read64(secret + 8) - seed));
}

// The specification's rounds (from the innermost pair outwards, each mixing 16 bytes from
// the front and 16 from the back) written out: the secret offsets are constants, and with a
// constant seed so are the secret words plus the seed.
inline uint64_t hash_17to128(const uint8_t* in, size_t len, uint64_t seed) {
  const uint8_t* secret = kDefaultSecret.data();
  uint64_t acc = len * kPrime64_1;
  if (len > 32) {
    if (len > 64) {
      if (len > 96) {
        acc += mix_step(in + 48, secret + 96, seed);
        acc += mix_step(in + len - 64, secret + 112, seed);
      }
      acc += mix_step(in + 32, secret + 64, seed);
      acc += mix_step(in + len - 48, secret + 80, seed);
    }
    acc += mix_step(in + 16, secret + 32, seed);
    acc += mix_step(in + len - 32, secret + 48, seed);
  }
  acc += mix_step(in, secret, seed);
  acc += mix_step(in + len - 16, secret + 16, seed);
  return avalanche(acc);
}

inline uint64_t hash_129to240(const uint8_t* in, size_t len, uint64_t seed) {
  const uint8_t* secret = kDefaultSecret.data();
  uint64_t acc = len * kPrime64_1;
  for (size_t i = 0; i < 8; i++) acc += mix_step(in + i * 16, secret + i * 16, seed);
  acc = avalanche(acc);
  const size_t chunks = len >> 4;
  for (size_t i = 8; i < chunks; i++) acc += mix_step(in + i * 16, secret + (i - 8) * 16 + 3, seed);
  acc += mix_step(in + len - 16, secret + 119, seed);
  return avalanche(acc);
}

// --- Large inputs (> 240 bytes) ---

// The long path with `secret` (the seed's derived secret), on the fastest code this CPU
// runs (xxh3.cc).
uint64_t hash_long(const uint8_t* in, size_t len, const uint8_t* secret);

// XXH3-64 of `len` bytes at `in`; `long_secret` is derive_secret(seed) (read for inputs over
// 240 bytes only).
inline uint64_t hash(const uint8_t* in, size_t len, uint64_t seed, const uint8_t* long_secret) {
  if (len > 16) {
    if (len <= 128) return hash_17to128(in, len, seed);
    if (len <= kMidSizeMax) return hash_129to240(in, len, seed);
    return hash_long(in, len, long_secret);
  }
  if (len > 8) return hash_9to16(read64(in), read64(in + len - 8), len, seed);
  if (len >= 4) return hash_4to8(in, len, seed);
  if (len > 0) return hash_1to3(in, len, seed);
  return hash_empty(seed);
}

}  // namespace kvgate::xxh3
