// One (tile configuration, activation) of the CUTLASS sweep, chosen by -DCFG and -DACT at compile
// time (tools/cutlass_sweep/run.sh builds every pair as its own object). Times Kiln's sm90a
// Config template (src/backends/cuda/sm90a/linear_gelu_cutlass.cuh) on one problem.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>

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
template <class T> using Act = cutlass::epilogue::thread::GELU<T>;
#define ACT_NAME "gelu(erff)"
#else
template <class T> using Act = kiln::cuda::sm90a::detail::GeluErfc<T>;
#define ACT_NAME "gelu(erfc formula)"
#endif

#if CFG == 0
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_128, _256, _64>, Shape<_2, _1, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act>;
#define CFG_NAME "128x256 coop 2x1"
#elif CFG == 1
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_128, _256, _64>, Shape<_2, _1, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act, cutlass::gemm::StreamKScheduler>;
#define CFG_NAME "128x256 coop 2x1 streamK"
#elif CFG == 2
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_256, _128, _64>, Shape<_1, _2, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act>;
#define CFG_NAME "256x128 coop 1x2"
#elif CFG == 3
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_128, _128, _64>, Shape<_2, _1, _1>, KernelTmaWarpSpecializedPingpong, TmaWarpSpecialized, Act>;
#define CFG_NAME "128x128 pingpong 2x1"
#elif CFG == 4
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_128, _192, _64>, Shape<_2, _1, _1>, KernelTmaWarpSpecializedPingpong, TmaWarpSpecialized, Act>;
#define CFG_NAME "128x192 pingpong 2x1"
#elif CFG == 5
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_256, _128, _64>, Shape<_1, _2, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act, cutlass::gemm::StreamKScheduler>;
#define CFG_NAME "256x128 coop 1x2 streamK"
#elif CFG == 6
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_128, _256, _64>, Shape<_1, _1, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act>;
#define CFG_NAME "128x256 coop 1x1"
#else
using C = kiln::cuda::sm90a::detail::Config<cutlass::half_t, Shape<_256, _192, _64>, Shape<_1, _1, _1>, KernelTmaWarpSpecializedCooperative, TmaWarpSpecializedCooperative, Act>;
#define CFG_NAME "256x192 coop 1x1"
#endif

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
  std::snprintf(label, sizeof label, "%s %s", CFG_NAME, ACT_NAME);
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
