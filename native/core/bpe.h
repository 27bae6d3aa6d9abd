// A byte-level BPE encoder for HF tokenizer.json files of the GPT-2 / Llama-3 / Qwen2 family,
// written from the algorithm's description (HF tokenizers' BPE model, GPT-2's byte-level
// alphabet): added tokens are split off first (leftmost, longest), each remaining segment is
// cut into pieces by a hand-coded pre-tokenizer pattern, and each piece's bytes are merged by
// rank. Normalization (NFC) is the caller's: it applies per segment, between added tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/flat_map.h"

namespace kvgate {

// The pre-tokenizer regexes this encoder implements, each recognised by its exact text.
enum class BpePattern {
  kQwen2,   // Qwen2/Qwen3 Split regex: one digit per piece
  kLlama3,  // Llama-3 Split regex: digits in runs of up to three
  kGpt2,    // ByteLevel(use_regex: true): GPT-2's pattern, case-sensitive contractions
};

// The pattern `regex` is, or false if it is none of the above.
bool bpe_pattern_from_regex(const std::string& regex, BpePattern* out);
// The GPT-2 pattern's text (what ByteLevel(use_regex: true) uses).
const char* bpe_gpt2_regex();

enum class BpeError { kOk, kBadUtf8 };

struct BpeSpec {
  // Tokens by id in GPT-2's byte-level alphabet ("" for an unused id).
  std::vector<std::string> vocab;
  // Merges by rank as "left right" in the same alphabet.
  std::vector<std::string> merges;
  // Added tokens (raw UTF-8 content, id), split off the text before the pre-tokenizer.
  std::vector<std::pair<std::string, uint32_t>> added;
  BpePattern pattern = BpePattern::kQwen2;
  bool ignore_merges = false;  // a piece that is itself a token is that token
};

class BpeEncoder {
 public:
  // Null with `*error` set when the spec is not a byte-level BPE this encoder can run
  // (a token outside the byte-level alphabet, a merge of unknown tokens, a missing byte).
  static std::unique_ptr<BpeEncoder> create(const BpeSpec& spec, std::string* error);

  // Appends the ids of `len` bytes of UTF-8 text to `out`. With `split_added`, added tokens
  // in the text become their ids; without, the text is one segment. kBadUtf8 (and `out`
  // unspecified) when the text is not valid UTF-8. Not thread-safe: it reuses scratch space.
  BpeError encode(const uint8_t* text, size_t len, bool split_added, std::vector<uint32_t>* out);

  // The pre-tokenizer's pieces of `len` bytes of UTF-8 text (no added tokens), for tests.
  BpeError pieces(const uint8_t* text, size_t len, std::vector<std::string>* out);

  size_t cached_words() const { return cache_index_.size(); }

 private:
  BpeEncoder() = default;
  void encode_segment(const uint8_t* text, size_t len, std::vector<uint32_t>* out);
  void decode_segment(const uint8_t* text, size_t len);
  void encode_piece(const uint8_t* bytes, size_t len, std::vector<uint32_t>* out);
  void merge_piece(const uint8_t* bytes, size_t len, std::vector<uint32_t>* out);
  size_t piece_end(size_t i) const;
  void cache_put(const uint8_t* bytes, size_t len, uint64_t hash, const uint32_t* ids, size_t n);

  uint32_t byte_id_[256] = {};
  U64Map merge_rank_;                                    // (left << 32 | right) → rank
  std::vector<uint32_t> merged_;                         // rank → id of the merged token
  U64Map whole_;                                         // ignore_merges: hash of a token's bytes → id
  std::vector<std::string> bytes_;                       // ignore_merges: id → bytes, to confirm a hash hit
  std::vector<std::pair<std::string, uint32_t>> added_;  // longest first
  bool added_first_[256] = {};
  BpePattern pattern_ = BpePattern::kQwen2;
  bool ignore_merges_ = false;

  // Word cache: hash of a piece's bytes → entry; cleared whole when it grows past its bound.
  struct CacheEntry {
    uint32_t bytes_at, bytes_len, ids_at, ids_len;
  };
  U64Map cache_index_;
  std::vector<CacheEntry> cache_entries_;
  std::vector<uint8_t> cache_bytes_;
  std::vector<uint32_t> cache_ids_;

  // Scratch, reused across calls: the segment's code points, classes and byte offsets.
  std::vector<uint32_t> cps_;
  std::vector<uint8_t> cls_;
  std::vector<uint32_t> offs_;
  struct Symbol {
    uint32_t id;
    int32_t prev, next;
    uint32_t len;  // 0: merged into its left neighbour
  };
  struct Candidate {
    uint32_t rank, pos, id;
  };
  std::vector<Symbol> syms_;
  std::vector<Candidate> heap_;
};

}  // namespace kvgate
