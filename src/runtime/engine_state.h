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

// Everything an Engine holds; immutable after deserialize.
struct EngineState {
  AlignedBytes file;  // the engine file, 256-aligned so constants are usable in place
  size_t file_size = 0;
  format::EnginePlan plan;  // constant spans point into `file`
  std::vector<BindingInfo> bindings;  // inputs, then outputs
  std::vector<std::string> symbol_names;
  std::vector<KernelFn> kernels;  // per step; nullptr for view steps
  std::vector<ViewFn> views;      // per step; set for view steps
};

}  // namespace kiln
