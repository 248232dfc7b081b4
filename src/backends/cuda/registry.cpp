#include <array>
#include <vector>

#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {
namespace {

// Kernels grouped by op kind, in registration order (the first one is the default tactic).
using KernelTable = std::array<std::vector<CudaKernel>, static_cast<size_t>(OpKind::kNumOps)>;

const KernelTable& table() {
  static const KernelTable t = [] {
    std::vector<CudaKernel> all;
    register_unary_kernels(all);
    register_binary_kernels(all);
    register_cast_kernels(all);
    register_reduction_kernels(all);
    register_norm_kernels(all);
    register_linalg_kernels(all);
    register_conv_kernels(all);
    register_pool_kernels(all);
    register_attention_kernels(all);
    register_indexing_kernels(all);
    register_shape_kernels(all);
    register_pointwise_kernels(all);
    KernelTable by_kind;
    for (const CudaKernel& k : all) {
      size_t i = static_cast<size_t>(k.kind);
      if (i < by_kind.size()) by_kind[i].push_back(k);
    }
    return by_kind;
  }();
  return t;
}

}  // namespace

std::span<const CudaKernel> kernels_for(OpKind kind) {
  size_t i = static_cast<size_t>(kind);
  if (i >= table().size()) return {};
  return table()[i];
}

const CudaKernel* find_kernel(OpKind kind, std::string_view tactic) {
  for (const CudaKernel& k : kernels_for(kind))
    if (k.tactic && tactic == k.tactic) return &k;
  return nullptr;
}

}  // namespace kiln::cuda
