#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace kiln::cuda {

// Reads `bytes` at `p` (16-byte loads that stop at L2, nothing written) on `stream`, so that they
// sit in L2 as if an op had just written them: tactic timing warms an op's activation inputs
// this way after flushing L2, and leaves its weights cold (l2_touch.cu).
cudaError_t launch_l2_touch(const void* p, size_t bytes, cudaStream_t stream);

}  // namespace kiln::cuda
