// Test-only XXH3-64: a deliberately naive transcription of the specification's pseudo-code
// (byte-wise little-endian reads, 32-bit schoolbook 128-bit products, the seed-derived secret
// always built for long inputs, the secret length kept generic), sharing no code with
// native/core. The C++ tests and the xxh3 fuzz target compare every code path of
// kvgate::xxh3_64 with xxh3_ref::xxh3_64.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvgate::test::xxh3_ref {

inline constexpr uint8_t kSecret[192] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, 0xde, 0xd4,
    0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, 0xcb, 0x79, 0xe6, 0x4e,
    0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21, 0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43,
    0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, 0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb,
    0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, 0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19,
    0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8, 0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7,
    0xc7, 0x0b, 0x4f, 0x1d, 0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78,
    0x73, 0x64, 0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, 0x2b, 0x16,
    0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, 0x45, 0xcb, 0x3a, 0x8f,
    0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

inline constexpr uint64_t P32_1 = 0x9E3779B1U, P32_2 = 0x85EBCA77U, P32_3 = 0xC2B2AE3DU;
inline constexpr uint64_t P64_1 = 0x9E3779B185EBCA87ULL, P64_2 = 0xC2B2AE3D27D4EB4FULL, P64_3 = 0x165667B19E3779F9ULL;
inline constexpr uint64_t P64_4 = 0x85EBCA77C2B2AE63ULL, P64_5 = 0x27D4EB2F165667C5ULL;
inline constexpr uint64_t MX1 = 0x165667919E3779F9ULL, MX2 = 0x9FB21C651E98DF25ULL;

inline uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
inline uint64_t swap(uint64_t v, int n) {
  uint64_t r = 0;
  for (int i = 0; i < n; i++) r = (r << 8) | ((v >> (8 * i)) & 0xff);
  return r;
}
inline uint64_t rotl(uint64_t v, int s) { return (v << s) | (v >> (64 - s)); }

inline void mul128(uint64_t a, uint64_t b, uint64_t* lo, uint64_t* hi) {
  const uint64_t a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const uint64_t mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  *lo = (mid << 32) | (p00 & 0xffffffff);
  *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
inline uint64_t fold(uint64_t a, uint64_t b) {
  uint64_t lo, hi;
  mul128(a, b, &lo, &hi);
  return lo ^ hi;
}

inline uint64_t avalanche(uint64_t x) {
  x ^= x >> 37;
  x *= MX1;
  return x ^ (x >> 32);
}
inline uint64_t avalanche64(uint64_t x) {
  x ^= x >> 33;
  x *= P64_2;
  x ^= x >> 29;
  x *= P64_3;
  return x ^ (x >> 32);
}

inline uint64_t mix_step(const uint8_t* d, const uint8_t* s, uint64_t seed) {
  return fold(le(d, 8) ^ (le(s, 8) + seed), le(d + 8, 8) ^ (le(s + 8, 8) - seed));
}

inline uint64_t xxh3_64(const uint8_t* in, size_t len, uint64_t seed) {
  const uint8_t* s = kSecret;
  if (len == 0) return avalanche64(seed ^ le(s + 56, 8) ^ le(s + 64, 8));
  if (len <= 3) {
    const uint64_t combined = in[len - 1] | (len << 8) | (uint64_t{in[0]} << 16) | (uint64_t{in[len >> 1]} << 24);
    return avalanche64(((le(s, 4) ^ le(s + 4, 4)) + seed) ^ combined);
  }
  if (len <= 8) {
    const uint64_t modified = seed ^ (swap(seed & 0xffffffff, 4) << 32);
    const uint64_t combined = le(in + len - 4, 4) | (le(in, 4) << 32);
    uint64_t v = ((le(s + 8, 8) ^ le(s + 16, 8)) - modified) ^ combined;
    v = v ^ rotl(v, 49) ^ rotl(v, 24);
    v *= MX2;
    v ^= (v >> 35) + len;
    v *= MX2;
    return v ^ (v >> 28);
  }
  if (len <= 16) {
    const uint64_t lo = ((le(s + 24, 8) ^ le(s + 32, 8)) + seed) ^ le(in, 8);
    const uint64_t hi = ((le(s + 40, 8) ^ le(s + 48, 8)) - seed) ^ le(in + len - 8, 8);
    return avalanche(len + swap(lo, 8) + hi + fold(lo, hi));
  }
  if (len <= 128) {
    uint64_t acc = len * P64_1;
    const int64_t rounds = ((len - 1) >> 5) + 1;
    for (int64_t i = rounds - 1; i >= 0; i--) {
      acc += mix_step(in + i * 16, s + i * 32, seed);
      acc += mix_step(in + len - i * 16 - 16, s + i * 32 + 16, seed);
    }
    return avalanche(acc);
  }
  if (len <= 240) {
    uint64_t acc = len * P64_1;
    for (size_t i = 0; i < 8; i++) acc += mix_step(in + i * 16, s + i * 16, seed);
    acc = avalanche(acc);
    for (size_t i = 8; i < len / 16; i++) acc += mix_step(in + i * 16, s + (i - 8) * 16 + 3, seed);
    acc += mix_step(in + len - 16, s + 119, seed);
    return avalanche(acc);
  }
  // Long input: always through deriveSecret (seed 0 derives the default secret).
  const size_t secret_len = sizeof kSecret;
  uint8_t derived[sizeof kSecret];
  for (size_t i = 0; i < secret_len / 8; i++) {
    const uint64_t w = le(s + 8 * i, 8) + (i % 2 == 0 ? seed : 0 - seed);
    for (int b = 0; b < 8; b++) derived[8 * i + b] = static_cast<uint8_t>(w >> (8 * b));
  }
  uint64_t acc[8] = {P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1};
  auto accumulate = [&](const uint8_t* stripe, size_t off) {
    for (int i = 0; i < 8; i++) {
      const uint64_t v = le(stripe + 8 * i, 8) ^ le(derived + off + 8 * i, 8);
      acc[i ^ 1] += le(stripe + 8 * i, 8);
      acc[i] += (v & 0xffffffff) * (v >> 32);
    }
  };
  const size_t stripes_per_block = (secret_len - 64) / 8;
  const size_t block = 64 * stripes_per_block;
  size_t pos = 0;
  while (len - pos > block) {
    for (size_t n = 0; n < stripes_per_block; n++) accumulate(in + pos + n * 64, n * 8);
    for (int i = 0; i < 8; i++) {
      acc[i] ^= acc[i] >> 47;
      acc[i] ^= le(derived + secret_len - 64 + 8 * i, 8);
      acc[i] *= P32_1;
    }
    pos += block;
  }
  const size_t full = (len - pos - 1) / 64;
  for (size_t n = 0; n < full; n++) accumulate(in + pos + n * 64, n * 8);
  accumulate(in + len - 64, secret_len - 71);
  uint64_t result = len * P64_1;
  for (int i = 0; i < 4; i++) {
    result += fold(acc[2 * i] ^ le(derived + 11 + 16 * i, 8), acc[2 * i + 1] ^ le(derived + 11 + 16 * i + 8, 8));
  }
  return avalanche(result);
}

}  // namespace kvgate::test::xxh3_ref
