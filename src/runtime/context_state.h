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
  TensorView view;     // data set by bindPointers
};

// Told by ContextState::launch after each step it launched (a CUDA graph capture forks its L2
// prefetch branch from there: l2_prefetch.h).
struct StepObserver {
  virtual Status afterStep(size_t step) = 0;

 protected:
  ~StepObserver() = default;
};

struct CudaResources;  // cuda_context.cpp: event, device arena, workspace, handles, graphs
void destroy_cuda_resources(CudaResources* resources);  // waits on the host for the last enqueue

struct ContextState {
  std::shared_ptr<const Engine> engine;
  const EngineState* es = nullptr;
  std::vector<std::vector<int64_t>> input_dims;  // per input binding
  std::vector<bool> input_set;
  std::vector<void*> addresses;  // per binding: inputs then outputs
  std::vector<int64_t> symbols;  // symbol values of the current shapes
  // Enqueue redoes only what changed since the last one: layouts when an input shape changed
  // (shapes_ready), data pointers when an address or the arena changed (pointers_ready).
  bool shapes_ready = false;
  bool pointers_ready = false;
  uint64_t shape_generation = 0;  // counts resolveShapes calls, so caches can tell shapes changed
  std::vector<ResolvedTensor> tensors;
  AlignedBytes owned_arena;  // CPU
  std::byte* arena = nullptr;  // host (CPU) or device (CUDA) activation memory
  size_t arena_size = 0;
  std::vector<TensorView> scratch_in, scratch_out;  // per-step argument arrays, reused
  // CUDA graphs: the caller's choice (setCudaGraphs) and what enqueue did, for tests.
  bool cuda_graphs_requested = true;
  int64_t graph_replays = 0;
  int64_t graph_captures = 0;
  int64_t graph_staged_copies = 0;  // copies into and out of staging buffers (cuda_graph_cache.h)
  int64_t graph_device_launches = 0;  // graph launches made from the device (graph_launcher.h)
  int64_t plain_launches = 0;       // enqueues that launched the kernels one by one
  int64_t graph_nodes = 0;          // nodes of the graph captured last (0 before any capture)
  int64_t graph_memset_nodes_replaced = 0;  // memset nodes turned into fill kernels, all captures
  int64_t graph_prefetch_nodes = 0;         // L2 prefetch launches in the graph captured last
  std::string l2_prefetch_reason;  // why the last capture prefetched or not (l2_prefetch.h)
  // Host time spent so far inside enqueue, and inside the graph launches it made (steady clock).
  int64_t enqueue_host_ns = 0;
  int64_t graph_launch_host_ns = 0;
  std::string graph_failure;        // why graphs went off for this context ("" while they are on)
  std::unique_ptr<CudaResources, void (*)(CudaResources*)> cuda{nullptr, destroy_cuda_resources};

  const format::EnginePlan& plan() const { return es->plan; }
  // Binds symbols from the input shapes, checks them, and computes every tensor's layout.
  Status resolveShapes();
  // Every binding with elements has an address (after resolveShapes); names the one missing.
  Status checkAddresses() const;
  // Sets every tensor's data pointer from the addresses and the arena (after resolveShapes).
  Status bindPointers();
  // Launches every step with these backend extras (after resolveShapes and bindPointers),
  // telling `observer` (if any) after each.
  Status launch(void* stream, void* backend, void* workspace, size_t workspace_bytes,
                StepObserver* observer = nullptr);
  // resolveShapes and bindPointers where needed, then launch.
  Status run(void* stream, void* backend, void* workspace, size_t workspace_bytes);
  // Largest scratch any step needs for the current shapes (after resolveShapes).
  size_t workspaceBytes(void* backend);
};

}  // namespace kiln
