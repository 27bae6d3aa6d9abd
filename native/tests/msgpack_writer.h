// Test-only msgpack writer: builds KV-event batches byte by byte so tests and the fuzz
// round-trip can choose every encoding (fixint vs int64, fixarray vs array32, ...), in
// SGLang's array-event and map-event forms.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/kv_events.h"

namespace kvgate::test {

class MsgpackWriter {
 public:
  std::vector<uint8_t> bytes;

  MsgpackWriter& nil() { return raw(0xc0); }
  MsgpackWriter& boolean(bool b) { return raw(b ? 0xc3 : 0xc2); }

  // Smallest encoding of a signed value, as msgpack encoders usually do.
  MsgpackWriter& int_(int64_t v) {
    if (v >= 0) return uint_(static_cast<uint64_t>(v));
    if (v >= -32) return raw(static_cast<uint8_t>(v));
    if (v >= INT8_MIN) return raw(0xd0).be(static_cast<uint64_t>(v), 1);
    if (v >= INT16_MIN) return raw(0xd1).be(static_cast<uint64_t>(v), 2);
    if (v >= INT32_MIN) return raw(0xd2).be(static_cast<uint64_t>(v), 4);
    return raw(0xd3).be(static_cast<uint64_t>(v), 8);
  }
  MsgpackWriter& uint_(uint64_t v) {
    if (v <= 0x7f) return raw(static_cast<uint8_t>(v));
    if (v <= UINT8_MAX) return raw(0xcc).be(v, 1);
    if (v <= UINT16_MAX) return raw(0xcd).be(v, 2);
    if (v <= UINT32_MAX) return raw(0xce).be(v, 4);
    return raw(0xcf).be(v, 8);
  }
  // An explicit int format: marker 0xcc..0xd3 with its width.
  MsgpackWriter& int_as(uint8_t marker, uint64_t bits) {
    static const size_t kWidth[] = {1, 2, 4, 8, 1, 2, 4, 8};
    return raw(marker).be(bits, kWidth[marker - 0xcc]);
  }

  MsgpackWriter& f64(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    return raw(0xcb).be(bits, 8);
  }
  MsgpackWriter& f32(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    return raw(0xca).be(bits, 4);
  }

  MsgpackWriter& str(const std::string& s) {
    if (s.size() <= 31)
      raw(static_cast<uint8_t>(0xa0 | s.size()));
    else if (s.size() <= UINT8_MAX)
      raw(0xd9).be(s.size(), 1);
    else if (s.size() <= UINT16_MAX)
      raw(0xda).be(s.size(), 2);
    else
      raw(0xdb).be(s.size(), 4);
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  MsgpackWriter& bin(const std::string& s) {
    raw(0xc4).be(s.size(), 1);
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }

  MsgpackWriter& array(uint64_t n) {
    if (n <= 15) return raw(static_cast<uint8_t>(0x90 | n));
    if (n <= UINT16_MAX) return raw(0xdc).be(n, 2);
    return raw(0xdd).be(n, 4);
  }
  MsgpackWriter& array16(uint64_t n) { return raw(0xdc).be(n, 2); }
  MsgpackWriter& array32(uint64_t n) { return raw(0xdd).be(n, 4); }
  MsgpackWriter& map(uint64_t n) {
    if (n <= 15) return raw(static_cast<uint8_t>(0x80 | n));
    if (n <= UINT16_MAX) return raw(0xde).be(n, 2);
    return raw(0xdf).be(n, 4);
  }

  MsgpackWriter& raw(uint8_t b) {
    bytes.push_back(b);
    return *this;
  }
  MsgpackWriter& be(uint64_t v, size_t width) {
    for (size_t i = width; i-- > 0;) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
};

// The canonical encoding of a parsed batch (all fields written, medium "GPU" or "CPU_PINNED").
inline std::vector<uint8_t> encode_batch(const KvEventBatch& b) {
  MsgpackWriter w;
  w.array(3).f64(b.ts).array(b.events.size());
  for (const KvEvent& e : b.events) {
    switch (e.kind) {
      case KvEventKind::kStored:
        w.array(7).str("BlockStored").array(e.block_hashes.size());
        for (int64_t h : e.block_hashes) w.int_(h);
        if (e.has_parent)
          w.int_(e.parent_hash);
        else
          w.nil();
        w.array(e.token_ids.size());
        for (uint32_t t : e.token_ids) w.uint_(t);
        w.uint_(e.block_size);
        if (e.has_lora_id)
          w.int_(e.lora_id);
        else
          w.nil();
        w.str(e.gpu_medium ? "GPU" : "CPU_PINNED");
        break;
      case KvEventKind::kRemoved:
        w.array(3).str("BlockRemoved").array(e.block_hashes.size());
        for (int64_t h : e.block_hashes) w.int_(h);
        w.str(e.gpu_medium ? "GPU" : "CPU_PINNED");
        break;
      case KvEventKind::kCleared: w.array(1).str("AllBlocksCleared"); break;
    }
  }
  if (b.has_dp_rank)
    w.int_(b.dp_rank);
  else
    w.nil();
  return w.bytes;
}

// The same batch with tagged-map events as SGLang 0.5.20+ sends them (msgspec `tag=True`,
// `omit_defaults`): "type" first, fields in declaration order, medium always written.
inline std::vector<uint8_t> encode_batch_map(const KvEventBatch& b) {
  MsgpackWriter w;
  w.array(3).f64(b.ts).array(b.events.size());
  for (const KvEvent& e : b.events) {
    switch (e.kind) {
      case KvEventKind::kStored:
        w.map(7).str("type").str("BlockStored").str("block_hashes").array(e.block_hashes.size());
        for (int64_t h : e.block_hashes) w.int_(h);
        w.str("parent_block_hash");
        if (e.has_parent)
          w.int_(e.parent_hash);
        else
          w.nil();
        w.str("token_ids").array(e.token_ids.size());
        for (uint32_t t : e.token_ids) w.uint_(t);
        w.str("block_size").uint_(e.block_size).str("lora_id");
        if (e.has_lora_id)
          w.int_(e.lora_id);
        else
          w.nil();
        w.str("medium").str(e.gpu_medium ? "GPU" : "CPU_PINNED");
        break;
      case KvEventKind::kRemoved:
        w.map(3).str("type").str("BlockRemoved").str("block_hashes").array(e.block_hashes.size());
        for (int64_t h : e.block_hashes) w.int_(h);
        w.str("medium").str(e.gpu_medium ? "GPU" : "CPU_PINNED");
        break;
      case KvEventKind::kCleared: w.map(1).str("type").str("AllBlocksCleared"); break;
    }
  }
  if (b.has_dp_rank)
    w.int_(b.dp_rank);
  else
    w.nil();
  return w.bytes;
}

inline bool same_event(const KvEvent& a, const KvEvent& b) {
  return a.kind == b.kind && a.block_hashes == b.block_hashes && a.has_parent == b.has_parent &&
         a.parent_hash == b.parent_hash && a.token_ids == b.token_ids && a.block_size == b.block_size &&
         a.has_lora_id == b.has_lora_id && a.lora_id == b.lora_id && a.gpu_medium == b.gpu_medium;
}

// Equal batches; ts compares by bits so NaN equals itself.
inline bool same_batch(const KvEventBatch& a, const KvEventBatch& b) {
  if (std::memcmp(&a.ts, &b.ts, sizeof a.ts) != 0 || a.has_dp_rank != b.has_dp_rank || a.dp_rank != b.dp_rank ||
      a.events.size() != b.events.size()) {
    return false;
  }
  for (size_t i = 0; i < a.events.size(); i++) {
    if (!same_event(a.events[i], b.events[i])) return false;
  }
  return true;
}

}  // namespace kvgate::test
