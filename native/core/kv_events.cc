#include "core/kv_events.h"

#include <cstring>

#include "core/block_hash.h"
#include "core/msgpack_reader.h"

namespace kvgate {

const char* kv_event_error_name(KvEventError e) {
  switch (e) {
    case KvEventError::kOk: return "OK";
    case KvEventError::kTruncated: return "TRUNCATED";
    case KvEventError::kBadType: return "BAD_TYPE";
    case KvEventError::kBadShape: return "BAD_SHAPE";
    case KvEventError::kUnknownEvent: return "UNKNOWN_EVENT";
    case KvEventError::kLimitExceeded: return "LIMIT_EXCEEDED";
    case KvEventError::kTrailingBytes: return "TRAILING_BYTES";
  }
  return "UNKNOWN";
}

namespace {

// Depth budget for skipped values: batch, events list and event are three levels down.
constexpr uint32_t kSkipDepth = kMaxKvEventDepth - 3;

KvEventError from_msgpack(MsgpackError e) {
  switch (e) {
    case MsgpackError::kOk: return KvEventError::kOk;
    case MsgpackError::kTruncated: return KvEventError::kTruncated;
    case MsgpackError::kBadType: return KvEventError::kBadType;
    case MsgpackError::kTooDeep: return KvEventError::kLimitExceeded;
  }
  return KvEventError::kBadType;
}

// Returns the error of `expr` unless it is kOk.
#define KV_TRY(expr)                                          \
  do {                                                        \
    const KvEventError kv_try_err_ = (expr);                  \
    if (kv_try_err_ != KvEventError::kOk) return kv_try_err_; \
  } while (0)

// Whether the string s[0..n) is the literal `tag`.
template <size_t N>
bool tag_is(const char* s, uint32_t n, const char (&tag)[N]) {
  return n == N - 1 && std::memcmp(s, tag, N - 1) == 0;
}

class BatchParser {
 public:
  BatchParser(const uint8_t* data, size_t len) : r_(data, len) {}

  KvEventError parse(KvEventBatch* out) {
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_array(&n)));
    if (n != 2 && n != 3) return KvEventError::kBadShape;
    KV_TRY(from_msgpack(r_.read_number(&out->ts)));

    uint32_t count;
    KV_TRY(from_msgpack(r_.read_array(&count)));
    if (count > kMaxKvEventsPerBatch) return KvEventError::kLimitExceeded;
    // Reuse the events (and their buffers) a previous parse left in `out`.
    size_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
      if (used == out->events.size()) out->events.emplace_back();
      KV_TRY(parse_event(&out->events[used]));
      used++;
    }
    out->events.resize(used);

    out->has_dp_rank = false;
    out->dp_rank = 0;
    if (n == 3) {
      bool nil;
      KV_TRY(from_msgpack(r_.read_nil_if_present(&nil)));
      if (!nil) {
        KV_TRY(from_msgpack(r_.read_int(&out->dp_rank)));
        if (out->dp_rank < 0 || out->dp_rank > UINT32_MAX) return KvEventError::kLimitExceeded;
        out->has_dp_rank = true;
      }
    }
    if (r_.remaining() != 0) return KvEventError::kTrailingBytes;
    return KvEventError::kOk;
  }

 private:
  // An event is an array (SGLang up to 0.5.19, msgspec array_like) or a tagged map (0.5.20 on).
  KvEventError parse_event(KvEvent* ev) {
    reset(ev);
    MsgpackType type;
    KV_TRY(from_msgpack(r_.peek(&type)));
    return type == MsgpackType::kMap ? parse_map_event(ev) : parse_array_event(ev);
  }

  static void reset(KvEvent* ev) {
    ev->block_hashes.clear();
    ev->token_ids.clear();
    ev->has_parent = false;
    ev->parent_hash = 0;
    ev->block_size = 0;
    ev->has_lora_id = false;
    ev->lora_id = 0;
    ev->gpu_medium = true;
  }

  // ["BlockStored", hashes, parent, tokens, block_size, lora_id?, medium?, ...] and so on:
  // by position, missing trailing fields are nil, extra ones are skipped.
  KvEventError parse_array_event(KvEvent* ev) {
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_array(&n)));
    if (n == 0) return KvEventError::kBadShape;
    const char* tag;
    uint32_t tag_len;
    KV_TRY(from_msgpack(r_.read_str(&tag, &tag_len)));

    uint32_t used;  // elements consumed, the rest are skipped
    if (tag_is(tag, tag_len, "BlockStored")) {
      if (n < 5) return KvEventError::kBadShape;
      ev->kind = KvEventKind::kStored;
      KV_TRY(read_hashes(&ev->block_hashes));
      KV_TRY(read_optional_int(&ev->has_parent, &ev->parent_hash));
      KV_TRY(read_tokens(&ev->token_ids));
      KV_TRY(read_block_size(&ev->block_size));
      used = 5;
      if (n > 5) {
        KV_TRY(read_optional_int(&ev->has_lora_id, &ev->lora_id));
        used = 6;
      }
      if (n > 6) {
        KV_TRY(read_medium(&ev->gpu_medium));
        used = 7;
      }
    } else if (tag_is(tag, tag_len, "BlockRemoved")) {
      if (n < 2) return KvEventError::kBadShape;
      ev->kind = KvEventKind::kRemoved;
      KV_TRY(read_hashes(&ev->block_hashes));
      used = 2;
      if (n > 2) {
        KV_TRY(read_medium(&ev->gpu_medium));
        used = 3;
      }
    } else if (tag_is(tag, tag_len, "AllBlocksCleared")) {
      ev->kind = KvEventKind::kCleared;
      used = 1;
    } else {
      return KvEventError::kUnknownEvent;
    }
    for (uint32_t i = used; i < n; i++) KV_TRY(from_msgpack(r_.skip(kSkipDepth)));
    return KvEventError::kOk;
  }

  // {"type": "BlockStored", "block_hashes": [...], ...}: msgspec `tag=True`, keys are the
  // field names, optional fields left at None omitted. Keys may come in any order; the tag
  // decides which keys are fields, unknown keys are skipped, a field given twice is
  // kBadShape, a missing required field kBadShape, a missing optional one nil.
  KvEventError parse_map_event(KvEvent* ev) {
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_map(&n)));
    const char* tag;
    uint32_t tag_len;
    KV_TRY(find_tag(n, &tag, &tag_len));

    if (tag_is(tag, tag_len, "BlockStored"))
      ev->kind = KvEventKind::kStored;
    else if (tag_is(tag, tag_len, "BlockRemoved"))
      ev->kind = KvEventKind::kRemoved;
    else if (tag_is(tag, tag_len, "AllBlocksCleared"))
      ev->kind = KvEventKind::kCleared;
    else
      return KvEventError::kUnknownEvent;

    uint32_t seen = 0;  // Field bits
    for (uint32_t i = 0; i < n; i++) {
      const char* key;
      uint32_t key_len;
      KV_TRY(from_msgpack(r_.read_str(&key, &key_len)));
      const Field f = field_of(ev->kind, key, key_len);
      if (f == kUnknownField) {
        KV_TRY(from_msgpack(r_.skip(kSkipDepth)));
        continue;
      }
      if (seen & f) return KvEventError::kBadShape;
      seen |= f;
      switch (f) {
        case kType: KV_TRY(from_msgpack(r_.skip(kSkipDepth))); break;  // read by find_tag
        case kHashes: KV_TRY(read_hashes(&ev->block_hashes)); break;
        case kParent: KV_TRY(read_optional_int(&ev->has_parent, &ev->parent_hash)); break;
        case kTokens: KV_TRY(read_tokens(&ev->token_ids)); break;
        case kBlockSize: KV_TRY(read_block_size(&ev->block_size)); break;
        case kLoraId: KV_TRY(read_optional_int(&ev->has_lora_id, &ev->lora_id)); break;
        case kMedium: KV_TRY(read_medium(&ev->gpu_medium)); break;
        default: break;
      }
    }
    uint32_t required = 0;
    if (ev->kind == KvEventKind::kStored) required = kHashes | kTokens | kBlockSize;
    if (ev->kind == KvEventKind::kRemoved) required = kHashes;
    if ((seen & required) != required) return KvEventError::kBadShape;
    return KvEventError::kOk;
  }

  enum Field : uint32_t {
    kUnknownField = 0,
    kType = 1,
    kHashes = 2,
    kParent = 4,
    kTokens = 8,
    kBlockSize = 16,
    kLoraId = 32,
    kMedium = 64,
  };

  // The field a map key names for this kind of event; keys of other kinds are unknown.
  static Field field_of(KvEventKind kind, const char* key, uint32_t len) {
    if (tag_is(key, len, "type")) return kType;
    if (kind == KvEventKind::kCleared) return kUnknownField;
    if (tag_is(key, len, "block_hashes")) return kHashes;
    if (tag_is(key, len, "medium")) return kMedium;
    if (kind == KvEventKind::kRemoved) return kUnknownField;
    if (tag_is(key, len, "token_ids")) return kTokens;
    if (tag_is(key, len, "parent_block_hash")) return kParent;
    if (tag_is(key, len, "block_size")) return kBlockSize;
    if (tag_is(key, len, "lora_id")) return kLoraId;
    return kUnknownField;
  }

  // The "type" value of a map event with n entries, scanning a copy of the reader (msgspec
  // writes the tag first, so this usually reads one entry). kBadShape if there is none.
  KvEventError find_tag(uint32_t n, const char** tag, uint32_t* tag_len) const {
    MsgpackReader scan = r_;
    for (uint32_t i = 0; i < n; i++) {
      const char* key;
      uint32_t key_len;
      KV_TRY(from_msgpack(scan.read_str(&key, &key_len)));
      if (tag_is(key, key_len, "type")) return from_msgpack(scan.read_str(tag, tag_len));
      KV_TRY(from_msgpack(scan.skip(kSkipDepth)));
    }
    return KvEventError::kBadShape;
  }

  KvEventError read_block_size(uint32_t* out) {
    int64_t block_size;
    KV_TRY(from_msgpack(r_.read_int(&block_size)));
    if (block_size < 1 || block_size > kMaxBlockSize) return KvEventError::kLimitExceeded;
    *out = static_cast<uint32_t>(block_size);
    return KvEventError::kOk;
  }

  KvEventError read_hashes(std::vector<int64_t>* out) {
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_array(&n)));  // n <= bytes left, so reserving is bounded
    if (n > kMaxKvEventHashes) return KvEventError::kLimitExceeded;
    out->reserve(n);
    for (uint32_t i = 0; i < n; i++) {
      int64_t h;
      KV_TRY(from_msgpack(r_.read_int(&h)));
      out->push_back(h);
    }
    return KvEventError::kOk;
  }

  KvEventError read_tokens(std::vector<uint32_t>* out) {
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_array(&n)));
    if (n > kMaxKvEventTokens) return KvEventError::kLimitExceeded;
    out->reserve(n);
    for (uint32_t i = 0; i < n; i++) {
      int64_t t;
      KV_TRY(from_msgpack(r_.read_int(&t)));
      if (t < 0 || t > UINT32_MAX) return KvEventError::kLimitExceeded;
      out->push_back(static_cast<uint32_t>(t));
    }
    return KvEventError::kOk;
  }

  KvEventError read_optional_int(bool* present, int64_t* v) {
    bool nil;
    KV_TRY(from_msgpack(r_.read_nil_if_present(&nil)));
    *present = !nil;
    if (nil) return KvEventError::kOk;
    return from_msgpack(r_.read_int(v));
  }

  // medium: nil (GPU) or a StorageMedium name; only "GPU" is device cache.
  KvEventError read_medium(bool* gpu) {
    bool nil;
    KV_TRY(from_msgpack(r_.read_nil_if_present(&nil)));
    if (nil) {
      *gpu = true;
      return KvEventError::kOk;
    }
    const char* s;
    uint32_t n;
    KV_TRY(from_msgpack(r_.read_str(&s, &n)));
    *gpu = tag_is(s, n, "GPU");
    return KvEventError::kOk;
  }

  MsgpackReader r_;
};

#undef KV_TRY

}  // namespace

KvEventError parse_kv_event_batch(const uint8_t* data, size_t len, KvEventBatch* out) {
  if (data == nullptr) return KvEventError::kTruncated;
  return BatchParser(data, len).parse(out);
}

}  // namespace kvgate
