#include <cuda_runtime.h>

#include "backends/cuda/cuda_kernels.h"
#include "builder/tactics.h"

namespace kiln::builder {
namespace {

TensorView opt_view(const TensorInfo& info, std::span<const int64_t> opt, Status& error) {
  TensorView v;
  v.dtype = info.dtype;
  v.rank = static_cast<int>(info.shape.size());
  for (size_t d = 0; d < info.shape.size() && d < static_cast<size_t>(kMaxRank); ++d) {
    auto value = info.shape[d].evaluate(opt);
    if (!value.ok()) error = value.status();
    v.shape[d] = value.ok() ? *value : 1;
  }
  set_contiguous_strides(v);
  return v;
}

// Offers the CUDA backend's candidates per op at the profile's opt shapes: cuBLASLt heuristic
// algorithms, cuDNN algorithms, one entry per Kiln kernel otherwise.
class CudaTacticProvider final : public TacticProvider {
 public:
  CudaTacticProvider(std::unique_ptr<cuda::CudaBackendState> state, size_t workspace_limit)
      : state_(std::move(state)), workspace_limit_(workspace_limit) {}

  Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op) override {
    std::vector<int64_t> opt;
    for (const SymbolInfo& s : network.symbols()) opt.push_back(s.opt);
    Status error;
    std::vector<TensorView> ins, outs;
    for (Tensor t : op.inputs) ins.push_back(opt_view(network.tensor(t), opt, error));
    for (Tensor t : op.outputs) outs.push_back(opt_view(network.tensor(t), opt, error));
    KILN_RETURN_IF_ERROR(error);
    std::vector<DType> dtypes;
    for (Tensor t : op.inputs) dtypes.push_back(network.tensor(t).dtype);
    std::string reasons;
    for (const cuda::CudaKernel& k : cuda::kernels_for(op.kind)) {
      Status s = k.supports ? k.supports(op, dtypes) : Status::Ok();
      if (!s.ok()) reasons += (reasons.empty() ? "" : "; ") + s.message();
    }
    KILN_ASSIGN_OR_RETURN(auto cands, cuda::tactic_candidates(*state_, op, ins, outs, opt, workspace_limit_));
    std::vector<TacticCandidate> out;
    for (auto& c : cands) {
      const cuda::CudaKernel* k = cuda::find_kernel(op.kind, c.tactic);
      if (k && k->supports && !k->supports(op, dtypes).ok()) continue;
      out.push_back({std::move(c.tactic), std::move(c.data)});
    }
    if (out.empty())
      return unsupported(op_kind_name(op.kind), " '", op.name, "': no CUDA kernel supports it",
                         reasons.empty() ? std::string() : " (" + reasons + ")");
    return out;
  }

 private:
  std::unique_ptr<cuda::CudaBackendState> state_;
  size_t workspace_limit_;
};

}  // namespace

Result<std::unique_ptr<TacticProvider>> make_cuda_tactic_provider(int device, size_t workspace_limit) {
  KILN_ASSIGN_OR_RETURN(auto state, cuda::create_backend_state(device));
  return std::unique_ptr<TacticProvider>(new CudaTacticProvider(std::move(state), workspace_limit));
}

Result<format::Target> cuda_build_target(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device >= count) {
    (void)cudaGetLastError();
    return invalid_argument("target 'cuda:", device, "': no such CUDA device (", count, " visible)");
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return Status(StatusCode::kCudaError, str("cudaGetDeviceProperties(", device, ") failed"));
  format::Target t;
  t.kind = format::DeviceKind::kCuda;
  t.sm_major = prop.major;
  t.sm_minor = prop.minor;
  t.device_name = prop.name;
  return t;
}

}  // namespace kiln::builder
