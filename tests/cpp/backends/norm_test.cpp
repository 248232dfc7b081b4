// CPU batch_norm, layer_norm, group_norm and rms_norm kernels against double references.

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "backends/test_util.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;

const std::vector<int64_t> kShape = {2, 4, 3, 5};  // N, C, H, W

TEST(CpuBatchNorm, NormalizesPerChannelWithOptionalAffine) {
  const int64_t c = kShape[1];
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (int affine = 0; affine < 3; ++affine) {  // none, weight, weight + bias
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " affine ", affine));
        auto in = test::round_all(dt, test::random_values(test::numel(kShape), 1));
        auto mean = test::round_all(dt, test::random_values(c, 2, -1, 1));
        auto var = test::round_all(dt, test::random_values(c, 3, 0.2, 2));
        auto w = test::round_all(dt, test::random_values(c, 4, 0.5, 2));
        auto b = test::round_all(dt, test::random_values(c, 5, -1, 1));
        auto x = make_tensor(dt, kShape, in, layout);
        auto tm = make_tensor(dt, {c}, mean), tv = make_tensor(dt, {c}, var, Layout::kSliced);
        auto tw = make_tensor(dt, {c}, w), tb = make_tensor(dt, {c}, b);
        std::vector<TensorView> inputs = {x.view, tm.view, tv.view};
        if (affine >= 1) inputs.push_back(tw.view);
        if (affine >= 2) inputs.push_back(tb.view);
        auto y = make_output(dt, kShape);
        ASSERT_TRUE(test::run_op(OpKind::kBatchNorm, {{"eps", 1e-5}}, inputs, {y.view}).ok());
        std::vector<double> ref;
        for (int64_t i = 0; i < test::numel(kShape); ++i) {
          int64_t ch = test::unravel(i, kShape)[1];
          double r = (in[i] - mean[ch]) / std::sqrt(var[ch] + 1e-5);
          if (affine >= 1) r *= w[ch];
          if (affine >= 2) r += b[ch];
          ref.push_back(test::round_to(dt, r));
        }
        EXPECT_TRUE(test::expect_close(y.view, ref));
      }
    }
  }
}

// Normalizes groups of `group` consecutive elements of `in` (mean/var, or rms).
std::vector<double> normalize_groups(const std::vector<double>& in, int64_t group, double eps,
                                     bool rms) {
  std::vector<double> out(in.size());
  for (size_t g = 0; g < in.size() / group; ++g) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < group; ++j) mean += in[g * group + j] / group;
    if (rms) mean = 0;
    for (int64_t j = 0; j < group; ++j) {
      double d = in[g * group + j] - mean;
      var += d * d / group;
    }
    for (int64_t j = 0; j < group; ++j)
      out[g * group + j] = (in[g * group + j] - mean) / std::sqrt(var + eps);
  }
  return out;
}

TEST(CpuLayerNorm, NormalizesTrailingDimsWithWeightAndBias) {
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (int64_t k : {1, 2}) {
        for (int affine = 0; affine < 3; ++affine) {
          SCOPED_TRACE(
              str(dtype_name(dt), " ", test::layout_name(layout), " ndim ", k, " affine ", affine));
          std::vector<int64_t> wshape(kShape.end() - k, kShape.end());
          const int64_t inner = test::numel(wshape);
          auto in = test::round_all(dt, test::random_values(test::numel(kShape), 6));
          auto w = test::round_all(dt, test::random_values(inner, 7, 0.5, 2));
          auto b = test::round_all(dt, test::random_values(inner, 8));
          auto x = make_tensor(dt, kShape, in, layout);
          auto tw = make_tensor(dt, wshape, w, Layout::kPermuted), tb = make_tensor(dt, wshape, b);
          std::vector<TensorView> inputs = {x.view};
          if (affine >= 1) inputs.push_back(tw.view);
          if (affine >= 2) inputs.push_back(tb.view);
          auto y = make_output(dt, kShape);
          ASSERT_TRUE(test::run_op(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}},
                                   inputs, {y.view})
                          .ok());
          auto ref = normalize_groups(in, inner, 1e-5, false);
          for (size_t i = 0; i < ref.size(); ++i) {
            if (affine >= 1) ref[i] *= w[i % inner];
            if (affine >= 2) ref[i] += b[i % inner];
            ref[i] = test::round_to(dt, ref[i]);
          }
          EXPECT_TRUE(test::expect_close(y.view, ref));
        }
      }
    }
  }
}

TEST(CpuRmsNorm, ScalesByRootMeanSquareWithOptionalWeight) {
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " weight ", weighted));
        const int64_t inner = kShape.back();
        auto in = test::round_all(dt, test::random_values(test::numel(kShape), 9));
        auto w = test::round_all(dt, test::random_values(inner, 10, 0.5, 2));
        auto x = make_tensor(dt, kShape, in, layout);
        auto tw = make_tensor(dt, {inner}, w);
        std::vector<TensorView> inputs = {x.view};
        if (weighted) inputs.push_back(tw.view);
        auto y = make_output(dt, kShape);
        ASSERT_TRUE(test::run_op(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}},
                                 inputs, {y.view})
                        .ok());
        auto ref = normalize_groups(in, inner, 1e-6, true);
        for (size_t i = 0; i < ref.size(); ++i)
          ref[i] = test::round_to(dt, weighted ? ref[i] * w[i % inner] : ref[i]);
        EXPECT_TRUE(test::expect_close(y.view, ref));
      }
    }
  }
}

TEST(CpuGroupNorm, NormalizesChannelGroupsThenAppliesPerChannelAffine) {
  const int64_t c = kShape[1], inner = kShape[2] * kShape[3];
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (int64_t groups : {1, 2, 4}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " groups ", groups));
        auto in = test::round_all(dt, test::random_values(test::numel(kShape), 11));
        auto w = test::round_all(dt, test::random_values(c, 12, 0.5, 2));
        auto b = test::round_all(dt, test::random_values(c, 13));
        auto x = make_tensor(dt, kShape, in, layout);
        auto tw = make_tensor(dt, {c}, w), tb = make_tensor(dt, {c}, b);
        auto y = make_output(dt, kShape);
        ASSERT_TRUE(test::run_op(OpKind::kGroupNorm, {{"groups", groups}, {"eps", 1e-5}},
                                 {x.view, tw.view, tb.view}, {y.view})
                        .ok());
        auto ref = normalize_groups(in, c / groups * inner, 1e-5, false);
        for (size_t i = 0; i < ref.size(); ++i) {
          int64_t ch = (static_cast<int64_t>(i) / inner) % c;
          ref[i] = test::round_to(dt, ref[i] * w[ch] + b[ch]);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref));
      }
    }
  }
}

TEST(CpuGroupNorm, GroupsThatDoNotDivideChannelsAreAnError) {
  auto x = make_tensor(DType::kFloat32, {1, 3, 2}, test::random_values(6, 1));
  auto y = make_output(DType::kFloat32, {1, 3, 2});
  EXPECT_FALSE(
      test::run_op(OpKind::kGroupNorm, {{"groups", int64_t{2}}, {"eps", 1e-5}}, {x.view}, {y.view})
          .ok());
}

TEST(CpuNorm, IntegerInputIsUnsupported) {
  auto x = make_tensor(DType::kInt32, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = make_output(DType::kInt32, {2, 3});
  EXPECT_EQ(test::run_op(OpKind::kLayerNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}},
                         {x.view}, {y.view})
                .code(),
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln
