// A compact open-addressing hash map from any u64 key to a u32 value, for the router's
// per-unit engine-hash lookups and request tables. 12-byte slots (the index's memory budget
// is per stored block), linear probing, backward-shift deletion (no tombstones). Capacity
// is any size, not a power of two (slots are picked by multiply-shift), so it can grow by
// 1.5x at 80% load and stay above 53% full; it shrinks below 10% so memory follows the
// live size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace kvgate {

class U64Map {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;  // reserved: never stored as a value

  U64Map() = default;
  U64Map(U64Map&&) noexcept = default;
  U64Map& operator=(U64Map&&) noexcept = default;

  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  size_t bytes() const { return cap_ * sizeof(Slot); }

  // The value for `key`, or kNone.
  uint32_t find(uint64_t key) const {
    if (size_ == 0) return kNone;
    for (size_t i = home(key);; i = next(i)) {
      const Slot& s = slots_[i];
      if (s.val == kNone) return kNone;
      if (s.key() == key) return s.val;
    }
  }

  // Sets key → val (val != kNone). Returns the previous value or kNone if the key was new.
  uint32_t put(uint64_t key, uint32_t val) {
    if ((size_ + 1) * 5 > cap_ * 4) rehash(grown(cap_));
    for (size_t i = home(key);; i = next(i)) {
      Slot& s = slots_[i];
      if (s.val == kNone) {
        s.set(key, val);
        size_++;
        return kNone;
      }
      if (s.key() == key) {
        uint32_t old = s.val;
        s.val = val;
        return old;
      }
    }
  }

  // Removes `key`. Returns its value or kNone if absent.
  uint32_t erase(uint64_t key) {
    if (size_ == 0) return kNone;
    size_t i = home(key);
    for (;; i = next(i)) {
      if (slots_[i].val == kNone) return kNone;
      if (slots_[i].key() == key) break;
    }
    const uint32_t old = slots_[i].val;
    // Backward shift: pull later members of the probe run into the hole when the hole lies
    // between their home slot and their current slot.
    for (size_t j = next(i);; j = next(j)) {
      Slot& s = slots_[j];
      if (s.val == kNone) break;
      if (dist(home(s.key()), j) >= dist(i, j)) {
        slots_[i] = s;
        i = j;
      }
    }
    slots_[i].val = kNone;
    size_--;
    if (cap_ > kMinCap && size_ * 10 < cap_) rehash(shrunk(size_));
    return old;
  }

  // Calls f(key, val) for every entry. f must not modify the map.
  template <typename F>
  void for_each(F&& f) const {
    for (size_t i = 0; i < cap_; i++) {
      if (slots_[i].val != kNone) f(slots_[i].key(), slots_[i].val);
    }
  }

  // Drops every entry and releases the memory.
  void reset() {
    slots_.reset();
    cap_ = size_ = 0;
  }

 private:
  static constexpr size_t kMinCap = 8;

#pragma pack(push, 4)
  struct Slot {
    uint32_t lo, hi, val;
    uint64_t key() const { return (uint64_t{hi} << 32) | lo; }
    void set(uint64_t k, uint32_t v) {
      lo = static_cast<uint32_t>(k);
      hi = static_cast<uint32_t>(k >> 32);
      val = v;
    }
  };
#pragma pack(pop)
  static_assert(sizeof(Slot) == 12, "slot must stay 12 bytes");

  // Multiply by the golden ratio (engine hashes are well mixed, test ids 1, 2, 3... are
  // not), then scale the 64-bit result to [0, cap) with a 128-bit multiply.
  size_t home(uint64_t key) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(key * 0x9E3779B97F4A7C15ULL) * cap_) >> 64);
  }
  size_t next(size_t i) const { return i + 1 == cap_ ? 0 : i + 1; }
  // Probe distance from slot a forward to slot b.
  size_t dist(size_t a, size_t b) const { return b >= a ? b - a : b + cap_ - a; }
  static size_t grown(size_t cap) { return cap ? cap + cap / 2 : kMinCap; }
  static size_t shrunk(size_t size) { return size * 5 / 2 > kMinCap ? size * 5 / 2 : kMinCap; }

  void rehash(size_t new_cap) {
    std::unique_ptr<Slot[]> old = std::move(slots_);
    const size_t old_cap = cap_;
    slots_.reset(new Slot[new_cap]);
    for (size_t i = 0; i < new_cap; i++) slots_[i].val = kNone;
    cap_ = new_cap;
    for (size_t i = 0; i < old_cap; i++) {
      if (old[i].val == kNone) continue;
      size_t j = home(old[i].key());
      while (slots_[j].val != kNone) j = next(j);
      slots_[j] = old[i];
    }
  }

  std::unique_ptr<Slot[]> slots_;
  size_t cap_ = 0, size_ = 0;
};

}  // namespace kvgate
