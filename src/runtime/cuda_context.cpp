#include <cuda_runtime.h>

#include "backends/cuda/cuda_kernels.h"
#include "runtime/cuda_device_guard.h"
#include "runtime/cuda_runtime.h"

namespace kiln {

struct CudaResources {
  int device = 0;
  cudaEvent_t done = nullptr;  // recorded after the last kernel of each enqueue
  bool recorded = false;
  void* owned_arena = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  size_t workspace_needed = 0;  // for the current shapes
  std::unique_ptr<cuda::CudaBackendState> backend;
};

void destroy_cuda_resources(CudaResources* r) {
  if (!r) return;
  {
    DeviceGuard guard(r->device);
    // The one host wait of the runtime: the memory below may still be in use by queued work.
    if (r->done) {
      cudaEventSynchronize(r->done);
      cudaEventDestroy(r->done);
    }
    if (r->workspace) cudaFree(r->workspace);
    if (r->owned_arena) cudaFree(r->owned_arena);
    r->backend.reset();
  }
  delete r;
}

Status cuda_create_context(ContextState& st, bool allocate_memory) {
  DeviceGuard guard(st.es->device);
  st.cuda.reset(new CudaResources());
  CudaResources& r = *st.cuda;
  r.device = st.es->device;
  KILN_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(&r.done, cudaEventDisableTiming), "cudaEventCreate"));
  KILN_ASSIGN_OR_RETURN(r.backend, cuda::create_backend_state(r.device));
  int64_t bytes = st.plan().arena_bytes;
  if (allocate_memory && bytes > 0) {
    KILN_RETURN_IF_ERROR(cuda_status(cudaMalloc(&r.owned_arena, static_cast<size_t>(bytes)),
                                     str("engine '", st.plan().name, "': allocating ", bytes, " bytes of activations")));
    st.arena = static_cast<std::byte*>(r.owned_arena);
    st.arena_size = static_cast<size_t>(bytes);
  }
  return Status::Ok();
}

Status cuda_enqueue(ContextState& st, cudaStream_t stream) {
  CudaResources& r = *st.cuda;
  if (!st.arena && st.plan().arena_bytes > 0)
    return invalid_argument("context of engine '", st.plan().name, "' has no activation memory: call setDeviceMemory");
  DeviceGuard guard(r.device);
  if (!stream) stream = CudaStreamGuard::active() ? CudaStreamGuard::current() : cudaStreamPerThread;
  if (!st.shapes_ready) {
    KILN_RETURN_IF_ERROR(st.resolveShapes());
    r.workspace_needed = st.workspaceBytes(r.backend.get());
  }
  // The previous enqueue may still be using the arena on another stream: wait on the device.
  if (r.recorded)
    KILN_RETURN_IF_ERROR(cuda_status(cudaStreamWaitEvent(stream, r.done, 0), "cudaStreamWaitEvent"));
  if (r.workspace_needed > r.workspace_bytes) {
    // Stream-ordered allocation: grows the scratch without a device-wide synchronization.
    if (r.workspace) KILN_RETURN_IF_ERROR(cuda_status(cudaFreeAsync(r.workspace, stream), "cudaFreeAsync"));
    r.workspace = nullptr;
    r.workspace_bytes = 0;
    KILN_RETURN_IF_ERROR(cuda_status(cudaMallocAsync(&r.workspace, r.workspace_needed, stream),
                                     str("allocating ", r.workspace_needed, " bytes of workspace")));
    r.workspace_bytes = r.workspace_needed;
  }
  Status status = st.run(stream, r.backend.get(), r.workspace, r.workspace_bytes);
  cudaError_t err = cudaEventRecord(r.done, stream);
  r.recorded = err == cudaSuccess;
  KILN_RETURN_IF_ERROR(status);
  return cuda_status(err, "cudaEventRecord");
}

}  // namespace kiln
