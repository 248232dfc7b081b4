// CUDA matmul and linear (cuBLASLt) against a double-precision reference: odd shapes, batch
// broadcasting, transposed and gappy operand layouts (packing), the bias epilogue, tactics.

#include <gtest/gtest.h>

#include <vector>

#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

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

void check_matmul(DType dtype, const Shape64& as, const Shape64& bs, Layout la = Layout::kContiguous,
                  Layout lb = Layout::kContiguous) {
  SCOPED_TRACE(str(dtype_name(dtype), " a ", layout_name(la), " b ", layout_name(lb), " a rank ",
                   as.size(), " b rank ", bs.size()));
  std::vector<double> av = round_all(dtype, random_values(numel(as), 1));
  std::vector<double> bv = round_all(dtype, random_values(numel(bs), 2));
  Shape64 os;
  std::vector<double> ref = ref_matmul(av, as, bv, bs, os);
  TestTensor a = make_tensor(dtype, as, av, la);
  TestTensor b = make_tensor(dtype, bs, bv, lb);
  TestTensor out = make_output(dtype, os);
  ASSERT_OK(gpu().run(OpKind::kMatmul, {}, {&a, &b}, {&out}));
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST(CudaMatmul, MatchesReferenceForOddShapes) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {5, 7}, {7, 3});
    check_matmul(dt, {1, 1}, {1, 1});
    check_matmul(dt, {3, 17}, {17, 1});
    check_matmul(dt, {1, 9}, {9, 13});
    check_matmul(dt, {33, 65}, {65, 31});
    check_matmul(dt, {128, 256}, {256, 64});
  }
}

TEST(CudaMatmul, TransposedAndGappyOperands) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes)
    for (Layout la : kAllLayouts)
      for (Layout lb : kAllLayouts) check_matmul(dt, {6, 5}, {5, 4}, la, lb);
}

TEST(CudaMatmul, BatchDimsBroadcast) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes) {
    check_matmul(dt, {3, 4, 5}, {5, 6});        // shared b
    check_matmul(dt, {4, 5}, {3, 5, 6});        // shared a
    check_matmul(dt, {2, 1, 4, 5}, {3, 5, 2});  // both broadcast
    check_matmul(dt, {2, 3, 4, 5}, {2, 3, 5, 6}, Layout::kPermuted, Layout::kContiguous);
    check_matmul(dt, {2, 3, 4, 5}, {2, 3, 5, 6}, Layout::kSliced, Layout::kSliced);
  }
}

TEST(CudaMatmul, ExpandedOperand) {
  KILN_REQUIRE_CUDA();
  // b is [K, N] expanded to [3, K, N] with batch stride 0.
  auto av = round_all(DType::kFloat32, random_values(3 * 4 * 5, 5));
  auto bv = round_all(DType::kFloat32, random_values(5 * 2, 6));
  auto a = make_tensor(DType::kFloat32, {3, 4, 5}, av);
  auto b = make_expanded(DType::kFloat32, {3, 5, 2}, {1, 5, 2}, bv);
  auto out = make_output(DType::kFloat32, {3, 4, 2});
  ASSERT_OK(gpu().run(OpKind::kMatmul, {}, {&a, &b}, {&out}));
  Shape64 os;
  auto ref = ref_matmul(av, {3, 4, 5}, bv, {5, 2}, os);
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat32, ref)));
}

TEST(CudaMatmul, EmptyReductionGivesZeros) {
  KILN_REQUIRE_CUDA();
  auto a = make_tensor(DType::kFloat32, {2, 0}, {});
  auto b = make_tensor(DType::kFloat32, {0, 3}, {});
  auto out = make_output(DType::kFloat32, {2, 3});
  ASSERT_OK(gpu().run(OpKind::kMatmul, {}, {&a, &b}, {&out}));
  EXPECT_TRUE(expect_close(out.view, std::vector<double>(6, 0.0)));
}

std::vector<double> ref_linear(const std::vector<double>& x, int64_t P, int64_t K,
                               const std::vector<double>& w, int64_t N,
                               const std::vector<double>* bias) {
  std::vector<double> out(static_cast<size_t>(P * N));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? (*bias)[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[p * K + k] * w[n * K + k];
      out[p * N + n] = s;
    }
  return out;
}

TEST(CudaLinear, WithAndWithoutBiasOverLayouts) {
  KILN_REQUIRE_CUDA();
  const Shape64 xs = {2, 3, 7};
  const int64_t K = 7, N = 5, P = 6;
  for (DType dt : kFloatDTypes) {
    for (Layout lx : kAllLayouts) {
      for (Layout lw : {Layout::kContiguous, Layout::kPermuted}) {
        for (bool with_bias : {false, true}) {
          SCOPED_TRACE(str(dtype_name(dt), " x ", layout_name(lx), " w ", layout_name(lw),
                           with_bias ? " bias" : ""));
          auto xv = round_all(dt, random_values(P * K, 1));
          auto wv = round_all(dt, random_values(N * K, 2));
          auto bv = round_all(dt, random_values(N, 3));
          auto x = make_tensor(dt, xs, xv, lx);
          auto w = make_tensor(dt, {N, K}, wv, lw);
          auto b = make_tensor(dt, {N}, bv, Layout::kSliced);
          auto out = make_output(dt, {2, 3, N});
          std::vector<const TestTensor*> ins = {&x, &w};
          if (with_bias) ins.push_back(&b);
          ASSERT_OK(gpu().run(OpKind::kLinear, {}, ins, {&out}));
          auto ref = ref_linear(xv, P, K, wv, N, with_bias ? &bv : nullptr);
          EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
        }
      }
    }
  }
}

TEST(CudaLinear, LargeProblemAndContiguousBiasEpilogue) {
  KILN_REQUIRE_CUDA();
  const int64_t P = 200, K = 192, N = 160;
  for (DType dt : kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    auto xv = round_all(dt, random_values(P * K, 4));
    auto wv = round_all(dt, random_values(N * K, 5));
    auto bv = round_all(dt, random_values(N, 6));
    auto x = make_tensor(dt, {P, K}, xv);
    auto w = make_tensor(dt, {N, K}, wv);
    auto b = make_tensor(dt, {N}, bv);
    auto out = make_output(dt, {P, N});
    ASSERT_OK(gpu().run(OpKind::kLinear, {}, {&x, &w, &b}, {&out}));
    auto ref = ref_linear(xv, P, K, wv, N, &bv);
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  }
}

TEST(CudaLinear, TacticCandidatesRunAndMatch) {
  KILN_REQUIRE_CUDA();
  const int64_t P = 64, K = 96, N = 48;
  const DType dt = DType::kFloat16;
  auto xv = round_all(dt, random_values(P * K, 7));
  auto wv = round_all(dt, random_values(N * K, 8));
  auto bv = round_all(dt, random_values(N, 9));
  auto x = make_tensor(dt, {P, K}, xv);
  auto w = make_tensor(dt, {N, K}, wv);
  auto b = make_tensor(dt, {N}, bv);
  auto out = make_output(dt, {P, N});
  Op op;
  op.kind = OpKind::kLinear;
  op.name = "fc";
  TensorView ins[3] = {x.view, w.view, b.view};
  TensorView outs[1] = {out.view};
  for (TensorView& v : ins) v.data = nullptr;  // build time: shapes only
  outs[0].data = nullptr;
  auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{32} << 20, 4);
  ASSERT_TRUE(cands.ok()) << cands.status().toString();
  ASSERT_FALSE(cands->empty());
  auto ref = ref_linear(xv, P, K, wv, N, &bv);
  for (const cuda::TacticCandidate& c : *cands) {
    SCOPED_TRACE(c.label);
    EXPECT_EQ(c.tactic, "cuda.linear.cublaslt");
    ASSERT_OK(gpu().run(OpKind::kLinear, {}, {&x, &w, &b}, {&out}, {}, nullptr, c.data,
                        c.tactic.c_str()));
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  }
  // A corrupt blob falls back to the heuristic.
  std::vector<uint8_t> junk(20, 7);
  ASSERT_OK(gpu().run(OpKind::kLinear, {}, {&x, &w, &b}, {&out}, {}, nullptr, junk));
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
}

TEST(CudaLinear, MixedDtypesAreUnsupported) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat16, {2, 3}, iota(6));
  auto w = make_tensor(DType::kFloat32, {4, 3}, iota(12));
  auto out = make_output(DType::kFloat16, {2, 4});
  EXPECT_EQ(gpu().run(OpKind::kLinear, {}, {&x, &w}, {&out}).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace kiln::test
