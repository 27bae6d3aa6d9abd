// Block and sequence hashes (Dynamo's compute_block_hash_for_seq / compute_seq_hash_for_block).
// Expected values were computed in JavaScript with @node-rs/xxhash, seed 1337, over the
// tokens `token(i)` below as little-endian u32.
#include "core/block_hash.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "core/xxh3.h"
#include "tests/xxh3_reference.h"

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
    std::vector<uint64_t> fused(c.count + 1, 0xdeadULL);
    kvgate::compute_prompt_hashes(t.data(), c.count, c.block_size, nullptr, fused.data());
    EXPECT_EQ(fused[1], c.seq_second) << "n " << c.n << " bs " << c.block_size;
    EXPECT_EQ(fused[c.count - 1], c.seq_last);
    EXPECT_EQ(fused[c.count], 0xdeadULL);  // nothing written past the count
  }
}

// Dynamo's formulas over the naive XXH3-64 of tests/xxh3_reference.h: the local hashes of
// `count` blocks, then the sequence hashes (under `parent` if given).
void reference_hashes(const uint32_t* t, size_t count, uint32_t bs, const uint64_t* parent,
                      std::vector<uint64_t>* local, std::vector<uint64_t>* seq) {
  local->clear();
  seq->clear();
  for (size_t b = 0; b < count; b++) {
    std::vector<uint8_t> le;
    for (size_t i = b * bs; i < (b + 1) * bs; i++) {
      for (int k = 0; k < 4; k++) le.push_back(static_cast<uint8_t>(t[i] >> (8 * k)));
    }
    local->push_back(kvgate::test::xxh3_ref::xxh3_64(le.data(), le.size(), 1337));
    if (b == 0 && !parent) {
      seq->push_back(local->back());
      continue;
    }
    const uint64_t prev = b == 0 ? *parent : seq->back();
    uint8_t pair[16];
    for (int k = 0; k < 8; k++) {
      pair[k] = static_cast<uint8_t>(prev >> (8 * k));
      pair[8 + k] = static_cast<uint8_t>(local->back() >> (8 * k));
    }
    seq->push_back(kvgate::test::xxh3_ref::xxh3_64(pair, 16, 1337));
  }
}

// Block hashes, sequence hashes and the one-pass prompt hashes against the reference for
// every block size in [1, 1024] (each length class of XXH3 and its edges: 4, 32, 60/61, 256
// tokens), random tokens and counts, from the root and under a parent.
TEST(BlockHash, EveryBlockSizeMatchesTheReference) {
  std::mt19937_64 rng(20261130);
  std::vector<uint32_t> t(40000);
  for (auto& v : t) v = static_cast<uint32_t>(rng() >> (rng() % 2 == 0 ? 32 : 47));
  std::vector<uint64_t> local, seq;
  for (uint32_t bs = 1; bs <= kvgate::kMaxBlockSize; bs++) {
    const size_t count = std::min<size_t>(rng() % 12 + 1, t.size() / bs);
    const uint32_t* start = t.data() + rng() % (t.size() - count * bs + 1);
    reference_hashes(start, count, bs, nullptr, &local, &seq);
    std::vector<uint64_t> got(count);
    ASSERT_EQ(kvgate::compute_block_hashes(start, count * bs, bs, got.data()), count);
    ASSERT_EQ(got, local) << "block hashes, block size " << bs;
    kvgate::compute_sequence_hashes(got.data(), count, got.data());
    ASSERT_EQ(got, seq) << "sequence hashes, block size " << bs;
    std::fill(got.begin(), got.end(), 0);
    kvgate::compute_prompt_hashes(start, count, bs, nullptr, got.data());
    ASSERT_EQ(got, seq) << "prompt hashes, block size " << bs << " count " << count;
    const uint64_t parent = rng();
    reference_hashes(start, count, bs, &parent, &local, &seq);
    kvgate::compute_prompt_hashes(start, count, bs, &parent, got.data());
    ASSERT_EQ(got, seq) << "prompt hashes under a parent, block size " << bs << " count " << count;
  }
}

// Hashed in chunks, each chaining from the last hash of the one before (as the router's
// hash_prompt does), the prompt hashes are those of one pass.
TEST(BlockHash, PromptHashesInChunksChainAcrossChunks) {
  const std::vector<uint32_t> t = tokens(4096);
  std::vector<uint64_t> whole(256), chunked(256);
  kvgate::compute_prompt_hashes(t.data(), 256, 16, nullptr, whole.data());
  for (size_t chunk : {1u, 7u, 16u, 100u}) {
    std::fill(chunked.begin(), chunked.end(), 0);
    for (size_t i = 0; i < 256; i += chunk) {
      const size_t end = std::min<size_t>(256, i + chunk);
      kvgate::compute_prompt_hashes(t.data() + i * 16, end - i, 16, i == 0 ? nullptr : &chunked[i - 1],
                                    chunked.data() + i);
    }
    EXPECT_EQ(chunked, whole) << "chunks of " << chunk;
  }
}

TEST(BlockHash, PromptHashesOfNothingOrABadBlockSizeWriteNothing) {
  const std::vector<uint32_t> t = tokens(2048);
  std::vector<uint64_t> out(4, 42);
  kvgate::compute_prompt_hashes(t.data(), 0, 16, nullptr, out.data());
  kvgate::compute_prompt_hashes(t.data(), 1, 0, nullptr, out.data());
  kvgate::compute_prompt_hashes(t.data(), 1, kvgate::kMaxBlockSize + 1, nullptr, out.data());
  EXPECT_EQ(out, std::vector<uint64_t>(4, 42));
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
