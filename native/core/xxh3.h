// XXH3-64, written from the xxHash specification (doc/xxhash_spec.md, "XXH3").
#pragma once
#include <cstddef>
#include <cstdint>

namespace kvgate {

// Hash `len` bytes at `data` with `seed`. Equal to XXH3_64bits_withSeed.
uint64_t xxh3_64(const void* data, size_t len, uint64_t seed);

}  // namespace kvgate
