// libFuzzer target: every code path of the project's XXH3-64 (scalar, and AVX2 / AVX-512 where
// the CPU has them) against the naive transcription of the specification in
// tests/xxh3_reference.h. Input: the first 8 bytes are the seed, the rest is the message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/xxh3.h"
#include "tests/xxh3_reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t seed = 0;
  if (size >= 8) {
    seed = kvgate::test::xxh3_ref::le(data, 8);
    data += 8;
    size -= 8;
  }
  // A copy at an odd address checks that loads do not depend on alignment.
  std::vector<uint8_t> shifted(size + 1);
  for (size_t i = 0; i < size; i++) shifted[i + 1] = data[i];
  const uint64_t want = kvgate::test::xxh3_ref::xxh3_64(data, size, seed);
  if (kvgate::xxh3_64(data, size, seed) != want) std::abort();
  for (kvgate::Xxh3Path path : {kvgate::Xxh3Path::kScalar, kvgate::Xxh3Path::kAvx2, kvgate::Xxh3Path::kAvx512}) {
    if (!kvgate::xxh3_path_supported(path)) continue;
    if (kvgate::xxh3_64_on(path, data, size, seed) != want) std::abort();
    if (kvgate::xxh3_64_on(path, shifted.data() + 1, size, seed) != want) std::abort();
  }
  return 0;
}
