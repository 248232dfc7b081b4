#pragma once

#include <span>
#include <vector>

#include "backends/common/tensor_view.h"
#include "kiln/network.h"

namespace kiln::cpu {

// One CPU implementation of an op. `supports` (nullable = everything) answers, before anything
// runs, whether this kernel serves an op with these input dtypes and attributes; when it says
// no, its message says why ("reduce: prod on bool is not supported").
struct CpuKernel {
  OpKind kind;
  const char* tactic;  // "cpu.conv.openblas_im2col"
  Status (*supports)(const Op& op, std::span<const DType> input_dtypes) = nullptr;
  KernelFn run = nullptr;
};

// The kernels registered for `kind` (empty when the CPU has none).
std::span<const CpuKernel> kernels_for(OpKind kind);
// The kernel with this tactic name, or nullptr.
const CpuKernel* find_kernel(OpKind kind, std::string_view tactic);

// Registration: each family file defines one of these; registry.cpp calls them all.
void register_elementwise_kernels(std::vector<CpuKernel>& out);
void register_reduction_kernels(std::vector<CpuKernel>& out);
void register_norm_kernels(std::vector<CpuKernel>& out);
void register_linalg_kernels(std::vector<CpuKernel>& out);   // matmul, linear
void register_conv_kernels(std::vector<CpuKernel>& out);     // conv, pool, adaptive pool
void register_attention_kernels(std::vector<CpuKernel>& out);
void register_indexing_kernels(std::vector<CpuKernel>& out);
void register_shape_kernels(std::vector<CpuKernel>& out);    // copies for view ops, concat, pad...
void register_pointwise_kernels(std::vector<CpuKernel>& out);  // fused pointwise chains

}  // namespace kiln::cpu
