// Block and sequence hashes (Dynamo's compute_block_hash_for_seq / compute_seq_hash_for_block).
// Expected values were computed in JavaScript with @node-rs/xxhash, seed 1337, over the
// tokens `token(i)` below as little-endian u32.
#include "core/block_hash.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/xxh3.h"

namespace {

uint32_t token(uint32_t i) { return i * 2246822519u + 13u; }

std::vector<uint32_t> tokens(size_t n) {
  std::vector<uint32_t> t(n);
  for (size_t i = 0; i < n; i++) t[i] = token(static_cast<uint32_t>(i));
  return t;
}

struct Case {
  size_t n;
  uint32_t block_size;
  size_t count;
  uint64_t local_first, local_last, seq_second, seq_last;
};

const Case kCases[] = {
    {4096, 16, 256, 0x66f74a05fe332cecULL, 0xf70fb653d690a6f1ULL, 0x96183b89b2238c96ULL, 0x8b8e461c4162b461ULL},
    {10, 3, 3, 0x8442787dfef7a2cdULL, 0x902412f518ea08ccULL, 0xe47438d3ea783fbeULL, 0xc974aa61c1d06014ULL},
    {5, 1, 5, 0x569dc0c46605193bULL, 0x2692faded17de6d6ULL, 0x6daf44763878f509ULL, 0xb250ee3a7a196d35ULL},
    {2100, 1024, 2, 0x55c186f11df81069ULL, 0xb065b3a77b6a3557ULL, 0x44355ac0d68ca31aULL, 0x44355ac0d68ca31aULL},
};

TEST(BlockHash, KnownAnswers) {
  for (const Case& c : kCases) {
    const std::vector<uint32_t> t = tokens(c.n);
    std::vector<uint64_t> local(c.n), seq(c.n);
    ASSERT_EQ(kvgate::compute_block_hashes(t.data(), t.size(), c.block_size, local.data()), c.count);
    EXPECT_EQ(local[0], c.local_first) << "n " << c.n << " bs " << c.block_size;
    EXPECT_EQ(local[c.count - 1], c.local_last);
    kvgate::compute_sequence_hashes(local.data(), c.count, seq.data());
    EXPECT_EQ(seq[0], local[0]);
    EXPECT_EQ(seq[1], c.seq_second);
    EXPECT_EQ(seq[c.count - 1], c.seq_last);
  }
}

TEST(BlockHash, EachBlockIsXxh3OfItsLittleEndianTokens) {
  const std::vector<uint32_t> t = tokens(100);
  std::vector<uint64_t> local(100);
  const size_t count = kvgate::compute_block_hashes(t.data(), t.size(), 7, local.data());
  ASSERT_EQ(count, 14u);  // 98 tokens hashed, the 2 of the partial block are not
  for (size_t b = 0; b < count; b++) {
    std::vector<uint8_t> le;
    for (size_t i = b * 7; i < b * 7 + 7; i++) {
      for (int k = 0; k < 4; k++) le.push_back(static_cast<uint8_t>(t[i] >> (8 * k)));
    }
    EXPECT_EQ(local[b], kvgate::xxh3_64(le.data(), le.size(), kvgate::kBlockHashSeed)) << "block " << b;
  }
}

TEST(BlockHash, PartialTrailingBlockIsNotHashed) {
  const std::vector<uint32_t> t = tokens(47);
  std::vector<uint64_t> local(8, 0xdeadULL);
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), 47, 16, local.data()), 2u);
  EXPECT_EQ(local[2], 0xdeadULL);  // nothing written past the count
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), 15, 16, local.data()), 0u);
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), 0, 16, local.data()), 0u);
}

TEST(BlockHash, ChangingOneTokenChangesItsBlockAndEverySequenceHashAfter) {
  std::vector<uint32_t> t = tokens(64);
  std::vector<uint64_t> a(4), b(4), sa(4), sb(4);
  kvgate::compute_block_hashes(t.data(), 64, 16, a.data());
  t[20] ^= 1;  // block 1
  kvgate::compute_block_hashes(t.data(), 64, 16, b.data());
  EXPECT_EQ(a[0], b[0]);
  EXPECT_NE(a[1], b[1]);
  EXPECT_EQ(a[2], b[2]);
  EXPECT_EQ(a[3], b[3]);
  kvgate::compute_sequence_hashes(a.data(), 4, sa.data());
  kvgate::compute_sequence_hashes(b.data(), 4, sb.data());
  EXPECT_EQ(sa[0], sb[0]);
  for (int i = 1; i < 4; i++) EXPECT_NE(sa[i], sb[i]) << i;
}

TEST(BlockHash, SequenceHashChainsPreviousSequenceHashAndLocalHash) {
  const uint64_t local[3] = {0x0102030405060708ULL, 0x1112131415161718ULL, 0xfffefdfcfbfaf9f8ULL};
  uint64_t seq[3];
  kvgate::compute_sequence_hashes(local, 3, seq);
  EXPECT_EQ(seq[0], local[0]);
  for (int i = 1; i < 3; i++) {
    uint8_t pair[16];
    for (int k = 0; k < 8; k++) {
      pair[k] = static_cast<uint8_t>(seq[i - 1] >> (8 * k));
      pair[8 + k] = static_cast<uint8_t>(local[i] >> (8 * k));
    }
    EXPECT_EQ(seq[i], kvgate::xxh3_64(pair, 16, 1337)) << i;
  }
}

TEST(BlockHash, SequenceHashesInPlace) {
  const std::vector<uint32_t> t = tokens(4096);
  std::vector<uint64_t> local(256), seq(256);
  kvgate::compute_block_hashes(t.data(), t.size(), 16, local.data());
  kvgate::compute_sequence_hashes(local.data(), 256, seq.data());
  kvgate::compute_sequence_hashes(local.data(), 256, local.data());
  EXPECT_EQ(local, seq);
}

TEST(BlockHash, BlockSizeOutOfRangeHashesNothing) {
  const std::vector<uint32_t> t = tokens(4096);
  std::vector<uint64_t> local(4096, 0);
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), t.size(), 0, local.data()), 0u);
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), t.size(), kvgate::kMaxBlockSize + 1, local.data()), 0u);
  EXPECT_EQ(kvgate::compute_block_hashes(t.data(), t.size(), kvgate::kMaxBlockSize, local.data()), 4u);
}

TEST(BlockHash, SequenceHashesOfNothingWritesNothing) {
  uint64_t out = 42;
  kvgate::compute_sequence_hashes(nullptr, 0, &out);
  EXPECT_EQ(out, 42u);
}

}  // namespace
