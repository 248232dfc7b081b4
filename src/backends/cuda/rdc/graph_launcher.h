#pragma once

// Device-side launch of an execution context's CUDA graph (DESIGN.md 5, host overhead).
//
// cudaGraphLaunch from the host costs a fraction of a microsecond per node: 50-150 us for an
// engine of a few hundred kernels, paid on every call. A graph instantiated with
// cudaGraphInstantiateFlagDeviceLaunch can instead be launched by a kernel. The launcher is a
// one-node graph whose kernel tail-launches the engine's graph (cudaStreamGraphTailLaunch): the
// host pays for launching one node, and the engine's graph runs after the launcher, in the
// launcher's place in the stream (a tail launch inherits the launching graph's completion, so
// work queued after it on the stream waits for the engine's graph).
//
// Opt-in (KILN_DEVICE_GRAPH_LAUNCH=1, cuda_graph_cache.cpp): under CUPTI tracing (torch.profiler)
// the device-side launch fails, and the launcher then traps.
//
// Compiled with relocatable device code and linked with the device runtime (cudadevrt); a
// separate target because the rest of the CUDA code is not relocatable.

#include <cuda_runtime_api.h>

namespace kiln {

// A one-node executable graph whose kernel tail-launches `target`, which must have been
// instantiated with cudaGraphInstantiateFlagDeviceLaunch and uploaded (cudaGraphUpload) after
// its last instantiation or update. Destroy the launcher before `target`.
cudaError_t make_tail_launcher(cudaGraphExec_t target, cudaGraphExec_t* launcher);

}  // namespace kiln
