// CUDA normalizations (batch_norm, layer_norm, rms_norm, group_norm) against double references.

#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "cuda/cuda_test_util.h"

namespace kiln {
namespace {

using test::gpu;
using test::Layout;
using test::make_output;
using test::make_tensor;
using test::TestTensor;
using Shape64 = std::vector<int64_t>;

// Normalizes groups of `len` consecutive values: (v - mean) / sqrt(var + eps) (rms: no mean).
std::vector<double> ref_rows(const std::vector<double>& v, int64_t len, double eps, bool rms) {
  std::vector<double> out(v.size());
  for (size_t r = 0; r < v.size() / len; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < len; ++j) mean += v[r * len + j];
    mean /= double(len);
    for (int64_t j = 0; j < len; ++j) {
      const double d = rms ? v[r * len + j] : v[r * len + j] - mean;
      var += d * d;
    }
    var /= double(len);
    for (int64_t j = 0; j < len; ++j)
      out[r * len + j] = ((rms ? v[r * len + j] : v[r * len + j] - mean)) / std::sqrt(var + eps);
  }
  return out;
}

test::Tolerance norm_tol(DType dt) {
  return dt == DType::kFloat32 ? test::Tolerance{2e-5, 2e-5} : test::tolerance(dt);
}

TEST(CudaBatchNorm, AffinePerChannelForEveryDtypeAndLayout) {
  KILN_REQUIRE_CUDA();
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
        ASSERT_OK(gpu().run(OpKind::kBatchNorm, {{"eps", 1e-5}}, ins, {&y}));
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

TEST(CudaLayerNorm, TrailingDimsWithOptionalParams) {
  KILN_REQUIRE_CUDA();
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
        ASSERT_OK(gpu().run(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}},
                            {&x, &w, &b}, {&y}));
        auto ref = ref_rows(in, len, 1e-5, false);
        for (size_t i = 0; i < ref.size(); ++i)
          ref[i] = test::round_to(dt, ref[i] * pw[i % len] + pb[i % len]);
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
        auto y2 = make_output(dt, shape);
        ASSERT_OK(gpu().run(OpKind::kLayerNorm, {{"normalized_ndim", k}, {"eps", 1e-5}}, {&x},
                            {&y2}));
        auto ref2 = ref_rows(in, len, 1e-5, false);
        for (double& r : ref2) r = test::round_to(dt, r);
        EXPECT_TRUE(test::expect_close(y2.view, ref2, norm_tol(dt)));
      }
    }
  }
}

TEST(CudaRmsNorm, ScalesByRootMeanSquare) {
  KILN_REQUIRE_CUDA();
  for (DType dt : test::kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t len = 1536;  // several values per thread
    auto in = test::round_all(dt, test::random_values(4 * len, 8));
    auto pw = test::round_all(dt, test::random_values(len, 9, 0.5, 1.5));
    auto x = make_tensor(dt, {4, len}, in, Layout::kPermuted);
    auto w = make_tensor(DType::kFloat32, {len}, pw);  // parameters may have another dtype
    auto y = make_output(dt, {4, len});
    ASSERT_OK(gpu().run(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}},
                        {&x, &w}, {&y}));
    auto ref = ref_rows(in, len, 1e-6, true);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = test::round_to(dt, ref[i] * pw[i % len]);
    EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
  }
}

TEST(CudaGroupNorm, NormalizesChannelGroups) {
  KILN_REQUIRE_CUDA();
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
      ASSERT_OK(gpu().run(OpKind::kGroupNorm, {{"groups", int64_t{3}}, {"eps", 1e-5}},
                          {&x, &w, &b}, {&y}));
      auto ref = ref_rows(in, 10, 1e-5, false);  // a group: 2 channels x 5
      for (size_t i = 0; i < ref.size(); ++i) {
        const int64_t c = (int64_t(i) / 5) % 6;
        ref[i] = test::round_to(dt, ref[i] * pw[c] + pb[c]);
      }
      EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
    }
  }
}

TEST(CudaGroupNorm, GroupsMustDivideChannels) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {1, 6, 2}, test::iota(12));
  auto y = make_output(DType::kFloat32, {1, 6, 2});
  EXPECT_EQ(gpu().run(OpKind::kGroupNorm, {{"groups", int64_t{4}}}, {&x}, {&y}).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln
