#pragma once

#include <memory>
#include <vector>

#include "runtime/engine_state.h"

namespace kiln {

// Concrete layout of one plan tensor for the current shapes: where its storage is (the root
// tensor whose memory it lives in) and its dims/strides in elements.
struct ResolvedTensor {
  int32_t root = -1;
  int64_t offset = 0;  // elements from the root's base
  TensorView view;     // data filled per enqueue
};

struct CudaResources;  // cuda_context.cpp: event, device arena, workspace, library handles
void destroy_cuda_resources(CudaResources* resources);  // waits on the host for the last enqueue

struct ContextState {
  std::shared_ptr<const Engine> engine;
  const EngineState* es = nullptr;
  std::vector<std::vector<int64_t>> input_dims;  // per input binding
  std::vector<bool> input_set;
  std::vector<void*> addresses;  // per binding: inputs then outputs
  std::vector<int64_t> symbols;  // symbol values of the current shapes
  bool shapes_ready = false;
  std::vector<ResolvedTensor> tensors;
  AlignedBytes owned_arena;  // CPU
  std::byte* arena = nullptr;  // host (CPU) or device (CUDA) activation memory
  size_t arena_size = 0;
  std::vector<TensorView> scratch_in, scratch_out;  // per-step argument arrays, reused
  std::unique_ptr<CudaResources, void (*)(CudaResources*)> cuda{nullptr, destroy_cuda_resources};

  const format::EnginePlan& plan() const { return es->plan; }
  // Binds symbols from the input shapes, checks them, and computes every tensor's layout.
  Status resolveShapes();
  // Computes data pointers and launches every step with these backend extras.
  Status run(void* stream, void* backend, void* workspace, size_t workspace_bytes);
  // Largest scratch any step needs for the current shapes (after resolveShapes).
  size_t workspaceBytes(void* backend);
};

}  // namespace kiln
