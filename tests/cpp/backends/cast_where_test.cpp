// CPU where, cast and clamp kernels against double references.

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "backends/test_util.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;

// Two's-complement wrap of v into an integer dtype.
double wrap_int(int64_t v, DType dt) {
  switch (dt) {
    case DType::kInt32:
      return static_cast<int32_t>(static_cast<uint32_t>(v));
    case DType::kInt8:
      return static_cast<int8_t>(static_cast<uint8_t>(v));
    case DType::kUInt8:
      return static_cast<uint8_t>(v);
    default:
      return static_cast<double>(v);
  }
}

// What casting v (exactly representable in `from`) to `to` must give.
double cast_ref(double v, DType from, DType to) {
  if (to == DType::kBool) return v != 0 ? 1 : 0;
  if (is_floating(to)) return test::round_to(to, v);
  return wrap_int(static_cast<int64_t>(std::trunc(v)), to);
}

std::vector<double> cast_inputs(DType from, DType to) {
  if (from == DType::kBool) return {0, 1, 1, 0, 1, 0};
  if (from == DType::kUInt8) return {0, 1, 2, 100, 200, 255};
  if (is_integer(from)) return {-100, -3, -1, 0, 1, 127};
  if (to == DType::kUInt8) return {0, 0.5, 1.0, 2.75, 100.25, 200.5};
  return {-3.75, -1.0, -0.5, 0.0, 2.5, 100.25};
}

TEST(CpuCast, EveryDtypePairMatchesReference) {
  for (DType from : test::kAllDTypes) {
    for (DType to : test::kAllDTypes) {
      SCOPED_TRACE(str(dtype_name(from), " -> ", dtype_name(to)));
      auto in = test::round_all(from, cast_inputs(from, to));
      auto x = make_tensor(from, {2, 3}, in, Layout::kPermuted);
      auto y = make_output(to, {2, 3});
      ASSERT_TRUE(test::run_op(OpKind::kCast, {{"dtype", to}}, {x.view}, {y.view}).ok());
      std::vector<double> ref;
      for (double v : in) ref.push_back(cast_ref(v, from, to));
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

TEST(CpuCast, Float32ToHalfRoundsToNearestEven) {
  // Halfway cases between adjacent fp16 values (spacing 2^-10 at 1) go to the even mantissa.
  const double u = std::ldexp(1.0, -10);
  auto x = make_tensor(DType::kFloat32, {4}, {1 + u / 2, 1 + 3 * u / 2, 1 + u / 4, 65520.0});
  auto y = make_output(DType::kFloat16, {4});
  ASSERT_TRUE(test::run_op(OpKind::kCast, {{"dtype", DType::kFloat16}}, {x.view}, {y.view}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {1.0, 1 + 2 * u, 1.0, INFINITY}, {0, 0}));
}

TEST(CpuCast, Float32ToBFloat16RoundsToNearestEven) {
  const double u = std::ldexp(1.0, -7);  // bf16 spacing at 1
  auto x = make_tensor(DType::kFloat32, {3}, {1 + u / 2, 1 + 3 * u / 2, -(1 + u / 2)});
  auto y = make_output(DType::kBFloat16, {3});
  ASSERT_TRUE(test::run_op(OpKind::kCast, {{"dtype", DType::kBFloat16}}, {x.view}, {y.view}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {1.0, 1 + 2 * u, -1.0}, {0, 0}));
}

TEST(CpuCast, ExpandedInputIsBroadcastByStrides) {
  auto x = test::make_expanded(DType::kInt32, {3, 4}, {1, 4}, {1, 2, 3, 4});
  auto y = make_output(DType::kFloat32, {3, 4});
  ASSERT_TRUE(test::run_op(OpKind::kCast, {{"dtype", DType::kFloat32}}, {x.view}, {y.view}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}));
}

// ---- where ----------------------------------------------------------------------------------

TEST(CpuWhere, BroadcastsConditionAndValuesForEveryDtype) {
  const std::vector<int64_t> sc = {3, 1}, sa = {2, 3, 4}, sb = {4};
  const std::vector<int64_t> out_shape = {2, 3, 4};
  auto vc = test::random_ints(3, 5, 0, 1);
  for (DType dt : test::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    auto va = test::round_all(dt, test::random_ints(24, 6, 0, 9));
    auto vb = test::round_all(dt, test::random_ints(4, 7, 0, 9));
    auto c = make_tensor(DType::kBool, sc, vc, Layout::kPermuted);
    auto a = make_tensor(dt, sa, va, Layout::kSliced);
    auto b = make_tensor(dt, sb, vb);
    auto y = make_output(dt, out_shape);
    ASSERT_TRUE(test::run_op(OpKind::kWhere, {}, {c.view, a.view, b.view}, {y.view}).ok());
    auto ec = test::broadcast_values(vc, sc, out_shape);
    auto eb = test::broadcast_values(vb, sb, out_shape);
    std::vector<double> ref;
    for (size_t i = 0; i < ec.size(); ++i) ref.push_back(ec[i] != 0 ? va[i] : eb[i]);
    EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
  }
}

TEST(CpuWhere, NonBoolConditionIsUnsupported) {
  auto c = make_tensor(DType::kInt32, {2}, {0, 1});
  auto a = make_tensor(DType::kFloat32, {2}, {1, 2});
  auto y = make_output(DType::kFloat32, {2});
  EXPECT_EQ(test::run_op(OpKind::kWhere, {}, {c.view, a.view, a.view}, {y.view}).code(),
            StatusCode::kUnsupported);
}

// ---- clamp ----------------------------------------------------------------------------------

TEST(CpuClamp, MinMaxAndBothOnFloatDtypes) {
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout)));
      auto in = test::round_all(dt, test::random_values(24, 9, -3, 3));
      auto x = make_tensor(dt, {2, 3, 4}, in, layout);
      for (int which = 0; which < 3; ++which) {
        Attrs attrs;
        if (which != 1) attrs.set("min", -1.0);
        if (which != 0) attrs.set("max", 0.5);
        auto y = make_output(dt, {2, 3, 4});
        ASSERT_TRUE(test::run_op(OpKind::kClamp, attrs, {x.view}, {y.view}).ok());
        std::vector<double> ref;
        for (double v : in) {
          if (which != 1) v = std::max(v, -1.0);
          if (which != 0) v = std::min(v, 0.5);
          ref.push_back(v);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref));
      }
    }
  }
}

TEST(CpuClamp, NanStaysNan) {
  auto x = make_tensor(DType::kFloat32, {2}, {std::nan(""), 5});
  auto y = make_output(DType::kFloat32, {2});
  ASSERT_TRUE(test::run_op(OpKind::kClamp, {{"min", 0.0}, {"max", 1.0}}, {x.view}, {y.view}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {std::nan(""), 1}));
}

TEST(CpuClamp, IntegersUseTheIntegerBoundsInsideFractionalOnes) {
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8}) {
    SCOPED_TRACE(dtype_name(dt));
    auto x = make_tensor(dt, {5}, {0, 1, 2, 3, 9}, Layout::kSliced);
    auto y = make_output(dt, {5});
    ASSERT_TRUE(
        test::run_op(OpKind::kClamp, {{"min", 1.5}, {"max", 3.5}}, {x.view}, {y.view}).ok());
    EXPECT_TRUE(test::expect_close(y.view, {2, 2, 2, 3, 3}));
  }
}

}  // namespace
}  // namespace kiln
