// CUDA linear/matmul with attr `activation` (gemm epilogue fusion) against a double-precision
// reference: relu and gelu_tanh in cuBLASLt's epilogue (with and without the bias), exact gelu
// as bias epilogue + the unary kernel, every tactic candidate (cuBLASLt's tile variants of a
// large problem included), transposed operands, and the empty-K path; Kiln's CUTLASS Hopper GEMM + bias + exact gelu (tactic
// "cuda.linear.cutlass_gelu") against the same reference, in and out of a CUDA graph, and its
// fallback to cuBLASLt where it does not serve the args.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/linear_cutlass.h"
#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

double activate(double v, const std::string& fn) {
  if (fn == "relu") return v > 0 ? v : 0.0;
  if (fn == "gelu") return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  if (fn == "gelu_tanh")
    return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  return v;
}

// x[P, K] w[N, K] (+ bias[N]) -> act(x w^T + bias).
std::vector<double> ref_linear_act(const std::vector<double>& x, int64_t P, int64_t K,
                                   const std::vector<double>& w, int64_t N,
                                   const std::vector<double>* bias, const std::string& act) {
  std::vector<double> out(static_cast<size_t>(P * N));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? (*bias)[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += x[p * K + k] * w[n * K + k];
      out[p * N + n] = activate(s, act);
    }
  return out;
}

const char* const kActivations[] = {"relu", "gelu_tanh", "gelu", "none"};

TEST(CudaGemmEpilogue, LinearBiasActivationMatchesReference) {
  KILN_REQUIRE_CUDA();
  const int64_t P = 37, K = 64, N = 48;  // N a multiple of 8: bias epilogue alignment holds
  for (DType dt : kFloatDTypes)
    for (const char* act : kActivations)
      for (bool with_bias : {true, false}) {
        SCOPED_TRACE(str(dtype_name(dt), " ", act, with_bias ? " bias" : " no bias"));
        auto xv = round_all(dt, random_values(P * K, 1));
        auto wv = round_all(dt, random_values(N * K, 2, -0.3, 0.3));
        auto bv = round_all(dt, random_values(N, 3));
        auto x = make_tensor(dt, {P, K}, xv);
        auto w = make_tensor(dt, {N, K}, wv);
        auto b = make_tensor(dt, {N}, bv);
        auto out = make_output(dt, {P, N});
        std::vector<const TestTensor*> ins = {&x, &w};
        if (with_bias) ins.push_back(&b);
        ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string(act)}}, ins, {&out}));
        auto ref = ref_linear_act(xv, P, K, wv, N, with_bias ? &bv : nullptr, act);
        EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
      }
}

// linear(x[P, K], w[N, K], b[N]) with `act` under every tactic candidate the CUDA backend offers
// for it (cuBLASLt's algorithms, its tile and split-K variants, CUTLASS's), each against the
// double-precision reference; values from `seed`. Returns the candidates' labels.
std::vector<std::string> expect_every_candidate_matches(DType dt, int64_t P, int64_t K, int64_t N,
                                                        const char* act, uint32_t seed) {
  auto xv = round_all(dt, random_values(P * K, seed));
  auto wv = round_all(dt, random_values(N * K, seed + 1, -0.3, 0.3));
  auto bv = round_all(dt, random_values(N, seed + 2));
  auto x = make_tensor(dt, {P, K}, xv);
  auto w = make_tensor(dt, {N, K}, wv);
  auto b = make_tensor(dt, {N}, bv);
  auto out = make_output(dt, {P, N});
  Op op;
  op.kind = OpKind::kLinear;
  op.name = "fc";
  op.attrs.set("activation", std::string(act));
  TensorView ins[3] = {x.view, w.view, b.view};
  TensorView outs[1] = {out.view};
  for (TensorView& v : ins) v.data = nullptr;
  outs[0].data = nullptr;
  std::vector<std::string> labels;
  auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{32} << 20, 8);
  EXPECT_TRUE(cands.ok()) << cands.status().toString();
  if (!cands.ok()) return labels;
  EXPECT_FALSE(cands->empty());
  auto ref = ref_linear_act(xv, P, K, wv, N, &bv, act);
  for (const cuda::TacticCandidate& c : *cands) {
    SCOPED_TRACE(c.label);
    labels.push_back(c.label);
    const Status run = gpu().run(OpKind::kLinear, op.attrs, {&x, &w, &b}, {&out}, {}, nullptr,
                                 c.data, c.tactic.c_str());
    EXPECT_TRUE(run.ok()) << run.toString();
    if (run.ok()) {
      EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
    }
  }
  return labels;
}

TEST(CudaGemmEpilogue, EveryHeuristicCandidateServesTheEpilogue) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes)
    for (const char* act : {"relu", "gelu_tanh", "gelu"}) {
      SCOPED_TRACE(str(dtype_name(dt), " ", act));
      expect_every_candidate_matches(dt, 128, 96, 64, act, 4);
    }
}

// Large problems get cuBLASLt tile variants beside the heuristic's algorithms
// (lt_tile_variants): each one distinct, within the workspace limit, and, run as a linear
// tactic, as exact as the rest. A batch-1 sized problem gets none.
TEST(CudaGemmEpilogue, TileVariantsJoinLargeProblemsAndMatch) {
  KILN_REQUIRE_CUDA();
  const int64_t P = 4096, K = 64, N = 1152;  // 4096 x 1152: a wave or more of any heuristic tile
  for (DType dt : {DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    cuda::GemmProblem prob;  // linear's problem, as gemm_tactics states it: D^T = W X^T
    prob.dtype = dt == DType::kFloat16 ? CUDA_R_16F : CUDA_R_16BF;
    prob.elem_size = 2;
    prob.m = N, prob.n = P, prob.k = K;
    prob.op_a = CUBLAS_OP_T, prob.op_b = CUBLAS_OP_N;
    prob.a_rows = K, prob.a_cols = N, prob.lda = K;
    prob.b_rows = K, prob.b_cols = P, prob.ldb = K;
    prob.assume_aligned = true;
    prob.bias = reinterpret_cast<const void*>(uintptr_t{256});
    const size_t limit = cuda::kGemmLibraryWorkspace;
    auto base = cuda::lt_heuristic(gpu().state(), prob, limit, 8);
    ASSERT_TRUE(base.ok()) << base.status().toString();
    ASSERT_FALSE(base->empty());
    auto tiles =
        cuda::lt_tile_variants(gpu().state(), prob, limit, *base, gpu().state().sm_count, 48);
    ASSERT_TRUE(tiles.ok()) << tiles.status().toString();
    ASSERT_FALSE(tiles->empty()) << "first heuristic algorithm: "
                                 << cuda::describe_lt_algo(base->front());
    EXPECT_LE(tiles->size(), 48u);
    for (size_t i = 0; i < tiles->size(); ++i) {
      const cuda::LtAlgo& t = (*tiles)[i];
      EXPECT_LE(t.workspace, limit);
      for (const cuda::LtAlgo& b : *base)
        EXPECT_NE(std::memcmp(&t.algo, &b.algo, sizeof(t.algo)), 0) << cuda::describe_lt_algo(t);
      for (size_t j = 0; j < i; ++j)
        EXPECT_NE(std::memcmp(&t.algo, &(*tiles)[j].algo, sizeof(t.algo)), 0)
            << cuda::describe_lt_algo(t);
    }
    cuda::GemmProblem small = prob;
    small.n = 16, small.b_cols = 16;
    auto small_base = cuda::lt_heuristic(gpu().state(), small, limit, 8);
    ASSERT_TRUE(small_base.ok());
    auto none = cuda::lt_tile_variants(gpu().state(), small, limit, *small_base,
                                       gpu().state().sm_count, 48);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none->empty());

    // The linear's candidates carry the variants; every one computes the linear.
    const std::vector<std::string> labels = expect_every_candidate_matches(dt, P, K, N, "none", 7);
    size_t variants = 0;
    for (const std::string& label : labels)
      for (const cuda::LtAlgo& t : *tiles) variants += label == cuda::describe_lt_algo(t);
    EXPECT_GE(variants, tiles->size());
  }
}

TEST(CudaGemmEpilogue, TransposedInputsMatch) {
  KILN_REQUIRE_CUDA();
  // x permuted (column-major) and w permuted: both go to cuBLASLt as transposed operands.
  const int64_t P = 20, K = 33, N = 16;
  for (DType dt : kFloatDTypes)
    for (Layout lx : kAllLayouts)
      for (Layout lw : {Layout::kContiguous, Layout::kPermuted}) {
        SCOPED_TRACE(str(dtype_name(dt), " x ", layout_name(lx), " w ", layout_name(lw)));
        auto xv = round_all(dt, random_values(P * K, 7));
        auto wv = round_all(dt, random_values(N * K, 8, -0.3, 0.3));
        auto bv = round_all(dt, random_values(N, 9));
        auto x = make_tensor(dt, {P, K}, xv, lx);
        auto w = make_tensor(dt, {N, K}, wv, lw);
        auto b = make_tensor(dt, {N}, bv);
        auto out = make_output(dt, {P, N});
        ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string("gelu_tanh")}}, {&x, &w, &b}, {&out}));
        auto ref = ref_linear_act(xv, P, K, wv, N, &bv, "gelu_tanh");
        EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
      }
}

TEST(CudaGemmEpilogue, LinearOverRowsThatDoNotCollapseRunsBatched) {
  KILN_REQUIRE_CUDA();
  // x is a [S, B, K] buffer viewed as [B, S, K] (strides [K, B*K, 1]): its rows do not collapse
  // into one stride, so cuBLASLt runs B strided batches sharing w and the bias.
  const int64_t S = 5, B = 3, K = 32, N = 24;
  for (DType dt : kFloatDTypes)
    for (const char* act : {"none", "relu", "gelu"}) {
      SCOPED_TRACE(str(dtype_name(dt), " ", act));
      auto xv = round_all(dt, random_values(B * S * K, 12));  // logical [B, S, K] order
      auto wv = round_all(dt, random_values(N * K, 13, -0.3, 0.3));
      auto bv = round_all(dt, random_values(N, 14));
      TestTensor x = detail::alloc(dt, {B, S, K}, S * B * K);
      x.view.strides[0] = K;
      x.view.strides[1] = B * K;
      x.view.strides[2] = 1;
      write_values(x.view, xv);
      auto w = make_tensor(dt, {N, K}, wv);
      auto b = make_tensor(dt, {N}, bv);
      auto out = make_output(dt, {B, S, N});
      ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string(act)}}, {&x, &w, &b}, {&out}));
      auto ref = ref_linear_act(xv, B * S, K, wv, N, &bv, act);
      EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
    }
}

TEST(CudaGemmEpilogue, BatchedMatmulWithTransposedOperandAndActivation) {
  KILN_REQUIRE_CUDA();
  const int64_t B = 3, M = 9, K = 16, N = 12;
  for (DType dt : kFloatDTypes)
    for (const char* act : {"relu", "gelu"}) {
      SCOPED_TRACE(str(dtype_name(dt), " ", act));
      auto av = round_all(dt, random_values(B * M * K, 10));
      auto bv = round_all(dt, random_values(B * K * N, 11, -0.5, 0.5));
      auto a = make_tensor(dt, {B, M, K}, av);
      auto b = make_tensor(dt, {B, K, N}, bv, Layout::kPermuted);  // every dim's stride reversed
      auto out = make_output(dt, {B, M, N});
      ASSERT_OK(gpu().run(OpKind::kMatmul, {{"activation", std::string(act)}}, {&a, &b}, {&out}));
      std::vector<double> ref(static_cast<size_t>(B * M * N));
      for (int64_t g = 0; g < B; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k) s += av[(g * M + i) * K + k] * bv[(g * K + k) * N + j];
            ref[(g * M + i) * N + j] = activate(s, act);
          }
      EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
    }
}

TEST(CudaGemmEpilogue, EmptyReductionAppliesBiasAndActivation) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {2, 0}, {});
  auto w = make_tensor(DType::kFloat32, {3, 0}, {});
  auto b = make_tensor(DType::kFloat32, {3}, {-1.0, 0.5, 2.0});
  auto out = make_output(DType::kFloat32, {2, 3});
  ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string("relu")}}, {&x, &w, &b}, {&out}));
  EXPECT_TRUE(expect_close(out.view, {0.0, 0.5, 2.0, 0.0, 0.5, 2.0}));
}

TEST(CudaGemmEpilogue, UnknownActivationIsUnsupported) {
  KILN_REQUIRE_CUDA();
  auto x = make_tensor(DType::kFloat32, {2, 3}, iota(6));
  auto w = make_tensor(DType::kFloat32, {4, 3}, iota(12));
  auto out = make_output(DType::kFloat32, {2, 4});
  EXPECT_EQ(gpu().run(OpKind::kLinear, {{"activation", std::string("swish")}}, {&x, &w}, {&out}).code(),
            StatusCode::kUnsupported);
}

// The CUTLASS candidates tactic_candidates offers for linear(x, w, b) with exact gelu. Skips the
// test where the tactic cannot exist (a Kiln built without CUTLASS, or not an sm_90 device).
std::vector<cuda::TacticCandidate> cutlass_gelu_candidates(const TestTensor& x, const TestTensor& w,
                                                           const TestTensor& b,
                                                           const TestTensor& out) {
  Op op;
  op.kind = OpKind::kLinear;
  op.name = "fc1";
  op.attrs.set("activation", std::string("gelu"));
  TensorView ins[3] = {x.view, w.view, b.view};
  TensorView outs[1] = {out.view};
  for (TensorView& v : ins) v.data = nullptr;
  outs[0].data = nullptr;
  auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{64} << 20, 8);
  EXPECT_TRUE(cands.ok()) << cands.status().toString();
  std::vector<cuda::TacticCandidate> out_cands;
  if (cands.ok())
    for (cuda::TacticCandidate& c : *cands)
      if (c.tactic == "cuda.linear.cutlass_gelu") out_cands.push_back(std::move(c));
  return out_cands;
}

#if KILN_HAVE_CUTLASS
#define KILN_REQUIRE_CUTLASS_DEVICE()                                                        \
  do {                                                                                      \
    KILN_REQUIRE_CUDA();                                                                    \
    if (gpu().state().cc != 90) GTEST_SKIP() << "the CUTLASS GEMMs are built for sm_90a only"; \
  } while (0)
#else
#define KILN_REQUIRE_CUTLASS_DEVICE() GTEST_SKIP() << "Kiln was built without CUTLASS"
#endif

TEST(CudaGemmEpilogue, CutlassGeluGemmServesAndMatches) {
  KILN_REQUIRE_CUTLASS_DEVICE();
  // Rows that collapse from [2, 197, K] (a ragged last M tile for every tile shape), N = 328 (a
  // ragged N tile), and x as a column slice of a wider buffer (row stride K + 24).
  const int64_t B = 2, S = 197, K = 192, N = 328;
  for (DType dt : {DType::kFloat16, DType::kBFloat16})
    for (bool sliced : {false, true}) {
      SCOPED_TRACE(str(dtype_name(dt), sliced ? " sliced" : ""));
      auto xv = round_all(dt, random_values(B * S * K, 31));
      auto wv = round_all(dt, random_values(N * K, 32, -0.3, 0.3));
      auto bv = round_all(dt, random_values(N, 33));
      TestTensor x;
      if (sliced) {
        x = detail::alloc(dt, {B, S, K}, B * S * (K + 24));
        x.view.strides[0] = S * (K + 24);
        x.view.strides[1] = K + 24;
        x.view.strides[2] = 1;
        write_values(x.view, xv);
      } else {
        x = make_tensor(dt, {B, S, K}, xv);
      }
      auto w = make_tensor(dt, {N, K}, wv);
      auto b = make_tensor(dt, {N}, bv);
      auto out = make_output(dt, {B, S, N});
      const std::vector<cuda::TacticCandidate> cands = cutlass_gelu_candidates(x, w, b, out);
      ASSERT_EQ(cands.size(), 4u) << "every tile configuration should accept this shape";
      auto ref = ref_linear_act(xv, B * S, K, wv, N, &bv, "gelu");
      for (const cuda::TacticCandidate& c : cands)
        for (bool capture : {false, true}) {
          SCOPED_TRACE(c.label + (capture ? " (graph)" : ""));
          auto fresh = make_output(dt, {B, S, N});
          const int64_t served = cuda::linear_cutlass_run_count();
          gpu().capture = capture;
          const Status s = gpu().run(OpKind::kLinear, {{"activation", std::string("gelu")}},
                                     {&x, &w, &b}, {&fresh}, {}, nullptr, c.data, c.tactic.c_str());
          gpu().capture = false;
          ASSERT_OK(s);
          EXPECT_EQ(cuda::linear_cutlass_run_count() - served, 1);
          EXPECT_TRUE(expect_close(fresh.view, ref, magnitude_tolerance(dt, ref)));
        }
    }
}

TEST(CudaGemmEpilogue, CutlassGeluTacticFallsBackToCublasltWhereItDoesNotServe) {
  KILN_REQUIRE_CUTLASS_DEVICE();
  const DType dt = DType::kFloat16;
  auto sx = make_output(dt, {16, 64});
  auto sw = make_output(dt, {32, 64});
  auto sb = make_output(dt, {32});
  auto so = make_output(dt, {16, 32});
  const std::vector<cuda::TacticCandidate> cands = cutlass_gelu_candidates(sx, sw, sb, so);
  ASSERT_FALSE(cands.empty());
  const cuda::TacticCandidate& c = cands[0];
  const int64_t served = cuda::linear_cutlass_run_count();
  const int64_t P = 16, N = 32;
  auto out = make_output(dt, {P, N});
  auto bv = round_all(dt, random_values(N, 40));
  auto b = make_tensor(dt, {N}, bv);
  // K = 36: rows not 16-byte aligned.
  {
    const int64_t K = 36;
    auto xv = round_all(dt, random_values(P * K, 41));
    auto wv = round_all(dt, random_values(N * K, 42, -0.3, 0.3));
    auto x = make_tensor(dt, {P, K}, xv);
    auto w = make_tensor(dt, {N, K}, wv);
    ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string("gelu")}}, {&x, &w, &b},
                        {&out}, {}, nullptr, c.data, c.tactic.c_str()));
    auto ref = ref_linear_act(xv, P, K, wv, N, &bv, "gelu");
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  }
  const int64_t K = 64;
  auto xv = round_all(dt, random_values(P * K, 43));
  auto wv = round_all(dt, random_values(N * K, 44, -0.3, 0.3));
  auto x = make_tensor(dt, {P, K}, xv);
  auto w = make_tensor(dt, {N, K}, wv);
  // No bias, and tanh gelu: other epilogues.
  ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string("gelu")}}, {&x, &w}, {&out},
                      {}, nullptr, c.data, c.tactic.c_str()));
  auto ref = ref_linear_act(xv, P, K, wv, N, nullptr, "gelu");
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  ASSERT_OK(gpu().run(OpKind::kLinear, {{"activation", std::string("gelu_tanh")}}, {&x, &w, &b},
                      {&out}, {}, nullptr, c.data, c.tactic.c_str()));
  ref = ref_linear_act(xv, P, K, wv, N, &bv, "gelu_tanh");
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  // A residual.
  auto zv = round_all(dt, random_values(P * N, 45));
  auto z = make_tensor(dt, {P, N}, zv);
  Attrs attrs{{"activation", std::string("gelu")}};
  attrs.set("residual", true);
  ASSERT_OK(gpu().run(OpKind::kLinear, attrs, {&x, &w, &b, &z}, {&out}, {}, nullptr, c.data,
                      c.tactic.c_str()));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n = 0; n < N; ++n) {
      double sum = zv[p * N + n] + bv[n];
      for (int64_t k = 0; k < K; ++k) sum += xv[p * K + k] * wv[n * K + k];
      ref[p * N + n] = activate(sum, "gelu");
    }
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
  EXPECT_EQ(cuda::linear_cutlass_run_count(), served);
}

}  // namespace
}  // namespace kiln::test
