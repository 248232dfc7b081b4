// Matmul and linear against a double-precision reference written here: odd shapes, batch
// broadcasting, transposed and gappy operand layouts, the bias epilogue, every tactic. Op suite:
// runs on every backend (backends/op_runner.h).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/op_runner.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(Matmul);
KILN_OP_SUITE(Linear);

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
  ASSERT_TRUE(run_kernel(OpKind::kMatmul, {}, {&a, &b}, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST_P(Matmul, MatchesReferenceForOddShapes) {
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {5, 7}, {7, 3});
    check_matmul(dt, {1, 1}, {1, 1});
    check_matmul(dt, {3, 17}, {17, 1});
    check_matmul(dt, {1, 9}, {9, 13});
    check_matmul(dt, {33, 65}, {65, 31});
    check_matmul(dt, {128, 256}, {256, 64});
  }
}

TEST_P(Matmul, BroadcastsBatchDims) {
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {2, 3, 4, 5}, {5, 6});        // [B,H,M,K] x [K,N]: one stacked GEMM
    check_matmul(dt, {1, 3, 4, 5}, {2, 1, 5, 6});  // [1,H,..] x [B,1,..]
    check_matmul(dt, {4, 5}, {2, 3, 5, 6});        // batch only on b
    check_matmul(dt, {3, 1, 5}, {3, 5, 2});        // M = 1 per batch
  }
}

TEST_P(Matmul, BroadcastsSharedAndStridedBatchOperands) {
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {3, 4, 5}, {5, 6});        // shared b
    check_matmul(dt, {4, 5}, {3, 5, 6});        // shared a
    check_matmul(dt, {2, 1, 4, 5}, {3, 5, 2});  // both broadcast
    check_matmul(dt, {2, 3, 4, 5}, {2, 3, 5, 6}, Layout::kPermuted, Layout::kContiguous);
    check_matmul(dt, {2, 3, 4, 5}, {2, 3, 5, 6}, Layout::kSliced, Layout::kSliced);
  }
}

TEST_P(Matmul, AcceptsStridedOperands) {
  for (DType dt : kFloatDTypes)
    for (Layout la : kAllLayouts)
      for (Layout lb : kAllLayouts) {
        check_matmul(dt, {6, 4}, {4, 5}, la, lb);  // permuted 2-D = plain transpose
        check_matmul(dt, {2, 3, 6, 4}, {3, 4, 5}, la, lb);
      }
}

TEST_P(Matmul, ReadsExpandedBatchWithStrideZero) {
  const Shape64 as = {3, 4, 5}, small = {1, 5, 2}, bs = {3, 5, 2};
  std::vector<double> av = random_values(numel(as), 3), bsmall = random_values(numel(small), 4);
  Shape64 os;
  std::vector<double> ref = ref_matmul(av, as, bsmall, small, os);
  TestTensor a = make_tensor(DType::kFloat32, as, av);
  TestTensor b = make_expanded(DType::kFloat32, bs, small, bsmall);
  TestTensor out = make_output(DType::kFloat32, os);
  ASSERT_TRUE(run_kernel(OpKind::kMatmul, {}, {&a, &b}, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat32, ref)));
}

TEST_P(Matmul, EmptyReductionGivesZeros) {
  TestTensor a = make_tensor(DType::kFloat32, {3, 0}, {});
  TestTensor b = make_tensor(DType::kFloat32, {0, 2}, {});
  TestTensor out = make_output(DType::kFloat32, {3, 2});
  ASSERT_TRUE(run_kernel(OpKind::kMatmul, {}, {&a, &b}, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, std::vector<double>(6, 0.0)));
}

TEST_P(Matmul, RejectsIntegerDtypes) {
  TestTensor a = make_tensor(DType::kInt32, {2, 2}, {1, 2, 3, 4});
  TestTensor out = make_output(DType::kInt32, {2, 2});
  Status s = run_kernel(OpKind::kMatmul, {}, {&a, &a}, {&out});
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

void check_linear(DType dtype, const Shape64& xs, int64_t N, bool bias, Layout lx, Layout lw,
                  Layout lb = Layout::kContiguous) {
  SCOPED_TRACE(str(dtype_name(dtype), " bias ", bias, " x ", layout_name(lx), " w ",
                   layout_name(lw), " b ", layout_name(lb)));
  const int64_t K = xs.back(), P = numel(xs) / K;
  std::vector<double> xv = round_all(dtype, random_values(numel(xs), 5));
  std::vector<double> wv = round_all(dtype, random_values(N * K, 6));
  std::vector<double> bv = round_all(dtype, random_values(N, 7));
  std::vector<double> ref = ref_linear(xv, P, K, wv, N, bias ? &bv : nullptr);
  Shape64 os = xs;
  os.back() = N;
  TestTensor x = make_tensor(dtype, xs, xv, lx);
  TestTensor w = make_tensor(dtype, {N, K}, wv, lw);
  TestTensor b = make_tensor(dtype, {N}, bv, lb);
  TestTensor out = make_output(dtype, os);
  std::vector<const TestTensor*> inputs = {&x, &w};
  if (bias) inputs.push_back(&b);
  ASSERT_TRUE(run_kernel(OpKind::kLinear, {}, inputs, {&out}).ok());
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST_P(Linear, MatchesReferenceWithAndWithoutBias) {
  for (DType dt : kFloatDTypes)
    for (bool bias : {false, true}) {
      check_linear(dt, {7, 13}, 5, bias, Layout::kContiguous, Layout::kContiguous);
      check_linear(dt, {2, 3, 13}, 9, bias, Layout::kContiguous, Layout::kContiguous);
      check_linear(dt, {13}, 4, bias, Layout::kContiguous, Layout::kContiguous);
    }
}

TEST_P(Linear, AcceptsStridedInputAndWeight) {
  for (DType dt : kFloatDTypes)
    for (Layout lx : kAllLayouts)
      for (Layout lw : kAllLayouts) check_linear(dt, {2, 3, 6}, 4, true, lx, lw);
}

TEST_P(Linear, SlicedBiasWithAndWithoutBiasOverLayouts) {
  for (DType dt : kFloatDTypes)
    for (Layout lx : kAllLayouts)
      for (Layout lw : {Layout::kContiguous, Layout::kPermuted})
        for (bool bias : {false, true}) check_linear(dt, {2, 3, 7}, 5, bias, lx, lw, Layout::kSliced);
}

TEST_P(Linear, LargeProblemAndContiguousBiasEpilogue) {
  for (DType dt : kFloatDTypes)
    check_linear(dt, {200, 192}, 160, true, Layout::kContiguous, Layout::kContiguous);
}

// Every tactic the backend offers (CPU: each registered kernel that supports the op; CUDA:
// tactic_candidates, cuBLASLt algorithms) gives the reference's answer; a corrupt tactic blob
// falls back to the default.
TEST_P(Linear, TacticCandidatesRunAndMatch) {
  const int64_t P = 64, K = 96, N = 48;
  const DType dt = DType::kFloat16;
  auto xv = round_all(dt, random_values(P * K, 7));
  auto wv = round_all(dt, random_values(N * K, 8));
  auto bv = round_all(dt, random_values(N, 9));
  auto x = make_tensor(dt, {P, K}, xv);
  auto w = make_tensor(dt, {N, K}, wv);
  auto b = make_tensor(dt, {N}, bv);
  auto out = make_output(dt, {P, N});
  auto cands = op_runner().tactics(OpKind::kLinear, {}, {&x, &w, &b}, {&out});
  ASSERT_TRUE(cands.ok()) << cands.status().toString();
  ASSERT_FALSE(cands->empty());
  auto ref = ref_linear(xv, P, K, wv, N, &bv);
  for (const TacticChoice& c : *cands) {
    SCOPED_TRACE(c.label);
    if (current_backend() == Backend::kCuda) EXPECT_EQ(c.tactic, "cuda.linear.cublaslt");
    RunOptions o;
    o.tactic = c.tactic.c_str();
    o.tactic_data = c.data;
    ASSERT_OK(run_kernel(OpKind::kLinear, {}, {&x, &w, &b}, {&out}, o));
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  }
  std::vector<uint8_t> junk(20, 7);
  RunOptions o;
  o.tactic_data = junk;
  ASSERT_OK(run_kernel(OpKind::kLinear, {}, {&x, &w, &b}, {&out}, o));
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
}

// attr residual: the last input z is added to x w^T + b before the activation, in one rounding.
void check_linear_residual(DType dtype, const Shape64& xs, int64_t N, bool bias, Layout lz,
                           const std::string& act, const RunOptions& o = {}) {
  SCOPED_TRACE(str(dtype_name(dtype), " rank ", xs.size(), " K ", xs.back(), " bias ", bias, " residual ",
                   layout_name(lz), " act ", act));
  const int64_t K = xs.back(), P = numel(Shape64(xs.begin(), xs.end() - 1));  // K may be 0
  std::vector<double> xv = round_all(dtype, random_values(numel(xs), 21));
  std::vector<double> wv = round_all(dtype, random_values(N * K, 22));
  std::vector<double> bv = round_all(dtype, random_values(N, 23));
  std::vector<double> zv = round_all(dtype, random_values(P * N, 24));
  std::vector<double> ref = ref_linear(xv, P, K, wv, N, bias ? &bv : nullptr);
  for (size_t i = 0; i < ref.size(); ++i) {
    const double v = ref[i] + zv[i];
    ref[i] = act == "relu" ? std::max(v, 0.0) : act == "gelu" ? 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))) : v;
  }
  Shape64 os = xs;
  os.back() = N;
  TestTensor x = make_tensor(dtype, xs, xv);
  TestTensor w = make_tensor(dtype, {N, K}, wv);
  TestTensor b = make_tensor(dtype, {N}, bv);
  TestTensor z = make_tensor(dtype, os, zv, lz);
  TestTensor out = make_output(dtype, os);
  std::vector<const TestTensor*> inputs = {&x, &w};
  if (bias) inputs.push_back(&b);
  inputs.push_back(&z);
  const Attrs attrs{{"residual", true}, {"activation", act}};
  ASSERT_OK(run_kernel(OpKind::kLinear, attrs, inputs, {&out}, o));
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST_P(Linear, ResidualIsAddedBeforeTheActivation) {
  for (DType dt : kFloatDTypes)
    for (bool bias : {false, true})
      for (const char* act : {"none", "relu", "gelu"}) {
        check_linear_residual(dt, {7, 13}, 5, bias, Layout::kContiguous, act);
        check_linear_residual(dt, {2, 3, 16}, 8, bias, Layout::kContiguous, act);
      }
}

TEST_P(Linear, StridedResidualAndEmptyReduction) {
  for (DType dt : kFloatDTypes)
    for (Layout lz : kAllLayouts) check_linear_residual(dt, {2, 3, 16}, 8, true, lz, "none");
  // K = 0: the output is the residual plus the bias, then the activation.
  for (bool bias : {false, true}) check_linear_residual(DType::kFloat32, {4, 0}, 6, bias, Layout::kContiguous, "relu");
}

// Every tactic candidate of a residual linear (CUDA: cuBLASLt algorithms with C) runs it right.
TEST_P(Linear, ResidualTacticCandidatesRunAndMatch) {
  const int64_t P = 64, K = 96, N = 48;
  const DType dt = DType::kFloat16;
  auto x = make_tensor(dt, {P, K}, round_all(dt, random_values(P * K, 21)));
  auto w = make_tensor(dt, {N, K}, round_all(dt, random_values(N * K, 22)));
  auto b = make_tensor(dt, {N}, round_all(dt, random_values(N, 23)));
  auto z = make_tensor(dt, {P, N}, round_all(dt, random_values(P * N, 24)));
  auto out = make_output(dt, {P, N});
  const Attrs attrs{{"residual", true}, {"activation", std::string("none")}};
  auto cands = op_runner().tactics(OpKind::kLinear, attrs, {&x, &w, &b, &z}, {&out});
  ASSERT_TRUE(cands.ok()) << cands.status().toString();
  ASSERT_FALSE(cands->empty());
  for (const TacticChoice& c : *cands) {
    SCOPED_TRACE(c.label);
    RunOptions o;
    o.tactic = c.tactic.c_str();
    o.tactic_data = c.data;
    check_linear_residual(dt, {P, K}, N, true, Layout::kContiguous, "none", o);
  }
}

TEST_P(Linear, RejectsMixedDtypes) {
  TestTensor x = make_tensor(DType::kFloat32, {2, 3}, random_values(6, 1));
  TestTensor w = make_tensor(DType::kFloat16, {4, 3}, random_values(12, 2));
  TestTensor out = make_output(DType::kFloat32, {2, 4});
  Status s = run_kernel(OpKind::kLinear, {}, {&x, &w}, {&out});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("linear"), std::string::npos) << s.message();
  TestTensor x16 = make_tensor(DType::kFloat16, {2, 3}, random_values(6, 1));
  TestTensor w32 = make_tensor(DType::kFloat32, {4, 3}, random_values(12, 2));
  TestTensor out16 = make_output(DType::kFloat16, {2, 4});
  EXPECT_EQ(run_kernel(OpKind::kLinear, {}, {&x16, &w32}, {&out16}).code(),
            StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::test
