#include <cuda_runtime.h>

#include "backends/cuda/cuda_kernels.h"
#include "runtime/cuda_device_guard.h"
#include "runtime/cuda_runtime.h"

namespace kiln {

Result<format::Target> cuda_target(int index) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || index >= count) {
    (void)cudaGetLastError();
    return invalid_argument("device 'cuda:", index, "' does not exist (", err == cudaSuccess ? count : 0,
                            " CUDA devices visible)");
  }
  cudaDeviceProp prop{};
  KILN_RETURN_IF_ERROR(cuda_status(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
  format::Target t;
  t.kind = format::DeviceKind::kCuda;
  t.sm_major = prop.major;
  t.sm_minor = prop.minor;
  t.device_name = prop.name;
  return t;
}

Status cuda_prepare_engine(EngineState& state) {
  DeviceGuard guard(state.device);
  const auto& steps = state.plan.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const format::PlanStep& step = steps[i];
    if (step.is_view) continue;
    const cuda::CudaKernel* k = cuda::find_kernel(step.kind, step.tactic);
    if (!k)
      return unsupported("step '", step.name, "' (", op_kind_name(step.kind), ") uses tactic '", step.tactic,
                         "', which this Kiln build's CUDA backend does not have");
    state.kernels[i] = k->run;
    state.workspaces[i] = k->workspace;
    // Once per engine (its device is current): e.g. load a generated kernel's CUBIN.
    if (k->prepare) {
      auto prepared = k->prepare(step.name.c_str(), step.tactic_data);
      if (!prepared.ok()) return prepared.status().withContext(str("loading step '", step.name, "'"));
      state.prepared[i] = std::move(prepared).value();
    }
  }
  // Weights go to the device once per engine; every context shares them.
  size_t total = 0;
  std::vector<size_t> offsets;
  for (const format::Constant& c : state.plan.constants) {
    offsets.push_back(total);
    total += (c.bytes.size() + 255) / 256 * 256;
  }
  if (total == 0) return Status::Ok();
  void* device_memory = nullptr;
  KILN_RETURN_IF_ERROR(cuda_status(cudaMalloc(&device_memory, total),
                                   str("engine '", state.plan.name, "': allocating ", total, " bytes of weights")));
  int device = state.device;
  state.device_constants = std::shared_ptr<void>(device_memory, [device](void* p) {
    DeviceGuard g(device);
    cudaFree(p);
  });
  auto* base = static_cast<std::byte*>(device_memory);
  for (size_t i = 0; i < state.plan.constants.size(); ++i) {
    const format::Constant& c = state.plan.constants[i];
    // Loading an engine is allowed to block; running one is not.
    KILN_RETURN_IF_ERROR(cuda_status(cudaMemcpy(base + offsets[i], c.bytes.data(), c.bytes.size(), cudaMemcpyHostToDevice),
                                     str("uploading constant '", c.name, "'")));
    state.constant_ptrs.push_back(base + offsets[i]);
  }
  return Status::Ok();
}

}  // namespace kiln
