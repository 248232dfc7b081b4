// The test helpers themselves: layouts hold the values they were given, and the comparison
// catches what it must (so kernel tests built on it can fail).

#include <gtest/gtest.h>

#include <cmath>

#include "backends/test_util.h"

namespace kiln {
namespace {

TEST(TestUtil, EveryLayoutReadsBackItsValuesInEveryDtype) {
  for (DType dt : test::kAllDTypes) {
    for (test::Layout layout : test::kAllLayouts) {
      auto v = test::round_all(dt, test::random_ints(24, 1, 0, 9));
      auto t = test::make_tensor(dt, {2, 3, 4}, v, layout);
      EXPECT_EQ(test::read_values(t.view), v) << dtype_name(dt) << " " << test::layout_name(layout);
      EXPECT_EQ(t.view.isContiguous(), layout == test::Layout::kContiguous);
    }
  }
}

TEST(TestUtil, ExpandedViewRepeatsWithZeroStride) {
  auto t = test::make_expanded(DType::kFloat32, {2, 3}, {1, 3}, {1, 2, 3});
  EXPECT_EQ(t.view.strides[0], 0);
  EXPECT_EQ(test::read_values(t.view), (std::vector<double>{1, 2, 3, 1, 2, 3}));
}

TEST(TestUtil, ExpectCloseCatchesMismatchesUnwrittenOutputsAndNan) {
  auto t = test::make_tensor(DType::kFloat32, {3}, {1, 2, 3});
  EXPECT_TRUE(test::expect_close(t.view, {1, 2, 3}));
  EXPECT_FALSE(test::expect_close(t.view, {1, 2, 3.001}));
  EXPECT_FALSE(test::expect_close(t.view, {1, 2, std::nan("")}));
  EXPECT_FALSE(test::expect_close(t.view, {1, 2}));
  auto out = test::make_output(DType::kFloat32, {3});  // sentinels: never close to a value
  EXPECT_FALSE(test::expect_close(out.view, {0, 0, 0}));
}

TEST(TestUtil, RoundToMatchesHalfAndBFloat16Spacing) {
  EXPECT_EQ(test::round_to(DType::kFloat16, 1 + std::ldexp(1.0, -11)), 1.0);  // tie to even
  EXPECT_EQ(test::round_to(DType::kFloat16, 1 + std::ldexp(1.0, -10)), 1 + std::ldexp(1.0, -10));
  EXPECT_EQ(test::round_to(DType::kBFloat16, 1 + std::ldexp(1.0, -9)), 1.0);
  EXPECT_EQ(test::round_to(DType::kInt32, -2.7), -2.0);
  EXPECT_EQ(test::round_to(DType::kBool, 0.5), 1.0);
}

}  // namespace
}  // namespace kiln
