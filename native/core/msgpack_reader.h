// A bounds-checked msgpack reader: only what decoding SGLang's KV events needs (and its
// snapshot chunks, which use the same types). A reader is two pointers: copying it saves a
// position to scan ahead from. Every read checks the remaining length first,
// declared container lengths are checked against the bytes left before anyone sizes a
// buffer from them, and skipping nested values is bounded by a depth limit.
//
// Integers: all int formats read as int64. A uint64 above INT64_MAX keeps its bit pattern
// (it becomes negative): SGLang's hashes are signed int64 and some encoders write the same
// 64 bits as unsigned; callers that need a range (token ids, sizes) check the value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kvgate {

enum class MsgpackType : uint8_t { kNil, kBool, kInt, kFloat, kStr, kBin, kArray, kMap, kExt };

enum class MsgpackError : uint8_t {
  kOk,
  kTruncated,  // input ends inside a value
  kBadType,    // not the type asked for (or the reserved byte 0xc1)
  kTooDeep,    // skip() met more nesting than allowed
};

class MsgpackReader {
 public:
  MsgpackReader(const uint8_t* data, size_t len) : p_(data), end_(data + len) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  // The type of the next value, without consuming it.
  MsgpackError peek(MsgpackType* type) const {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    // One line per type reads as the format's table.
    // clang-format off
    if (b <= 0x7f || b >= 0xe0) *type = MsgpackType::kInt;
    else if (b <= 0x8f) *type = MsgpackType::kMap;
    else if (b <= 0x9f) *type = MsgpackType::kArray;
    else if (b <= 0xbf) *type = MsgpackType::kStr;
    else switch (b) {
      case 0xc0: *type = MsgpackType::kNil; break;
      case 0xc2: case 0xc3: *type = MsgpackType::kBool; break;
      case 0xc4: case 0xc5: case 0xc6: *type = MsgpackType::kBin; break;
      case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        *type = MsgpackType::kExt; break;
      case 0xca: case 0xcb: *type = MsgpackType::kFloat; break;
      case 0xcc: case 0xcd: case 0xce: case 0xcf: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        *type = MsgpackType::kInt; break;
      case 0xd9: case 0xda: case 0xdb: *type = MsgpackType::kStr; break;
      case 0xdc: case 0xdd: *type = MsgpackType::kArray; break;
      case 0xde: case 0xdf: *type = MsgpackType::kMap; break;
      default: return MsgpackError::kBadType;  // 0xc1 is never used
    }
    // clang-format on
    return MsgpackError::kOk;
  }

  // True (and consumed) when the next value is nil.
  MsgpackError read_nil_if_present(bool* was_nil) {
    if (p_ == end_) return MsgpackError::kTruncated;
    *was_nil = *p_ == 0xc0;
    if (*was_nil) p_++;
    return MsgpackError::kOk;
  }

  MsgpackError read_int(int64_t* v) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    if (b <= 0x7f) {
      *v = b;
      p_++;
      return MsgpackError::kOk;
    }
    if (b >= 0xe0) {
      *v = static_cast<int64_t>(b) - 256;  // negative fixint: -32..-1
      p_++;
      return MsgpackError::kOk;
    }
    size_t width;
    bool is_signed;
    switch (b) {
      case 0xcc:
        width = 1;
        is_signed = false;
        break;
      case 0xcd:
        width = 2;
        is_signed = false;
        break;
      case 0xce:
        width = 4;
        is_signed = false;
        break;
      case 0xcf:
        width = 8;
        is_signed = false;
        break;
      case 0xd0:
        width = 1;
        is_signed = true;
        break;
      case 0xd1:
        width = 2;
        is_signed = true;
        break;
      case 0xd2:
        width = 4;
        is_signed = true;
        break;
      case 0xd3:
        width = 8;
        is_signed = true;
        break;
      default: return MsgpackError::kBadType;
    }
    if (remaining() < 1 + width) return MsgpackError::kTruncated;
    const uint64_t raw = read_be(p_ + 1, width);
    p_ += 1 + width;
    if (is_signed && width < 8) {
      // Sign-extend from `width` bytes.
      const int shift = static_cast<int>(64 - 8 * width);
      *v = static_cast<int64_t>(raw << shift) >> shift;
    } else {
      *v = static_cast<int64_t>(raw);  // uint64 above INT64_MAX keeps its bits
    }
    return MsgpackError::kOk;
  }

  // A float32/64 or any integer, as a double.
  MsgpackError read_number(double* v) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    if (b == 0xca) {
      if (remaining() < 5) return MsgpackError::kTruncated;
      const uint32_t bits = static_cast<uint32_t>(read_be(p_ + 1, 4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      *v = f;
      p_ += 5;
      return MsgpackError::kOk;
    }
    if (b == 0xcb) {
      if (remaining() < 9) return MsgpackError::kTruncated;
      const uint64_t bits = read_be(p_ + 1, 8);
      std::memcpy(v, &bits, sizeof *v);
      p_ += 9;
      return MsgpackError::kOk;
    }
    const bool unsigned64 = b == 0xcf;
    int64_t i;
    const MsgpackError e = read_int(&i);
    if (e != MsgpackError::kOk) return e;
    *v = unsigned64 ? static_cast<double>(static_cast<uint64_t>(i)) : static_cast<double>(i);
    return MsgpackError::kOk;
  }

  // A string's bytes, pointing into the input (valid while the input is).
  MsgpackError read_str(const char** s, uint32_t* len) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    size_t header;
    uint64_t n;
    if (b >= 0xa0 && b <= 0xbf) {
      header = 1;
      n = b & 0x1f;
    } else if (b >= 0xd9 && b <= 0xdb) {
      const size_t width = size_t{1} << (b - 0xd9);  // 1, 2, 4
      if (remaining() < 1 + width) return MsgpackError::kTruncated;
      header = 1 + width;
      n = read_be(p_ + 1, width);
    } else {
      return MsgpackError::kBadType;
    }
    if (remaining() - header < n) return MsgpackError::kTruncated;
    *s = reinterpret_cast<const char*>(p_ + header);
    *len = static_cast<uint32_t>(n);
    p_ += header + n;
    return MsgpackError::kOk;
  }

  // An array header. Each element takes at least one byte, so a count above the bytes
  // left is truncated input: callers may size buffers from *n after this succeeds.
  MsgpackError read_array(uint32_t* n) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    size_t header;
    uint64_t count;
    if (b >= 0x90 && b <= 0x9f) {
      header = 1;
      count = b & 0x0f;
    } else if (b == 0xdc || b == 0xdd) {
      const size_t width = b == 0xdc ? 2 : 4;
      if (remaining() < 1 + width) return MsgpackError::kTruncated;
      header = 1 + width;
      count = read_be(p_ + 1, width);
    } else {
      return MsgpackError::kBadType;
    }
    if (remaining() - header < count) return MsgpackError::kTruncated;
    *n = static_cast<uint32_t>(count);
    p_ += header;
    return MsgpackError::kOk;
  }

  // A map header: *n key/value pairs follow. Each pair takes at least two bytes, so a count
  // above half the bytes left is truncated input.
  MsgpackError read_map(uint32_t* n) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    size_t header;
    uint64_t count;
    if (b >= 0x80 && b <= 0x8f) {
      header = 1;
      count = b & 0x0f;
    } else if (b == 0xde || b == 0xdf) {
      const size_t width = b == 0xde ? 2 : 4;
      if (remaining() < 1 + width) return MsgpackError::kTruncated;
      header = 1 + width;
      count = read_be(p_ + 1, width);
    } else {
      return MsgpackError::kBadType;
    }
    if ((remaining() - header) / 2 < count) return MsgpackError::kTruncated;
    *n = static_cast<uint32_t>(count);
    p_ += header;
    return MsgpackError::kOk;
  }

  // Skips one value of any type. `depth` is how many more container levels may open.
  MsgpackError skip(uint32_t depth) {
    if (p_ == end_) return MsgpackError::kTruncated;
    const uint8_t b = *p_;
    MsgpackType type;
    MsgpackError e = peek(&type);
    if (e != MsgpackError::kOk) return e;
    switch (type) {
      case MsgpackType::kNil:
      case MsgpackType::kBool: p_++; return MsgpackError::kOk;
      case MsgpackType::kInt: {
        int64_t ignored;
        return read_int(&ignored);
      }
      case MsgpackType::kFloat: {
        double ignored;
        return read_number(&ignored);
      }
      case MsgpackType::kStr: {
        const char* s;
        uint32_t n;
        return read_str(&s, &n);
      }
      case MsgpackType::kBin: {
        const size_t width = size_t{1} << (b - 0xc4);  // 1, 2, 4
        return skip_sized(width, 0);
      }
      case MsgpackType::kExt: {
        if (b >= 0xd4) return skip_bytes(2 + (size_t{1} << (b - 0xd4)));  // fixext 1..16: type + data
        const size_t width = size_t{1} << (b - 0xc7);                     // ext 8/16/32
        return skip_sized(width, 1);
      }
      case MsgpackType::kArray:
      case MsgpackType::kMap: {
        if (depth == 0) return MsgpackError::kTooDeep;
        uint64_t count;
        size_t header;
        if (b <= 0x9f) {
          header = 1;
          count = b & 0x0f;
        } else {
          const size_t width = (b == 0xdc || b == 0xde) ? 2 : 4;
          if (remaining() < 1 + width) return MsgpackError::kTruncated;
          header = 1 + width;
          count = read_be(p_ + 1, width);
        }
        if (type == MsgpackType::kMap) count *= 2;  // keys and values
        if (remaining() - header < count) return MsgpackError::kTruncated;
        p_ += header;
        for (uint64_t i = 0; i < count; i++) {
          e = skip(depth - 1);
          if (e != MsgpackError::kOk) return e;
        }
        return MsgpackError::kOk;
      }
    }
    return MsgpackError::kBadType;
  }

 private:
  static uint64_t read_be(const uint8_t* p, size_t width) {
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++) v = (v << 8) | p[i];
    return v;
  }

  MsgpackError skip_bytes(size_t n) {
    if (remaining() < n) return MsgpackError::kTruncated;
    p_ += n;
    return MsgpackError::kOk;
  }

  // A length-prefixed payload: marker, `width`-byte big-endian length, `extra` bytes
  // (the ext type), then the payload.
  MsgpackError skip_sized(size_t width, size_t extra) {
    if (remaining() < 1 + width) return MsgpackError::kTruncated;
    const uint64_t n = read_be(p_ + 1, width);
    const size_t header = 1 + width + extra;
    if (remaining() < header || remaining() - header < n) return MsgpackError::kTruncated;
    p_ += header + n;
    return MsgpackError::kOk;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace kvgate
