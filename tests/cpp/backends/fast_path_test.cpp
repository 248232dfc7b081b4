// Cases aimed at the CUDA backend's memory-bound fast paths and at their fallbacks: vectorized
// elementwise kernels (aligned or a view offset by one element, sizes with a tail, bias and
// scalar broadcasts), the permute copies (contiguous inner runs moved as wide units, tiled
// transposes, the generic walk) and the register-resident layer/rms norm (warp rows, block
// rows, rows too long for either, misaligned and strided inputs). Op suite: runs on every
// backend (backends/op_runner.h) against double references.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;
using test::TestTensor;
using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(FastPathElementwise);
KILN_OP_SUITE(FastPathCopy);
KILN_OP_SUITE(FastPathNorm);

// A contiguous tensor of `shape` whose data starts `offset` elements into its buffer: with an
// odd offset it is misaligned for 16-byte vectors. Inputs hold `values`; outputs (values empty)
// hold sentinels.
TestTensor offset_tensor(DType dt, const Shape64& shape, const std::vector<double>& values,
                         int64_t offset) {
  const int64_t n = test::numel(shape);
  TestTensor t = values.empty() ? make_output(dt, {n + offset})
                                : make_tensor(dt, {n + offset}, std::vector<double>(n + offset));
  t.shape = shape;
  t.view.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.view.shape[i] = shape[i];
  set_contiguous_strides(t.view);
  t.view.data = t.buffer->data() + offset * static_cast<int64_t>(dtype_size(dt));
  if (!values.empty()) test::write_values(t.view, values);
  return t;
}

Attrs fn_attr(const char* fn) { return {{"fn", std::string(fn)}}; }

double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// ---- elementwise ------------------------------------------------------------------------------

TEST_P(FastPathElementwise, UnaryOverAlignedMisalignedAndTailSizes) {
  for (DType dt : test::kFloatDTypes) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4096}, int64_t{4099}}) {
      for (int64_t in_off : {0, 1}) {
        for (int64_t out_off : {0, 1}) {
          SCOPED_TRACE(str(dtype_name(dt), " n ", n, " offsets ", in_off, " ", out_off));
          auto in = test::round_all(dt, test::random_values(n, 3, -4, 4));
          auto x = offset_tensor(dt, {n}, in, in_off);
          for (const char* fn : {"gelu", "exp"}) {
            auto y = offset_tensor(dt, {n}, {}, out_off);
            ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr(fn), {&x}, {&y}));
            std::vector<double> ref;
            for (double v : in)
              ref.push_back(test::round_to(dt, fn[0] == 'g' ? gelu(v) : std::exp(v)));
            EXPECT_TRUE(test::expect_close(y.view, ref)) << fn;
          }
        }
      }
    }
  }
  auto xi = offset_tensor(DType::kInt32, {37}, test::random_ints(37, 4, -50, 50), 0);
  auto yi = make_output(DType::kInt32, {37});
  ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr("neg"), {&xi}, {&yi}));
  std::vector<double> ref;
  for (double v : test::read_values(xi.view)) ref.push_back(-v);
  EXPECT_TRUE(test::expect_close(yi.view, ref));
}

TEST_P(FastPathElementwise, ClampContiguousAndMisaligned) {
  for (int64_t off : {0, 1}) {
    auto in = test::round_all(DType::kFloat16, test::random_values(1003, 5, -3, 3));
    auto x = offset_tensor(DType::kFloat16, {1003}, in, off);
    auto y = make_output(DType::kFloat16, {1003});
    ASSERT_OK(run_kernel(OpKind::kClamp, {{"min", -1.0}, {"max", 0.5}}, {&x}, {&y}));
    std::vector<double> ref;
    for (double v : in) ref.push_back(std::min(std::max(v, -1.0), 0.5));
    EXPECT_TRUE(test::expect_close(y.view, ref)) << "offset " << off;
  }
}

// a (shape sa) op b (shape sb), broadcast, against the double reference.
void check_binary(DType dt, const char* fn, const Shape64& sa, const Shape64& sb, int64_t a_off,
                  int64_t b_off) {
  SCOPED_TRACE(str(dtype_name(dt), " ", fn, " a_off ", a_off, " b_off ", b_off, " sb rank ",
                   sb.size(), " last ", sb.back()));
  const Shape64 so = test::broadcast_shape(sa, sb);
  auto va = test::round_all(dt, test::random_values(test::numel(sa), 6, -3, 3));
  auto vb = test::round_all(dt, test::random_values(test::numel(sb), 7, 0.5, 3));
  auto a = offset_tensor(dt, sa, va, a_off), b = offset_tensor(dt, sb, vb, b_off);
  const bool pred = std::string(fn) == "lt";
  auto y = make_output(pred ? DType::kBool : dt, so);
  ASSERT_OK(run_kernel(OpKind::kBinary, fn_attr(fn), {&a, &b}, {&y}));
  auto ba = test::broadcast_values(va, sa, so), bb = test::broadcast_values(vb, sb, so);
  std::vector<double> ref;
  for (size_t i = 0; i < ba.size(); ++i) {
    const std::string f = fn;
    const double r = f == "add"   ? ba[i] + bb[i]
                     : f == "sub" ? ba[i] - bb[i]
                     : f == "div" ? ba[i] / bb[i]
                     : f == "lt"  ? double(ba[i] < bb[i])
                                  : ba[i] * bb[i];
    ref.push_back(pred ? r : test::round_to(dt, r));
  }
  EXPECT_TRUE(test::expect_close(y.view, ref));
}

TEST_P(FastPathElementwise, BinarySameShapeAlignedMisalignedAndTail) {
  for (DType dt : test::kFloatDTypes)
    for (int64_t off : {0, 1})
      for (const char* fn : {"add", "div", "lt"}) check_binary(dt, fn, {3, 341}, {3, 341}, 0, off);
  check_binary(DType::kInt32, "mul", {5, 13}, {5, 13}, 0, 0);
}

TEST_P(FastPathElementwise, BinaryBiasAndScalarBroadcasts) {
  for (DType dt : test::kFloatDTypes) {
    for (int64_t off : {0, 1}) {
      check_binary(dt, "add", {37, 64}, {64}, 0, off);  // bias row, vectorized when aligned
      check_binary(dt, "sub", {64}, {37, 64}, off, 0);  // the row is the first operand
      check_binary(dt, "add", {9, 45}, {45}, off, 0);   // row length not a vector multiple
      check_binary(dt, "mul", {6, 71}, {1}, off, 0);    // one element broadcast
      check_binary(dt, "div", {1}, {6, 71}, 0, off);
    }
    check_binary(dt, "add", {4, 16, 8}, {16, 1}, 0, 0);  // not a trailing row: strided path
  }
}

TEST_P(FastPathElementwise, CastContiguousMisalignedAndTail) {
  const std::vector<std::pair<DType, DType>> pairs = {
      {DType::kFloat32, DType::kFloat16},  {DType::kFloat16, DType::kFloat32},
      {DType::kBFloat16, DType::kFloat32}, {DType::kFloat32, DType::kInt32},
      {DType::kInt32, DType::kFloat16},    {DType::kFloat16, DType::kBFloat16}};
  for (auto [from, to] : pairs) {
    for (int64_t off : {0, 1}) {
      SCOPED_TRACE(str(dtype_name(from), " -> ", dtype_name(to), " offset ", off));
      auto in = test::round_all(from, test::random_values(1029, 8, -100, 100));
      auto x = offset_tensor(from, {3, 343}, in, off);
      auto y = offset_tensor(to, {3, 343}, {}, off);
      ASSERT_OK(run_kernel(OpKind::kCast, {}, {&x}, {&y}));
      std::vector<double> ref;
      for (double v : in) ref.push_back(test::round_to(to, is_integer(to) ? std::trunc(v) : v));
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

// ---- permute copies ---------------------------------------------------------------------------

// permute(perm) of a tensor of `shape` (offset `off` elements into its buffer), bit-exact.
void check_permute(DType dt, const Shape64& shape, const Shape64& perm, int64_t off = 0) {
  SCOPED_TRACE(str(dtype_name(dt), " rank ", shape.size(), " last ", shape.back(), " perm[-1] ",
                   perm.back(), " offset ", off));
  auto in = test::round_all(dt, test::random_ints(test::numel(shape), 9, 0, 100));
  auto x = offset_tensor(dt, shape, in, off);
  Shape64 so;
  for (int64_t p : perm) so.push_back(shape[p]);
  auto y = make_output(dt, so);
  ASSERT_OK(run_kernel(OpKind::kPermute, {{"perm", perm}}, {&x}, {&y}));
  std::vector<double> ref(in.size());
  for (int64_t i = 0; i < static_cast<int64_t>(in.size()); ++i) {
    const Shape64 oi = test::unravel(i, so);
    Shape64 ii(shape.size());
    for (size_t d = 0; d < perm.size(); ++d) ii[perm[d]] = oi[d];
    ref[i] = in[test::ravel(ii, shape)];
  }
  EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
}

TEST_P(FastPathCopy, PermuteKeepingTheInnerDimMovesWideRuns) {
  for (DType dt : {DType::kFloat16, DType::kFloat32, DType::kBFloat16, DType::kInt64}) {
    check_permute(dt, {2, 5, 3, 64}, {0, 2, 1, 3});        // [B,S,H,E] -> [B,H,S,E]
    check_permute(dt, {2, 7, 3, 4, 16}, {2, 0, 3, 1, 4});  // qkv split
    check_permute(dt, {2, 5, 3, 64}, {0, 2, 1, 3}, 1);     // misaligned: narrower units
    check_permute(dt, {3, 6, 5, 3}, {0, 2, 1, 3});         // odd inner run
  }
  check_permute(DType::kFloat16, {4, 9, 6, 8}, {0, 2, 1, 3});    // the run is one 16-byte unit
  check_permute(DType::kFloat16, {4, 12, 10, 8}, {0, 2, 1, 3});  // ... and tiles of such units
  check_permute(DType::kBool, {3, 4, 5, 32}, {1, 0, 2, 3});
}

TEST_P(FastPathCopy, TransposesUseTilesWithEdges) {
  for (DType dt : {DType::kFloat16, DType::kFloat32, DType::kInt8, DType::kInt64}) {
    check_permute(dt, {3, 40, 70}, {0, 2, 1});  // last two dims, tiles with partial edges
    check_permute(dt, {33, 65}, {1, 0});
    check_permute(dt, {2, 3, 36, 20}, {3, 1, 0, 2});  // batch dims around the transpose
    check_permute(dt, {3, 40, 70}, {0, 2, 1}, 1);
  }
  check_permute(DType::kFloat16, {5, 3, 4}, {2, 1, 0});  // dims too short for tiles: generic
  check_permute(DType::kFloat32, {4, 3, 5, 2}, {1, 3, 0, 2});
}

TEST_P(FastPathCopy, ConcatAlongTheLastDimMovesWideRuns) {
  for (auto [wa, wb] : {std::pair<int64_t, int64_t>{8, 24}, {3, 5}}) {
    SCOPED_TRACE(str(wa, " + ", wb));
    auto va = test::random_ints(6 * wa, 1, 0, 99), vb = test::random_ints(6 * wb, 2, 0, 99);
    auto a = make_tensor(DType::kFloat16, {6, wa}, va);
    auto b = make_tensor(DType::kFloat16, {6, wb}, vb);
    auto y = make_output(DType::kFloat16, {6, wa + wb});
    ASSERT_OK(run_kernel(OpKind::kConcat, {{"dim", int64_t{1}}}, {&a, &b}, {&y}));
    std::vector<double> ref;
    for (int64_t r = 0; r < 6; ++r) {
      ref.insert(ref.end(), va.begin() + r * wa, va.begin() + (r + 1) * wa);
      ref.insert(ref.end(), vb.begin() + r * wb, vb.begin() + (r + 1) * wb);
    }
    EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
  }
}

// ---- layer / rms norm -------------------------------------------------------------------------

test::Tolerance norm_tol(DType dt) {
  return dt == DType::kFloat32 ? test::Tolerance{2e-5, 2e-5} : test::tolerance(dt);
}

// A [a, b, len] view of a contiguous [b, a, len] buffer holding `values` (row-major over the
// view): rows strided, each row contiguous, as attention's [L, N, E] read batch first.
TestTensor lead_transposed(DType dt, int64_t a, int64_t b, int64_t len,
                           const std::vector<double>& values) {
  TestTensor t = make_tensor(dt, {b, a, len}, std::vector<double>(a * b * len));
  t.shape = {a, b, len};
  t.view.shape[0] = a;
  t.view.shape[1] = b;
  t.view.strides[0] = len;
  t.view.strides[1] = a * len;
  t.view.strides[2] = 1;
  test::write_values(t.view, values);
  return t;
}

// x [rows, len] (+ residual, whose rounded sum is also returned) normalized with float32
// weight and sliced bias; x offset `off` elements, or permuted when `permuted`. With
// `lead` > 0, x and the residual are [rows / lead, lead, len] views of transposed buffers.
// `typed`: the weight and bias are contiguous tensors of x's dtype instead (CUDA's packed
// warp-per-row kernel for 2-byte dtypes takes only those).
void check_layer_norm(DType dt, int64_t rows, int64_t len, bool residual, int64_t off,
                      bool permuted = false, int64_t lead = 0, bool typed = false) {
  SCOPED_TRACE(str(dtype_name(dt), " rows ", rows, " len ", len, " residual ", residual, " offset ",
                   off, permuted ? " permuted" : "", " lead ", lead, typed ? " typed" : ""));
  const Shape64 shape = lead ? Shape64{rows / lead, lead, len} : Shape64{rows, len};
  auto in = test::round_all(dt, test::random_values(rows * len, 10, -3, 5));
  auto rin = test::round_all(dt, test::random_values(rows * len, 11, -2, 2));
  auto pw = test::round_all(typed ? dt : DType::kFloat32, test::random_values(len, 12, 0.5, 2));
  auto pb = test::round_all(dt, test::random_values(len, 13));
  auto x = lead       ? lead_transposed(dt, rows / lead, lead, len, in)
            : permuted ? make_tensor(dt, shape, in, Layout::kPermuted)
                       : offset_tensor(dt, shape, in, off);
  auto r = lead ? lead_transposed(dt, rows / lead, lead, len, rin) : offset_tensor(dt, shape, rin, 0);
  auto w = make_tensor(typed ? dt : DType::kFloat32, {len}, pw);
  auto b = typed ? make_tensor(dt, {len}, pb) : make_tensor(dt, {len}, pb, Layout::kSliced);
  auto y = make_output(dt, shape), s = make_output(dt, shape);
  Attrs attrs{{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}};
  std::vector<const TestTensor*> inputs = {&x, &w, &b};
  std::vector<TestTensor*> outputs = {&y};
  std::vector<double> sum = in;
  if (residual) {
    attrs.set("residual", true);
    attrs.set("sum_output", true);
    inputs.push_back(&r);
    outputs.push_back(&s);
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = test::round_to(dt, in[i] + rin[i]);
  }
  ASSERT_OK(run_kernel(OpKind::kLayerNorm, attrs, inputs, outputs));
  std::vector<double> ref(sum.size());
  for (int64_t row = 0; row < rows; ++row) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < len; ++j) mean += sum[row * len + j] / len;
    for (int64_t j = 0; j < len; ++j) var += std::pow(sum[row * len + j] - mean, 2) / len;
    for (int64_t j = 0; j < len; ++j)
      ref[row * len + j] =
          test::round_to(dt, (sum[row * len + j] - mean) / std::sqrt(var + 1e-5) * pw[j] + pb[j]);
  }
  EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
  if (residual) {
    EXPECT_TRUE(test::expect_close(s.view, sum, {0, 0}));
  }
}

TEST_P(FastPathNorm, ResidualLayerNormWarpRowsBlockRowsAndFallbacks) {
  for (DType dt : test::kFloatDTypes) {
    check_layer_norm(dt, 600, 768, true, 0);     // a warp per row, 16-byte loads
    check_layer_norm(dt, 5, 768, true, 1);       // misaligned: a warp per row, scalar loads
    check_layer_norm(dt, 7, 100, true, 0);       // len not a multiple of 8
    check_layer_norm(dt, 3, 2048, true, 0);      // a block per row
    check_layer_norm(dt, 3, 3001, true, 0);      // a block per row, scalar loads
    check_layer_norm(dt, 2, 9000, true, 0);      // too long for registers: the general kernel
    check_layer_norm(dt, 4, 96, true, 0, true);  // strided input: the general kernel
    check_layer_norm(dt, 6 * 50, 768, true, 0, false, 50);  // strided rows: a warp per row
    check_layer_norm(dt, 6 * 5, 2048, true, 0, false, 5);   // strided rows: a block per row
    check_layer_norm(dt, 3 * 7, 100, true, 0, false, 7);    // strided rows, scalar loads
  }
}

TEST_P(FastPathNorm, LayerNormWithoutResidual) {
  for (DType dt : test::kFloatDTypes) {
    check_layer_norm(dt, 130, 768, false, 0);
    check_layer_norm(dt, 3, 1023, false, 1);
    check_layer_norm(dt, 2, 4096, false, 0);
    check_layer_norm(dt, 3, 40, false, 0, true);
    check_layer_norm(dt, 4 * 3, 768, false, 0, false, 3);
  }
}

// Many rows (more than two per SM, so not a block per row) with parameters of x's dtype: on
// CUDA, fp16 and bf16 take the packed warp-per-row kernel, whose chunk count follows len
// (1 to 4 vectors of 8 per lane, the last one partial or not).
TEST_P(FastPathNorm, ManyRowsWithParametersOfTheInputDtype) {
  for (DType dt : test::kFloatDTypes) {
    for (int64_t len : {int64_t{200}, int64_t{512}, int64_t{768}, int64_t{1000}, int64_t{1024}}) {
      check_layer_norm(dt, 600, len, true, 0, false, 0, true);
      check_layer_norm(dt, 601, len, false, 0, false, 0, true);
    }
    check_layer_norm(dt, 6 * 100, 768, true, 0, false, 100, true);  // strided rows
    check_layer_norm(dt, 400, 768, true, 0, false, 0, true);  // fewer than 4 rows per SM: 1-warp blocks
    check_layer_norm(dt, 300, 768, false, 1, false, 0, true);       // misaligned: not packed
    // rms_norm over the same kind of rows, with a weight of x's dtype.
    const int64_t rows = 700, len = 768;
    auto in = test::round_all(dt, test::random_values(rows * len, 16));
    auto pw = test::round_all(dt, test::random_values(len, 17, 0.5, 1.5));
    auto x = make_tensor(dt, {rows, len}, in);
    auto w = make_tensor(dt, {len}, pw);
    auto y = make_output(dt, {rows, len});
    ASSERT_OK(run_kernel(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}}, {&x, &w}, {&y}));
    std::vector<double> ref(in.size());
    for (int64_t row = 0; row < rows; ++row) {
      double ss = 0;
      for (int64_t j = 0; j < len; ++j) ss += in[row * len + j] * in[row * len + j] / len;
      for (int64_t j = 0; j < len; ++j)
        ref[row * len + j] = test::round_to(dt, in[row * len + j] / std::sqrt(ss + 1e-6) * pw[j]);
    }
    EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
  }
}

TEST_P(FastPathNorm, RmsNormWarpAndBlockRows) {
  for (DType dt : test::kFloatDTypes) {
    for (int64_t len : {int64_t{768}, int64_t{1000}, int64_t{3000}}) {
      for (int64_t off : {0, 1}) {
        SCOPED_TRACE(str(dtype_name(dt), " len ", len, " offset ", off));
        auto in = test::round_all(dt, test::random_values(5 * len, 14));
        auto pw = test::round_all(dt, test::random_values(len, 15, 0.5, 1.5));
        auto x = offset_tensor(dt, {5, len}, in, off);
        auto w = make_tensor(dt, {len}, pw, Layout::kSliced);
        auto y = make_output(dt, {5, len});
        ASSERT_OK(run_kernel(OpKind::kRmsNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-6}},
                             {&x, &w}, {&y}));
        std::vector<double> ref(in.size());
        for (int64_t row = 0; row < 5; ++row) {
          double ss = 0;
          for (int64_t j = 0; j < len; ++j) ss += in[row * len + j] * in[row * len + j] / len;
          for (int64_t j = 0; j < len; ++j)
            ref[row * len + j] =
                test::round_to(dt, in[row * len + j] / std::sqrt(ss + 1e-6) * pw[j]);
        }
        EXPECT_TRUE(test::expect_close(y.view, ref, norm_tol(dt)));
      }
    }
  }
}

}  // namespace
}  // namespace kiln
