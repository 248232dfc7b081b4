#pragma once

#include <cuda_runtime.h>

namespace kiln::cuda {
// Replaces each memset node of a captured graph by a kernel node doing the same fill, with the
// same dependencies (graph_memset.cu): graphs of kernel nodes launch asynchronously, graphs with
// memset nodes (cuDNN's SDPA and cuBLASLt's stream-K GEMMs clear counters with them) made
// cudaGraphLaunch slow and block while the GPU was busy.
// Sets *replaced to how many were replaced.
cudaError_t replace_memset_nodes(cudaGraph_t graph, int* replaced);

// Replaces each copy node of a captured graph from pageable host memory into device memory, of
// at most 2 KB, by a kernel node that writes the same bytes, read from the host now (at capture).
// cuDNN's SDPA copies small host values into its workspace before each call; copy nodes from
// pageable memory made cudaGraphLaunch wait for the GPU whenever it was busy (4 ms per call at
// ViT-B/16 batch 32, device run 6 of session 18). The graph then no longer reads that host memory:
// the caller must know the values do not change between replays (cuDNN's are the execution
// plan's own constants, such as pass-by-value scalars, fixed for the plan's lifetime).
// Sets *replaced to how many were replaced.
cudaError_t replace_host_copy_nodes(cudaGraph_t graph, int* replaced);

}  // namespace kiln::cuda
