// The dispatcher of linear_gelu_cutlass.h over the compiled tile configurations (each in its own
// translation unit, linear_gelu_cutlass_*.cu: CUTLASS 3's collective builders with TMA loads,
// WGMMA and warp-specialized persistent kernels, and the LinCombPerColBiasEltAct<GELU>
// epilogue: D = gelu(acc + bias[n]) in float, no C read).
//
// Kiln's row-major x[M, K] is CUTLASS's A (row-major, K-major); w[N, K] is B (column-major
// K x N, also K-major), so both operands stream along K with TMA and no transpose; y[M, N] is a
// row-major D. The transposed configuration swaps them: w is A, x is B, and y^T is a
// column-major D (the same memory as y), with the bias per row of y^T.

#include "backends/cuda/sm90a/linear_gelu_cutlass.cuh"

namespace kiln::cuda::sm90a {
namespace {

const ConfigOps* configs() {
  // Appended only: an engine's tactic data names a configuration by its index here.
  static const ConfigOps table[] = {cooperative_128x256_ops(), cooperative_256x128_ops(),
                                    pingpong_128x128_ops(), transposed_cooperative_128x192_ops()};
  return table;
}
constexpr int kConfigs = 4;

}  // namespace

int gelu_gemm_configs() { return kConfigs; }

const char* gelu_gemm_config_name(int config) {
  return config >= 0 && config < kConfigs ? configs()[config].name : "?";
}

std::string gelu_gemm_refusal(int config, const GeluGemm& p) {
  if (config < 0 || config >= kConfigs) return "no such configuration";
  if (p.M <= 0 || p.N <= 0 || p.K <= 0) return "empty problem";
  if (p.M > INT32_MAX || p.N > INT32_MAX || p.K > INT32_MAX) return "a dimension exceeds int32";
  if (p.K % 8 || p.N % 8 || p.ldx % 8 || p.ldw % 8) return "rows are not 16-byte aligned";
  return configs()[config].refusal(p);
}

size_t gelu_gemm_workspace(int config, const GeluGemm& p) {
  return config >= 0 && config < kConfigs ? configs()[config].workspace(p) : 0;
}

std::string run_gelu_gemm(int config, const GeluGemm& p, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream) {
  if (config < 0 || config >= kConfigs) return "no such configuration";
  return configs()[config].run(p, workspace, workspace_bytes, stream);
}

}  // namespace kiln::cuda::sm90a
