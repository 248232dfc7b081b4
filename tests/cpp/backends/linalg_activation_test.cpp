// CPU linear/matmul with attr `activation` (the gemm epilogue) against double-precision loops.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "test_util.h"

namespace kiln::test {
namespace {

double activate(double v, const std::string& fn) {
  if (fn == "relu") return v > 0 ? v : 0.0;
  if (fn == "gelu") return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  if (fn == "gelu_tanh")
    return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  return v;
}

TEST(CpuGemmActivation, LinearAppliesTheActivationAfterTheBias) {
  const int64_t P = 7, K = 13, N = 5;
  for (DType dt : kFloatDTypes)
    for (const char* act : {"none", "relu", "gelu", "gelu_tanh"})
      for (Layout lx : kAllLayouts) {
        SCOPED_TRACE(str(dtype_name(dt), " ", act, " x ", layout_name(lx)));
        auto xv = round_all(dt, random_values(P * K, 1));
        auto wv = round_all(dt, random_values(N * K, 2, -0.5, 0.5));
        auto bv = round_all(dt, random_values(N, 3));
        auto x = make_tensor(dt, {P, K}, xv, lx);
        auto w = make_tensor(dt, {N, K}, wv);
        auto b = make_tensor(dt, {N}, bv);
        auto out = make_output(dt, {P, N});
        Status s = run_op(OpKind::kLinear, {{"activation", std::string(act)}},
                          {x.view, w.view, b.view}, {out.view});
        ASSERT_TRUE(s.ok()) << s.toString();
        std::vector<double> ref(static_cast<size_t>(P * N));
        for (int64_t p = 0; p < P; ++p)
          for (int64_t n = 0; n < N; ++n) {
            double s = bv[n];
            for (int64_t k = 0; k < K; ++k) s += xv[p * K + k] * wv[n * K + k];
            ref[p * N + n] = activate(s, act);
          }
        EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dt, ref)));
      }
}

TEST(CpuGemmActivation, BatchedMatmulWithTransposedOperand) {
  const int64_t B = 2, M = 4, K = 6, N = 3;
  for (const char* act : {"relu", "gelu_tanh"}) {
    SCOPED_TRACE(act);
    auto av = random_values(B * M * K, 4);
    auto bv = random_values(B * K * N, 5);
    auto a = make_tensor(DType::kFloat32, {B, M, K}, av);
    auto b = make_tensor(DType::kFloat32, {B, K, N}, bv, Layout::kPermuted);
    auto out = make_output(DType::kFloat32, {B, M, N});
    Status s = run_op(OpKind::kMatmul, {{"activation", std::string(act)}}, {a.view, b.view}, {out.view});
    ASSERT_TRUE(s.ok()) << s.toString();
    std::vector<double> ref(static_cast<size_t>(B * M * N));
    for (int64_t g = 0; g < B; ++g)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += av[(g * M + i) * K + k] * bv[(g * K + k) * N + j];
          ref[(g * M + i) * N + j] = activate(s, act);
        }
    EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat32, ref)));
  }
}

TEST(CpuGemmActivation, UnknownActivationIsUnsupported) {
  auto x = make_tensor(DType::kFloat32, {2, 3}, random_values(6, 6));
  auto w = make_tensor(DType::kFloat32, {4, 3}, random_values(12, 7));
  auto out = make_output(DType::kFloat32, {2, 4});
  Status s = run_op(OpKind::kLinear, {{"activation", std::string("swish")}}, {x.view, w.view}, {out.view});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.toString();
}

}  // namespace
}  // namespace kiln::test
