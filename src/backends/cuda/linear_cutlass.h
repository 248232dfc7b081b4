#pragma once

// The "cuda.linear.cutlass_gelu" tactic: linear + bias + exact (erf) gelu as one Hopper GEMM
// whose epilogue adds the bias and applies gelu in float (sm90a/linear_gelu_cutlass.h). Without
// it, cuBLASLt runs the GEMM with the bias and Kiln's gelu kernel rewrites the output in place.
//
// Served: a compute-capability-9.0 device and a Kiln built with CUTLASS; fp16/bf16 x[..., K]
// whose leading dims collapse to rows of one stride, w[N, K] with contiguous rows, a contiguous
// bias[N] of the same dtype, a contiguous output, no residual, K, N and both row strides
// multiples of 8 (16-byte rows), and 16-byte aligned pointers. Anything else runs on the
// cuBLASLt kernel instead, decided from shapes, strides and the device, so workspace() and
// run() agree. The tactic data names the tile configuration.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {

// One candidate per compiled tile configuration that can run these args; empty when none can.
std::vector<TacticCandidate> linear_cutlass_candidates(const CudaBackendState& state,
                                                       const KernelArgs& args);

// Workspace bytes of the configuration in args.tactic_data; 0 when it does not serve the args.
size_t linear_cutlass_workspace(const KernelArgs& args);

// Runs the args through the configuration in args.tactic_data; `served` false (and nothing
// launched) when it does not serve them, and the caller runs another kernel.
Status run_linear_cutlass(const KernelArgs& args, bool& served);

// How many calls this tactic served in this process (tests check which path a case took).
int64_t linear_cutlass_run_count();

}  // namespace kiln::cuda
