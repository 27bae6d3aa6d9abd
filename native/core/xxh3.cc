// XXH3-64: the public entry points and the long path (inputs over 240 bytes). The short and
// medium paths are inline in xxh3_inline.h. The long path's stripe loop is written once
// (accumulate_long) over "lanes": the eight 64-bit accumulators as scalars (portable, the
// reference for the others), as two AVX2 registers or as one AVX-512 register, picked at run
// time from what the CPU supports. The SIMD code is compiled for its target by function
// attributes, so the build needs no -m flags and runs on any x86-64.
#include "core/xxh3.h"

#include "core/xxh3_inline.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KVGATE_XXH3_X86 1
#include <immintrin.h>
#define KVGATE_TARGET_AVX2 __attribute__((target("avx2")))
#define KVGATE_TARGET_AVX512 __attribute__((target("avx512f")))
#else
#define KVGATE_XXH3_X86 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define KVGATE_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define KVGATE_ALWAYS_INLINE inline
#endif

namespace kvgate {
namespace xxh3 {
namespace {

constexpr size_t kStripeLen = 64;
constexpr size_t kStripesPerBlock = (kSecretSize - kStripeLen) / 8;  // 16
constexpr size_t kBlockLen = kStripeLen * kStripesPerBlock;          // 1024
constexpr size_t kScrambleOffset = kSecretSize - kStripeLen;         // the scramble's secret
constexpr size_t kLastStripeOffset = kSecretSize - kStripeLen - 7;   // the last stripe's secret

alignas(64) constexpr uint64_t kInitAcc[8] = {kPrime32_3, kPrime64_1, kPrime64_2, kPrime64_3,
                                              kPrime64_4, kPrime32_2, kPrime64_5, kPrime32_1};

// Each lanes type holds the eight accumulators and runs the specification's accumulate_512
// (one 64-byte stripe) and scrambleAcc on them.
struct ScalarLanes {
  struct Acc {
    uint64_t v[8];
  };
  static void load(Acc& acc, const uint64_t* from) {
    for (int i = 0; i < 8; i++) acc.v[i] = from[i];
  }
  static void store(const Acc& acc, uint64_t* to) {
    for (int i = 0; i < 8; i++) to[i] = acc.v[i];
  }
  static void accumulate(Acc& acc, const uint8_t* stripe, const uint8_t* secret) {
    for (int i = 0; i < 8; i++) {
      const uint64_t data = read64(stripe + 8 * i);
      const uint64_t key = data ^ read64(secret + 8 * i);
      acc.v[i ^ 1] += data;
      acc.v[i] += (key & 0xffffffffU) * (key >> 32);
    }
  }
  static void scramble(Acc& acc, const uint8_t* secret) {
    for (int i = 0; i < 8; i++) {
      uint64_t a = acc.v[i];
      a ^= a >> 47;
      a ^= read64(secret + 8 * i);
      acc.v[i] = a * kPrime32_1;
    }
  }
};

#if KVGATE_XXH3_X86
// Lanes 0-3 and 4-7 in two registers. In each, data of lane i ^ 1 is the other 64-bit half of
// the same 128-bit lane (shuffle 1,0,3,2 of the 32-bit words); lo32 * hi32 of the key is
// vpmuludq of the key and the key shifted down by 32. Multiplying by PRIME32_1 (mod 2^64)
// is lo32 * P + (hi32 * P << 32).
struct Avx2Lanes {
  struct Acc {
    __m256i v[2];
  };
  KVGATE_TARGET_AVX2 static void load(Acc& acc, const uint64_t* from) {
    for (int h = 0; h < 2; h++) acc.v[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(from + 4 * h));
  }
  KVGATE_TARGET_AVX2 static void store(const Acc& acc, uint64_t* to) {
    for (int h = 0; h < 2; h++) _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + 4 * h), acc.v[h]);
  }
  KVGATE_TARGET_AVX2 static void accumulate(Acc& acc, const uint8_t* stripe, const uint8_t* secret) {
    for (int h = 0; h < 2; h++) {
      const __m256i data = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(stripe + 32 * h));
      const __m256i key = _mm256_xor_si256(data, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(secret + 32 * h)));
      const __m256i product = _mm256_mul_epu32(key, _mm256_srli_epi64(key, 32));
      const __m256i swapped = _mm256_shuffle_epi32(data, _MM_SHUFFLE(1, 0, 3, 2));
      acc.v[h] = _mm256_add_epi64(acc.v[h], _mm256_add_epi64(product, swapped));
    }
  }
  KVGATE_TARGET_AVX2 static void scramble(Acc& acc, const uint8_t* secret) {
    const __m256i prime = _mm256_set1_epi64x(static_cast<int64_t>(kPrime32_1));
    for (int h = 0; h < 2; h++) {
      __m256i a = _mm256_xor_si256(acc.v[h], _mm256_srli_epi64(acc.v[h], 47));
      a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(secret + 32 * h)));
      const __m256i lo = _mm256_mul_epu32(a, prime);
      const __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), prime);
      acc.v[h] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
    }
  }
};

// The same in one 512-bit register (AVX-512 F only).
// (GCC 12.2's AVX-512 intrinsics read a deliberately uninitialized "undefined" vector and warn
// about it, GCC bug 105593: silenced for this code.)
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
struct Avx512Lanes {
  struct Acc {
    __m512i v;
  };
  KVGATE_TARGET_AVX512 static void load(Acc& acc, const uint64_t* from) { acc.v = _mm512_loadu_si512(from); }
  KVGATE_TARGET_AVX512 static void store(const Acc& acc, uint64_t* to) { _mm512_storeu_si512(to, acc.v); }
  KVGATE_TARGET_AVX512 static void accumulate(Acc& acc, const uint8_t* stripe, const uint8_t* secret) {
    const __m512i data = _mm512_loadu_si512(stripe);
    const __m512i key = _mm512_xor_si512(data, _mm512_loadu_si512(secret));
    const __m512i product = _mm512_mul_epu32(key, _mm512_srli_epi64(key, 32));
    const __m512i swapped = _mm512_shuffle_epi32(data, static_cast<_MM_PERM_ENUM>(_MM_SHUFFLE(1, 0, 3, 2)));
    acc.v = _mm512_add_epi64(acc.v, _mm512_add_epi64(product, swapped));
  }
  KVGATE_TARGET_AVX512 static void scramble(Acc& acc, const uint8_t* secret) {
    const __m512i prime = _mm512_set1_epi64(static_cast<int64_t>(kPrime32_1));
    // a ^ (a >> 47) ^ secret in one ternary-logic instruction (0x96: three-way xor).
    const __m512i a = _mm512_ternarylogic_epi64(acc.v, _mm512_srli_epi64(acc.v, 47), _mm512_loadu_si512(secret), 0x96);
    const __m512i lo = _mm512_mul_epu32(a, prime);
    const __m512i hi = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), prime);
    acc.v = _mm512_add_epi64(lo, _mm512_slli_epi64(hi, 32));
  }
};
#endif

// hashLong's loop: the full 1,024-byte blocks (16 stripes, then a scramble) except the last
// (possibly full) one; its full stripes except the last; then the input's last 64 bytes.
// Leaves the accumulators in `out`. Always inlined, so that each caller below compiles it
// for its own target.
template <class Lanes>
KVGATE_ALWAYS_INLINE void accumulate_long(uint64_t out[8], const uint8_t* in, size_t len, const uint8_t* secret) {
  typename Lanes::Acc acc;
  Lanes::load(acc, kInitAcc);
  const size_t blocks = (len - 1) / kBlockLen;
  for (size_t b = 0; b < blocks; b++) {
    const uint8_t* block = in + b * kBlockLen;
    // (Fully unrolled, GCC keeps the 16 stripes' secrets in registers across blocks and spills
    // them: AVX-512 took 25 % longer on 2 KiB inputs.)
#pragma GCC unroll 4
    for (size_t s = 0; s < kStripesPerBlock; s++) Lanes::accumulate(acc, block + s * kStripeLen, secret + s * 8);
    Lanes::scramble(acc, secret + kScrambleOffset);
  }
  const uint8_t* last_block = in + blocks * kBlockLen;
  const size_t stripes = (len - blocks * kBlockLen - 1) / kStripeLen;
  for (size_t s = 0; s < stripes; s++) Lanes::accumulate(acc, last_block + s * kStripeLen, secret + s * 8);
  Lanes::accumulate(acc, in + len - kStripeLen, secret + kLastStripeOffset);
  Lanes::store(acc, out);
}

using AccumulateFn = void (*)(uint64_t out[8], const uint8_t* in, size_t len, const uint8_t* secret);

void accumulate_scalar(uint64_t out[8], const uint8_t* in, size_t len, const uint8_t* secret) {
  accumulate_long<ScalarLanes>(out, in, len, secret);
}

#if KVGATE_XXH3_X86
KVGATE_TARGET_AVX2 void accumulate_avx2(uint64_t out[8], const uint8_t* in, size_t len, const uint8_t* secret) {
  accumulate_long<Avx2Lanes>(out, in, len, secret);
}

KVGATE_TARGET_AVX512 void accumulate_avx512(uint64_t out[8], const uint8_t* in, size_t len, const uint8_t* secret) {
  accumulate_long<Avx512Lanes>(out, in, len, secret);
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

bool supported(Xxh3Path path) {
  switch (path) {
    case Xxh3Path::kScalar: return true;
#if KVGATE_XXH3_X86
    // (libgcc / compiler-rt check that the OS saves the wider registers, too.)
    case Xxh3Path::kAvx2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2");
    case Xxh3Path::kAvx512: __builtin_cpu_init(); return __builtin_cpu_supports("avx512f");
#endif
    default: return false;
  }
}

Xxh3Path best_path() {
  if (supported(Xxh3Path::kAvx512)) return Xxh3Path::kAvx512;
  if (supported(Xxh3Path::kAvx2)) return Xxh3Path::kAvx2;
  return Xxh3Path::kScalar;
}

AccumulateFn accumulate_on(Xxh3Path path) {
  if (!supported(path)) return accumulate_scalar;
  switch (path) {
#if KVGATE_XXH3_X86
    case Xxh3Path::kAvx2: return accumulate_avx2;
    case Xxh3Path::kAvx512: return accumulate_avx512;
#endif
    default: return accumulate_scalar;
  }
}

// finalMerge(len * PRIME64_1, secret + 11) and the avalanche.
uint64_t merge(const uint64_t acc[8], size_t len, const uint8_t* secret) {
  uint64_t result = len * kPrime64_1;
  for (int i = 0; i < 4; i++) {
    result +=
        mul128_fold64(acc[2 * i] ^ read64(secret + 11 + 16 * i), acc[2 * i + 1] ^ read64(secret + 11 + 16 * i + 8));
  }
  return avalanche(result);
}

uint64_t hash_long_on(AccumulateFn accumulate, const uint8_t* in, size_t len, const uint8_t* secret) {
  alignas(64) uint64_t acc[8];
  accumulate(acc, in, len, secret);
  return merge(acc, len, secret);
}

// The secret of a seeded long hash, derived at run time: words, not derive_secret's bytes.
void derive_secret_words(uint64_t seed, uint8_t* out) {
  for (size_t i = 0; i < kSecretSize; i += 16) {
    const uint64_t lo = to_le64(read64(kDefaultSecret.data() + i) + seed);
    const uint64_t hi = to_le64(read64(kDefaultSecret.data() + i + 8) - seed);
    std::memcpy(out + i, &lo, 8);
    std::memcpy(out + i + 8, &hi, 8);
  }
}

uint64_t hash_on(AccumulateFn accumulate, const void* data, size_t len, uint64_t seed) {
  const uint8_t* in = static_cast<const uint8_t*>(data);
  if (len <= kMidSizeMax) return hash(in, len, seed, nullptr);
  if (seed == 0) return hash_long_on(accumulate, in, len, kDefaultSecret.data());
  alignas(64) uint8_t secret[kSecretSize];
  derive_secret_words(seed, secret);
  return hash_long_on(accumulate, in, len, secret);
}

// Chosen once, at the first long hash.
AccumulateFn best_accumulate() {
  static const AccumulateFn best = accumulate_on(best_path());
  return best;
}

}  // namespace

uint64_t hash_long(const uint8_t* in, size_t len, const uint8_t* secret) {
  return hash_long_on(best_accumulate(), in, len, secret);
}

}  // namespace xxh3

uint64_t xxh3_64(const void* data, size_t len, uint64_t seed) {
  return xxh3::hash_on(xxh3::best_accumulate(), data, len, seed);
}

bool xxh3_path_supported(Xxh3Path path) { return xxh3::supported(path); }

Xxh3Path xxh3_best_path() { return xxh3::best_path(); }

uint64_t xxh3_64_on(Xxh3Path path, const void* data, size_t len, uint64_t seed) {
  return xxh3::hash_on(xxh3::accumulate_on(path), data, len, seed);
}

}  // namespace kvgate
