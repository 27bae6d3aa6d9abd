// A vector of trivially copyable elements whose first N live inline (beyond that, on the
// heap, doubling), in 8 + max(N * sizeof(T), 8) bytes. For lists that usually hold one or
// two entries (the load order's bucket members): reading one costs the line it sits in, not
// a second miss on a heap array, and filling one allocates nothing.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace kvgate {

template <typename T, uint32_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable<T>::value, "SmallVector holds trivially copyable elements");
  static_assert(N >= 1, "SmallVector keeps at least one element inline");

 public:
  SmallVector() = default;
  SmallVector(const SmallVector&) = delete;
  SmallVector& operator=(const SmallVector&) = delete;
  SmallVector(SmallVector&& o) noexcept { take(o); }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      if (cap_ > N) delete[] heap_;
      take(o);
    }
    return *this;
  }
  ~SmallVector() {
    if (cap_ > N) delete[] heap_;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  // Heap bytes (0 while inline).
  size_t heap_bytes() const { return cap_ > N ? cap_ * sizeof(T) : 0; }
  const T* begin() const { return raw(); }
  const T* end() const { return raw() + size_; }
  T* begin() { return raw(); }
  T* end() { return raw() + size_; }
  T& operator[](size_t i) { return raw()[i]; }
  const T& operator[](size_t i) const { return raw()[i]; }
  T& back() { return raw()[size_ - 1]; }

  void push_back(T v) { insert(size_, v); }
  void pop_back() { size_--; }
  // v before element i (i <= size()), shifting the rest.
  void insert(size_t i, T v) {
    if (size_ == cap_) grow();
    T* d = raw();
    std::copy_backward(d + i, d + size_, d + size_ + 1);
    d[i] = v;
    size_++;
  }
  // Drops element i, shifting the rest.
  void erase(size_t i) {
    T* d = raw();
    std::copy(d + i + 1, d + size_, d + i);
    size_--;
  }

 private:
  T* raw() { return cap_ > N ? heap_ : inline_; }
  const T* raw() const { return cap_ > N ? heap_ : inline_; }
  // o's elements (o left empty; this holds none of its own).
  void take(SmallVector& o) {
    size_ = o.size_;
    cap_ = o.cap_;
    if (cap_ > N) {
      heap_ = o.heap_;
    } else {
      std::copy(o.inline_, o.inline_ + size_, inline_);
    }
    o.size_ = 0;
    o.cap_ = N;
  }
  void grow() {
    const uint32_t cap = cap_ * 2;
    T* grown = new T[cap];
    std::copy(begin(), end(), grown);
    if (cap_ > N) delete[] heap_;
    heap_ = grown;
    cap_ = cap;
  }

  uint32_t size_ = 0, cap_ = N;
  union {
    T inline_[N];
    T* heap_;
  };
};

}  // namespace kvgate
