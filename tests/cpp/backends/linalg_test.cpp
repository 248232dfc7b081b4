// CPU matmul and linear kernels against a double-precision reference written here.

#include <gtest/gtest.h>

#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "test_util.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

// Reference matmul with numpy batch broadcasting, in double. Returns the output shape in out_shape.
std::vector<double> ref_matmul(const std::vector<double>& a, const Shape64& as,
                               const std::vector<double>& b, const Shape64& bs, Shape64& out_shape) {
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  Shape64 a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Shape64 batch = broadcast_shape(a_batch, b_batch);
  out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  std::vector<double> out(static_cast<size_t>(numel(out_shape)));
  for (int64_t bi = 0; bi < numel(batch); ++bi) {
    Shape64 idx = unravel(bi, batch);
    const int64_t ao = broadcast_source(idx, a_batch) * M * K;
    const int64_t bo = broadcast_source(idx, b_batch) * K * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += a[ao + i * K + k] * b[bo + k * N + j];
        out[(bi * M + i) * N + j] = s;
      }
  }
  return out;
}

// Runs matmul on a (layout la) x b (layout lb) in `dtype` and compares with the reference.
void check_matmul(DType dtype, const Shape64& as, const Shape64& bs, Layout la = Layout::kContiguous,
                  Layout lb = Layout::kContiguous) {
  SCOPED_TRACE(str(dtype_name(dtype), " a ", layout_name(la), " b ", layout_name(lb)));
  std::vector<double> av = round_all(dtype, random_values(numel(as), 1));
  std::vector<double> bv = round_all(dtype, random_values(numel(bs), 2));
  Shape64 os;
  std::vector<double> ref = ref_matmul(av, as, bv, bs, os);
  TestTensor a = make_tensor(dtype, as, av, la);
  TestTensor b = make_tensor(dtype, bs, bv, lb);
  TestTensor out = make_output(dtype, os);
  ASSERT_TRUE(run_op(OpKind::kMatmul, {}, {a.view, b.view}, {out.view}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST(Matmul, MatchesReferenceForOddShapes) {
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {5, 7}, {7, 3});
    check_matmul(dt, {1, 1}, {1, 1});
    check_matmul(dt, {3, 17}, {17, 1});
    check_matmul(dt, {1, 9}, {9, 13});
    check_matmul(dt, {33, 65}, {65, 31});
  }
}

TEST(Matmul, BroadcastsBatchDims) {
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {2, 3, 4, 5}, {5, 6});        // [B,H,M,K] x [K,N]: one stacked GEMM
    check_matmul(dt, {1, 3, 4, 5}, {2, 1, 5, 6});  // [1,H,..] x [B,1,..]
    check_matmul(dt, {4, 5}, {2, 3, 5, 6});        // batch only on b
    check_matmul(dt, {3, 1, 5}, {3, 5, 2});        // M = 1 per batch
  }
}

TEST(Matmul, AcceptsStridedOperands) {
  for (DType dt : kFloatDTypes)
    for (Layout la : kAllLayouts)
      for (Layout lb : kAllLayouts) {
        check_matmul(dt, {6, 4}, {4, 5}, la, lb);  // permuted 2-D = plain transpose
        check_matmul(dt, {2, 3, 6, 4}, {3, 4, 5}, la, lb);
      }
}

TEST(Matmul, ReadsExpandedBatchWithStrideZero) {
  const Shape64 as = {3, 4, 5}, small = {1, 5, 2}, bs = {3, 5, 2};
  std::vector<double> av = random_values(numel(as), 3), bsmall = random_values(numel(small), 4);
  Shape64 os;
  std::vector<double> ref = ref_matmul(av, as, bsmall, small, os);
  TestTensor a = make_tensor(DType::kFloat32, as, av);
  TestTensor b = make_expanded(DType::kFloat32, bs, small, bsmall);
  TestTensor out = make_output(DType::kFloat32, os);
  ASSERT_TRUE(run_op(OpKind::kMatmul, {}, {a.view, b.view}, {out.view}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat32, ref)));
}

TEST(Matmul, EmptyReductionGivesZeros) {
  TestTensor a = make_tensor(DType::kFloat32, {3, 0}, {});
  TestTensor b = make_tensor(DType::kFloat32, {0, 2}, {});
  TestTensor out = make_output(DType::kFloat32, {3, 2});
  ASSERT_TRUE(run_op(OpKind::kMatmul, {}, {a.view, b.view}, {out.view}).ok());
  EXPECT_TRUE(expect_close(out.view, std::vector<double>(6, 0.0)));
}

TEST(Matmul, RejectsIntegerDtypes) {
  TestTensor a = make_tensor(DType::kInt32, {2, 2}, {1, 2, 3, 4});
  TestTensor out = make_output(DType::kInt32, {2, 2});
  Status s = run_op(OpKind::kMatmul, {}, {a.view, a.view}, {out.view});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("matmul"), std::string::npos) << s.message();
}

// Reference linear: out[p, n] = sum_k x[p, k] w[n, k] + b[n].
std::vector<double> ref_linear(const std::vector<double>& x, int64_t P, int64_t K,
                               const std::vector<double>& w, int64_t N,
                               const std::vector<double>* b) {
  std::vector<double> out(static_cast<size_t>(P * N));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n = 0; n < N; ++n) {
      double s = b ? (*b)[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[p * K + k] * w[n * K + k];
      out[p * N + n] = s;
    }
  return out;
}

void check_linear(DType dtype, const Shape64& xs, int64_t N, bool bias, Layout lx, Layout lw) {
  SCOPED_TRACE(str(dtype_name(dtype), " bias ", bias, " x ", layout_name(lx), " w ",
                   layout_name(lw)));
  const int64_t K = xs.back(), P = numel(xs) / K;
  std::vector<double> xv = round_all(dtype, random_values(numel(xs), 5));
  std::vector<double> wv = round_all(dtype, random_values(N * K, 6));
  std::vector<double> bv = round_all(dtype, random_values(N, 7));
  std::vector<double> ref = ref_linear(xv, P, K, wv, N, bias ? &bv : nullptr);
  Shape64 os = xs;
  os.back() = N;
  TestTensor x = make_tensor(dtype, xs, xv, lx);
  TestTensor w = make_tensor(dtype, {N, K}, wv, lw);
  TestTensor b = make_tensor(dtype, {N}, bv);
  TestTensor out = make_output(dtype, os);
  std::vector<TensorView> inputs = {x.view, w.view};
  if (bias) inputs.push_back(b.view);
  ASSERT_TRUE(run_op(OpKind::kLinear, {}, inputs, {out.view}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST(Linear, MatchesReferenceWithAndWithoutBias) {
  for (DType dt : kFloatDTypes)
    for (bool bias : {false, true}) {
      check_linear(dt, {7, 13}, 5, bias, Layout::kContiguous, Layout::kContiguous);
      check_linear(dt, {2, 3, 13}, 9, bias, Layout::kContiguous, Layout::kContiguous);
      check_linear(dt, {13}, 4, bias, Layout::kContiguous, Layout::kContiguous);
    }
}

TEST(Linear, AcceptsStridedInputAndWeight) {
  for (DType dt : kFloatDTypes)
    for (Layout lx : kAllLayouts)
      for (Layout lw : kAllLayouts) check_linear(dt, {2, 3, 6}, 4, true, lx, lw);
}

TEST(Linear, RejectsMixedDtypes) {
  TestTensor x = make_tensor(DType::kFloat32, {2, 3}, random_values(6, 1));
  TestTensor w = make_tensor(DType::kFloat16, {4, 3}, random_values(12, 2));
  TestTensor out = make_output(DType::kFloat32, {2, 4});
  Status s = run_op(OpKind::kLinear, {}, {x.view, w.view}, {out.view});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("linear"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kiln::test
