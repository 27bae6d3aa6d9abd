// Reader for SGLang KV-event batches as raw msgpack (shared/reference/sglang.md §2.3-2.5).
// The whole batch is parsed and validated before anything is applied, so a malformed
// batch changes nothing. Every read is bounds-checked; hostile bytes give an error code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/block_hash.h"  // kMaxBlockSize bounds an event's block_size

namespace kvgate {

enum class KvEventError : int {
  kOk = 0,
  kTruncated = 1,      // input ends inside a value
  kBadType = 2,        // a value of the wrong msgpack type
  kBadShape = 3,       // wrong array length, missing required element
  kUnknownEvent = 4,   // a tag that is not BlockStored / BlockRemoved / AllBlocksCleared
  kLimitExceeded = 5,  // nesting, counts or sizes beyond the reader's limits
  kTrailingBytes = 6,  // bytes left after the batch
};

// Stable upper-case name of an error ("TRUNCATED", "BAD_TYPE", ...), "UNKNOWN" for others.
const char* kv_event_error_name(KvEventError e);

// The reader's limits (kLimitExceeded beyond them). An integer outside its field's range
// (token id not u32, block_size not in 1..kMaxBlockSize, dp_rank not u32) is kLimitExceeded
// too. Memory is also bounded by the input: a declared length longer than the bytes left
// is kTruncated before anything is sized from it.
constexpr uint32_t kMaxKvEventsPerBatch = 1u << 20;
constexpr uint32_t kMaxKvEventHashes = 1u << 20;  // block_hashes per event
constexpr uint32_t kMaxKvEventTokens = 1u << 20;  // token_ids per event
constexpr uint32_t kMaxKvEventDepth = 32;         // nesting inside ignored fields and keys

enum class KvEventKind : uint8_t { kStored, kRemoved, kCleared };

struct KvEvent {
  KvEventKind kind = KvEventKind::kCleared;
  // kStored: engine hashes of the stored pages (SGLang sends one per page), the parent
  // page hash (absent under the root), the pages' tokens and the event's block size.
  // kRemoved: the removed engine hashes in block_hashes.
  std::vector<int64_t> block_hashes;
  bool has_parent = false;
  int64_t parent_hash = 0;
  std::vector<uint32_t> token_ids;
  uint32_t block_size = 0;
  bool has_lora_id = false;
  int64_t lora_id = 0;
  bool gpu_medium = true;  // medium nil or "GPU"; other tiers are not device cache
};

struct KvEventBatch {
  double ts = 0;
  bool has_dp_rank = false;
  int64_t dp_rank = 0;
  std::vector<KvEvent> events;
};

// Accepted shapes. The batch is always an array (msgspec `array_like`, every SGLang version):
//   batch   [ts: float|int, events: array, dp_rank: int|nil]  (2 or 3 elements)
// An event is an array (SGLang <= 0.5.19) or a tagged map (0.5.20 on), mixed freely:
//   stored  ["BlockStored", [hash...], parent|nil, [token...], block_size, lora_id|nil, medium|nil, ...]
//   removed ["BlockRemoved", [hash...], medium|nil, ...]
//   cleared ["AllBlocksCleared", ...]
//   stored  {"type": "BlockStored", "block_hashes", "parent_block_hash", "token_ids",
//            "block_size", "lora_id", "medium", ...}
//   removed {"type": "BlockRemoved", "block_hashes", "medium", ...}
//   cleared {"type": "AllBlocksCleared", ...}
// Arrays: missing trailing optional fields read as nil, extra trailing elements (such as
// BlockStored's 8th `{cache_salt}` map) are skipped. Maps: keys (strings) in any order,
// unknown keys skipped, "block_hashes" (and for stored "token_ids", "block_size") required,
// the others nil when absent, a known key given twice is kBadShape.
// Hashes are int64; a uint64 above INT64_MAX is taken as the same 64 bits (signed view).
// A KvEventBatch reused across calls keeps its events' buffers, so steady-state parsing
// does not allocate.
//
// Parses one batch `[ts, events, dp_rank?]`. On error `out` is left in an unspecified
// but valid state and must not be applied.
KvEventError parse_kv_event_batch(const uint8_t* data, size_t len, KvEventBatch* out);

}  // namespace kvgate
