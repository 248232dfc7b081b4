#pragma once

// The CUDA paths of the runtime (cuda_*.cpp, compiled only with KILN_CUDA). This header has no
// CUDA includes so that the CPU-only files can declare the calls behind #ifdef KILN_HAS_CUDA.
#include "kiln/runtime.h"
#include "runtime/context_state.h"

namespace kiln {

#ifdef KILN_HAS_CUDA
// Target description (SM, name) of CUDA device `index`, for the reader's target check.
Result<format::Target> cuda_target(int index);
// Binds CUDA kernels to the steps and uploads the constants to the engine's device.
Status cuda_prepare_engine(EngineState& state);
// Completion event, library handles and (if asked) the activation arena on the device.
Status cuda_create_context(ContextState& state, bool allocate_memory);
// Queues the plan on `stream` (null: the thread's selected stream, else cudaStreamPerThread),
// after a device-side wait on the previous enqueue's completion event; records it again after.
Status cuda_enqueue(ContextState& state, cudaStream_t stream);
// ExecutionContext::setCudaGraphs: records the choice; turning graphs off drops the cached ones.
void cuda_set_graphs(ContextState& state, bool enabled);
// Whether enqueue may capture and replay graphs for this context now.
bool cuda_graphs_enabled(const ContextState& state);
#endif

}  // namespace kiln
