#pragma once

// Tactic candidates of a conv with these concrete args: cuDNN's heuristic algorithms, each
// serialized for KernelArgs::tactic_data (conv.cpp).

#include <vector>

#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {

Result<std::vector<TacticCandidate>> conv_tactics(CudaBackendState& state, const KernelArgs& args,
                                                  size_t workspace_limit, int max_candidates);

}  // namespace kiln::cuda
