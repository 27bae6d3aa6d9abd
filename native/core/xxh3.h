// XXH3-64, written from the xxHash specification (doc/xxhash_spec.md, "XXH3").
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvgate {

// Hash `len` bytes at `data` with `seed`. Equal to XXH3_64bits_withSeed.
uint64_t xxh3_64(const void* data, size_t len, uint64_t seed);

// The code that runs XXH3's long path (inputs over 240 bytes): portable scalar code, or
// x86-64 AVX2 or AVX-512 (F) code, all with the same results. xxh3_64 uses the fastest this
// CPU supports, chosen once at run time; the others are there for tests and benchmarks.
enum class Xxh3Path : uint8_t { kScalar, kAvx2, kAvx512 };

// Whether this CPU (and build) runs `path`. kScalar always.
bool xxh3_path_supported(Xxh3Path path);

// The path xxh3_64 takes.
Xxh3Path xxh3_best_path();

// xxh3_64 on `path` (the scalar one when this CPU does not support `path`).
uint64_t xxh3_64_on(Xxh3Path path, const void* data, size_t len, uint64_t seed);

}  // namespace kvgate
