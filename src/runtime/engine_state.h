#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/common/tensor_view.h"
#include "format/engine_plan.h"
#include "ir/op_def.h"
#include "kiln/runtime.h"

namespace kiln {

struct AlignedFree {
  void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t(256)); }
};
using AlignedBytes = std::unique_ptr<std::byte[], AlignedFree>;
AlignedBytes allocate_aligned(size_t bytes);

struct EngineState;
// Sizes the per-step tables and binds the view function of every view step.
Status bind_views(EngineState& state);

// Everything an Engine holds; immutable after deserialize.
struct EngineState {
  AlignedBytes file;  // the engine file, 256-aligned so constants are usable in place
  size_t file_size = 0;
  format::EnginePlan plan;  // constant spans point into `file`
  std::vector<BindingInfo> bindings;  // inputs, then outputs
  std::vector<std::string> symbol_names;
  std::vector<KernelFn> kernels;  // per step; nullptr for view steps
  std::vector<ViewFn> views;      // per step; set for view steps
  // Scratch bytes a step needs for given args (CUDA library calls); nullptr = none.
  std::vector<size_t (*)(const KernelArgs&)> workspaces;
  // Per step: what the kernel's prepare made at load (CUDA generated kernels); else null.
  std::vector<std::shared_ptr<const void>> prepared;

  // BuilderConfig::cuda_graphs as the plan's build options record it (absent: on).
  bool cuda_graphs = true;
  format::DeviceKind kind = format::DeviceKind::kCpu;
  int device = -1;  // CUDA device index
  // Where each constant lives for kernels: in `file` on the CPU, in device memory on CUDA.
  std::vector<const std::byte*> constant_ptrs;
  std::shared_ptr<void> device_constants;  // owns the device copy (freed with the engine)
};

}  // namespace kiln
