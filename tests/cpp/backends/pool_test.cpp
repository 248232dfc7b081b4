// Max/avg pooling and adaptive average pooling against double-precision references written
// here (PyTorch's window rules), plus small hand-computed cases. Op suite: runs on every backend
// (backends/op_runner.h).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/conv_nhwc_cases.h"
#include "backends/op_runner.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(Pool);
KILN_OP_SUITE(PoolAdaptiveAvg);

struct PoolCase {
  std::string kind = {};
  Shape64 x = {};  // [N, C, *sp]
  Shape64 kernel = {}, stride = {}, pad = {}, dil = {};
  bool ceil_mode = false;
  bool count_include_pad = true;
};

// PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the input or
// the left padding.
Shape64 pool_output_shape(const PoolCase& c) {
  Shape64 o = {c.x[0], c.x[1]};
  for (size_t i = 0; i < c.kernel.size(); ++i) {
    const int64_t in = c.x[2 + i], num = in + 2 * c.pad[i] - c.dil[i] * (c.kernel[i] - 1) - 1;
    int64_t out = (num + (c.ceil_mode ? c.stride[i] - 1 : 0)) / c.stride[i] + 1;
    if (c.ceil_mode && (out - 1) * c.stride[i] >= in + c.pad[i]) --out;
    o.push_back(out);
  }
  return o;
}

std::vector<double> ref_pool(const PoolCase& c, const std::vector<double>& x) {
  const Shape64 os = pool_output_shape(c);
  const Shape64 in_sp(c.x.begin() + 2, c.x.end()), out_sp(os.begin() + 2, os.end());
  const size_t sp = in_sp.size();
  const int64_t planes = c.x[0] * c.x[1], in_vol = numel(in_sp), out_vol = numel(out_sp);
  std::vector<double> y(static_cast<size_t>(planes * out_vol));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t l = 0; l < out_vol; ++l) {
      const Shape64 o = unravel(l, out_sp);
      double acc = c.kind == "max" ? -std::numeric_limits<double>::infinity() : 0.0;
      int64_t padded = 1, inside = 1;
      for (size_t i = 0; i < sp; ++i) {  // avg divisors (PyTorch avg_pool rules)
        const int64_t lo = o[i] * c.stride[i] - c.pad[i];
        const int64_t hi = std::min(lo + c.kernel[i], in_sp[i] + c.pad[i]);
        padded *= hi - lo;
        inside *= std::max<int64_t>(0, std::min(hi, in_sp[i]) - std::max<int64_t>(lo, 0));
      }
      for (int64_t kk = 0; kk < numel(c.kernel); ++kk) {
        const Shape64 k = unravel(kk, c.kernel);
        Shape64 t(sp);
        bool in_bounds = true;
        for (size_t i = 0; i < sp; ++i) {
          t[i] = o[i] * c.stride[i] - c.pad[i] + k[i] * c.dil[i];
          in_bounds = in_bounds && t[i] >= 0 && t[i] < in_sp[i];
        }
        if (!in_bounds) continue;
        const double v = x[p * in_vol + ravel(t, in_sp)];
        acc = c.kind == "max" ? std::max(acc, v) : acc + v;
      }
      if (c.kind == "avg") acc = inside == 0 ? 0.0 : acc / (c.count_include_pad ? padded : inside);
      y[p * out_vol + l] = acc;
    }
  return y;
}

Attrs pool_attrs(const PoolCase& c) {
  Attrs a;
  a.set("kind", c.kind).set("kernel", c.kernel).set("stride", c.stride).set("padding", c.pad);
  a.set("dilation", c.dil).set("ceil_mode", c.ceil_mode);
  a.set("count_include_pad", c.count_include_pad);
  return a;
}

void check_pool(const PoolCase& c, DType dtype, Layout lx = Layout::kContiguous) {
  SCOPED_TRACE(str(c.kind, " ", dtype_name(dtype), " ", layout_name(lx), " ceil ", c.ceil_mode,
                   " include_pad ", c.count_include_pad));
  std::vector<double> xv = round_all(dtype, random_values(numel(c.x), 21));
  std::vector<double> ref = ref_pool(c, xv);
  TestTensor x = make_tensor(dtype, c.x, xv, lx);
  TestTensor y = make_output(dtype, pool_output_shape(c));
  Status s = run_kernel(OpKind::kPool, pool_attrs(c), {&x}, {&y});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(y.view, round_all(dtype, ref), magnitude_tolerance(dtype, ref)));
}

TEST_P(Pool, MaxPoolMatchesReference1d2d3d) {
  for (DType dt : kFloatDTypes) {
    check_pool({"max", {2, 3, 11}, {3}, {2}, {1}, {1}}, dt);
    check_pool({"max", {2, 3, 9, 8}, {3, 2}, {2, 1}, {1, 1}, {1, 1}}, dt);
    check_pool({"max", {1, 2, 9, 9}, {3, 3}, {1, 2}, {2, 1}, {2, 2}}, dt);  // dilation
    check_pool({"max", {1, 2, 5, 6, 7}, {2, 3, 2}, {2, 2, 1}, {1, 1, 0}, {1, 1, 2}}, dt);
  }
}

TEST_P(Pool, AvgPoolMatchesReferenceWithAndWithoutPadCount) {
  for (DType dt : kFloatDTypes)
    for (bool include : {true, false}) {
      check_pool({"avg", {2, 3, 10}, {3}, {2}, {1}, {1}, false, include}, dt);
      check_pool({"avg", {2, 2, 7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false, include}, dt);
      check_pool({"avg", {1, 2, 5, 4, 6}, {2, 2, 3}, {1, 2, 2}, {1, 0, 1}, {1, 1, 1}, false,
                  include},
                 dt);
    }
}

TEST_P(Pool, CeilModeWindowsMatchReference) {
  for (DType dt : kFloatDTypes)
    for (bool include : {true, false}) {
      check_pool({"max", {1, 2, 5, 7}, {2, 3}, {2, 2}, {0, 1}, {1, 1}, true, include}, dt);
      check_pool({"avg", {1, 2, 5, 7}, {2, 3}, {2, 2}, {0, 1}, {1, 1}, true, include}, dt);
      check_pool({"avg", {1, 1, 6, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, include}, dt);
      // Last window would start in the right padding: PyTorch drops it.
      check_pool({"max", {1, 1, 5}, {2}, {2}, {1}, {1}, true, include}, dt);
      check_pool({"avg", {2, 1, 3, 4, 5}, {2, 2, 2}, {2, 3, 2}, {1, 0, 1}, {1, 1, 1}, true,
                  include},
                 dt);
    }
}

// avg_pool1d(arange(6), kernel 3, stride 2, padding 1, ceil_mode=True) in PyTorch.
TEST_P(Pool, AvgCeilModeClipsLastWindowToPaddedInput) {
  for (bool include : {true, false}) {
    TestTensor x = make_tensor(DType::kFloat32, {1, 1, 6}, {0, 1, 2, 3, 4, 5});
    TestTensor y = make_output(DType::kFloat32, {1, 1, 4});
    PoolCase c{"avg", {1, 1, 6}, {3}, {2}, {1}, {1}, true, include};
    ASSERT_TRUE(run_kernel(OpKind::kPool, pool_attrs(c), {&x}, {&y}).ok());
    const std::vector<double> want =
        include ? std::vector<double>{1.0 / 3, 2, 4, 2.5} : std::vector<double>{0.5, 2, 4, 5};
    EXPECT_TRUE(expect_close(y.view, want)) << "count_include_pad " << include;
  }
}

TEST_P(Pool, MaxPoolPropagatesNaN) {
  const double nan = std::nan("");
  TestTensor x = make_tensor(DType::kFloat32, {1, 1, 4}, {1, nan, 3, 2});
  TestTensor y = make_output(DType::kFloat32, {1, 1, 2});
  PoolCase c{"max", {1, 1, 4}, {2}, {2}, {0}, {1}};
  ASSERT_TRUE(run_kernel(OpKind::kPool, pool_attrs(c), {&x}, {&y}).ok());
  EXPECT_TRUE(expect_close(y.view, {nan, 3}));
}

TEST_P(Pool, AcceptsStridedInput) {
  for (DType dt : kFloatDTypes)
    for (Layout l : kAllLayouts) {
      check_pool({"max", {2, 3, 7, 6}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true}, dt, l);
      check_pool({"avg", {2, 3, 7, 6}, {3, 2}, {2, 1}, {1, 0}, {1, 1}, false, false}, dt, l);
    }
}

TEST_P(Pool, RejectsIntegerDtypesAndUnknownKind) {
  TestTensor xi = make_tensor(DType::kInt32, {1, 1, 4}, {1, 2, 3, 4});
  TestTensor yi = make_output(DType::kInt32, {1, 1, 2});
  PoolCase c{"max", {1, 1, 4}, {2}, {2}, {0}, {1}};
  Status s = run_kernel(OpKind::kPool, pool_attrs(c), {&xi}, {&yi});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("pool"), std::string::npos) << s.message();
  TestTensor x = make_tensor(DType::kFloat32, {1, 1, 4}, {1, 2, 3, 4});
  TestTensor y = make_output(DType::kFloat32, {1, 1, 2});
  c.kind = "median";
  EXPECT_EQ(run_kernel(OpKind::kPool, pool_attrs(c), {&x}, {&y}).code(),
            StatusCode::kUnsupported);
}

// Adaptive average pooling: output i of a dim averages [floor(i*in/out), ceil((i+1)*in/out)).
std::vector<double> ref_adaptive(const Shape64& xs, const Shape64& out_sp,
                                 const std::vector<double>& x) {
  const Shape64 in_sp(xs.begin() + 2, xs.end());
  const int64_t planes = xs[0] * xs[1], in_vol = numel(in_sp), out_vol = numel(out_sp);
  std::vector<double> y(static_cast<size_t>(planes * out_vol));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t l = 0; l < out_vol; ++l) {
      const Shape64 o = unravel(l, out_sp);
      Shape64 lo(o.size()), extent(o.size());
      for (size_t i = 0; i < o.size(); ++i) {
        lo[i] = static_cast<int64_t>(std::floor(double(o[i] * in_sp[i]) / out_sp[i]));
        const int64_t hi =
            static_cast<int64_t>(std::ceil(double((o[i] + 1) * in_sp[i]) / out_sp[i]));
        extent[i] = hi - lo[i];
      }
      double sum = 0;
      for (int64_t e = 0; e < numel(extent); ++e) {
        Shape64 t = unravel(e, extent);
        for (size_t i = 0; i < t.size(); ++i) t[i] += lo[i];
        sum += x[p * in_vol + ravel(t, in_sp)];
      }
      y[p * out_vol + l] = sum / numel(extent);
    }
  return y;
}

void check_adaptive(const Shape64& xs, const Shape64& out_sp, DType dtype,
                    Layout lx = Layout::kContiguous) {
  SCOPED_TRACE(str(dtype_name(dtype), " ", layout_name(lx), " rank ", xs.size()));
  std::vector<double> xv = round_all(dtype, random_values(numel(xs), 31));
  std::vector<double> ref = ref_adaptive(xs, out_sp, xv);
  Shape64 os = {xs[0], xs[1]};
  os.insert(os.end(), out_sp.begin(), out_sp.end());
  TestTensor x = make_tensor(dtype, xs, xv, lx);
  TestTensor y = make_output(dtype, os);
  Attrs a;
  a.set("output_size", out_sp);
  Status s = run_kernel(OpKind::kAdaptiveAvgPool, a, {&x}, {&y});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(y.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST_P(PoolAdaptiveAvg, MatchesReference1d2d3d) {
  for (DType dt : kFloatDTypes) {
    check_adaptive({2, 3, 10}, {3}, dt);
    check_adaptive({2, 2, 7, 5}, {3, 2}, dt);
    check_adaptive({1, 2, 3, 5}, {5, 7}, dt);  // output larger than input
    check_adaptive({1, 2, 4, 6, 5}, {2, 3, 1}, dt);
    check_adaptive({2, 4, 7, 7}, {1, 1}, dt, Layout::kPermuted);  // global average pool
    check_adaptive({2, 4, 6, 5}, {4, 3}, dt, Layout::kSliced);
  }
}

TEST_P(PoolAdaptiveAvg, OverlappingWindowsByHand) {
  TestTensor x = make_tensor(DType::kFloat32, {1, 1, 10}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  TestTensor y = make_output(DType::kFloat32, {1, 1, 3});
  Attrs a;
  a.set("output_size", Shape64{3});
  ASSERT_TRUE(run_kernel(OpKind::kAdaptiveAvgPool, a, {&x}, {&y}).ok());
  EXPECT_TRUE(expect_close(y.view, {1.5, 4.5, 7.5}));  // [0,4) [3,7) [6,10)
}

// Layout nhwc max pooling: on CUDA C = 64 (and fp32 C = 12) with aligned contiguous tensors
// runs the 16-byte vector path; fp16/bf16 C = 12, a misaligned input and strided inputs run the
// generic kernel.
TEST_P(Pool, NhwcMaxVectorPathAndFallbackMatchReference) {
  for (DType dt : kFloatDTypes)
    for (int64_t channels : {64, 12})
      for (int variant = 0; variant < 5; ++variant) {
        Pool2dCase c{{2, channels, 11, 10}, "max"};  // 3x3 stride 2 pad 1 (the ResNet stem)
        if (variant == 1) {
          c.k = 2;
          c.pad = 0;
        }
        Layout l = variant == 3 ? Layout::kSliced
                                : variant == 4 ? Layout::kPermuted : Layout::kContiguous;
        SCOPED_TRACE(str(dtype_name(dt), " C ", channels, " variant ", variant));
        Pool2dTensors t = make_pool2d(c, dt, l, 91 + variant);
        if (variant == 2) t.x = shifted_by_one(t.x);
        ASSERT_OK(run_kernel(OpKind::kPool, c.attrs(), {&t.x}, {&t.y}));
        EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dt, t.ref)));
      }
}

TEST_P(Pool, NhwcMaxVectorPathPropagatesNaN) {
  const double nan = std::nan("");
  for (DType dt : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    SCOPED_TRACE(dtype_name(dt));
    // x [N=1, H=2, W=2, C=8]; one 2x2 window per channel. Channel 3 holds a NaN at pixel 1.
    std::vector<double> xv(32);
    for (int p = 0; p < 4; ++p)
      for (int ch = 0; ch < 8; ++ch) xv[static_cast<size_t>(p * 8 + ch)] = (p * 3 + ch * 5) % 7 - 3;
    xv[1 * 8 + 3] = nan;
    std::vector<double> want(8);
    for (int ch = 0; ch < 8; ++ch) {
      double m = -1e300;
      for (int p = 0; p < 4; ++p) m = std::max(m, xv[static_cast<size_t>(p * 8 + ch)]);
      want[static_cast<size_t>(ch)] = ch == 3 ? nan : m;
    }
    TestTensor x = make_tensor(dt, {1, 2, 2, 8}, xv);
    TestTensor y = make_output(dt, {1, 1, 1, 8});
    Pool2dCase c{{1, 8, 2, 2}, "max", 2, 2, 0};
    ASSERT_OK(run_kernel(OpKind::kPool, c.attrs(), {&x}, {&y}));
    EXPECT_TRUE(expect_close(y.view, want));
  }
}

}  // namespace
}  // namespace kiln::test
