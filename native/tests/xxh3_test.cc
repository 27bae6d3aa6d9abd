// XXH3-64 known answers, on every code path of the long inputs (scalar, AVX2, AVX-512: those
// this CPU runs). The expected values were computed with the reference package
// @node-rs/xxhash (xxh3.xxh64(buf, seed)) over the input pattern `pattern_byte` below;
// test/native/xxh3.test.ts checks every path against it on random inputs, and the tests below
// against the naive transcription of the specification in tests/xxh3_reference.h.
#include "core/xxh3.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/xxh3_reference.h"

namespace {

uint8_t pattern_byte(uint32_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 24); }

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = pattern_byte(static_cast<uint32_t>(i));
  return v;
}

constexpr uint64_t kSeeds[4] = {0, 1337, 0xffffffffffffffffULL, 0x0123456789abcdefULL};

struct Known {
  size_t len;
  uint64_t hash[4];  // one per kSeeds entry
};

// Every length class (0, 1-3, 4-8, 9-16, 17-128, 129-240, >240) and its boundaries,
// plus block (1024 bytes) and last-stripe boundaries of the long path.
const Known kKnown[] = {
    {0, {0x2d06800538d394c2ULL, 0xd1f3e77444430ab9ULL, 0x4c093276ae47a555ULL, 0xcc1ca35a1b089c5cULL}},
    {1, {0xc44bdff4074eecdbULL, 0xb4b0bf3d83911694ULL, 0x77b2df5ff42aab88ULL, 0xd5dd68911c7f195dULL}},
    {2, {0xb0a5d4f167a89d5eULL, 0xf19e511183c4b3bcULL, 0x8f2a72f737f2d730ULL, 0xd829dedc2a7c3cf7ULL}},
    {3, {0xe14090f554a5ea90ULL, 0xffdc2d338cf45aaaULL, 0x1c5080e2634dbabbULL, 0x5e25aa47407a4c1cULL}},
    {4, {0x2e8d078a566e9749ULL, 0xe63f5e5eeedab2d8ULL, 0xf2ebd9471e6ff42dULL, 0x91be03078e133cd3ULL}},
    {5, {0x94b7bed600f8ce63ULL, 0x4b5d7d14dc6390eeULL, 0x0dca06eb477232a2ULL, 0xbadd96cdb48f48aeULL}},
    {8, {0xcd1c7f88482fcaefULL, 0x94c0fdc3b00266baULL, 0xf629287daf174eb8ULL, 0x90553f6afd4edd0aULL}},
    {9, {0xbfe43def699fa9e3ULL, 0xd7f1ab27d540ff57ULL, 0x0f91034a34c6a527ULL, 0x53f7ac9a9c05a999ULL}},
    {15, {0x9c71639666dfdbc2ULL, 0x5cf822893fde6159ULL, 0xce035275f1c6840bULL, 0xdd15731e8db8892aULL}},
    {16, {0x81e9eb8634460bb9ULL, 0x65f368788090364cULL, 0x5cd205481cb1681dULL, 0x55ac4d93458db93eULL}},
    {17, {0x9998430fd0a655beULL, 0x815ae58844b0cc60ULL, 0x8bfb82cd37dc2a41ULL, 0x5a8c9fe4c4b48c0cULL}},
    {32, {0x938c25dd24c9cf3bULL, 0xddd2c381cf1d1127ULL, 0x18858a91490202eaULL, 0xdc48adf4d61bc322ULL}},
    {33, {0x0e399d30188e9c8eULL, 0x9569904d878260f4ULL, 0xa6f53a436d3b923cULL, 0x5625e653055c8ebbULL}},
    {64, {0x22a06b30c4c72936ULL, 0xcc827929afa41a9aULL, 0x2ff958dcbb0feaf1ULL, 0x5cac98add7e25a99ULL}},
    {96, {0x324046d7ff9771f1ULL, 0xaa17d14d35ba5666ULL, 0xb81955e6525ef0cdULL, 0xc719d1250b62a5b3ULL}},
    {127, {0x29a5be88e84cd571ULL, 0xd8d97e514e98bde9ULL, 0x441bd0413cb35f5bULL, 0x8010c92d074e5240ULL}},
    {128, {0x75eca5c5d5594884ULL, 0x41e130419543922fULL, 0x563948cefdffa28fULL, 0xf7c84632fdd788baULL}},
    {129, {0xa05da42e7a4e4667ULL, 0xef781a5420a5a781ULL, 0xae581f56c5402c2dULL, 0xad186b64409ae897ULL}},
    {143, {0x516036caa68597ecULL, 0x3857778562ae6800ULL, 0x92624d5629f32a2eULL, 0x74bf298b6909cd2fULL}},
    {160, {0xd298ab4e6e7de4aaULL, 0xa29e58af77a2e5e4ULL, 0x47fa1ed578fc418fULL, 0x6fa9a1cf94497897ULL}},
    {239, {0xa44c92feed3d48faULL, 0x3ddb430a9657885fULL, 0x7155517e7202bdc5ULL, 0x3e0724c5250cb686ULL}},
    {240, {0x5eb2467c8c9e3969ULL, 0x0b3a6c0f696ad441ULL, 0x4732afb089c13a18ULL, 0x71416ad82f662391ULL}},
    {241, {0x2d431e984c441f15ULL, 0x75f32f280ea9b351ULL, 0x334dc83399b6e684ULL, 0xf38152bfb1ca9ce3ULL}},
    {255, {0x6cb5279bb1267b3bULL, 0x191d899ce0d59579ULL, 0x9e73e9b79d8fba36ULL, 0x45582009d02e5b7cULL}},
    {256, {0x1369aaf85f8b805aULL, 0x8a6bddee19b2dadbULL, 0x9e25c4eafb9d3c67ULL, 0x267f04843a74ba53ULL}},
    {511, {0xe77c8b51c884d077ULL, 0x0d5369ea9d46c26eULL, 0xbfeedb344d0ab426ULL, 0xf3dc8299c2767611ULL}},
    {960, {0xbe98c8e56c62c333ULL, 0x90ce916159ef948bULL, 0x626dc6004eb863f6ULL, 0x90c7dbd860edee5fULL}},
    {1023, {0x4e30bb611faa8f67ULL, 0x29613c818017244cULL, 0xb4d9ec7d8eb84efaULL, 0x125547495c153255ULL}},
    {1024, {0xe99def1145f12936ULL, 0x3e525cd83f2ce8d9ULL, 0xa558d5638410527fULL, 0xc5bf3e4cdf33e166ULL}},
    {1025, {0x83cba9b371e4e7f4ULL, 0x44be84f47154e642ULL, 0x298861660a4134e8ULL, 0x83839b5d51cf9363ULL}},
    {1088, {0x8e7e69b3a7124813ULL, 0x6ed2f28e54d63b9bULL, 0xf0a89177d3470801ULL, 0xeba6a2662234ca03ULL}},
    {2048, {0x53275d58cfba68fdULL, 0x20909c29a106a1d8ULL, 0xba0ea723ed37389bULL, 0x63564adafe59c934ULL}},
    {2049, {0x3cd32460d504d215ULL, 0x8622f14cfae5cb45ULL, 0xed572a7489e47a2eULL, 0x61e799bfff49f747ULL}},
    {4097, {0x3dfd517338a4b234ULL, 0x78bc7c91b08f6f10ULL, 0x12de776193465eb0ULL, 0x73691826e0a85359ULL}},
    {16384, {0x945601853bd214f5ULL, 0x6e8c34da8ee2618aULL, 0xc929a15e7bd212afULL, 0xf5a2ecc44b94a1bdULL}},
    {65536, {0x20605b76ceddc43bULL, 0x87da8ce195a921f0ULL, 0x860cf73e5e20f189ULL, 0x90862820c71190bcULL}},
};

constexpr kvgate::Xxh3Path kPaths[] = {kvgate::Xxh3Path::kScalar, kvgate::Xxh3Path::kAvx2, kvgate::Xxh3Path::kAvx512};

std::string name(kvgate::Xxh3Path path) {
  switch (path) {
    case kvgate::Xxh3Path::kScalar: return "scalar";
    case kvgate::Xxh3Path::kAvx2: return "avx2";
    case kvgate::Xxh3Path::kAvx512: return "avx512";
  }
  return "?";
}

// The paths this CPU runs.
std::vector<kvgate::Xxh3Path> paths() {
  std::vector<kvgate::Xxh3Path> out;
  for (kvgate::Xxh3Path p : kPaths) {
    if (kvgate::xxh3_path_supported(p)) out.push_back(p);
  }
  return out;
}

TEST(Xxh3, KnownAnswersEveryLengthClassAndSeed) {
  const std::vector<uint8_t> buf = pattern(65536);
  for (const Known& k : kKnown) {
    for (int s = 0; s < 4; s++) {
      EXPECT_EQ(kvgate::xxh3_64(buf.data(), k.len, kSeeds[s]), k.hash[s]) << "len " << k.len << " seed " << kSeeds[s];
    }
  }
}

TEST(Xxh3, KnownAnswersOnEveryPath) {
  const std::vector<uint8_t> buf = pattern(65536);
  for (kvgate::Xxh3Path path : paths()) {
    for (const Known& k : kKnown) {
      for (int s = 0; s < 4; s++) {
        EXPECT_EQ(kvgate::xxh3_64_on(path, buf.data(), k.len, kSeeds[s]), k.hash[s])
            << name(path) << " len " << k.len << " seed " << kSeeds[s];
      }
    }
  }
}

// The scalar path always runs; xxh3_64 takes the widest path this CPU runs; a CPU with AVX2
// runs the AVX2 path (the build does not leave it out: the tests above then check it).
TEST(Xxh3, PathsThisCpuRuns) {
  EXPECT_TRUE(kvgate::xxh3_path_supported(kvgate::Xxh3Path::kScalar));
  EXPECT_TRUE(kvgate::xxh3_path_supported(kvgate::xxh3_best_path()));
  if (kvgate::xxh3_path_supported(kvgate::Xxh3Path::kAvx512)) {
    EXPECT_EQ(kvgate::xxh3_best_path(), kvgate::Xxh3Path::kAvx512);
  } else if (kvgate::xxh3_path_supported(kvgate::Xxh3Path::kAvx2)) {
    EXPECT_EQ(kvgate::xxh3_best_path(), kvgate::Xxh3Path::kAvx2);
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_TRUE(kvgate::xxh3_path_supported(kvgate::Xxh3Path::kAvx2));
  }
#endif
}

// Every path against the naive transcription of the specification: random lengths (every
// class, long ones mostly, around the stripe and block boundaries too), random seeds,
// random bytes. KVGATE_TEST_SEED=<n> replays a run.
TEST(Xxh3, EveryPathMatchesTheSpecificationOnRandomInputs) {
  const char* env = std::getenv("KVGATE_TEST_SEED");
  const uint64_t test_seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::mt19937_64 rng(test_seed);
  std::vector<uint8_t> buf(9000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (int r = 0; r < 2000; r++) {
    size_t len;
    switch (r % 4) {
      case 0: len = rng() % 241; break;                             // short and medium
      case 1: len = 241 + rng() % 2048; break;                      // the first blocks
      case 2: len = 64 * (4 + rng() % 130) + rng() % 3 - 1; break;  // stripe edges
      default: len = 1 + rng() % (buf.size() - 1); break;           // anything
    }
    const uint64_t seed = r % 3 == 0 ? 0 : rng() >> (rng() % 64);
    const size_t off = rng() % 8;
    len = std::min(len, buf.size() - off);
    const uint64_t want = kvgate::test::xxh3_ref::xxh3_64(buf.data() + off, len, seed);
    ASSERT_EQ(kvgate::xxh3_64(buf.data() + off, len, seed), want)
        << "len " << len << " seed " << seed << " (KVGATE_TEST_SEED=" << test_seed << ")";
    for (kvgate::Xxh3Path path : paths()) {
      ASSERT_EQ(kvgate::xxh3_64_on(path, buf.data() + off, len, seed), want)
          << name(path) << " len " << len << " seed " << seed << " (KVGATE_TEST_SEED=" << test_seed << ")";
    }
  }
}

TEST(Xxh3, EmptyInputIgnoresPointer) { EXPECT_EQ(kvgate::xxh3_64(nullptr, 0, 0), 0x2d06800538d394c2ULL); }

TEST(Xxh3, UnalignedInputHashesTheSame) {
  const std::vector<uint8_t> src = pattern(4096 + 8);
  for (size_t len : {5u, 13u, 100u, 200u, 300u, 4096u}) {
    const uint64_t aligned = kvgate::xxh3_64(src.data(), len, 7);
    for (size_t off = 1; off < 64; off++) {
      std::vector<uint8_t> shifted(len + off);
      std::memcpy(shifted.data() + off, src.data(), len);
      EXPECT_EQ(kvgate::xxh3_64(shifted.data() + off, len, 7), aligned) << "len " << len << " offset " << off;
      for (kvgate::Xxh3Path path : paths()) {
        EXPECT_EQ(kvgate::xxh3_64_on(path, shifted.data() + off, len, 7), aligned)
            << name(path) << " len " << len << " offset " << off;
      }
    }
  }
}

// Each input byte must reach the output: flipping any single bit changes the hash.
TEST(Xxh3, EveryBitMatters) {
  for (size_t len : {1u, 3u, 4u, 8u, 9u, 16u, 17u, 128u, 129u, 240u, 241u, 1500u}) {
    std::vector<uint8_t> buf = pattern(len);
    const uint64_t base = kvgate::xxh3_64(buf.data(), len, 1337);
    for (size_t byte = 0; byte < len; byte++) {
      for (int bit = 0; bit < 8; bit++) {
        buf[byte] ^= static_cast<uint8_t>(1u << bit);
        EXPECT_NE(kvgate::xxh3_64(buf.data(), len, 1337), base) << "len " << len << " byte " << byte << " bit " << bit;
        buf[byte] ^= static_cast<uint8_t>(1u << bit);
      }
    }
  }
}

}  // namespace
