// One (tile configuration, activation) of the CUTLASS sweep, chosen by -DCFG and -DACT at compile
// time (tools/cutlass_sweep/run.sh builds every pair as its own object). Times Kiln's sm90a
// Config template (src/backends/cuda/sm90a/linear_gelu_cutlass.cuh) on one problem.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <type_traits>

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace sweep {

using namespace cute;
using cutlass::gemm::KernelTmaWarpSpecializedCooperative;
using cutlass::gemm::KernelTmaWarpSpecializedPingpong;
using cutlass::epilogue::TmaWarpSpecializedCooperative;
using cutlass::epilogue::TmaWarpSpecialized;

#if ACT == 0
template <class T> using Act = cutlass::epilogue::thread::Identity<T>;
#define ACT_NAME "identity"
#elif ACT == 1
template <class T> using Act = kiln::cuda::sm90a::detail::GeluExp2<T>;
#define ACT_NAME "gelu(exp2 polynomial, kiln)"
#else
// A cost probe, not a candidate: the tanh-form gelu on the hardware tanh (one MUFU op and four
// FMAs per element, about what cuBLASLt's GELU epilogue pays). Its result is not exact gelu.
CUTLASS_HOST_DEVICE float gelu_tanh_approx(float x) {
  float th;
#ifdef __CUDA_ARCH__
  asm("tanh.approx.f32 %0, %1;" : "=f"(th) : "f"(0.7978845608f * fmaf(0.044715f * x, x * x, x)));
#else
  th = tanhf(0.7978845608f * fmaf(0.044715f * x, x * x, x));
#endif
  const float h = 0.5f * x;
  return fmaf(h, th, h);
}
template <class T>
struct Act {
  CUTLASS_HOST_DEVICE T operator()(T const& x) const { return T(gelu_tanh_approx(float(x))); }
};
template <class T, int N>
struct Act<cutlass::Array<T, N>> {
  CUTLASS_HOST_DEVICE cutlass::Array<T, N> operator()(cutlass::Array<T, N> const& x) const {
    cutlass::Array<T, N> y;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) y[i] = T(gelu_tanh_approx(float(x[i])));
    return y;
  }
};
#define ACT_NAME "gelu(tanh.approx probe)"
#endif

// The configurations run.sh builds (CFG indexes this table): tile M x N (K 64), cluster, kernel
// schedule; "kiln" marks those Kiln's tactic compiles (linear_gelu_cutlass_*.cu).
// Configuration 6 (128x256 cooperative, cluster 1x2) hit "an illegal instruction" on the H100 in
// session 27, which poisons the context for every configuration after it: leave its objects out
// of the link (SWEEP_CONFIGS) to time the others.
// "T": the transposed kernel (features as its M, rows as its N; Config's Transposed), its tile
// given as features x rows.
struct Params {
  int m, n, cluster_m, cluster_n;
  bool cooperative, kiln, transposed = false;
};
constexpr Params kConfigs[] = {{128, 256, 2, 1, true, true},  {256, 128, 1, 2, true, true},
                               {128, 128, 2, 1, false, true}, {128, 128, 1, 1, false, false},
                               {64, 256, 1, 1, false, false}, {128, 192, 1, 1, false, false},
                               {128, 256, 1, 2, true, false}, {256, 128, 2, 1, true, false},
                               {128, 192, 1, 1, true, true, true},  {128, 192, 2, 1, true, false, true},
                               {256, 96, 1, 1, true, false, true}};
static_assert(CFG >= 0 && CFG < 11, "run.sh builds CFG 0-10");
constexpr Params P = kConfigs[CFG];
using C = kiln::cuda::sm90a::detail::Config<
    cutlass::half_t, Shape<Int<P.m>, Int<P.n>, _64>, Shape<Int<P.cluster_m>, Int<P.cluster_n>, _1>,
    std::conditional_t<P.cooperative, KernelTmaWarpSpecializedCooperative, KernelTmaWarpSpecializedPingpong>,
    std::conditional_t<P.cooperative, TmaWarpSpecializedCooperative, TmaWarpSpecialized>, Act,
    cutlass::gemm::PersistentScheduler, P.transposed>;

}  // namespace sweep

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN CAT(CAT(CAT(sweep_c, CFG), _a), ACT)

// Microseconds per call (median of 5 batches of 20 back-to-back launches), or a negative value
// when the configuration refuses or fails; prints its name.
extern "C" double FN(const kiln::cuda::sm90a::GeluGemm& p, void* ws, size_t ws_bytes,
                     const char** name) {
  using namespace kiln::cuda::sm90a;
  static char label[96];
  using sweep::P;
  std::snprintf(label, sizeof label, "%s%dx%d %s %dx%d%s %s", P.transposed ? "T " : "", P.m, P.n,
                P.cooperative ? "coop" : "pingpong", P.cluster_m, P.cluster_n,
                P.kiln ? " (kiln)" : "", ACT_NAME);
  *name = label;
  if (!detail::refusal<sweep::C>(p).empty()) return -1;
  if (detail::workspace<sweep::C>(p) > ws_bytes) return -2;
  for (int i = 0; i < 3; ++i)
    if (!detail::run<sweep::C>(p, ws, ws_bytes, nullptr).empty()) return -3;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  double best[5];
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a);
    for (int i = 0; i < 20; ++i) detail::run<sweep::C>(p, ws, ws_bytes, nullptr);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    best[r] = ms * 1000.0 / 20;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(best, best + 5);
  return best[2];
}
