#include <array>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_kernels.h"

namespace kiln::cpu {
namespace {

// Kernels grouped by op kind, in registration order (the first one is the default tactic).
using KernelTable = std::array<std::vector<CpuKernel>, static_cast<size_t>(OpKind::kNumOps)>;

const KernelTable& table() {
  // A function-local static: built once, thread-safe (C++11 magic statics).
  static const KernelTable t = [] {
    std::vector<CpuKernel> all;
    register_elementwise_kernels(all);
    register_reduction_kernels(all);
    register_norm_kernels(all);
    register_linalg_kernels(all);
    register_conv_kernels(all);
    register_attention_kernels(all);
    register_indexing_kernels(all);
    register_shape_kernels(all);
    register_pointwise_kernels(all);
    KernelTable by_kind;
    for (const CpuKernel& k : all) {
      size_t i = static_cast<size_t>(k.kind);
      if (i < by_kind.size()) by_kind[i].push_back(k);
    }
    return by_kind;
  }();
  return t;
}

}  // namespace

std::span<const CpuKernel> kernels_for(OpKind kind) {
  size_t i = static_cast<size_t>(kind);
  if (i >= table().size()) return {};
  return table()[i];
}

const CpuKernel* find_kernel(OpKind kind, std::string_view tactic) {
  for (const CpuKernel& k : kernels_for(kind))
    if (k.tactic && tactic == k.tactic) return &k;
  return nullptr;
}

}  // namespace kiln::cpu
