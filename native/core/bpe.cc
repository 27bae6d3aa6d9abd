#include "core/bpe.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>

#include "core/unicode_classes.h"
#include "core/xxh3.h"

namespace kvgate {
namespace {

const char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kGpt2Regex[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Words longer than this are merged every time (long runs are rare and would crowd out the
// cache); the cache is cleared when its arenas pass kCacheBytes.
constexpr size_t kMaxCachedWord = 128;
constexpr size_t kCacheBytes = 8u << 20;

CharClass class_in_ranges(uint32_t cp) {
  const CharRange* end = kCharRanges + sizeof kCharRanges / sizeof kCharRanges[0];
  const CharRange* r =
      std::upper_bound(kCharRanges, end, cp, [](uint32_t c, const CharRange& x) { return c < x.first; });
  return r != kCharRanges && cp <= (r - 1)->last ? (r - 1)->cls : kOther;
}

// Most text is ASCII: a table for it, a binary search of the ranges for the rest.
CharClass class_of(uint32_t cp) {
  static const auto ascii = [] {
    std::array<CharClass, 128> t{};
    for (uint32_t c = 0; c < 128; c++) t[c] = class_in_ranges(c);
    return t;
  }();
  return cp < 128 ? ascii[cp] : class_in_ranges(cp);
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68
// bytes for U+0100.. in byte order. Fills code point → byte (-1 when not in the alphabet).
void byte_level_decoder(int16_t (&cp_to_byte)[324]) {
  std::fill(std::begin(cp_to_byte), std::end(cp_to_byte), int16_t{-1});
  int extra = 0;
  for (int b = 0; b < 256; b++) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    cp_to_byte[printable ? b : 256 + extra++] = static_cast<int16_t>(b);
  }
}

// Decodes one UTF-8 character at p (strict: no overlongs, surrogates or > U+10FFFF).
// Returns its length, 0 if invalid.
size_t utf8_decode(const uint8_t* p, size_t avail, uint32_t* cp) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t n;
  uint32_t min;
  if ((b0 & 0xe0) == 0xc0) {
    n = 2, min = 0x80, *cp = b0 & 0x1f;
  } else if ((b0 & 0xf0) == 0xe0) {
    n = 3, min = 0x800, *cp = b0 & 0x0f;
  } else if ((b0 & 0xf8) == 0xf0) {
    n = 4, min = 0x10000, *cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (avail < n) return 0;
  for (size_t k = 1; k < n; k++) {
    if ((p[k] & 0xc0) != 0x80) return 0;
    *cp = (*cp << 6) | (p[k] & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
  return n;
}

bool valid_utf8(const uint8_t* text, size_t len) {
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    const size_t n = utf8_decode(text + i, len - i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A token in the byte-level alphabet → its raw bytes; false if it is not in the alphabet.
bool byte_level_bytes(const std::string& token, const int16_t (&cp_to_byte)[324], std::string* out) {
  out->clear();
  const auto* p = reinterpret_cast<const uint8_t*>(token.data());
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    const size_t n = utf8_decode(p + i, token.size() - i, &cp);
    if (n == 0 || cp >= 324 || cp_to_byte[cp] < 0) return false;
    out->push_back(static_cast<char>(cp_to_byte[cp]));
    i += n;
  }
  return true;
}

uint64_t pair_key(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }

bool is_newline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

}  // namespace

bool bpe_pattern_from_regex(const std::string& regex, BpePattern* out) {
  if (regex == kQwen2Regex) {
    *out = BpePattern::kQwen2;
  } else if (regex == kLlama3Regex) {
    *out = BpePattern::kLlama3;
  } else if (regex == kGpt2Regex) {
    *out = BpePattern::kGpt2;
  } else {
    return false;
  }
  return true;
}

const char* bpe_gpt2_regex() { return kGpt2Regex; }

std::unique_ptr<BpeEncoder> BpeEncoder::create(const BpeSpec& spec, std::string* error) {
  std::unique_ptr<BpeEncoder> e(new BpeEncoder());
  e->pattern_ = spec.pattern;
  e->ignore_merges_ = spec.ignore_merges;
  int16_t cp_to_byte[324];
  byte_level_decoder(cp_to_byte);

  // Token bytes → id, to resolve merges (and for ignore_merges).
  std::vector<std::string> bytes(spec.vocab.size());
  U64Map by_hash;
  bool have_byte[256] = {};
  for (size_t id = 0; id < spec.vocab.size(); id++) {
    if (spec.vocab[id].empty()) continue;
    if (!byte_level_bytes(spec.vocab[id], cp_to_byte, &bytes[id])) {
      *error = "token " + std::to_string(id) + " is not in the byte-level alphabet";
      return nullptr;
    }
    by_hash.put(xxh3_64(bytes[id].data(), bytes[id].size(), 0), static_cast<uint32_t>(id));
    if (bytes[id].size() == 1) {
      const auto b = static_cast<uint8_t>(bytes[id][0]);
      e->byte_id_[b] = static_cast<uint32_t>(id);
      have_byte[b] = true;
    }
  }
  for (int b = 0; b < 256; b++) {
    if (!have_byte[b]) {
      *error = "byte " + std::to_string(b) + " has no token";
      return nullptr;
    }
  }
  auto lookup = [&](const std::string& raw) -> uint32_t {
    const uint32_t id = by_hash.find(xxh3_64(raw.data(), raw.size(), 0));
    return id != U64Map::kNone && bytes[id] == raw ? id : U64Map::kNone;
  };

  e->merged_.resize(spec.merges.size());
  std::string left, right;
  for (size_t rank = 0; rank < spec.merges.size(); rank++) {
    const std::string& m = spec.merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos || !byte_level_bytes(m.substr(0, space), cp_to_byte, &left) ||
        !byte_level_bytes(m.substr(space + 1), cp_to_byte, &right)) {
      *error = "merge " + std::to_string(rank) + " is not two byte-level tokens";
      return nullptr;
    }
    const uint32_t l = lookup(left), r = lookup(right), merged = lookup(left + right);
    if (l == U64Map::kNone || r == U64Map::kNone || merged == U64Map::kNone) {
      *error = "merge " + std::to_string(rank) + " names a token not in the vocabulary";
      return nullptr;
    }
    e->merged_[rank] = merged;
    e->merge_rank_.put(pair_key(l, r), static_cast<uint32_t>(rank));  // a later duplicate wins, as in HF
  }
  if (spec.ignore_merges) {
    e->whole_ = std::move(by_hash);
    e->bytes_ = std::move(bytes);
  }

  e->added_ = spec.added;
  std::stable_sort(e->added_.begin(), e->added_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& a : e->added_) {
    if (a.first.empty()) {
      *error = "an added token is empty";
      return nullptr;
    }
    e->added_first_[static_cast<uint8_t>(a.first[0])] = true;
  }
  return e;
}

BpeError BpeEncoder::encode(const uint8_t* text, size_t len, bool split_added, std::vector<uint32_t>* out) {
  if (!valid_utf8(text, len)) return BpeError::kBadUtf8;  // before any output
  size_t start = 0;
  if (split_added && !added_.empty()) {
    // Leftmost, then longest match (HF's added-vocabulary split). Matches of valid UTF-8
    // content in valid UTF-8 text start and end on character boundaries.
    for (size_t i = 0; i < len; i++) {
      if (!added_first_[text[i]]) continue;
      for (const auto& [content, id] : added_) {
        if (content.size() <= len - i && std::memcmp(text + i, content.data(), content.size()) == 0) {
          encode_segment(text + start, i - start, out);
          out->push_back(id);
          i += content.size() - 1;
          start = i + 1;
          break;
        }
      }
    }
  }
  encode_segment(text + start, len - start, out);
  return BpeError::kOk;
}

// Fills cps_, cls_ and offs_ (byte offset of each code point, then `len`) for valid UTF-8.
void BpeEncoder::decode_segment(const uint8_t* text, size_t len) {
  cps_.clear();
  cls_.clear();
  offs_.clear();
  for (size_t i = 0; i < len;) {
    uint32_t cp = 0;
    const size_t n = utf8_decode(text + i, len - i, &cp);  // validated by the caller
    cps_.push_back(cp);
    cls_.push_back(class_of(cp));
    offs_.push_back(static_cast<uint32_t>(i));
    i += n;
  }
  offs_.push_back(static_cast<uint32_t>(len));
}

void BpeEncoder::encode_segment(const uint8_t* text, size_t len, std::vector<uint32_t>* out) {
  if (len == 0) return;
  decode_segment(text, len);
  for (size_t i = 0; i < cps_.size();) {
    const size_t end = piece_end(i);
    encode_piece(text + offs_[i], offs_[end] - offs_[i], out);
    i = end;
  }
}

BpeError BpeEncoder::pieces(const uint8_t* text, size_t len, std::vector<std::string>* out) {
  if (!valid_utf8(text, len)) return BpeError::kBadUtf8;
  decode_segment(text, len);
  for (size_t i = 0; i < cps_.size();) {
    const size_t end = piece_end(i);
    out->emplace_back(reinterpret_cast<const char*>(text) + offs_[i], offs_[end] - offs_[i]);
    i = end;
  }
  return BpeError::kOk;
}

// The end (exclusive, in code points) of the pre-tokenizer's match at code point i: the
// pattern's alternatives in order, as a backtracking regex engine would choose.
size_t BpeEncoder::piece_end(size_t i) const {
  const size_t n = cps_.size();
  const uint32_t c = cps_[i];
  auto cls = [&](size_t k) { return k < n ? static_cast<CharClass>(cls_[k]) : kOther; };
  auto at = [&](size_t k) { return k < n ? cps_[k] : 0u; };
  auto run = [&](size_t k, CharClass want) {
    while (k < n && cls_[k] == want) k++;
    return k;
  };
  const bool gpt2 = pattern_ == BpePattern::kGpt2;

  // Contractions: 's 't 're 've 'm 'll 'd; case-insensitive (Unicode simple folding, so
  // U+017F long s is an s) except in GPT-2's pattern.
  if (c == '\'') {
    auto is = [&](size_t k, char lower) {
      const uint32_t x = at(k);
      if (x == static_cast<uint32_t>(lower)) return true;
      if (gpt2) return false;
      return x == static_cast<uint32_t>(lower - 'a' + 'A') || (lower == 's' && x == 0x17f);
    };
    if (is(i + 1, 's') || is(i + 1, 't')) return i + 2;
    if ((is(i + 1, 'r') || is(i + 1, 'v')) && is(i + 2, 'e')) return i + 3;
    if (is(i + 1, 'm')) return i + 2;
    if (is(i + 1, 'l') && is(i + 2, 'l')) return i + 3;
    if (is(i + 1, 'd')) return i + 2;
  }

  if (gpt2) {
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
    const size_t j = c == ' ' ? i + 1 : i;
    if (j < n && cls_[j] != kSpace) return run(j, static_cast<CharClass>(cls_[j]));
  } else {
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    if (cls(i) == kLetter) return run(i, kLetter);
    if (!is_newline(c) && cls(i) != kNumber && cls(i + 1) == kLetter) return run(i + 1, kLetter);
    // `\p{N}` or `\p{N}{1,3}`
    if (cls(i) == kNumber) {
      const size_t most = pattern_ == BpePattern::kLlama3 ? 3 : 1;
      size_t j = i + 1;
      while (j < n && j - i < most && cls_[j] == kNumber) j++;
      return j;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    const size_t j = c == ' ' ? i + 1 : i;
    if (cls(j) == kOther && j < n) {
      size_t k = run(j, kOther);
      while (k < n && is_newline(cps_[k])) k++;
      return k;
    }
    // `\s*[\r\n]+`: through the last newline of the whitespace run.
    const size_t e = run(i, kSpace);
    for (size_t k = e; k > i; k--) {
      if (is_newline(cps_[k - 1])) return k;
    }
  }
  // `\s+(?!\S)|\s+`: a whitespace run leaves its last character to the next piece when
  // something other than whitespace follows (" x" stays together).
  const size_t e = run(i, kSpace);
  return e < n && e - i >= 2 ? e - 1 : e;
}

void BpeEncoder::encode_piece(const uint8_t* bytes, size_t len, std::vector<uint32_t>* out) {
  if (len == 1) {
    out->push_back(byte_id_[bytes[0]]);
    return;
  }
  const uint64_t hash = xxh3_64(bytes, len, 0);
  if (ignore_merges_) {
    const uint32_t id = whole_.find(hash);
    if (id != U64Map::kNone && bytes_[id].size() == len && std::memcmp(bytes_[id].data(), bytes, len) == 0) {
      out->push_back(id);
      return;
    }
  }
  const bool cacheable = len <= kMaxCachedWord;
  if (cacheable) {
    const uint32_t e = cache_index_.find(hash);
    if (e != U64Map::kNone) {
      const CacheEntry& c = cache_entries_[e];
      if (c.bytes_len == len && std::memcmp(cache_bytes_.data() + c.bytes_at, bytes, len) == 0) {
        out->insert(out->end(), cache_ids_.begin() + c.ids_at, cache_ids_.begin() + c.ids_at + c.ids_len);
        return;
      }
    }
  }
  const size_t before = out->size();
  merge_piece(bytes, len, out);
  if (cacheable) cache_put(bytes, len, hash, out->data() + before, out->size() - before);
}

void BpeEncoder::cache_put(const uint8_t* bytes, size_t len, uint64_t hash, const uint32_t* ids, size_t n) {
  if (cache_bytes_.size() + cache_ids_.size() * 4 > kCacheBytes) {
    cache_index_.reset();
    cache_entries_.clear();
    cache_bytes_.clear();
    cache_ids_.clear();
  }
  // A hash shared with another word: the first keeps the slot (the other is merged each time).
  if (cache_index_.find(hash) != U64Map::kNone) return;
  cache_index_.put(hash, static_cast<uint32_t>(cache_entries_.size()));
  cache_entries_.push_back(CacheEntry{static_cast<uint32_t>(cache_bytes_.size()), static_cast<uint32_t>(len),
                                      static_cast<uint32_t>(cache_ids_.size()), static_cast<uint32_t>(n)});
  cache_bytes_.insert(cache_bytes_.end(), bytes, bytes + len);
  cache_ids_.insert(cache_ids_.end(), ids, ids + n);
}

// The merge loop: apply the lowest-ranked merge present (leftmost on ties) until none is.
// Symbols form a linked list; a min-heap holds candidate pairs, stale ones are skipped.
void BpeEncoder::merge_piece(const uint8_t* bytes, size_t len, std::vector<uint32_t>* out) {
  syms_.clear();
  heap_.clear();
  for (size_t k = 0; k < len; k++) {
    syms_.push_back(
        Symbol{byte_id_[bytes[k]], static_cast<int32_t>(k) - 1, k + 1 < len ? static_cast<int32_t>(k + 1) : -1, 1});
  }
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  auto consider = [&](int32_t pos) {
    if (pos < 0 || syms_[pos].next < 0) return;
    const uint32_t rank = merge_rank_.find(pair_key(syms_[pos].id, syms_[syms_[pos].next].id));
    if (rank == U64Map::kNone) return;
    heap_.push_back(Candidate{rank, static_cast<uint32_t>(pos), merged_[rank]});
    std::push_heap(heap_.begin(), heap_.end(), later);
  };
  for (size_t k = 0; k + 1 < len; k++) consider(static_cast<int32_t>(k));
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Candidate top = heap_.back();
    heap_.pop_back();
    Symbol& s = syms_[top.pos];
    if (s.len == 0 || s.next < 0) continue;
    Symbol& right = syms_[s.next];
    // Stale: one side was merged since this pair was queued.
    const uint32_t rank = merge_rank_.find(pair_key(s.id, right.id));
    if (rank != top.rank) continue;
    s.id = top.id;
    s.len += right.len;
    right.len = 0;
    s.next = right.next;
    if (s.next >= 0) syms_[s.next].prev = static_cast<int32_t>(top.pos);
    consider(s.prev);
    consider(static_cast<int32_t>(top.pos));
  }
  for (int32_t k = 0; k >= 0; k = syms_[k].next) out->push_back(syms_[k].id);
}

}  // namespace kvgate
