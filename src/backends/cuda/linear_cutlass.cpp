// linear + bias + exact gelu through Kiln's CUTLASS Hopper GEMMs. See linear_cutlass.h.

#include "backends/cuda/linear_cutlass.h"

#include <atomic>
#include <string>

#include "backends/cuda/cuda_util.h"
#if KILN_HAVE_CUTLASS
#include "backends/cuda/sm90a/linear_gelu_cutlass.h"
#endif

namespace kiln::cuda {
namespace {

#if KILN_HAVE_CUTLASS
constexpr uint32_t kMagic = 0x4743'4C4B;  // "KLCG"

// The problem the GEMM would run (pointers included when the args carry them), or why not: a
// refusal is not an error, cuBLASLt runs instead.
const char* describe(const CudaBackendState& state, const KernelArgs& args, sm90a::GeluGemm& g) {
  if (state.cc != 90) return "not a compute-capability-9.0 device";
  if (args.attrs.getString("activation", "none") != "gelu") return "activation is not exact gelu";
  if (args.attrs.getBool("residual", false)) return "has a residual";
  if (args.inputs.size() != 3 || args.outputs.size() != 1) return "needs x, w, bias and one output";
  const TensorView &x = args.inputs[0], &w = args.inputs[1], &b = args.inputs[2];
  const TensorView& out = args.outputs[0];
  if (x.dtype != DType::kFloat16 && x.dtype != DType::kBFloat16) return "x is not fp16/bf16";
  if (w.dtype != x.dtype || b.dtype != x.dtype || out.dtype != x.dtype) return "mixed dtypes";
  if (x.rank < 1 || w.rank != 2 || out.rank < 1) return "ranks";
  g.bf16 = x.dtype == DType::kBFloat16;
  g.K = x.shape[x.rank - 1];
  g.N = w.shape[0];
  if (w.shape[1] != g.K || out.shape[out.rank - 1] != g.N) return "shapes do not match";
  if (g.N == 0 || g.K == 0) return "empty";
  g.M = out.numel() / g.N;
  if (g.M == 0 || x.numel() != g.M * g.K) return "empty or mismatched rows";
  if (!out.isContiguous()) return "the output is not contiguous";
  if (b.numel() != g.N || !b.isContiguous()) return "the bias is not a contiguous [N]";
  // x's leading dims must collapse to one row stride; its last dim contiguous.
  if (x.strides[x.rank - 1] != 1 && g.K > 1) return "x's last dim is not contiguous";
  int64_t rs = 0;
  if (!uniform_batch(x, x.shape, x.rank - 1, rs)) return "x's rows do not collapse to one stride";
  g.ldx = rs ? rs : g.K;
  if (g.ldx < g.K) return "x's rows overlap";
  if (w.strides[1] != 1 || w.strides[0] < g.K) return "w's rows are not contiguous";
  g.ldw = w.strides[0];
  g.x = x.data;
  g.w = w.data;
  g.bias = b.data;
  g.y = out.data;
  g.sm_count = state.sm_count;
  return nullptr;
}

// The configuration and problem that serve `args` (the tactic data names a configuration that
// accepts the shapes), or -1.
int32_t served_config(const KernelArgs& args, sm90a::GeluGemm& g) {
  const CudaBackendState* state = state_of(args);
  if (!state || describe(*state, args, g) != nullptr) return -1;
  const int64_t index = decode_tagged_index(kMagic, args.tactic_data);
  if (index < 0 || index >= sm90a::gelu_gemm_configs()) return -1;
  const auto config = static_cast<int32_t>(index);
  return sm90a::gelu_gemm_refusal(config, g).empty() ? config : -1;
}
#endif

std::atomic<int64_t> g_served{0};

}  // namespace

std::vector<TacticCandidate> linear_cutlass_candidates(const CudaBackendState& state,
                                                       const KernelArgs& args) {
  std::vector<TacticCandidate> out;
#if KILN_HAVE_CUTLASS
  sm90a::GeluGemm g;
  if (describe(state, args, g) != nullptr) return out;
  for (int32_t c = 0; c < sm90a::gelu_gemm_configs(); ++c)
    if (sm90a::gelu_gemm_refusal(c, g).empty())
      out.push_back({"cuda.linear.cutlass_gelu", encode_tagged_index(kMagic, c),
                     str("cutlass sm90a gemm+bias+gelu ", sm90a::gelu_gemm_config_name(c))});
#else
  (void)state;
  (void)args;
#endif
  return out;
}

size_t linear_cutlass_workspace(const KernelArgs& args) {
#if KILN_HAVE_CUTLASS
  sm90a::GeluGemm g;
  const int32_t config = served_config(args, g);
  return config < 0 ? 0 : sm90a::gelu_gemm_workspace(config, g);
#else
  (void)args;
  return 0;
#endif
}

Status run_linear_cutlass(const KernelArgs& args, bool& served) {
  served = false;
#if KILN_HAVE_CUTLASS
  sm90a::GeluGemm g;
  const int32_t config = served_config(args, g);
  if (config < 0) return Status::Ok();
  for (const TensorView& v : args.inputs)
    if (!aligned_to(v.data, 16)) return Status::Ok();
  if (!aligned_to(args.outputs[0].data, 16)) return Status::Ok();
  if (sm90a::gelu_gemm_workspace(config, g) > args.workspace_bytes) return Status::Ok();
  const std::string error =
      sm90a::run_gelu_gemm(config, g, args.workspace, args.workspace_bytes, stream_of(args));
  if (!error.empty())
    return Status(StatusCode::kCudaError,
                  str(op_label(args), ": cutlass gemm+bias+gelu (",
                      sm90a::gelu_gemm_config_name(config), "): ", error));
  served = true;
  g_served.fetch_add(1, std::memory_order_relaxed);
#else
  (void)args;
#endif
  return Status::Ok();
}

int64_t linear_cutlass_run_count() { return g_served.load(std::memory_order_relaxed); }

}  // namespace kiln::cuda
