// The SGLang KV-event batch reader: every accepted shape (array events and the tagged-map
// events of SGLang 0.5.20+), and malformed or hostile bytes each returning an error (never
// a crash; the sanitizer build runs these too).
#include "core/kv_events.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <utility>
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
      if (gpu_string)
        w.str("GPU");
      else
        w.nil();
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
      if (e.marker == 0)
        w.int_(e.value);
      else
        w.int_as(e.marker, e.bits);
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
    w.raw(0xc5).be(2, 2).raw('h').raw('i');                             // bin16
    w.raw(0xd4).raw(1).raw(9);                                          // fixext1
    w.raw(0xd8).raw(1).be(0, 8).be(0, 8);                               // fixext16
    w.raw(0xc7).raw(3).raw(0x7f).raw(1).raw(2).raw(3);                  // ext8
    w.raw(0xdf).be(1, 4).str("k").array(2).int_(1).map(1).nil().nil();  // map32
    w.raw(0xde).be(0, 2);                                               // map16
    w.raw(0xc9).be(0, 4).raw(0);                                        // ext32, empty
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
      one_event(
          [](MsgpackWriter& w) { w.array(5).str("BlockStored").array(0).nil().array32(0xffffffffu).int_(1).int_(1); }),
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

// A random batch of every event kind, with optional fields present or not.
KvEventBatch random_batch(std::mt19937_64& rng) {
  auto pick = [&](uint64_t n) { return rng() % n; };
  KvEventBatch in;
  in.ts = static_cast<double>(rng()) / 1e6;
  in.has_dp_rank = pick(2);
  in.dp_rank = in.has_dp_rank ? static_cast<int64_t>(pick(1ULL << 32)) : 0;
  for (size_t i = pick(6); i > 0; i--) {
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
  return in;
}

// Random batches survive encode -> parse -> encode unchanged.
TEST(KvEvents, RandomRoundTrip) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 500; iter++) {
    const KvEventBatch in = random_batch(rng);
    const std::vector<uint8_t> bytes = kvgate::test::encode_batch(in);
    KvEventBatch out;
    ASSERT_EQ(parse(bytes, &out), KvEventError::kOk) << "iteration " << iter;
    ASSERT_TRUE(kvgate::test::same_batch(in, out)) << "iteration " << iter;
  }
}

// `base` with 1-4 random byte edits: overwrite, insert or erase.
std::vector<uint8_t> mutated(const std::vector<uint8_t>& base, std::mt19937& rng) {
  std::vector<uint8_t> bytes = base;
  for (int m = 1 + rng() % 4; m > 0; m--) {
    switch (rng() % 3) {
      case 0: bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng()); break;
      case 1: bytes.insert(bytes.begin() + rng() % (bytes.size() + 1), static_cast<uint8_t>(rng())); break;
      default:
        if (bytes.size() > 1) bytes.erase(bytes.begin() + rng() % bytes.size());
        break;
    }
  }
  return bytes;
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
    const std::vector<uint8_t> bytes = mutated(base, rng);
    KvEventBatch out;
    if (parse(bytes, &out) != KvEventError::kOk) continue;
    accepted++;
    KvEventBatch again;
    ASSERT_EQ(parse(kvgate::test::encode_batch(out), &again), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(out, again));
  }
  EXPECT_GT(accepted, 0u);  // some mutations (e.g. of a hash byte) stay valid
}

// ---- Tagged-map events (SGLang 0.5.20 on: msgspec `tag=True`, `omit_defaults`) ----

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// The bytes msgspec 0.22 writes for SGLang 0.5.23's KVEventBatch(ts=1.5, attn_dp_rank=0) of:
// BlockStored([-123, 456], parent None, tokens [1,2,3,4], block_size 2, lora None, GPU),
// BlockStored([9], parent 456, [5,6], 2, lora None, medium None: omitted),
// BlockRemoved([7], GPU), BlockRemoved([8], medium omitted), AllBlocksCleared(),
// BlockStored([1], None, [1], 1, lora 3, GPU, cache_salt "s").
const char kSglang0523Hex[] =
    "93cb3ff80000000000009687a474797065ab426c6f636b53746f726564ac626c6f636b5f68617368657392d085cd01c8b170"
    "6172656e745f626c6f636b5f68617368c0a9746f6b656e5f6964739401020304aa626c6f636b5f73697a6502a76c6f7261"
    "5f6964c0a66d656469756da347505586a474797065ab426c6f636b53746f726564ac626c6f636b5f6861736865739109b170"
    "6172656e745f626c6f636b5f68617368cd01c8a9746f6b656e5f696473920506aa626c6f636b5f73697a6502a76c6f7261"
    "5f6964c083a474797065ac426c6f636b52656d6f766564ac626c6f636b5f6861736865739107a66d656469756da3475055"
    "82a474797065ac426c6f636b52656d6f766564ac626c6f636b5f686173686573910881a474797065b0416c6c426c6f636b"
    "73436c656172656488a474797065ab426c6f636b53746f726564ac626c6f636b5f6861736865739101b1706172656e745f"
    "626c6f636b5f68617368c0a9746f6b656e5f6964739101aa626c6f636b5f73697a6501a76c6f72615f696403a66d656469"
    "756da3475055aa63616368655f73616c74a17300";

// The same batch with array events, as SGLang 0.5.19 writes it (no cache_salt there).
KvEventBatch sglang_0523_expected() {
  KvEventBatch b;
  b.ts = 1.5;
  b.has_dp_rank = true;
  auto stored = [](std::vector<int64_t> hashes, bool has_parent, int64_t parent, std::vector<uint32_t> tokens,
                   uint32_t block_size, bool has_lora, int64_t lora) {
    KvEvent e;
    e.kind = KvEventKind::kStored;
    e.block_hashes = std::move(hashes);
    e.has_parent = has_parent;
    e.parent_hash = parent;
    e.token_ids = std::move(tokens);
    e.block_size = block_size;
    e.has_lora_id = has_lora;
    e.lora_id = lora;
    return e;
  };
  auto removed = [](int64_t hash) {
    KvEvent e;
    e.kind = KvEventKind::kRemoved;
    e.block_hashes = {hash};
    return e;
  };
  b.events.push_back(stored({-123, 456}, false, 0, {1, 2, 3, 4}, 2, false, 0));
  b.events.push_back(stored({9}, true, 456, {5, 6}, 2, false, 0));
  b.events.push_back(removed(7));
  b.events.push_back(removed(8));
  b.events.emplace_back();  // AllBlocksCleared
  b.events.push_back(stored({1}, false, 0, {1}, 1, true, 3));
  return b;
}

TEST(KvEventsMap, BytesOfSglang0523) {
  KvEventBatch b;
  ASSERT_EQ(parse(from_hex(kSglang0523Hex), &b), KvEventError::kOk);
  EXPECT_TRUE(kvgate::test::same_batch(b, sglang_0523_expected()));
  EXPECT_EQ(b.dp_rank, 0);
  // And what the array form of the same batch gives.
  KvEventBatch a;
  ASSERT_EQ(parse(kvgate::test::encode_batch(sglang_0523_expected()), &a), KvEventError::kOk);
  EXPECT_TRUE(kvgate::test::same_batch(a, b));
}

TEST(KvEventsMap, TruncationAtEveryOffsetIsAnError) {
  const std::vector<uint8_t> full = from_hex(kSglang0523Hex);
  for (size_t cut = 0; cut < full.size(); cut++) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + cut);
    EXPECT_EQ(parse(prefix), KvEventError::kTruncated) << "cut at " << cut;
  }
  std::vector<uint8_t> trailing = full;
  trailing.push_back(0x80);
  EXPECT_EQ(parse(trailing), KvEventError::kTrailingBytes);
}

// A map event built entry by entry: (key writer, value writer).
using Entry = std::pair<std::function<void(MsgpackWriter&)>, std::function<void(MsgpackWriter&)>>;

Entry kv(const std::string& key, std::function<void(MsgpackWriter&)> value) {
  return {[key](MsgpackWriter& w) { w.str(key); }, std::move(value)};
}

std::vector<uint8_t> map_event(const std::vector<Entry>& entries) {
  return one_event([&](MsgpackWriter& w) {
    w.map(entries.size());
    for (const Entry& e : entries) {
      e.first(w);
      e.second(w);
    }
  });
}

// The seven fields of a BlockStored with every value set.
std::vector<Entry> full_stored() {
  return {
      kv("type", [](MsgpackWriter& w) { w.str("BlockStored"); }),
      kv("block_hashes", [](MsgpackWriter& w) { w.array(2).int_(-5).int_as(0xcf, 0xfffffffffffffff0ULL); }),
      kv("parent_block_hash", [](MsgpackWriter& w) { w.int_(INT64_MIN); }),
      kv("token_ids", [](MsgpackWriter& w) { w.array(4).int_(0).int_(70000).uint_(UINT32_MAX).int_(3); }),
      kv("block_size", [](MsgpackWriter& w) { w.int_(2); }),
      kv("lora_id", [](MsgpackWriter& w) { w.int_(12); }),
      kv("medium", [](MsgpackWriter& w) { w.str("CPU_PINNED"); }),
  };
}

void expect_full_stored(const KvEvent& e) {
  EXPECT_EQ(e.kind, KvEventKind::kStored);
  EXPECT_EQ(e.block_hashes, (std::vector<int64_t>{-5, -16}));
  EXPECT_TRUE(e.has_parent);
  EXPECT_EQ(e.parent_hash, INT64_MIN);
  EXPECT_EQ(e.token_ids, (std::vector<uint32_t>{0, 70000, UINT32_MAX, 3}));
  EXPECT_EQ(e.block_size, 2u);
  EXPECT_TRUE(e.has_lora_id);
  EXPECT_EQ(e.lora_id, 12);
  EXPECT_FALSE(e.gpu_medium);
}

TEST(KvEventsMap, EveryKeyOrderOfBlockStored) {
  std::vector<Entry> fields = full_stored();
  std::vector<size_t> order(fields.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  size_t orders = 0;
  do {
    std::vector<Entry> entries;
    for (size_t i : order) entries.push_back(fields[i]);
    KvEventBatch b;
    ASSERT_EQ(parse(map_event(entries), &b), KvEventError::kOk) << "order " << orders;
    ASSERT_EQ(b.events.size(), 1u);
    expect_full_stored(b.events[0]);
    orders++;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(orders, 5040u);
}

TEST(KvEventsMap, EveryKeyOrderOfBlockRemoved) {
  const std::vector<Entry> fields = {
      kv("type", [](MsgpackWriter& w) { w.str("BlockRemoved"); }),
      kv("block_hashes", [](MsgpackWriter& w) { w.array(1).int_(44); }),
      kv("medium", [](MsgpackWriter& w) { w.str("DISK"); }),
  };
  std::vector<size_t> order = {0, 1, 2};
  do {
    KvEventBatch b;
    ASSERT_EQ(parse(map_event({fields[order[0]], fields[order[1]], fields[order[2]]}), &b), KvEventError::kOk);
    EXPECT_EQ(b.events[0].kind, KvEventKind::kRemoved);
    EXPECT_EQ(b.events[0].block_hashes, std::vector<int64_t>{44});
    EXPECT_FALSE(b.events[0].gpu_medium);
  } while (std::next_permutation(order.begin(), order.end()));
}

// Keys a consumer does not know (cache_salt, session_id, lora_name today; anything later),
// with values of every type, anywhere in the map.
TEST(KvEventsMap, UnknownKeysAreSkippedAnywhere) {
  const std::vector<Entry> unknown = {
      kv("cache_salt", [](MsgpackWriter& w) { w.str("salt"); }),
      kv("session_id", [](MsgpackWriter& w) { w.nil(); }),
      kv("lora_name", [](MsgpackWriter& w) { w.str("adapter-a"); }),
      kv("extra", [](MsgpackWriter& w) { w.map(2).str("a").array(2).f64(1).bin("x").int_(3).raw(0xd4).raw(1).raw(2); }),
      kv("", [](MsgpackWriter& w) { w.boolean(true); }),
      kv("Block_hashes", [](MsgpackWriter& w) { w.str("not the field: keys are case-sensitive"); }),
  };
  std::mt19937 rng(7);
  for (int iter = 0; iter < 500; iter++) {
    std::vector<Entry> entries = full_stored();
    std::shuffle(entries.begin(), entries.end(), rng);
    for (const Entry& u : unknown) {
      if (rng() % 2) entries.insert(entries.begin() + rng() % (entries.size() + 1), u);
    }
    KvEventBatch b;
    ASSERT_EQ(parse(map_event(entries), &b), KvEventError::kOk) << "iteration " << iter;
    expect_full_stored(b.events[0]);
  }
  // The same key twice is fine when it is not a field.
  const auto twice =
      map_event({kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); }),
                 kv("x", [](MsgpackWriter& w) { w.int_(1); }), kv("x", [](MsgpackWriter& w) { w.int_(2); })});
  EXPECT_EQ(parse(twice), KvEventError::kOk);
}

// A key that is a field of another kind of event is just an unknown key: its value, however
// wrong for that field, is skipped.
TEST(KvEventsMap, FieldsOfOtherKindsAreUnknownKeys) {
  KvEventBatch b;
  ASSERT_EQ(parse(map_event({kv("block_hashes", [](MsgpackWriter& w) { w.str("junk"); }),
                             kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); }),
                             kv("medium", [](MsgpackWriter& w) { w.int_(3); })}),
                  &b),
            KvEventError::kOk);
  EXPECT_EQ(b.events[0].kind, KvEventKind::kCleared);
  EXPECT_TRUE(b.events[0].block_hashes.empty());
  ASSERT_EQ(parse(map_event({kv("type", [](MsgpackWriter& w) { w.str("BlockRemoved"); }),
                             kv("token_ids", [](MsgpackWriter& w) { w.nil(); }),
                             kv("block_size", [](MsgpackWriter& w) { w.int_(0); }),
                             kv("parent_block_hash", [](MsgpackWriter& w) { w.str("p"); }),
                             kv("block_hashes", [](MsgpackWriter& w) { w.array(1).int_(3); })}),
                  &b),
            KvEventError::kOk);
  EXPECT_EQ(b.events[0].kind, KvEventKind::kRemoved);
  EXPECT_EQ(b.events[0].block_hashes, std::vector<int64_t>{3});
  EXPECT_TRUE(b.events[0].token_ids.empty());
  EXPECT_FALSE(b.events[0].has_parent);
}

// msgspec omits optional fields left at None (medium; cache_salt and the like) and a hand-written
// producer may omit parent_block_hash and lora_id too: absent reads as nil, medium nil as GPU.
TEST(KvEventsMap, MissingOptionalKeysAreNil) {
  const std::vector<Entry> all = full_stored();
  // Drop parent (2), lora_id (5), medium (6) in every combination.
  for (int mask = 0; mask < 8; mask++) {
    std::vector<Entry> entries;
    for (size_t i = 0; i < all.size(); i++) {
      if ((i == 2 && (mask & 1)) || (i == 5 && (mask & 2)) || (i == 6 && (mask & 4))) continue;
      entries.push_back(all[i]);
    }
    KvEventBatch b;
    ASSERT_EQ(parse(map_event(entries), &b), KvEventError::kOk) << "mask " << mask;
    const KvEvent& e = b.events[0];
    EXPECT_EQ(e.has_parent, !(mask & 1));
    EXPECT_EQ(e.parent_hash, (mask & 1) ? 0 : INT64_MIN);
    EXPECT_EQ(e.has_lora_id, !(mask & 2));
    EXPECT_EQ(e.gpu_medium, (mask & 4) != 0);
    EXPECT_EQ(e.token_ids.size(), 4u);
  }
  KvEventBatch b;
  ASSERT_EQ(parse(map_event({kv("type", [](MsgpackWriter& w) { w.str("BlockRemoved"); }),
                             kv("block_hashes", [](MsgpackWriter& w) { w.array(0); })}),
                  &b),
            KvEventError::kOk);
  EXPECT_TRUE(b.events[0].gpu_medium);
  // Explicit nils read as absent.
  ASSERT_EQ(parse(map_event({kv("type", [](MsgpackWriter& w) { w.str("BlockStored"); }),
                             kv("block_hashes", [](MsgpackWriter& w) { w.array(1).int_(1); }),
                             kv("parent_block_hash", [](MsgpackWriter& w) { w.nil(); }),
                             kv("token_ids", [](MsgpackWriter& w) { w.array(1).int_(1); }),
                             kv("block_size", [](MsgpackWriter& w) { w.int_(1); }),
                             kv("lora_id", [](MsgpackWriter& w) { w.nil(); }),
                             kv("medium", [](MsgpackWriter& w) { w.nil(); })}),
                  &b),
            KvEventError::kOk);
  EXPECT_FALSE(b.events[0].has_parent);
  EXPECT_FALSE(b.events[0].has_lora_id);
  EXPECT_TRUE(b.events[0].gpu_medium);
}

TEST(KvEventsMap, MissingRequiredKeysAndRepeatedFieldsAreBadShape) {
  const std::vector<Entry> all = full_stored();
  // Without block_hashes (1), token_ids (3) or block_size (4).
  for (size_t drop : {size_t{1}, size_t{3}, size_t{4}}) {
    std::vector<Entry> entries = all;
    entries.erase(entries.begin() + static_cast<std::ptrdiff_t>(drop));
    EXPECT_EQ(parse(map_event(entries)), KvEventError::kBadShape) << "without field " << drop;
  }
  for (size_t twice = 0; twice < all.size(); twice++) {
    std::vector<Entry> entries = all;
    entries.push_back(all[twice]);
    EXPECT_EQ(parse(map_event(entries)), KvEventError::kBadShape) << "field " << twice << " twice";
  }
  EXPECT_EQ(parse(map_event({kv("type", [](MsgpackWriter& w) { w.str("BlockRemoved"); })})), KvEventError::kBadShape);
  EXPECT_EQ(parse(map_event({kv("block_hashes", [](MsgpackWriter& w) { w.array(0); })})), KvEventError::kBadShape);
  EXPECT_EQ(parse(map_event({})), KvEventError::kBadShape);
  EXPECT_EQ(parse(map_event({kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); }),
                             kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); })})),
            KvEventError::kBadShape);
}

TEST(KvEventsMap, UnknownEventTag) {
  for (const char* tag : {"BlockStoredX", "blockstored", "", "KVCacheEvent", "BlockStoredWithMetadata"}) {
    EXPECT_EQ(parse(map_event({kv("type", [tag](MsgpackWriter& w) { w.str(tag); })})), KvEventError::kUnknownEvent)
        << tag;
  }
}

TEST(KvEventsMap, WrongTypes) {
  auto stored_with = [](size_t field, std::function<void(MsgpackWriter&)> value) {
    std::vector<Entry> entries = full_stored();
    entries[field].second = std::move(value);
    return map_event(entries);
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  const Case cases[] = {
      {"type is an int", map_event({kv("type", [](MsgpackWriter& w) { w.int_(1); })})},
      {"type is bin", map_event({kv("type", [](MsgpackWriter& w) { w.bin("BlockRemoved"); })})},
      {"type is nil", map_event({kv("type", [](MsgpackWriter& w) { w.nil(); })})},
      {"key is an int",
       map_event({{[](MsgpackWriter& w) { w.int_(0); }, [](MsgpackWriter& w) { w.str("BlockStored"); }}})},
      {"key after the tag is nil", map_event({kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); }),
                                              {[](MsgpackWriter& w) { w.nil(); }, [](MsgpackWriter& w) { w.nil(); }}})},
      {"key is bin",
       map_event({{[](MsgpackWriter& w) { w.bin("type"); }, [](MsgpackWriter& w) { w.str("BlockStored"); }}})},
      {"hashes nil", stored_with(1, [](MsgpackWriter& w) { w.nil(); })},
      {"hash is a float", stored_with(1, [](MsgpackWriter& w) { w.array(1).f64(1); })},
      {"parent is a string", stored_with(2, [](MsgpackWriter& w) { w.str("p"); })},
      {"tokens is a map", stored_with(3, [](MsgpackWriter& w) { w.map(0); })},
      {"token is a string", stored_with(3, [](MsgpackWriter& w) { w.array(1).str("a"); })},
      {"block_size nil", stored_with(4, [](MsgpackWriter& w) { w.nil(); })},
      {"block_size float", stored_with(4, [](MsgpackWriter& w) { w.f64(16); })},
      {"lora_id is a string", stored_with(5, [](MsgpackWriter& w) { w.str("l"); })},
      {"medium is an int", stored_with(6, [](MsgpackWriter& w) { w.int_(0); })},
      {"reserved byte as a value", stored_with(6, [](MsgpackWriter& w) { w.raw(0xc1); })},
      {"events entry is a string", one_event([](MsgpackWriter& w) { w.str("BlockStored"); })},
  };
  for (const Case& c : cases) EXPECT_EQ(parse(c.bytes), KvEventError::kBadType) << c.what;
  // SGLang's batch stays an array in every version; a map batch is not one.
  MsgpackWriter map_batch;
  map_batch.map(2).str("ts").f64(1).str("events").array(0);
  EXPECT_EQ(parse(map_batch.bytes), KvEventError::kBadType);
}

TEST(KvEventsMap, ValuesOutOfRangeAndLimits) {
  auto stored_with = [](size_t field, std::function<void(MsgpackWriter&)> value) {
    std::vector<Entry> entries = full_stored();
    entries[field].second = std::move(value);
    return map_event(entries);
  };
  EXPECT_EQ(parse(stored_with(4, [](MsgpackWriter& w) { w.int_(0); })), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored_with(4, [](MsgpackWriter& w) { w.int_(kvgate::kMaxBlockSize + 1); })),
            KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored_with(4, [](MsgpackWriter& w) { w.int_(kvgate::kMaxBlockSize); })), KvEventError::kOk);
  EXPECT_EQ(parse(stored_with(3, [](MsgpackWriter& w) { w.array(1).int_(-1); })), KvEventError::kLimitExceeded);
  EXPECT_EQ(parse(stored_with(3, [](MsgpackWriter& w) { w.array(1).uint_(uint64_t{UINT32_MAX} + 1); })),
            KvEventError::kLimitExceeded);
  // Token and hash counts above the limits.
  for (bool tokens : {false, true}) {
    const uint32_t over = (tokens ? kvgate::kMaxKvEventTokens : kvgate::kMaxKvEventHashes) + 1;
    const auto bytes = stored_with(tokens ? 3 : 1, [over](MsgpackWriter& w) {
      w.array32(over);
      w.bytes.resize(w.bytes.size() + over, 0x01);
    });
    EXPECT_EQ(parse(bytes), KvEventError::kLimitExceeded) << (tokens ? "tokens" : "hashes");
  }
  // Nesting in an unknown key's value, whether it comes before the tag or after it.
  for (bool before : {false, true}) {
    auto nested = [before](uint32_t depth) {
      std::vector<Entry> entries = {kv("type", [](MsgpackWriter& w) { w.str("AllBlocksCleared"); })};
      Entry deep = kv("deep", [depth](MsgpackWriter& w) {
        for (uint32_t i = 0; i < depth; i++) w.map(1).str("k");
        w.nil();
      });
      entries.insert(before ? entries.begin() : entries.end(), deep);
      return map_event(entries);
    };
    EXPECT_EQ(parse(nested(kvgate::kMaxKvEventDepth - 3)), KvEventError::kOk) << before;
    EXPECT_EQ(parse(nested(kvgate::kMaxKvEventDepth - 2)), KvEventError::kLimitExceeded) << before;
    EXPECT_EQ(parse(nested(100000)), KvEventError::kLimitExceeded) << before;
  }
}

TEST(KvEventsMap, HugeDeclaredLengthsFailFast) {
  const std::vector<std::vector<uint8_t>> cases = {
      one_event([](MsgpackWriter& w) { w.raw(0xdf).be(0xffffffffu, 4).str("type").str("AllBlocksCleared"); }),
      one_event([](MsgpackWriter& w) { w.raw(0xde).be(0xffff, 2).str("type").str("AllBlocksCleared"); }),
      // 2 entries declared, 3 bytes left: each entry takes two bytes at least.
      one_event([](MsgpackWriter& w) { w.map(2).raw(0xa0).raw(0xc0).raw(0xa0); }),
      one_event([](MsgpackWriter& w) {
        w.map(2).str("type").str("BlockRemoved").str("block_hashes").array32(0xfffffff0u).int_(1);
      }),
      one_event([](MsgpackWriter& w) { w.map(1).raw(0xdb).be(0xffffffffu, 4).raw('t'); }),
  };
  for (size_t i = 0; i < cases.size(); i++) EXPECT_EQ(parse(cases[i]), KvEventError::kTruncated) << "case " << i;
}

// Array and map events in one batch (a consumer does not know which version sent it).
TEST(KvEventsMap, MixedWithArrayEvents) {
  MsgpackWriter w;
  w.array(3).f64(4.0).array(3);
  w.map(3).str("type").str("BlockRemoved").str("block_hashes").array(1).int_(1).str("medium").str("GPU");
  w.array(3).str("BlockRemoved").array(1).int_(2).str("DISK");
  w.map(1).str("type").str("AllBlocksCleared");
  w.int_(5);
  KvEventBatch b;
  ASSERT_EQ(parse(w.bytes, &b), KvEventError::kOk);
  ASSERT_EQ(b.events.size(), 3u);
  EXPECT_EQ(b.events[0].block_hashes, std::vector<int64_t>{1});
  EXPECT_TRUE(b.events[0].gpu_medium);
  EXPECT_EQ(b.events[1].block_hashes, std::vector<int64_t>{2});
  EXPECT_FALSE(b.events[1].gpu_medium);
  EXPECT_EQ(b.events[2].kind, KvEventKind::kCleared);
  EXPECT_EQ(b.dp_rank, 5);
}

// A reused batch object holds nothing over from a previous map or array parse.
TEST(KvEventsMap, ReusedBatchIsFullyOverwritten) {
  KvEventBatch b;
  ASSERT_EQ(parse(from_hex(kSglang0523Hex), &b), KvEventError::kOk);
  // Events in the other order: a stored event now lands where a removed one was, and so on.
  KvEventBatch reversed = sglang_0523_expected();
  std::reverse(reversed.events.begin(), reversed.events.end());
  ASSERT_EQ(parse(kvgate::test::encode_batch_map(reversed), &b), KvEventError::kOk);
  EXPECT_TRUE(kvgate::test::same_batch(b, reversed));
  ASSERT_EQ(parse(kvgate::test::encode_batch(reversed), &b), KvEventError::kOk);
  EXPECT_TRUE(kvgate::test::same_batch(b, reversed));
}

// Random batches in map form, with keys shuffled, unknown keys mixed in and nil optionals
// left out at random, parse to what their array form parses to.
TEST(KvEventsMap, RandomMapAndArrayFormsAgree) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 500; iter++) {
    const KvEventBatch in = random_batch(rng);
    MsgpackWriter w;
    w.array(3).f64(in.ts).array(in.events.size());
    for (const KvEvent& e : in.events) {
      std::vector<Entry> entries;
      const char* tag = e.kind == KvEventKind::kStored    ? "BlockStored"
                        : e.kind == KvEventKind::kRemoved ? "BlockRemoved"
                                                          : "AllBlocksCleared";
      entries.push_back(kv("type", [tag](MsgpackWriter& v) { v.str(tag); }));
      if (e.kind != KvEventKind::kCleared) {
        entries.push_back(kv("block_hashes", [&e](MsgpackWriter& v) {
          v.array(e.block_hashes.size());
          for (int64_t h : e.block_hashes) v.int_(h);
        }));
        if (!e.gpu_medium)
          entries.push_back(kv("medium", [](MsgpackWriter& v) { v.str("EXTERNAL"); }));
        else if (rng() % 2)
          entries.push_back(kv("medium", [](MsgpackWriter& v) { v.str("GPU"); }));
      }
      if (e.kind == KvEventKind::kStored) {
        if (e.has_parent)
          entries.push_back(kv("parent_block_hash", [&e](MsgpackWriter& v) { v.int_(e.parent_hash); }));
        else if (rng() % 2)
          entries.push_back(kv("parent_block_hash", [](MsgpackWriter& v) { v.nil(); }));
        entries.push_back(kv("token_ids", [&e](MsgpackWriter& v) {
          v.array(e.token_ids.size());
          for (uint32_t t : e.token_ids) v.uint_(t);
        }));
        entries.push_back(kv("block_size", [&e](MsgpackWriter& v) { v.uint_(e.block_size); }));
        if (e.has_lora_id)
          entries.push_back(kv("lora_id", [&e](MsgpackWriter& v) { v.int_(e.lora_id); }));
        else if (rng() % 2)
          entries.push_back(kv("lora_id", [](MsgpackWriter& v) { v.nil(); }));
      }
      if (rng() % 2) entries.push_back(kv("cache_salt", [](MsgpackWriter& v) { v.str("s"); }));
      if (rng() % 4 == 0) entries.push_back(kv("session_id", [](MsgpackWriter& v) { v.array(2).int_(1).map(0); }));
      // msgspec writes the tag first; other producers need not.
      if (rng() % 2) std::shuffle(entries.begin(), entries.end(), rng);
      w.map(entries.size());
      for (const Entry& x : entries) {
        x.first(w);
        x.second(w);
      }
    }
    if (in.has_dp_rank)
      w.int_(in.dp_rank);
    else
      w.nil();

    KvEventBatch from_map, from_array;
    ASSERT_EQ(parse(w.bytes, &from_map), KvEventError::kOk) << "iteration " << iter;
    ASSERT_EQ(parse(kvgate::test::encode_batch(in), &from_array), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(in, from_map)) << "iteration " << iter;
    ASSERT_TRUE(kvgate::test::same_batch(from_array, from_map)) << "iteration " << iter;
    KvEventBatch canonical;
    ASSERT_EQ(parse(kvgate::test::encode_batch_map(in), &canonical), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(in, canonical)) << "iteration " << iter;
  }
}

// Byte mutations of SGLang 0.5.23's bytes: never a crash, and whatever parses re-encodes (in
// both forms) to a batch that parses the same.
TEST(KvEventsMap, RandomMutationsNeverCrash) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  const std::vector<uint8_t> base = from_hex(kSglang0523Hex);
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; iter++) {
    const std::vector<uint8_t> bytes = mutated(base, rng);
    KvEventBatch out;
    if (parse(bytes, &out) != KvEventError::kOk) continue;
    accepted++;
    KvEventBatch again;
    ASSERT_EQ(parse(kvgate::test::encode_batch_map(out), &again), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(out, again));
    ASSERT_EQ(parse(kvgate::test::encode_batch(out), &again), KvEventError::kOk);
    ASSERT_TRUE(kvgate::test::same_batch(out, again));
  }
  EXPECT_GT(accepted, 0u);
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
