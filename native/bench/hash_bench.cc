// Hashing and KV-event decoding throughput (Google Benchmark; `npm run bench:native`).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "core/block_hash.h"
#include "core/kv_events.h"
#include "core/xxh3.h"
#include "tests/msgpack_writer.h"

namespace {

std::vector<uint32_t> request_tokens(size_t n) {
  std::vector<uint32_t> t(n);
  uint32_t x = 12345;
  for (auto& v : t) {
    x = x * 1664525u + 1013904223u;
    v = x % 152000;  // a Qwen-sized vocabulary
  }
  return t;
}

// XXH3-64 over `range(0)` bytes; bytes/s is the GB/s figure.
void BM_Xxh3(benchmark::State& state) {
  const size_t len = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; i++) data[i] = static_cast<uint8_t>(i * 131);
  uint64_t seed = 1337;
  for (auto _ : state) {
    seed = kvgate::xxh3_64(data.data(), len, seed);  // chained so calls cannot overlap
    benchmark::DoNotOptimize(seed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}
BENCHMARK(BM_Xxh3)
    ->Arg(8)
    ->Arg(16)
    ->Arg(64)
    ->Arg(128)
    ->Arg(129)
    ->Arg(200)
    ->Arg(240)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(16384)
    ->Arg(65536)
    ->Arg(1 << 20);

// XXH3-64's long path over `range(0)` bytes on each code path (scalar, AVX2, AVX-512) this
// CPU runs; xxh3_64 takes the fastest.
void BM_Xxh3Path(benchmark::State& state) {
  const auto path = static_cast<kvgate::Xxh3Path>(state.range(1));
  if (!kvgate::xxh3_path_supported(path)) {
    state.SkipWithError("this CPU does not run this path");
    return;
  }
  const size_t len = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; i++) data[i] = static_cast<uint8_t>(i * 131);
  uint64_t seed = 1337;
  for (auto _ : state) {
    seed = kvgate::xxh3_64_on(path, data.data(), len, seed);
    benchmark::DoNotOptimize(seed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}
BENCHMARK(BM_Xxh3Path)->ArgNames({"bytes", "path"})->ArgsProduct({{2048, 65536}, {0, 1, 2}});

// Local hashes of a request of `tokens` tokens at `block_size`.
void block_hashes(benchmark::State& state, size_t n, uint32_t block_size) {
  const std::vector<uint32_t> tokens = request_tokens(n);
  std::vector<uint64_t> local(n / block_size);
  for (auto _ : state) {
    benchmark::DoNotOptimize(kvgate::compute_block_hashes(tokens.data(), tokens.size(), block_size, local.data()));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tokens.size() * sizeof(uint32_t)));
  state.counters["blocks/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * local.size()), benchmark::Counter::kIsRate);
}
// A 4,096-token request at block size 16 (256 blocks of 64 bytes: XXH3's 17-128 byte path).
void BM_BlockHashes4096x16(benchmark::State& state) { block_hashes(state, 4096, 16); }
BENCHMARK(BM_BlockHashes4096x16);
// A Mooncake-shaped request: 12,288 tokens at block size 512 (24 blocks of 2 KiB: the long path).
void BM_BlockHashes12288x512(benchmark::State& state) { block_hashes(state, 12288, 512); }
BENCHMARK(BM_BlockHashes12288x512);

// Sequence hashes of those 256 blocks.
void BM_SequenceHashes256(benchmark::State& state) {
  const std::vector<uint32_t> tokens = request_tokens(4096);
  std::vector<uint64_t> local(256), seq(256);
  kvgate::compute_block_hashes(tokens.data(), tokens.size(), 16, local.data());
  for (auto _ : state) {
    kvgate::compute_sequence_hashes(local.data(), local.size(), seq.data());
    benchmark::ClobberMemory();
  }
  state.counters["hashes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 256), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SequenceHashes256);

// Both, one after the other: the whole hashing cost of a request.
void request_hashes(benchmark::State& state, size_t n, uint32_t block_size) {
  const std::vector<uint32_t> tokens = request_tokens(n);
  std::vector<uint64_t> local(n / block_size), seq(n / block_size);
  for (auto _ : state) {
    const size_t count = kvgate::compute_block_hashes(tokens.data(), tokens.size(), block_size, local.data());
    kvgate::compute_sequence_hashes(local.data(), count, seq.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tokens.size() * sizeof(uint32_t)));
}
void BM_RequestHashes4096x16(benchmark::State& state) { request_hashes(state, 4096, 16); }
BENCHMARK(BM_RequestHashes4096x16);
void BM_RequestHashes12288x512(benchmark::State& state) { request_hashes(state, 12288, 512); }
BENCHMARK(BM_RequestHashes12288x512);

// The same in one pass (compute_prompt_hashes: what the router's hash_prompt runs).
void prompt_hashes(benchmark::State& state, size_t n, uint32_t block_size) {
  const std::vector<uint32_t> tokens = request_tokens(n);
  std::vector<uint64_t> seq(n / block_size);
  for (auto _ : state) {
    kvgate::compute_prompt_hashes(tokens.data(), seq.size(), block_size, nullptr, seq.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * tokens.size() * sizeof(uint32_t)));
}
void BM_PromptHashes4096x16(benchmark::State& state) { prompt_hashes(state, 4096, 16); }
BENCHMARK(BM_PromptHashes4096x16);
void BM_PromptHashes12288x512(benchmark::State& state) { prompt_hashes(state, 12288, 512); }
BENCHMARK(BM_PromptHashes12288x512);

// An SGLang batch of `pages` BlockStored events, one page of 16 tokens each (as one
// 4,096-token prefill at page size 16 sends them): array events (SGLang <= 0.5.19) or
// tagged-map events as msgspec writes them (0.5.20 on: "type" first, medium "GPU").
std::vector<uint8_t> stored_pages_batch(int64_t pages, bool map) {
  const std::vector<uint32_t> tokens = request_tokens(static_cast<size_t>(pages) * 16);
  kvgate::test::MsgpackWriter w;
  w.array(3).f64(1.7e9).array(static_cast<uint64_t>(pages));
  for (int64_t p = 0; p < pages; p++) {
    if (map)
      w.map(7).str("type");
    else
      w.array(7);
    w.str("BlockStored");
    if (map) w.str("block_hashes");
    w.array(1).int_(-4000000000000000000LL + p);
    if (map) w.str("parent_block_hash");
    if (p == 0)
      w.nil();
    else
      w.int_(-4000000000000000000LL + p - 1);
    if (map) w.str("token_ids");
    w.array(16);
    for (int i = 0; i < 16; i++) w.uint_(tokens[static_cast<size_t>(p * 16 + i)]);
    if (map) w.str("block_size");
    w.int_(16);
    if (map) w.str("lora_id");
    w.nil();
    if (map) w.str("medium");
    w.str("GPU");
  }
  w.int_(0);
  return w.bytes;
}

// Decoding a batch of `range(0)` pages into a reused batch object.
void parse_batch(benchmark::State& state, bool map) {
  const int64_t pages = state.range(0);
  const std::vector<uint8_t> bytes = stored_pages_batch(pages, map);
  kvgate::KvEventBatch batch;
  for (auto _ : state) {
    if (kvgate::parse_kv_event_batch(bytes.data(), bytes.size(), &batch) != kvgate::KvEventError::kOk) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(batch.events.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * pages), benchmark::Counter::kIsRate);
}
void BM_ParseKvEventBatch(benchmark::State& state) { parse_batch(state, false); }
void BM_ParseKvEventBatchMap(benchmark::State& state) { parse_batch(state, true); }
BENCHMARK(BM_ParseKvEventBatch)->Arg(1)->Arg(256);
BENCHMARK(BM_ParseKvEventBatchMap)->Arg(1)->Arg(256);

}  // namespace
