// batch_norm, layer_norm, group_norm and rms_norm against double references, over the float
// dtypes and layouts, with parameters of another dtype. Op suite: runs on every backend
// (backends/op_runner.h).

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;
using test::TestTensor;
using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(BatchNorm);
KILN_OP_SUITE(GroupNorm);
KILN_OP_SUITE(LayerNorm);
KILN_OP_SUITE(Norm);
KILN_OP_SUITE(RmsNorm);

// A float32 mean and variance rounded once, plus the normalization's own rounding.
test::Tolerance norm_tol(DType dt) {
  return dt == DType::kFloat32 ? test::Tolerance{2e-5, 2e-5} : test::tolerance(dt);
}

const std::vector<int64_t> kShape = {2, 4, 3, 5};  // N, C, H, W

TEST_P(BatchNorm, NormalizesPerChannelWithOptionalAffine) {
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
        std::vector<const test::TestTensor*> inputs = {&x, &tm, &tv};
        if (affine >= 1) inputs.push_back(&tw);
        if (affine >= 2) inputs.push_back(&tb);
        auto y = make_output(dt, kShape);
        ASSERT_TRUE(run_kernel(OpKind::kBatchNorm, {{"eps", 1e-5}}, inputs, {&y}).ok());
        std::vector<double> ref;
        for (int64_t i = 0; i < test::numel(kShape); ++i) {
          int64_t ch = test::unravel(i, kShape)[1];
          double r = (in[i] - mean[ch]) / std::sqrt(var[ch] + 1e-5);
          if (affine >= 1) r *= w[ch];
          if (affine >= 2) r += b[ch];
          ref.push_back(test::round_to(dt, r));
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
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

TEST_P(LayerNorm, NormalizesTrailingDimsWithWeightAndBias) {
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
          std::vector<const test::TestTensor*> inputs = {&x};
          if (affine >= 1) inputs.push_back(&tw);
          if (affine >= 2) inputs.push_back(&tb);
          auto y = make_output(dt, kShape);
          ASSERT_TRUE(run_kernel(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}},
                                   inputs, {&y})
                          .ok());
          auto ref = normalize_groups(in, inner, 1e-5, false);
          for (size_t i = 0; i < ref.size(); ++i) {
            if (affine >= 1) ref[i] *= w[i % inner];
            if (affine >= 2) ref[i] += b[i % inner];
            ref[i] = test::round_to(dt, ref[i]);
          }
          EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
        }
      }
    }
  }
}

TEST_P(RmsNorm, ScalesByRootMeanSquareWithOptionalWeight) {
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " weight ", weighted));
        const int64_t inner = kShape.back();
        auto in = test::round_all(dt, test::random_values(test::numel(kShape), 9));
        auto w = test::round_all(dt, test::random_values(inner, 10, 0.5, 2));
        auto x = make_tensor(dt, kShape, in, layout);
        auto tw = make_tensor(dt, {inner}, w);
        std::vector<const test::TestTensor*> inputs = {&x};
        if (weighted) inputs.push_back(&tw);
        auto y = make_output(dt, kShape);
        ASSERT_TRUE(run_kernel(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}},
                                 inputs, {&y})
                        .ok());
        auto ref = normalize_groups(in, inner, 1e-6, true);
        for (size_t i = 0; i < ref.size(); ++i)
          ref[i] = test::round_to(dt, weighted ? ref[i] * w[i % inner] : ref[i]);
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
      }
    }
  }
}

TEST_P(GroupNorm, NormalizesChannelGroupsThenAppliesPerChannelAffine) {
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
        ASSERT_TRUE(run_kernel(OpKind::kGroupNorm, {{"groups", groups}, {"eps", 1e-5}},
                                 {&x, &tw, &tb}, {&y})
                        .ok());
        auto ref = normalize_groups(in, c / groups * inner, 1e-5, false);
        for (size_t i = 0; i < ref.size(); ++i) {
          int64_t ch = (static_cast<int64_t>(i) / inner) % c;
          ref[i] = test::round_to(dt, ref[i] * w[ch] + b[ch]);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
      }
    }
  }
}

TEST_P(GroupNorm, GroupsThatDoNotDivideChannelsAreAnError) {
  auto x = make_tensor(DType::kFloat32, {1, 3, 2}, test::random_values(6, 1));
  auto y = make_output(DType::kFloat32, {1, 3, 2});
  EXPECT_FALSE(
      run_kernel(OpKind::kGroupNorm, {{"groups", int64_t{2}}, {"eps", 1e-5}}, {&x}, {&y})
          .ok());
}

TEST_P(Norm, IntegerInputIsUnsupported) {
  auto x = make_tensor(DType::kInt32, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = make_output(DType::kInt32, {2, 3});
  EXPECT_EQ(run_kernel(OpKind::kLayerNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}},
                         {&x}, {&y})
                .code(),
            StatusCode::kUnsupported);
}

TEST_P(BatchNorm, AffinePerChannelForEveryDtypeAndLayout) {
  const Shape64 shape = {2, 3, 4, 2};
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (bool affine : {false, true}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), affine ? " affine" : ""));
        auto in = test::round_all(dt, test::random_values(48, 1));
        auto x = make_tensor(dt, shape, in, layout);
        auto mean = make_tensor(DType::kFloat32, {3}, {0.5, -1, 0});
        auto var = make_tensor(DType::kFloat32, {3}, {1, 0.25, 4});
        auto w = make_tensor(dt, {3}, {2, 0.5, -1}, Layout::kSliced);
        auto b = make_tensor(dt, {3}, {0, 1, -0.5});
        auto y = make_output(dt, shape);
        std::vector<const TestTensor*> ins = {&x, &mean, &var};
        if (affine) ins.insert(ins.end(), {&w, &b});
        ASSERT_OK(run_kernel(OpKind::kBatchNorm, {{"eps", 1e-5}}, ins, {&y}));
        std::vector<double> ref;
        const double m[] = {0.5, -1, 0}, va[] = {1, 0.25, 4}, ww[] = {2, 0.5, -1},
                     bb[] = {0, 1, -0.5};
        for (int64_t i = 0; i < 48; ++i) {
          const int64_t c = (i / 8) % 3;
          double r = (in[i] - m[c]) / std::sqrt(va[c] + 1e-5);
          if (affine) r = r * ww[c] + bb[c];
          ref.push_back(test::round_to(dt, r));
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
      }
    }
  }
}

TEST_P(LayerNorm, TrailingDimsWithOptionalParams) {
  const Shape64 shape = {3, 4, 6};
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (int64_t k : {1, 2}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " ndim ", k));
        const int64_t len = k == 1 ? 6 : 24;
        const Shape64 pshape = k == 1 ? Shape64{6} : Shape64{4, 6};
        auto in = test::round_all(dt, test::random_values(72, 4, -3, 5));
        auto pw = test::round_all(dt, test::random_values(len, 5, 0.5, 2));
        auto pb = test::round_all(dt, test::random_values(len, 6));
        auto x = make_tensor(dt, shape, in, layout);
        auto w = make_tensor(dt, pshape, pw, Layout::kPermuted);
        auto b = make_tensor(dt, pshape, pb);
        auto y = make_output(dt, shape);
        ASSERT_OK(run_kernel(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}},
                            {&x, &w, &b}, {&y}));
        auto ref = normalize_groups(in, len, 1e-5, false);
        for (size_t i = 0; i < ref.size(); ++i)
          ref[i] = test::round_to(dt, ref[i] * pw[i % len] + pb[i % len]);
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
        auto y2 = make_output(dt, shape);
        ASSERT_OK(run_kernel(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}}, {&x},
                            {&y2}));
        auto ref2 = normalize_groups(in, len, 1e-5, false);
        for (double& r : ref2) r = test::round_to(dt, r);
        EXPECT_TRUE(test::expect_close(y2.view, ref2, norm_tol(dt)));
      }
    }
  }
}

TEST_P(RmsNorm, ScalesByRootMeanSquare) {
  for (DType dt : test::kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t len = 1536;  // several values per thread
    auto in = test::round_all(dt, test::random_values(4 * len, 8));
    auto pw = test::round_all(dt, test::random_values(len, 9, 0.5, 1.5));
    auto x = make_tensor(dt, {4, len}, in, Layout::kPermuted);
    auto w = make_tensor(DType::kFloat32, {len}, pw);  // parameters may have another dtype
    auto y = make_output(dt, {4, len});
    ASSERT_OK(run_kernel(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}},
                        {&x, &w}, {&y}));
    auto ref = normalize_groups(in, len, 1e-6, true);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = test::round_to(dt, ref[i] * pw[i % len]);
    EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
  }
}

TEST_P(GroupNorm, NormalizesChannelGroups) {
  const Shape64 shape = {2, 6, 5};
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout)));
      auto in = test::round_all(dt, test::random_values(60, 12, -2, 3));
      auto pw = test::round_all(dt, test::random_values(6, 13, 0.5, 2));
      auto pb = test::round_all(dt, test::random_values(6, 14));
      auto x = make_tensor(dt, shape, in, layout);
      auto w = make_tensor(dt, {6}, pw);
      auto b = make_tensor(dt, {6}, pb, Layout::kSliced);
      auto y = make_output(dt, shape);
      ASSERT_OK(run_kernel(OpKind::kGroupNorm, {{"groups", int64_t{3}}, {"eps", 1e-5}},
                          {&x, &w, &b}, {&y}));
      auto ref = normalize_groups(in, 10, 1e-5, false);  // a group: 2 channels x 5
      for (size_t i = 0; i < ref.size(); ++i) {
        const int64_t c = (int64_t(i) / 5) % 6;
        ref[i] = test::round_to(dt, ref[i] * pw[c] + pb[c]);
      }
      EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
    }
  }
}

TEST_P(GroupNorm, GroupsThatDoNotDivideChannelsAreInvalid) {
  auto x = make_tensor(DType::kFloat32, {1, 6, 2}, test::random_values(12, 1));
  auto y = make_output(DType::kFloat32, {1, 6, 2});
  EXPECT_EQ(run_kernel(OpKind::kGroupNorm, {{"groups", int64_t{4}}}, {&x}, {&y}).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln
