// SmallVector (the load order's bucket members) against std::vector under random
// operations: inserts and erases anywhere, pushes and pops across the inline capacity and
// back, and moves of whole vectors (a std::vector of them growing, and move assignment over
// inline and heap contents).
#include "core/small_vector.h"

#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

namespace {

using kvgate::SmallVector;

template <typename S>
void expect_same(const S& got, const std::vector<uint32_t>& want, int step) {
  ASSERT_EQ(got.size(), want.size()) << "step " << step;
  ASSERT_EQ(got.empty(), want.empty());
  ASSERT_GE(got.capacity(), got.size());
  for (size_t i = 0; i < want.size(); i++) ASSERT_EQ(got[i], want[i]) << "step " << step << " at " << i;
  ASSERT_EQ(std::vector<uint32_t>(got.begin(), got.end()), want);
}

TEST(SmallVector, AgreesWithStdVectorUnderRandomOps) {
  std::mt19937_64 g(7);
  std::vector<SmallVector<uint32_t, 2>> vs;
  std::vector<std::vector<uint32_t>> ws;
  size_t grew = 0;
  for (int step = 0; step < 200000; step++) {
    if (vs.empty() || g() % 50 == 0) {
      vs.emplace_back();  // (moves every vector when the outer one grows)
      ws.emplace_back();
    }
    const size_t k = g() % vs.size();
    SmallVector<uint32_t, 2>& v = vs[k];
    std::vector<uint32_t>& w = ws[k];
    const uint32_t x = static_cast<uint32_t>(g());
    // Sizes wander between 0 and a few dozen: inline, heap, and back down.
    const bool grow = w.size() < 3 || (w.size() < 40 && g() % 2 == 0);
    switch (g() % 4) {
      case 0:
        if (grow) {
          v.push_back(x);
          w.push_back(x);
        } else {
          v.pop_back();
          w.pop_back();
        }
        break;
      case 1:
        if (grow) {
          const size_t i = g() % (w.size() + 1);
          v.insert(i, x);
          w.insert(w.begin() + static_cast<ptrdiff_t>(i), x);
        } else {
          const size_t i = g() % w.size();
          v.erase(i);
          w.erase(w.begin() + static_cast<ptrdiff_t>(i));
        }
        break;
      case 2:
        if (!w.empty()) {
          v.back() = x;
          w.back() = x;
        }
        break;
      default: {  // move assignment from another vector (which is left empty)
        const size_t j = g() % vs.size();
        if (j != k) {
          vs[k] = std::move(vs[j]);
          ws[k] = std::move(ws[j]);
          ws[j].clear();
          expect_same(vs[j], ws[j], step);
        }
      }
    }
    grew += vs[k].heap_bytes() > 0;
    expect_same(vs[k], ws[k], step);
    if (::testing::Test::HasFailure()) return;
  }
  for (size_t k = 0; k < vs.size(); k++) expect_same(vs[k], ws[k], -1);
  EXPECT_GT(grew, 1000u);  // the heap side was exercised
}

TEST(SmallVector, MovedFromIsEmptyAndReusable) {
  SmallVector<uint32_t, 2> a;
  for (uint32_t i = 0; i < 5; i++) a.push_back(i);  // on the heap
  SmallVector<uint32_t, 2> b(std::move(a));
  EXPECT_EQ(b.size(), 5u);
  EXPECT_EQ(b[4], 4u);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is part of the contract
  EXPECT_EQ(a.heap_bytes(), 0u);
  a.push_back(9);
  EXPECT_EQ(a[0], 9u);
  SmallVector<uint32_t, 2> c;
  c.push_back(1);  // inline
  b = std::move(c);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0], 1u);
  EXPECT_EQ(b.heap_bytes(), 0u);
}

}  // namespace
