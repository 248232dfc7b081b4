#pragma once

// Hopper (sm_90a) GEMMs with the bias and exact (erf) gelu in the epilogue, built from CUTLASS's
// warp-specialized TMA/WGMMA collectives: y[M, N] = gelu(x[M, K] w[N, K]^T + bias[N]), float
// accumulation and epilogue (gelu_exp2 of backends/cuda/gelu_math.h, relative error below 5e-6),
// one rounding to fp16/bf16. cuBLASLt's GELU epilogue is the tanh
// form, so without this an exact-gelu linear writes the GEMM's result and a second kernel reads
// it back and writes it again.
//
// This header carries no CUTLASS types: linear_cutlass.cpp (the "cuda.linear.cutlass_gelu"
// tactic) calls it, and the file behind it is compiled for sm_90a only when CUTLASS is found
// (KILN_HAVE_CUTLASS).

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln::cuda::sm90a {

struct GeluGemm {
  bool bf16 = false;         // else fp16
  int64_t M = 0, N = 0, K = 0;
  int64_t ldx = 0, ldw = 0;  // row strides of x and w in elements (>= K); y is contiguous
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;  // [N], required (null only in the build-time shape checks)
  void* y = nullptr;
  int sm_count = 0;            // SMs the persistent kernel may fill
};

// Compiled tile configurations; 0 when Kiln was built without CUTLASS.
int gelu_gemm_configs();
// "128x256x64 cluster 2x1 cooperative", for tactic labels.
const char* gelu_gemm_config_name(int config);
// Why `config` cannot run `p` (alignment, sizes), or empty when it can; reads shapes and strides
// only, so it also answers for build-time problems without data. Host only.
std::string gelu_gemm_refusal(int config, const GeluGemm& p);
// Workspace bytes `config` needs for `p`.
size_t gelu_gemm_workspace(int config, const GeluGemm& p);
// Launches on `stream`; an empty string on success, else what failed. No synchronization.
std::string run_gelu_gemm(int config, const GeluGemm& p, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream);

}  // namespace kiln::cuda::sm90a
