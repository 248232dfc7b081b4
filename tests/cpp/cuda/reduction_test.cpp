// CUDA reductions and softmax / log_softmax against double references.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "cuda/cuda_test_util.h"

namespace kiln {
namespace {

using test::gpu;
using test::Layout;
using test::make_output;
using test::make_tensor;
using Shape64 = std::vector<int64_t>;

// Reduces `values` of `shape` over `dims` with fn (double precision), keepdim-free order.
std::vector<double> ref_reduce(const std::string& fn, const std::vector<double>& values,
                               const Shape64& shape, const std::vector<int64_t>& dims,
                               int64_t correction = 1) {
  std::vector<bool> red(shape.size(), false);
  for (int64_t d : dims) red[d] = true;
  Shape64 kept;
  for (size_t i = 0; i < shape.size(); ++i)
    if (!red[i]) kept.push_back(shape[i]);
  std::vector<std::vector<double>> groups(static_cast<size_t>(test::numel(kept)));
  for (int64_t i = 0; i < test::numel(shape); ++i) {
    auto idx = test::unravel(i, shape);
    Shape64 k;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!red[d]) k.push_back(idx[d]);
    groups[test::ravel(k, kept)].push_back(values[i]);
  }
  std::vector<double> out;
  for (const auto& g : groups) {
    double acc = 0;
    if (fn == "sum" || fn == "mean") {
      for (double v : g) acc += v;
      if (fn == "mean") acc /= double(g.size());
    } else if (fn == "prod") {
      acc = 1;
      for (double v : g) acc *= v;
    } else if (fn == "amax") {
      acc = -INFINITY;
      for (double v : g) acc = std::max(acc, v);
    } else if (fn == "amin") {
      acc = INFINITY;
      for (double v : g) acc = std::min(acc, v);
    } else {  // var
      double mean = 0;
      for (double v : g) mean += v;
      mean /= double(g.size());
      for (double v : g) acc += (v - mean) * (v - mean);
      acc /= double(int64_t(g.size()) - correction);
    }
    out.push_back(acc);
  }
  return out;
}

Shape64 kept_shape(const Shape64& shape, const std::vector<int64_t>& dims) {
  Shape64 k;
  for (size_t i = 0; i < shape.size(); ++i)
    if (std::find(dims.begin(), dims.end(), int64_t(i)) == dims.end()) k.push_back(shape[i]);
  return k;
}

TEST(CudaReduce, FloatFnsOverDimSetsAndLayouts) {
  KILN_REQUIRE_CUDA();
  const Shape64 shape = {3, 5, 4};
  const std::vector<std::vector<int64_t>> dim_sets = {{0}, {1}, {2}, {0, 2}, {0, 1, 2}};
  for (const char* fn : {"sum", "mean", "amax", "amin", "prod", "var"}) {
    for (DType dt : test::kFloatDTypes) {
      for (Layout layout : test::kAllLayouts) {
        for (const auto& dims : dim_sets) {
          SCOPED_TRACE(str(fn, " ", dtype_name(dt), " ", test::layout_name(layout), " dims ",
                           dims.size(), " first ", dims[0]));
          auto in = test::round_all(dt, test::random_values(60, 11, 0.5, 1.5));
          auto x = make_tensor(dt, shape, in, layout);
          auto y = make_output(dt, kept_shape(shape, dims));
          ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string(fn)}, {"dims", dims}}, {&x},
                              {&y}));
          auto ref = ref_reduce(fn, in, shape, dims);
          for (double& r : ref) r = test::round_to(dt, r);
          EXPECT_TRUE(test::expect_close(y.view, ref, test::magnitude_tolerance(dt, ref)));
        }
      }
    }
  }
}

TEST(CudaReduce, LongRowsUseBlockReduction) {
  KILN_REQUIRE_CUDA();
  const Shape64 shape = {3, 5000};
  auto in = test::random_values(15000, 5, -1, 1);
  auto x = make_tensor(DType::kFloat32, shape, in, Layout::kPermuted);
  for (const char* fn : {"sum", "var", "amax"}) {
    auto y = make_output(DType::kFloat32, {3});
    ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string(fn)}, {"dims", Shape64{1}}}, {&x},
                        {&y}));
    auto ref = ref_reduce(fn, test::round_all(DType::kFloat32, in), shape, {1});
    EXPECT_TRUE(test::expect_close(y.view, ref, {1e-4, 1e-5})) << fn;
  }
}

TEST(CudaReduce, VarUsesCorrection) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {4}, {1, 2, 3, 4});
  auto y = make_output(DType::kFloat32, {});
  ASSERT_OK(gpu().run(OpKind::kReduce,
                      {{"fn", std::string("var")}, {"dims", Shape64{0}}, {"correction", int64_t{0}}},
                      {&x}, {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {1.25}));
}

TEST(CudaReduce, AmaxPropagatesNan) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {2, 40}, test::iota(80));
  x.view.as<float>()[45] = std::nanf("");
  auto y = make_output(DType::kFloat32, {2});
  ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string("amax")}, {"dims", Shape64{1}}}, {&x},
                      {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {39, std::nan("")}));
}

TEST(CudaReduce, IntegerAndBoolReductions) {
  KILN_REQUIRE_CUDA();
  const std::vector<double> in = {1, -2, 3, 4, 5, -6, 7, 8, 100, 100, 100, 100};
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8}) {
    auto x = make_tensor(dt, {3, 4}, in, Layout::kSliced);
    for (const char* fn : {"sum", "amax", "amin", "prod"}) {
      SCOPED_TRACE(str(fn, " ", dtype_name(dt)));
      auto y = make_output(dt, {3});
      ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string(fn)}, {"dims", Shape64{1}}}, {&x},
                          {&y}));
      auto ref = ref_reduce(fn, in, {3, 4}, {1});
      if (dt == DType::kInt8)  // wrapping: 400 -> -112, 10^8 -> 0 (mod 256)
        for (double& r : ref)
          r = double(int8_t(uint8_t(int64_t(r) & 0xff)));
      else if (dt == DType::kInt32)
        for (double& r : ref) r = double(int32_t(uint32_t(int64_t(r))));
      EXPECT_TRUE(test::expect_close(y.view, ref));
    }
  }
  auto b = make_tensor(DType::kBool, {2, 3}, {0, 1, 0, 1, 1, 1});
  auto yb = make_output(DType::kBool, {2});
  ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string("amax")}, {"dims", Shape64{1}}}, {&b},
                      {&yb}));
  EXPECT_TRUE(test::expect_close(yb.view, {1, 1}));
  ASSERT_OK(gpu().run(OpKind::kReduce, {{"fn", std::string("amin")}, {"dims", Shape64{1}}}, {&b},
                      {&yb}));
  EXPECT_TRUE(test::expect_close(yb.view, {0, 1}));
}

TEST(CudaReduce, MeanOfIntegersIsUnsupported) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kInt32, {2}, {1, 2});
  auto y = make_output(DType::kInt32, {});
  EXPECT_EQ(gpu().run(OpKind::kReduce, {{"fn", std::string("mean")}, {"dims", Shape64{0}}}, {&x},
                      {&y})
                .code(),
            StatusCode::kUnsupported);
}

// ---- softmax ----------------------------------------------------------------------------------

std::vector<double> ref_softmax(const std::vector<double>& v, const Shape64& shape, int64_t dim,
                                bool log) {
  std::vector<double> out(v.size());
  const int64_t n = shape[dim];
  for (int64_t i = 0; i < test::numel(shape); ++i) {
    auto idx = test::unravel(i, shape);
    if (idx[dim] != 0) continue;
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      idx[dim] = j;
      mx = std::max(mx, v[test::ravel(idx, shape)]);
    }
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      idx[dim] = j;
      sum += std::exp(v[test::ravel(idx, shape)] - mx);
    }
    for (int64_t j = 0; j < n; ++j) {
      idx[dim] = j;
      const int64_t l = test::ravel(idx, shape);
      out[l] = log ? v[l] - mx - std::log(sum) : std::exp(v[l] - mx) / sum;
    }
  }
  return out;
}

TEST(CudaSoftmax, EveryDimDtypeAndLayout) {
  KILN_REQUIRE_CUDA();
  const Shape64 shape = {3, 4, 5};
  for (bool log : {false, true}) {
    for (DType dt : test::kFloatDTypes) {
      for (Layout layout : test::kAllLayouts) {
        for (int64_t dim = 0; dim < 3; ++dim) {
          SCOPED_TRACE(str(log ? "log_softmax " : "softmax ", dtype_name(dt), " ",
                           test::layout_name(layout), " dim ", dim));
          auto in = test::round_all(dt, test::random_values(60, 3, -4, 4));
          auto x = make_tensor(dt, shape, in, layout);
          auto y = make_output(dt, shape);
          ASSERT_OK(gpu().run(log ? OpKind::kLogSoftmax : OpKind::kSoftmax, {{"dim", dim}}, {&x},
                              {&y}));
          auto ref = ref_softmax(in, shape, dim, log);
          for (double& r : ref) r = test::round_to(dt, r);
          EXPECT_TRUE(test::expect_close(y.view, ref, test::magnitude_tolerance(dt, ref)));
        }
      }
    }
  }
}

TEST(CudaSoftmax, LongRowsAndAllNegativeInfinityRow) {
  KILN_REQUIRE_CUDA();
  const Shape64 shape = {2, 3000};
  auto in = test::random_values(6000, 9, -10, 10);
  for (int j = 0; j < 3000; ++j) in[j] = -INFINITY;
  auto x = make_tensor(DType::kFloat32, shape, in);
  auto y = make_output(DType::kFloat32, shape);
  ASSERT_OK(gpu().run(OpKind::kSoftmax, {{"dim", int64_t{1}}}, {&x}, {&y}));
  auto got = test::read_values(y.view);
  EXPECT_TRUE(std::isnan(got[0]));  // exp(-inf - 0) / 0 = 0/0, as the CPU backend
  std::vector<double> second(in.begin() + 3000, in.end());
  auto ref = ref_softmax(test::round_all(DType::kFloat32, second), {1, 3000}, 1, false);
  std::vector<double> got2(got.begin() + 3000, got.end());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got2[i], ref[i], 1e-6 + 1e-5 * ref[i]);
}

}  // namespace
}  // namespace kiln
