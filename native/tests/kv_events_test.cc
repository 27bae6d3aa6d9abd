// The SGLang KV-event batch reader: every accepted shape, and malformed or hostile bytes
// each returning an error (never a crash; the sanitizer build runs these too).
#include "core/kv_events.h"

#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tests/msgpack_writer.h"

namespace {

using kvgate::KvEvent;
using kvgate::KvEventBatch;
using kvgate::KvEventError;
using kvgate::KvEventKind;
using kvgate::test::MsgpackWriter;

KvEventError parse(const std::vector<uint8_t>& bytes, KvEventBatch* out) {
  return kvgate::parse_kv_event_batch(bytes.data(), bytes.size(), out);
}

KvEventError parse(const std::vector<uint8_t>& bytes) {
  KvEventBatch b;
  return parse(bytes, &b);
}

// sglang.md §2.4's sample: one store, one remove, one clear, dp rank 0.
std::vector<uint8_t> sample_batch() {
  MsgpackWriter w;
  w.array(3).f64(1.5).array(3);
  w.array(7).str("BlockStored").array(2).int_(-123).int_(456).nil().array(4).int_(1).int_(2).int_(3).int_(4);
  w.int_(2).nil().str("GPU");
  w.array(3).str("BlockRemoved").array(1).int_(7).str("GPU");
  w.array(1).str("AllBlocksCleared");
  w.int_(0);
  return w.bytes;
}

// A batch holding a single event, the event written by `event`.
template <typename F>
std::vector<uint8_t> one_event(F event) {
  MsgpackWriter w;
  w.array(2).f64(2.0).array(1);
  event(w);
  return w.bytes;
}

TEST(KvEvents, ReferenceSample) {
  KvEventBatch b;
  ASSERT_EQ(parse(sample_batch(), &b), KvEventError::kOk);
  EXPECT_EQ(b.ts, 1.5);
  EXPECT_TRUE(b.has_dp_rank);
  EXPECT_EQ(b.dp_rank, 0);
  ASSERT_EQ(b.events.size(), 3u);

  const KvEvent& s = b.events[0];
  EXPECT_EQ(s.kind, KvEventKind::kStored);
  EXPECT_EQ(s.block_hashes, (std::vector<int64_t>{-123, 456}));
  EXPECT_FALSE(s.has_parent);
  EXPECT_EQ(s.token_ids, (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(s.block_size, 2u);
  EXPECT_FALSE(s.has_lora_id);
  EXPECT_TRUE(s.gpu_medium);

  const KvEvent& r = b.events[1];
  EXPECT_EQ(r.kind, KvEventKind::kRemoved);
  EXPECT_EQ(r.block_hashes, (std::vector<int64_t>{7}));
  EXPECT_TRUE(r.gpu_medium);

  EXPECT_EQ(b.events[2].kind, KvEventKind::kCleared);
}

TEST(KvEvents, TwoElementBatchHasNoDpRank) {
  MsgpackWriter w;
  w.array(2).f64(3.25).array(0);
  KvEventBatch b;
  ASSERT_EQ(parse(w.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.ts, 3.25);
  EXPECT_FALSE(b.has_dp_rank);
  EXPECT_TRUE(b.events.empty());
}

TEST(KvEvents, DpRankNilIntAndRange) {
  KvEventBatch b;
  MsgpackWriter nil;
  nil.array(3).f64(0).array(0).nil();
  ASSERT_EQ(parse(nil.bytes, &b), KvEventError::kOk);
  EXPECT_FALSE(b.has_dp_rank);

  MsgpackWriter seven;
  seven.array(3).f64(0).array(0).int_(7);
  ASSERT_EQ(parse(seven.bytes, &b), KvEventError::kOk);
  EXPECT_TRUE(b.has_dp_rank);
  EXPECT_EQ(b.dp_rank, 7);

  MsgpackWriter max;
  max.array(3).f64(0).array(0).uint_(UINT32_MAX);
  ASSERT_EQ(parse(max.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.dp_rank, int64_t{UINT32_MAX});

  MsgpackWriter negative;
  negative.array(3).f64(0).array(0).int_(-1);
  EXPECT_EQ(parse(negative.bytes), KvEventError::kLimitExceeded);
  MsgpackWriter too_big;
  too_big.array(3).f64(0).array(0).uint_(uint64_t{UINT32_MAX} + 1);
  EXPECT_EQ(parse(too_big.bytes), KvEventError::kLimitExceeded);
}

TEST(KvEvents, TimestampAsFloat32Float64OrInt) {
  KvEventBatch b;
  MsgpackWriter f32;
  f32.array(2).f32(0.5f).array(0);
  ASSERT_EQ(parse(f32.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.ts, 0.5);
  MsgpackWriter i;
  i.array(2).int_(1700000000).array(0);
  ASSERT_EQ(parse(i.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.ts, 1700000000.0);
  MsgpackWriter u64;
  u64.array(2).int_as(0xcf, 0xffffffffffffffffULL).array(0);
  ASSERT_EQ(parse(u64.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.ts, 18446744073709551615.0);
}

TEST(KvEvents, BlockStoredWithTrailingFieldsAbsentOrPresent) {
  for (int n = 5; n <= 9; n++) {
    const auto bytes = one_event([n](MsgpackWriter& w) {
      w.array(n).str("BlockStored").array(1).int_(11).int_(10).array(2).int_(5).int_(6).int_(2);
      if (n > 5) w.int_(3);            // lora_id
      if (n > 6) w.str("CPU_PINNED");  // medium
      if (n > 7) w.map(1).str("cache_salt").str("salty");
      if (n > 8) w.array(2).boolean(true).f32(1.0f);
    });
    KvEventBatch b;
    ASSERT_EQ(parse(bytes, &b), KvEventError::kOk) << "elements " << n;
    ASSERT_EQ(b.events.size(), 1u);
    const KvEvent& e = b.events[0];
    EXPECT_EQ(e.kind, KvEventKind::kStored);
    EXPECT_EQ(e.block_hashes, std::vector<int64_t>{11});
    EXPECT_TRUE(e.has_parent);
    EXPECT_EQ(e.parent_hash, 10);
    EXPECT_EQ(e.token_ids, (std::vector<uint32_t>{5, 6}));
    EXPECT_EQ(e.block_size, 2u);
    EXPECT_EQ(e.has_lora_id, n > 5);
    EXPECT_EQ(e.lora_id, n > 5 ? 3 : 0);
    EXPECT_EQ(e.gpu_medium, n <= 6);
  }
}

TEST(KvEvents, BlockRemovedWithAndWithoutMedium) {
  for (int n = 2; n <= 4; n++) {
    const auto bytes = one_event([n](MsgpackWriter& w) {
      w.array(n).str("BlockRemoved").array(2).int_(-1).int_(INT64_MIN);
      if (n > 2) w.str("DISK");
      if (n > 3) w.nil();
    });
    KvEventBatch b;
    ASSERT_EQ(parse(bytes, &b), KvEventError::kOk) << "elements " << n;
    EXPECT_EQ(b.events[0].kind, KvEventKind::kRemoved);
    EXPECT_EQ(b.events[0].block_hashes, (std::vector<int64_t>{-1, INT64_MIN}));
    EXPECT_EQ(b.events[0].gpu_medium, n == 2);
  }
}

TEST(KvEvents, MediumNilAndGpuAreDeviceCache) {
  for (bool gpu_string : {false, true}) {
    const auto bytes = one_event([gpu_string](MsgpackWriter& w) {
      w.array(3).str("BlockRemoved").array(0);
      if (gpu_string) w.str("GPU"); else w.nil();
    });
    KvEventBatch b;
    ASSERT_EQ(parse(bytes, &b), KvEventError::kOk);
    EXPECT_TRUE(b.events[0].gpu_medium);
  }
}

TEST(KvEvents, AllBlocksClearedIgnoresExtraElements) {
  const auto bytes = one_event([](MsgpackWriter& w) { w.array(3).str("AllBlocksCleared").int_(1).map(0); });
  KvEventBatch b;
  ASSERT_EQ(parse(bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.events[0].kind, KvEventKind::kCleared);
}

// Hashes in every msgpack int format: negative, above 2^53, and uint64 above INT64_MAX,
// which is taken as its 64-bit pattern (the signed int64 SGLang meant).
TEST(KvEvents, HashesInEveryIntegerEncoding) {
  struct Enc {
    uint8_t marker;  // 0 = the writer's smallest encoding of `value`
    uint64_t bits;
    int64_t value;
  };
  const Enc encs[] = {
      {0, 0, 0},
      {0, 127, 127},
      {0, 0, -32},
      {0xcc, 200, 200},
      {0xcd, 60000, 60000},
      {0xce, 4000000000u, 4000000000},
      {0xcf, (1ULL << 53) + 1, (int64_t{1} << 53) + 1},
      {0xcf, 0xffffffffffffffffULL, -1},
      {0xcf, 0x8000000000000000ULL, INT64_MIN},
      {0xd0, 0x80, -128},
      {0xd1, 0x8000, -32768},
      {0xd2, 0x80000000u, INT32_MIN},
      {0xd3, 0x8000000000000001ULL, INT64_MIN + 1},
      {0xd3, 0x7fffffffffffffffULL, INT64_MAX},
      {0xd0, 5, 5},
  };
  const auto bytes = one_event([&](MsgpackWriter& w) {
    w.array(3).str("BlockRemoved").array(std::size(encs));
    for (const Enc& e : encs) {
      if (e.marker == 0) w.int_(e.value); else w.int_as(e.marker, e.bits);
    }
    w.nil();
  });
  KvEventBatch b;
  ASSERT_EQ(parse(bytes, &b), KvEventError::kOk);
  ASSERT_EQ(b.events[0].block_hashes.size(), std::size(encs));
  for (size_t i = 0; i < std::size(encs); i++) EXPECT_EQ(b.events[0].block_hashes[i], encs[i].value) << i;
}

// SGLang's trailing partial page: fewer tokens than the page size, block_size = its length.
TEST(KvEvents, PartialPage) {
  const auto bytes = one_event([](MsgpackWriter& w) {
    w.array(7).str("BlockStored").array(1).int_(-99).int_(1234567890123LL).array(3).int_(1).int_(2).int_(3);
    w.int_(3).nil().nil();
  });
  KvEventBatch b;
  ASSERT_EQ(parse(bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.events[0].block_size, 3u);
  EXPECT_EQ(b.events[0].token_ids.size(), 3u);
  EXPECT_EQ(b.events[0].parent_hash, 1234567890123LL);
}

TEST(KvEvents, LongerEncodingsOfStringsAndArrays) {
  MsgpackWriter w;
  w.array16(3).f64(1).array32(2);
  // str8 tag, array16 hashes, array32 tokens
  w.array16(5).raw(0xd9).raw(11);
  for (char c : std::string("BlockStored")) w.raw(static_cast<uint8_t>(c));
  w.array16(1).int_(1).nil().array32(1).uint_(UINT32_MAX).int_(1);
  // str16 tag
  w.array(1).raw(0xda).be(16, 2);
  for (char c : std::string("AllBlocksCleared")) w.raw(static_cast<uint8_t>(c));
  w.int_(0);
  KvEventBatch b;
  ASSERT_EQ(parse(w.bytes, &b), KvEventError::kOk);
  EXPECT_EQ(b.events[0].token_ids, std::vector<uint32_t>{UINT32_MAX});
  EXPECT_EQ(b.events[1].kind, KvEventKind::kCleared);
}

TEST(KvEvents, SkipsEveryKindOfIgnoredValue) {
  const auto bytes = one_event([](MsgpackWriter& w) {
    w.array(14).str("AllBlocksCleared");
    w.nil().boolean(false).int_(-5).f64(2.5).str("x");
    w.bin("abc");
    w.raw(0xc5).be(2, 2).raw('h').raw('i');                              // bin16
    w.raw(0xd4).raw(1).raw(9);                                            // fixext1
    w.raw(0xd8).raw(1).be(0, 8).be(0, 8);                                 // fixext16
    w.raw(0xc7).raw(3).raw(0x7f).raw(1).raw(2).raw(3);                    // ext8
    w.raw(0xdf).be(1, 4).str("k").array(2).int_(1).map(1).nil().nil();   // map32
    w.raw(0xde).be(0, 2);                                                 // map16
    w.raw(0xc9).be(0, 4).raw(0);                                          // ext32, empty
  });
  KvEventBatch b;
  ASSERT_EQ(parse(bytes, &b), KvEventError::kOk);
}

TEST(KvEvents, TruncationAtEveryOffsetIsAnError) {
  const std::vector<uint8_t> full = sample_batch();
  ASSERT_EQ(parse(full), KvEventError::kOk);
  for (size_t cut = 0; cut < full.size(); cut++) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + cut);
    EXPECT_EQ(parse(prefix), KvEventError::kTruncated) << "cut at " << cut;
  }
}

TEST(KvEvents, TrailingBytesAreRejected) {
  std::vector<uint8_t> bytes = sample_batch();
  bytes.push_back(0xc0);
  EXPECT_EQ(parse(bytes), KvEventError::kTrailingBytes);
}

TEST(KvEvents, EmptyOrNullInput) {
  EXPECT_EQ(kvgate::parse_kv_event_batch(nullptr, 0, nullptr), KvEventError::kTruncated);
  KvEventBatch b;
  const uint8_t none[1] = {0};
  EXPECT_EQ(kvgate::parse_kv_event_batch(none, 0, &b), KvEventError::kTruncated);
}

TEST(KvEvents, WrongTypes) {
  auto batch = [](auto body) {
    MsgpackWriter w;
    body(w);
    return w.bytes;
  };
  auto stored = [](auto mutate) {
    return one_event([&](MsgpackWriter& w) {
      w.array(7).str("BlockStored");
      mutate(w);
    });
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const Case cases[] = {
      {"batch is a map", batch([](MsgpackWriter& w) { w.map(1).nil().nil(); })},
      {"batch is an int", batch([](MsgpackWriter& w) { w.int_(3); })},
      {"ts is a string", batch([](MsgpackWriter& w) { w.array(2).str("1.5").array(0); })},
      {"ts is nil", batch([](MsgpackWriter& w) { w.array(2).nil().array(0); })},
      {"events is a map", batch([](MsgpackWriter& w) { w.array(2).f64(1).map(0); })},
      {"event is a string", batch([](MsgpackWriter& w) { w.array(2).f64(1).array(1).str("AllBlocksCleared"); })},
      {"tag is an int", batch([](MsgpackWriter& w) { w.array(2).f64(1).array(1).array(1).int_(1); })},
      {"tag is bin", batch([](MsgpackWriter& w) { w.array(2).f64(1).array(1).array(1).bin("BlockStored"); })},
      {"dp_rank is a string", batch([](MsgpackWriter& w) { w.array(3).f64(1).array(0).str("0"); })},
      {"dp_rank is a float", batch([](MsgpackWriter& w) { w.array(3).f64(1).array(0).f64(0); })},
      {"reserved byte 0xc1", batch([](MsgpackWriter& w) { w.array(2).raw(0xc1).array(0); })},
      {"hashes nil", stored([](MsgpackWriter& w) { w.nil().nil().array(0).int_(1).nil().nil(); })},
      {"hash is a float", stored([](MsgpackWriter& w) { w.array(1).f64(1).nil().array(0).int_(1).nil().nil(); })},
      {"hash is a bool", stored([](MsgpackWriter& w) { w.array(1).boolean(true).nil().array(0).int_(1).nil().nil(); })},
      {"parent is a string", stored([](MsgpackWriter& w) { w.array(0).str("p").array(0).int_(1).nil().nil(); })},
      {"tokens is a map", stored([](MsgpackWriter& w) { w.array(0).nil().map(0).int_(1).nil().nil(); })},
      {"token is a string", stored([](MsgpackWriter& w) { w.array(0).nil().array(1).str("a").int_(1).nil().nil(); })},
      {"block_size nil", stored([](MsgpackWriter& w) { w.array(0).nil().array(0).nil().nil().nil(); })},
      {"block_size float", stored([](MsgpackWriter& w) { w.array(0).nil().array(0).f64(16).nil().nil(); })},
      {"lora_id is a string", stored([](MsgpackWriter& w) { w.array(0).nil().array(0).int_(1).str("l").nil(); })},
      {"medium is an int", stored([](MsgpackWriter& w) { w.array(0).nil().array(0).int_(1).nil().int_(0); })},
      {"removed medium is bin",
       one_event([](MsgpackWriter& w) { w.array(3).str("BlockRemoved").array(0).bin("GPU"); })},
  };
  for (const Case& c : cases) EXPECT_EQ(parse(c.bytes), KvEventError::kBadType) << c.what;
}

TEST(KvEvents, WrongShapes) {
  auto batch = [](auto body) {
    MsgpackWriter w;
    body(w);
    return w.bytes;
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const Case cases[] = {
      {"batch of 1", batch([](MsgpackWriter& w) { w.array(1).f64(1); })},
      {"batch of 0", batch([](MsgpackWriter& w) { w.array(0); })},
      {"batch of 4", batch([](MsgpackWriter& w) { w.array(4).f64(1).array(0).nil().nil(); })},
      {"empty event", one_event([](MsgpackWriter& w) { w.array(0); })},
      {"stored of 4", one_event([](MsgpackWriter& w) { w.array(4).str("BlockStored").array(0).nil().array(0); })},
      {"removed of 1", one_event([](MsgpackWriter& w) { w.array(1).str("BlockRemoved"); })},
  };
  for (const Case& c : cases) EXPECT_EQ(parse(c.bytes), KvEventError::kBadShape) << c.what;
}

TEST(KvEvents, UnknownEventTag) {
  for (const char* tag : {"BlockStoredX", "blockstored", "", "AllBlocksClear", "BlockUpdated"}) {
    const auto bytes = one_event([tag](MsgpackWriter& w) { w.array(1).str(tag); });
    EXPECT_EQ(parse(bytes), KvEventError::kUnknownEvent) << tag;
  }
}

TEST(KvEvents, ValuesOutOfRange) {
  auto stored = [](int64_t token, int64_t block_size) {
    return one_event([=](MsgpackWriter& w) {
      w.array(5).str("BlockStored").array(1).int_(1).nil().array(1).int_(token).int_(block_size);
    });
  };
  EXPECT_EQ(parse(stored(0, 1)), KvEventError::kOk);
  EXPECT_EQ(parse(stored(UINT32_MAX, kvgate::kMaxBlockSize)), KvEventError::kOk);
  EXPECT_EQ(parse(stored(int64_t{UINT32_MAX} + 1, 1)), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored(-1, 1)), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored(1, 0)), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored(1, -16)), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored(1, kvgate::kMaxBlockSize + 1)), KvEventError::kLimitExceeded);
}

// A declared length far beyond the input fails at once, before anything is sized from it.
TEST(KvEvents, HugeDeclaredLengthsFailFast) {
  auto batch = [](auto body) {
    MsgpackWriter w;
    body(w);
    return w.bytes;
  };
  const std::vector<std::vector<uint8_t>> cases = {
      batch([](MsgpackWriter& w) { w.array32(0xffffffffu).f64(1); }),
      batch([](MsgpackWriter& w) { w.array(2).f64(1).array32(4000000000u).nil(); }),
      one_event([](MsgpackWriter& w) { w.array32(0xffffffffu).str("AllBlocksCleared"); }),
      one_event([](MsgpackWriter& w) { w.array(2).str("BlockRemoved").array32(0xfffffff0u).int_(1); }),
      one_event([](MsgpackWriter& w) { w.array(1).raw(0xdb).be(0xffffffffu, 4).raw('A'); }),
      one_event([](MsgpackWriter& w) { w.array(2).str("AllBlocksCleared").raw(0xdf).be(0xffffffffu, 4).nil(); }),
      one_event([](MsgpackWriter& w) { w.array(2).str("AllBlocksCleared").raw(0xc6).be(0xffffffffu, 4).nil(); }),
      one_event([](MsgpackWriter& w) { w.array(2).str("AllBlocksCleared").raw(0xc9).be(0xffffffffu, 4).raw(1); }),
      one_event([](MsgpackWriter& w) {
        w.array(5).str("BlockStored").array(0).nil().array32(0xffffffffu).int_(1).int_(1);
      }),
  };
  for (size_t i = 0; i < cases.size(); i++) EXPECT_EQ(parse(cases[i]), KvEventError::kTruncated) << "case " << i;
}

TEST(KvEvents, CountLimits) {
  {
    MsgpackWriter w;  // more events than the limit (the count fits in the input)
    w.array(2).f64(1).array32(kvgate::kMaxKvEventsPerBatch + 1);
    w.bytes.resize(w.bytes.size() + kvgate::kMaxKvEventsPerBatch + 1, 0xc0);
    EXPECT_EQ(parse(w.bytes), KvEventError::kLimitExceeded);
  }
  for (bool tokens : {false, true}) {
    const auto bytes = one_event([tokens](MsgpackWriter& w) {
      w.array(5).str("BlockStored");
      const uint32_t over = (tokens ? kvgate::kMaxKvEventTokens : kvgate::kMaxKvEventHashes) + 1;
      if (tokens) w.array(0).nil();
      w.array32(over);
      w.bytes.resize(w.bytes.size() + over, 0x01);
      if (!tokens) w.nil().array(0);
      w.int_(1);
    });
    EXPECT_EQ(parse(bytes), KvEventError::kLimitExceeded) << (tokens ? "tokens" : "hashes");
  }
}

TEST(KvEvents, NestingDepthInIgnoredFields) {
  auto nested = [](uint32_t depth) {
    return one_event([depth](MsgpackWriter& w) {
      w.array(8).str("BlockStored").array(0).nil().array(0).int_(1).nil().nil();
      for (uint32_t i = 0; i < depth; i++) w.array(1);
      w.nil();
    });
  };
  EXPECT_EQ(parse(nested(kvgate::kMaxKvEventDepth - 3)), KvEventError::kOk);
  EXPECT_EQ(parse(nested(kvgate::kMaxKvEventDepth - 2)), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(nested(100000)), KvEventError::kLimitExceeded);  // no stack exhaustion
}

TEST(KvEvents, ReusedBatchIsFullyOverwritten) {
  KvEventBatch b;
  ASSERT_EQ(parse(sample_batch(), &b), KvEventError::kOk);
  const auto small = one_event([](MsgpackWriter& w) { w.array(2).str("BlockRemoved").array(1).int_(5); });
  ASSERT_EQ(parse(small, &b), KvEventError::kOk);
  EXPECT_FALSE(b.has_dp_rank);
  ASSERT_EQ(b.events.size(), 1u);
  EXPECT_EQ(b.events[0].kind, KvEventKind::kRemoved);
  EXPECT_EQ(b.events[0].block_hashes, std::vector<int64_t>{5});
  EXPECT_TRUE(b.events[0].token_ids.empty());
  EXPECT_FALSE(b.events[0].has_parent);
  EXPECT_TRUE(b.events[0].gpu_medium);

  // Parsing the first batch again into the reused object gives what a fresh object gets.
  KvEventBatch fresh;
  ASSERT_EQ(parse(sample_batch(), &fresh), KvEventError::kOk);
  ASSERT_EQ(parse(sample_batch(), &b), KvEventError::kOk);
  EXPECT_TRUE(kvgate::test::same_batch(b, fresh));
}

// Random batches survive encode -> parse -> encode unchanged.
TEST(KvEvents, RandomRoundTrip) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  for (int iter = 0; iter < 500; iter++) {
    KvEventBatch in;
    in.ts = static_cast<double>(rng()) / 1e6;
    in.has_dp_rank = pick(2);
    in.dp_rank = in.has_dp_rank ? static_cast<int64_t>(pick(1ULL << 32)) : 0;
    const size_t events = pick(6);
    for (size_t i = 0; i < events; i++) {
      KvEvent e;
      e.kind = static_cast<KvEventKind>(pick(3));
      if (e.kind != KvEventKind::kCleared) {
        for (size_t h = pick(4); h > 0; h--) e.block_hashes.push_back(static_cast<int64_t>(rng() >> pick(64)));
        e.gpu_medium = pick(2);
      }
      if (e.kind == KvEventKind::kStored) {
        e.has_parent = pick(2);
        e.parent_hash = e.has_parent ? static_cast<int64_t>(rng()) : 0;
        for (size_t t = pick(40); t > 0; t--) e.token_ids.push_back(static_cast<uint32_t>(rng() >> pick(64)));
        e.block_size = 1 + static_cast<uint32_t>(pick(kvgate::kMaxBlockSize));
        e.has_lora_id = pick(2);
        e.lora_id = e.has_lora_id ? static_cast<int64_t>(rng()) : 0;
      }
      in.events.push_back(e);
    }
    const std::vector<uint8_t> bytes = kvgate::test::encode_batch(in);
    KvEventBatch out;
    ASSERT_EQ(parse(bytes, &out), KvEventError::kOk) << "iteration " << iter;
    ASSERT_TRUE(kvgate::test::same_batch(in, out)) << "iteration " << iter;
  }
}

// Random byte mutations of valid batches: any result is fine except a crash (ASan/UBSan
// builds check memory), and whatever parses re-encodes to a batch that parses the same.
TEST(KvEvents, RandomMutationsNeverCrash) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const std::vector<uint8_t> base = sample_batch();
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; iter++) {
    std::vector<uint8_t> bytes = base;
    for (int m = 1 + rng() % 4; m > 0; m--) {
      switch (rng() % 3) {
        case 0: bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng()); break;
        case 1: bytes.insert(bytes.begin() + rng() % (bytes.size() + 1), static_cast<uint8_t>(rng())); break;
        default: if (bytes.size() > 1) bytes.erase(bytes.begin() + rng() % bytes.size()); break;
      }
    }
    KvEventBatch out;
    if (parse(bytes, &out) != KvEventError::kOk) continue;
    accepted++;
    KvEventBatch again;
    ASSERT_EQ(parse(kvgate::test::encode_batch(out), &again), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(out, again));
  }
  EXPECT_GT(accepted, 0u);  // some mutations (e.g. of a hash byte) stay valid
}

TEST(KvEvents, ErrorNamesAreStable) {
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kOk), "OK");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kTruncated), "TRUNCATED");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kBadType), "BAD_TYPE");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kBadShape), "BAD_SHAPE");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kUnknownEvent), "UNKNOWN_EVENT");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kLimitExceeded), "LIMIT_EXCEEDED");
  EXPECT_STREQ(kvgate::kv_event_error_name(KvEventError::kTrailingBytes), "TRAILING_BYTES");
  EXPECT_STREQ(kvgate::kv_event_error_name(static_cast<KvEventError>(99)), "UNKNOWN");
}

}  // namespace
