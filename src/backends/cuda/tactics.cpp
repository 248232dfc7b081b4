// tactic_candidates: library algorithms for matmul, linear and conv, cuDNN's execution plans for
// attention; one empty-data candidate per registered kernel for every other op.

#include <string_view>

#include "backends/cuda/attention_cudnn.h"
#include "backends/cuda/conv_tactics.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_kernels.h"

namespace kiln::cuda {

Result<std::vector<TacticCandidate>> tactic_candidates(CudaBackendState& state, const Op& op,
                                                       std::span<const TensorView> inputs,
                                                       std::span<const TensorView> outputs,
                                                       std::span<const int64_t> bindings,
                                                       size_t workspace_limit,
                                                       int max_candidates) {
  if (outputs.empty()) return invalid_argument(op_kind_name(op.kind), " '", op.name, "': no outputs");
  KernelArgs args{op.name.c_str(), op.attrs, inputs, outputs, bindings};
  args.backend = &state;
  std::vector<TacticCandidate> out;
  switch (op.kind) {
    case OpKind::kMatmul:
    case OpKind::kLinear: {
      KILN_ASSIGN_OR_RETURN(out, gemm_tactics(state, args, op.kind == OpKind::kLinear,
                                              workspace_limit, max_candidates));
      break;
    }
    case OpKind::kConv: {
      KILN_ASSIGN_OR_RETURN(out, conv_tactics(state, args, workspace_limit, max_candidates));
      break;
    }
    case OpKind::kAttention: {
      // cuDNN's SDPA: one candidate per execution plan (its engines and knobs differ per shape).
      constexpr int kMaxCudnnPlans = 4;
      for (const CudaKernel& k : kernels_for(op.kind)) {
        std::vector<TacticCandidate> plans;
        if (std::string_view(k.tactic) == "cuda.attention.cudnn")
          plans = attention_cudnn_candidates(state, args, kMaxCudnnPlans);
        if (plans.empty()) out.push_back({k.tactic, {}, k.tactic});
        for (TacticCandidate& c : plans) out.push_back(std::move(c));
      }
      break;
    }
    case OpKind::kPointwise: {
      KILN_ASSIGN_OR_RETURN(out, pointwise_tactics(state, op, inputs));
      break;
    }
    default:
      for (const CudaKernel& k : kernels_for(op.kind)) out.push_back({k.tactic, {}, k.tactic});
      break;
  }
  if (out.empty())
    return unsupported(op_kind_name(op.kind), " '", op.name, "': no CUDA kernel");
  return out;
}

}  // namespace kiln::cuda
