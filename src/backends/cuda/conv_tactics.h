#pragma once

// conv.cpp's entry points besides its kernel: tactic candidates of a conv with these concrete
// args (cuDNN's heuristic algorithms, each serialized for KernelArgs::tactic_data), and the
// epilogue kernel it falls back to when cuDNN's fused conv-bias-activation does not apply
// (conv_epilogue.cu).

#include <vector>

#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {

Result<std::vector<TacticCandidate>> conv_tactics(CudaBackendState& state, const KernelArgs& args,
                                                  size_t workspace_limit, int max_candidates);

// y = act(y + bias[c] + residual) over a contiguous y of [outer, channels, inner] (NCHW: outer
// N, inner H*W; NHWC: outer N*H*W, inner 1). bias ([channels]) and residual (y's layout) are
// contiguous, of y's dtype, and may be null.
struct ConvEpilogue {
  void* y = nullptr;
  DType dtype = DType::kFloat32;
  int64_t outer = 0, channels = 0, inner = 0;
  const void* bias = nullptr;
  const void* residual = nullptr;
  bool relu = false;
};
Status launch_conv_epilogue(const KernelArgs& args, const ConvEpilogue& epilogue);

}  // namespace kiln::cuda
