// Reduce, softmax, log_softmax and cumsum against double references: every fn, dim set, layout
// and dtype, rows long enough for block reductions, integer wrapping, NaN and -inf. Op suite: runs
// on every backend (backends/op_runner.h).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;

KILN_OP_SUITE(Reduce);
KILN_OP_SUITE(Softmax);
KILN_OP_SUITE(Cumsum);

// Reference reduction of `v` (row-major, `shape`) over `dims`; returns the kept dims' values in
// row-major order and their shape (with 1s when keepdim).
struct Reduced {
  std::vector<double> values;
  std::vector<int64_t> shape;
};

Reduced reduce_ref(const std::vector<double>& v, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& dims, bool keepdim, const std::string& fn,
                   int64_t correction) {
  std::vector<bool> red(shape.size(), false);
  for (int64_t d : dims) red[d] = true;
  std::vector<int64_t> kept_shape;  // without 1s
  Reduced r;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (!red[i]) kept_shape.push_back(shape[i]);
    if (!red[i] || keepdim) r.shape.push_back(red[i] ? 1 : shape[i]);
  }
  std::vector<std::vector<double>> groups(static_cast<size_t>(test::numel(kept_shape)));
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    auto idx = test::unravel(i, shape);
    std::vector<int64_t> k;
    for (size_t d = 0; d < shape.size(); ++d)
      if (!red[d]) k.push_back(idx[d]);
    groups[test::ravel(k, kept_shape)].push_back(v[i]);
  }
  for (const auto& g : groups) {
    double n = static_cast<double>(g.size()), acc = 0;
    if (fn == "sum" || fn == "mean") {
      for (double x : g) acc += x;
      if (fn == "mean") acc /= n;
    } else if (fn == "prod") {
      acc = 1;
      for (double x : g) acc *= x;
    } else if (fn == "amax") {
      acc = -INFINITY;
      for (double x : g) acc = std::max(acc, x);
    } else if (fn == "amin") {
      acc = INFINITY;
      for (double x : g) acc = std::min(acc, x);
    } else {  // var
      double mean = 0;
      for (double x : g) mean += x / n;
      for (double x : g) acc += (x - mean) * (x - mean);
      acc /= n - static_cast<double>(correction);
    }
    r.values.push_back(acc);
  }
  return r;
}

const std::vector<std::vector<int64_t>> kDimSets = {{0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}};

TEST_P(Reduce, FloatFnsOverDimSetsLayoutsAndDtypes) {
  const std::vector<int64_t> shape = {3, 4, 5};
  for (std::string fn : {"sum", "mean", "amax", "amin", "prod", "var"}) {
    for (DType dt : test::kFloatDTypes) {
      for (Layout layout : test::kAllLayouts) {
        for (const auto& dims : kDimSets) {
          for (bool keepdim : {false, true}) {
            SCOPED_TRACE(str(fn, " ", dtype_name(dt), " ", test::layout_name(layout), " dims ",
                             dims.size(), "@", dims[0], " keepdim ", keepdim));
            double lo = fn == "prod" ? 0.8 : -2, hi = fn == "prod" ? 1.2 : 2;
            auto in = test::round_all(dt, test::random_values(60, 11, lo, hi));
            auto x = make_tensor(dt, shape, in, layout);
            Reduced ref = reduce_ref(in, shape, dims, keepdim, fn, 1);
            auto y = make_output(dt, ref.shape);
            Attrs attrs{
                {"fn", fn}, {"dims", dims}, {"keepdim", keepdim}, {"correction", int64_t{1}}};
            ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
            EXPECT_TRUE(test::expect_close(y.view, test::round_all(dt, ref.values),
                                           test::magnitude_tolerance(dt, ref.values)));
          }
        }
      }
    }
  }
}

TEST_P(Reduce, VarHonoursCorrection) {
  auto in = test::random_values(12, 3);
  auto x = make_tensor(DType::kFloat32, {3, 4}, test::round_all(DType::kFloat32, in));
  for (int64_t correction : {0, 1, 2}) {
    auto y = make_output(DType::kFloat32, {3});
    Attrs attrs{{"fn", std::string("var")},
                {"dims", std::vector<int64_t>{1}},
                {"keepdim", false},
                {"correction", correction}};
    ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
    auto ref =
        reduce_ref(test::round_all(DType::kFloat32, in), {3, 4}, {1}, false, "var", correction);
    EXPECT_TRUE(test::expect_close(y.view, ref.values)) << correction;
  }
}

TEST_P(Reduce, IntegerFnsAreExact) {
  const std::vector<int64_t> shape = {2, 3, 4};
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8}) {
    for (std::string fn : {"sum", "amax", "amin", "prod"}) {
      for (const auto& dims : std::vector<std::vector<int64_t>>{{1}, {0, 2}, {0, 1, 2}}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", fn, " ", dims.size()));
        int64_t lo = dt == DType::kUInt8 ? 0 : -3;
        // prod over 24 values must stay in range: use 1s and -1s / 2s sparsely.
        auto in = fn == "prod" ? test::random_ints(24, 4, dt == DType::kUInt8 ? 1 : -1, 1)
                               : test::random_ints(24, 4, lo, 5);
        for (double& v : in)
          if (v == 0 && fn == "prod") v = 1;
        auto x = make_tensor(dt, shape, in, Layout::kPermuted);
        Reduced ref = reduce_ref(in, shape, dims, false, fn, 1);
        auto y = make_output(dt, ref.shape);
        Attrs attrs{{"fn", fn}, {"dims", dims}, {"keepdim", false}, {"correction", int64_t{1}}};
        ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
        EXPECT_TRUE(test::expect_close(y.view, ref.values));
      }
    }
  }
}

TEST_P(Reduce, BoolAmaxIsAnyAndAminIsAll) {
  auto x = make_tensor(DType::kBool, {2, 3}, {0, 1, 0, 1, 1, 1});
  auto y = make_output(DType::kBool, {2});
  Attrs attrs{{"fn", std::string("amax")}, {"dims", std::vector<int64_t>{1}}, {"keepdim", false}};
  ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {1, 1}));
  attrs.set("fn", std::string("amin"));
  ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {0, 1}));
}

TEST_P(Reduce, AmaxPropagatesNan) {
  auto x = make_tensor(DType::kFloat32, {2, 2}, {1, std::nan(""), 3, 4});
  auto y = make_output(DType::kFloat32, {2});
  Attrs attrs{{"fn", std::string("amax")}, {"dims", std::vector<int64_t>{1}}, {"keepdim", false}};
  ASSERT_TRUE(run_kernel(OpKind::kReduce, attrs, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {std::nan(""), 4}));
}

TEST_P(Reduce, MeanOnIntegersAndSumOnBoolAreUnsupported) {
  auto xi = make_tensor(DType::kInt32, {2}, {1, 2});
  auto yi = make_output(DType::kInt32, {});
  Attrs attrs{{"fn", std::string("mean")}, {"dims", std::vector<int64_t>{0}}};
  EXPECT_EQ(run_kernel(OpKind::kReduce, attrs, {&xi}, {&yi}).code(),
            StatusCode::kUnsupported);
  auto xb = make_tensor(DType::kBool, {2}, {1, 1});
  auto yb = make_output(DType::kBool, {});
  attrs.set("fn", std::string("sum"));
  EXPECT_EQ(run_kernel(OpKind::kReduce, attrs, {&xb}, {&yb}).code(),
            StatusCode::kUnsupported);
}

TEST_P(Reduce, LongRowsUseBlockReduction) {
  const std::vector<int64_t> shape = {3, 5000};
  auto in = test::random_values(15000, 5, -1, 1);
  auto x = make_tensor(DType::kFloat32, shape, in, Layout::kPermuted);
  for (const char* fn : {"sum", "var", "amax"}) {
    auto y = make_output(DType::kFloat32, {3});
    ASSERT_OK(run_kernel(OpKind::kReduce,
                         {{"fn", std::string(fn)}, {"dims", std::vector<int64_t>{1}},
                          {"correction", int64_t{1}}},
                         {&x}, {&y}));
    auto ref = reduce_ref(test::round_all(DType::kFloat32, in), shape, {1}, false, fn, 1);
    EXPECT_TRUE(test::expect_close(y.view, ref.values, {1e-4, 1e-5})) << fn;
  }
}

TEST_P(Reduce, AmaxPropagatesNanAcrossAWideRow) {
  std::vector<double> in(80);
  for (int i = 0; i < 80; ++i) in[i] = i;
  in[45] = std::nan("");
  auto x = make_tensor(DType::kFloat32, {2, 40}, in);
  auto y = make_output(DType::kFloat32, {2});
  ASSERT_OK(run_kernel(OpKind::kReduce,
                       {{"fn", std::string("amax")}, {"dims", std::vector<int64_t>{1}}}, {&x},
                       {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {39, std::nan("")}));
}

// Integer sums and products wrap like the dtype (int8: 400 -> -112, 10^8 -> 0 mod 256).
TEST_P(Reduce, IntegerReductionsWrap) {
  const std::vector<double> in = {1, -2, 3, 4, 5, -6, 7, 8, 100, 100, 100, 100};
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8}) {
    auto x = make_tensor(dt, {3, 4}, in, Layout::kSliced);
    for (const char* fn : {"sum", "amax", "amin", "prod"}) {
      SCOPED_TRACE(str(fn, " ", dtype_name(dt)));
      auto y = make_output(dt, {3});
      ASSERT_OK(run_kernel(OpKind::kReduce,
                           {{"fn", std::string(fn)}, {"dims", std::vector<int64_t>{1}}}, {&x},
                           {&y}));
      auto ref = reduce_ref(in, {3, 4}, {1}, false, fn, 1).values;
      if (dt == DType::kInt8)
        for (double& r : ref) r = double(int8_t(uint8_t(int64_t(r) & 0xff)));
      else if (dt == DType::kInt32)
        for (double& r : ref) r = double(int32_t(uint32_t(int64_t(r))));
      EXPECT_TRUE(test::expect_close(y.view, ref));
    }
  }
}

// ---- softmax --------------------------------------------------------------------------------

std::vector<double> softmax_ref(const std::vector<double>& v, const std::vector<int64_t>& shape,
                                int64_t dim, bool log) {
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    auto idx = test::unravel(i, shape);
    double mx = -INFINITY;
    for (int64_t j = 0; j < shape[dim]; ++j) {
      idx[dim] = j;
      mx = std::max(mx, v[test::ravel(idx, shape)]);
    }
    double sum = 0;
    for (int64_t j = 0; j < shape[dim]; ++j) {
      idx[dim] = j;
      sum += std::exp(v[test::ravel(idx, shape)] - mx);
    }
    out[i] = log ? v[i] - mx - std::log(sum) : std::exp(v[i] - mx) / sum;
  }
  return out;
}

TEST_P(Softmax, SoftmaxAndLogSoftmaxOverEveryDimLayoutAndDtype) {
  const std::vector<int64_t> shape = {3, 4, 5};
  for (bool log : {false, true}) {
    for (DType dt : test::kFloatDTypes) {
      for (Layout layout : test::kAllLayouts) {
        for (int64_t dim : {0, 1, 2}) {
          SCOPED_TRACE(str(log ? "log_softmax " : "softmax ", dtype_name(dt), " ",
                           test::layout_name(layout), " dim ", dim));
          auto in = test::round_all(dt, test::random_values(60, 13, -4, 4));
          auto x = make_tensor(dt, shape, in, layout);
          auto y = make_output(dt, shape);
          ASSERT_TRUE(run_kernel(log ? OpKind::kLogSoftmax : OpKind::kSoftmax, {{"dim", dim}},
                                   {&x}, {&y})
                          .ok());
          auto ref = softmax_ref(in, shape, dim, log);
          EXPECT_TRUE(test::expect_close(y.view, test::round_all(dt, ref),
                                         test::magnitude_tolerance(dt, ref)));
        }
      }
    }
  }
}

TEST_P(Softmax, LargeLogitsStayFinite) {
  std::vector<double> in = {1000, 1001, 1002, -1000};
  auto x = make_tensor(DType::kFloat32, {4}, in);
  auto y = make_output(DType::kFloat32, {4});
  ASSERT_TRUE(run_kernel(OpKind::kSoftmax, {{"dim", int64_t{0}}}, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, softmax_ref(in, {4}, 0, false)));
  ASSERT_TRUE(run_kernel(OpKind::kLogSoftmax, {{"dim", int64_t{0}}}, {&x}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, softmax_ref(in, {4}, 0, true), {1e-4, 1e-6}));
}

// A row of -inf is 0/0 = NaN on every backend; a long row still sums to one.
TEST_P(Softmax, LongRowsAndAllNegativeInfinityRow) {
  const std::vector<int64_t> shape = {2, 3000};
  auto in = test::random_values(6000, 9, -10, 10);
  for (int j = 0; j < 3000; ++j) in[j] = -INFINITY;
  auto x = make_tensor(DType::kFloat32, shape, in);
  auto y = make_output(DType::kFloat32, shape);
  ASSERT_OK(run_kernel(OpKind::kSoftmax, {{"dim", int64_t{1}}}, {&x}, {&y}));
  auto got = test::read_values(y.view);
  for (int j = 0; j < 3000; ++j) ASSERT_TRUE(std::isnan(got[j])) << j;
  std::vector<double> second(in.begin() + 3000, in.end());
  auto ref = softmax_ref(test::round_all(DType::kFloat32, second), {1, 3000}, 1, false);
  std::vector<double> got2(got.begin() + 3000, got.end());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got2[i], ref[i], 1e-6 + 1e-5 * ref[i]);
}

// ---- cumsum ---------------------------------------------------------------------------------

// Running sums of `v` (row-major, `shape`) along `dim`, in double.
std::vector<double> cumsum_ref(const std::vector<double>& v, const std::vector<int64_t>& shape,
                               int64_t dim) {
  std::vector<double> out(v.size());
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    auto idx = test::unravel(i, shape);
    if (idx[dim] != 0) continue;  // start of a line: walk it
    double acc = 0;
    for (int64_t j = 0; j < shape[dim]; ++j) {
      idx[dim] = j;
      const int64_t p = test::ravel(idx, shape);
      acc += v[p];
      out[p] = acc;
    }
  }
  return out;
}

Attrs cumsum_attrs(int64_t dim) { return {{"dim", dim}}; }
Attrs cumsum_attrs(int64_t dim, DType dtype) { return {{"dim", dim}, {"dtype", dtype}}; }

TEST_P(Cumsum, FloatDtypesOverEveryDimAndLayout) {
  const std::vector<int64_t> shape = {3, 4, 5};
  for (DType dt : test::kFloatDTypes) {
    for (Layout layout : test::kAllLayouts) {
      for (int64_t dim : {0, 1, 2}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " dim ", dim));
        auto in = test::round_all(dt, test::random_values(60, 17, -2, 2));
        auto x = make_tensor(dt, shape, in, layout);
        auto y = make_output(dt, shape);
        ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(dim), {&x}, {&y}));
        auto ref = cumsum_ref(in, shape, dim);
        EXPECT_TRUE(test::expect_close(y.view, test::round_all(dt, ref),
                                       test::magnitude_tolerance(dt, ref)));
      }
    }
  }
}

// Bool and integer inputs sum into int64 by default (torch), exactly, in any layout.
TEST_P(Cumsum, BoolAndIntegerInputsSumIntoInt64) {
  const std::vector<int64_t> shape = {2, 3, 7};
  for (DType dt : {DType::kBool, DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8}) {
    for (Layout layout : test::kAllLayouts) {
      for (int64_t dim : {0, 2}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", test::layout_name(layout), " dim ", dim));
        const int64_t lo = dt == DType::kBool || dt == DType::kUInt8 ? 0 : -50;
        const int64_t hi = dt == DType::kBool ? 1 : 100;
        auto in = test::random_ints(42, 23, lo, hi);
        auto x = make_tensor(dt, shape, in, layout);
        auto y = make_output(DType::kInt64, shape);
        ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(dim), {&x}, {&y}));
        EXPECT_TRUE(test::expect_close(y.view, cumsum_ref(in, shape, dim)));
      }
    }
  }
}

// The position-diff pattern of HF masking_utils: (diff != 1).cumsum(-1) on a [batch, seq] bool.
TEST_P(Cumsum, BoolMaskAlongLastDimCountsSegments) {
  auto x = make_tensor(DType::kBool, {2, 6}, {1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0});
  auto y = make_output(DType::kInt64, {2, 6});
  ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1), {&x}, {&y}));
  EXPECT_TRUE(test::expect_close(y.view, cumsum_ref(test::read_values(x.view), {2, 6}, 1)));
}

// dtype=int32 keeps int32: each running sum (int64) is stored wrapped to 32 bits, as torch does.
TEST_P(Cumsum, Int32OutputWraps) {
  std::vector<double> in = {1073741824, 1073741824, 1073741824, -5, 7, 1073741824};
  auto x = make_tensor(DType::kInt32, {6}, in);
  auto y = make_output(DType::kInt32, {6});
  ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(0, DType::kInt32), {&x}, {&y}));
  auto ref = cumsum_ref(in, {6}, 0);
  for (double& r : ref) r = double(int32_t(uint32_t(int64_t(r))));
  EXPECT_TRUE(test::expect_close(y.view, ref));
}

// dtype= converts each element first: floats truncate into int64, ints become float.
TEST_P(Cumsum, DtypeConvertsElementsBeforeSumming) {
  std::vector<double> fin = {1.7, -1.7, 2.5, 0.9, -3.2, 4.0};
  auto xf = make_tensor(DType::kFloat32, {2, 3}, fin);
  auto yi = make_output(DType::kInt64, {2, 3});
  ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1, DType::kInt64), {&xf}, {&yi}));
  std::vector<double> truncated;
  for (double v : fin) truncated.push_back(std::trunc(v));
  EXPECT_TRUE(test::expect_close(yi.view, cumsum_ref(truncated, {2, 3}, 1)));

  std::vector<double> iin = {3, -1, 4, 1, -5, 9};
  auto xi = make_tensor(DType::kInt64, {2, 3}, iin);
  for (DType dt : test::kFloatDTypes) {
    auto yf = make_output(dt, {2, 3});
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(0, dt), {&xi}, {&yf}));
    EXPECT_TRUE(test::expect_close(yf.view, cumsum_ref(iin, {2, 3}, 0))) << dtype_name(dt);
  }
  auto x16 = make_tensor(DType::kFloat16, {3}, {0.5, 0.25, 1024});
  auto y32 = make_output(DType::kFloat32, {3});
  ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(0, DType::kFloat32), {&x16}, {&y32}));
  EXPECT_TRUE(test::expect_close(y32.view, {0.5, 0.75, 1024.75}));
}

// Long lines (a block-wide scan on CUDA), many short lines, and a scanned dim that is not the
// innermost one; an expanded (stride 0) input.
TEST_P(Cumsum, LongLinesManyLinesAndExpandedInput) {
  {
    const std::vector<int64_t> shape = {3, 5000};
    auto in = test::round_all(DType::kFloat32, test::random_values(15000, 29, -1, 1));
    auto x = make_tensor(DType::kFloat32, shape, in, Layout::kPermuted);
    auto y = make_output(DType::kFloat32, shape);
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1), {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, cumsum_ref(in, shape, 1), {1e-4, 1e-5}));
  }
  {
    const std::vector<int64_t> shape = {2, 4099};
    auto in = test::random_ints(8198, 31, -1000, 1000);
    auto x = make_tensor(DType::kInt64, shape, in, Layout::kSliced);
    auto y = make_output(DType::kInt64, shape);
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1), {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, cumsum_ref(in, shape, 1)));
  }
  {
    const std::vector<int64_t> shape = {700, 3, 33};
    auto in = test::random_ints(700 * 3 * 33, 37, -9, 9);
    auto x = make_tensor(DType::kInt32, shape, in);
    auto y = make_output(DType::kInt32, shape);
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1, DType::kInt32), {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, cumsum_ref(in, shape, 1)));
    auto y0 = make_output(DType::kInt64, shape);
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(0), {&x}, {&y0}));
    EXPECT_TRUE(test::expect_close(y0.view, cumsum_ref(in, shape, 0)));
  }
  {
    auto x = test::make_expanded(DType::kBFloat16, {4, 1500}, {4, 1}, {1, -2, 0.5, 3});
    auto y = make_output(DType::kBFloat16, {4, 1500});
    ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1), {&x}, {&y}));
    auto ref = cumsum_ref(test::read_values(x.view), {4, 1500}, 1);
    EXPECT_TRUE(test::expect_close(y.view, test::round_all(DType::kBFloat16, ref),
                                   test::magnitude_tolerance(DType::kBFloat16, ref)));
  }
}

TEST_P(Cumsum, EmptyTensorsAndUnsupportedDtype) {
  auto x = make_tensor(DType::kFloat32, {2, 0}, {});
  auto y = make_output(DType::kFloat32, {2, 0});
  ASSERT_OK(run_kernel(OpKind::kCumsum, cumsum_attrs(1), {&x}, {&y}));
  auto xb = make_tensor(DType::kBool, {2}, {1, 1});
  auto yb = make_output(DType::kBool, {2});
  EXPECT_EQ(run_kernel(OpKind::kCumsum, cumsum_attrs(0, DType::kBool), {&xb}, {&yb}).code(),
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln
