#pragma once

#include <cuda_runtime.h>

namespace kiln::cuda {
// Replaces each memset node of a captured graph by a kernel node doing the same fill, with the
// same dependencies (graph_memset.cu): graphs of kernel nodes launch asynchronously, graphs with
// memset nodes (cuDNN's SDPA and cuBLASLt's stream-K GEMMs clear counters with them) made
// cudaGraphLaunch slow and block while the GPU was busy.
// Sets *replaced to how many were replaced.
cudaError_t replace_memset_nodes(cudaGraph_t graph, int* replaced);

}  // namespace kiln::cuda
