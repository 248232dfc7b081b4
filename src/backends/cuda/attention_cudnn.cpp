// Attention through cuDNN's SDPA graph (cudnn-frontend). See attention_cudnn.h.
//
// The op's operands are [..., L, E] with up to two batch dims; cuDNN wants [B, H, rows, cols]
// with explicit strides. Batch dims are right-aligned into (B, H); a dim of stride 0 (an
// expanded view) counts as size 1, which cuDNN reads as broadcast for the mask and as
// grouped-query heads for k and v. The output is its [..., H, L, Ev] view
// (attention_output_view): with seq_major_out its strides are those of [B, L, H, Ev] memory,
// a layout cuDNN's SDPA writes as readily as the packed one.

#include "backends/cuda/attention_cudnn.h"

#include <cudnn.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <cudnn_frontend.h>

#include "backends/common/attention_layout.h"
#include "backends/cuda/cuda_util.h"

namespace kiln::cuda {
namespace {

namespace fe = cudnn_frontend;

enum Uid : int64_t { kQ = 1, kK, kV, kBias, kO };

// One operand as [b, h, rows, cols] (dims of stride 0 collapsed to 1).
struct Dims4 {
  int64_t dim[4] = {1, 1, 1, 1};
  int64_t stride[4] = {0, 0, 0, 1};
};

// `v`'s dims right-aligned into four (missing leading dims are 1). A dim of size 1 or stride 0
// (an expanded view) is 1 with stride 0.
Dims4 right_aligned(const TensorView& v) {
  Dims4 d;
  const int lead = 4 - v.rank;
  for (int i = 0; i < v.rank; ++i) {
    const bool broadcast = v.strides[i] == 0 || v.shape[i] == 1;
    d.dim[lead + i] = broadcast ? 1 : v.shape[i];
    d.stride[lead + i] = broadcast ? 0 : v.strides[i];
  }
  return d;
}

// Gives dims of size 1 (every dim with `all`) the stride a packed tensor would have: cuDNN
// ignores size-1 strides, but some of its checks still read them.
void pack_strides(Dims4& d, bool all = false) {
  for (int i = 3; i >= 0; --i)
    if (d.dim[i] == 1 || all) d.stride[i] = i == 3 ? 1 : d.dim[i + 1] * d.stride[i + 1];
}

// `v` with its batch dims right-aligned to the op's `nb` (<= 2) batch dims.
bool to_4d(const TensorView& v, int nb, Dims4& d) {
  if (v.rank < 2 || v.rank - 2 > nb) return false;
  d = right_aligned(v);
  pack_strides(d);
  return true;
}

struct Geometry {
  DType io = DType::kFloat16;
  Dims4 q, k, v, o, bias;
  bool has_bias = false;
  bool bias_from_bool = false;  // the op's mask is bool: cuDNN reads a converted copy
  int64_t mask_strides[4] = {};  // the op's mask over bias.dim (0 where it broadcasts)
  DType bias_dtype = DType::kFloat16;
  bool causal = false;
  float scale = 1.0f;

  std::string key(const void* handle) const {
    std::vector<int64_t> words = {reinterpret_cast<intptr_t>(handle), static_cast<int64_t>(io),
                                  has_bias, static_cast<int64_t>(bias_dtype), causal};
    int32_t scale_bits = 0;
    std::memcpy(&scale_bits, &scale, sizeof(scale));
    words.push_back(scale_bits);
    for (const Dims4* d : {&q, &k, &v, &o, &bias})
      for (int i = 0; i < 4; ++i) {
        words.push_back(d->dim[i]);
        words.push_back(d->stride[i]);
      }
    return std::string(reinterpret_cast<const char*>(words.data()), words.size() * sizeof(int64_t));
  }
};

fe::DataType_t fe_dtype(DType d) {
  switch (d) {
    case DType::kFloat16: return fe::DataType_t::HALF;
    case DType::kBFloat16: return fe::DataType_t::BFLOAT16;
    default: return fe::DataType_t::FLOAT;
  }
}

// The geometry cuDNN would run, or why not (a refusal is not an error: another kernel runs).
const char* describe(const KernelArgs& args, Geometry& g) {
  if (args.inputs.size() < 3 || args.outputs.size() != 1) return "needs q, k, v and one output";
  const TensorView &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
  const Result<TensorView> out_view = attention_output_view(args);
  if (!out_view.ok()) return "the output has no [..., H, L, Ev] view";
  const TensorView& out = *out_view;
  if (q.dtype != DType::kFloat16 && q.dtype != DType::kBFloat16) return "q is not fp16/bf16";
  if (k.dtype != q.dtype || v.dtype != q.dtype || out.dtype != q.dtype) return "mixed dtypes";
  const int nb = out.rank - 2;
  if (nb < 0 || nb > 2) return "more than two batch dims";
  g.io = q.dtype;
  if (!to_4d(q, nb, g.q) || !to_4d(k, nb, g.k) || !to_4d(v, nb, g.v) || !to_4d(out, nb, g.o))
    return "operand ranks do not match the output";
  const int64_t B = g.o.dim[0], H = g.o.dim[1];
  if (g.q.dim[0] != B || g.q.dim[1] != H) return "q broadcasts over a batch dim";
  for (const Dims4* kv : {&g.k, &g.v}) {
    if (kv->dim[0] != B) return "k or v broadcasts over the first batch dim";
    if (H % kv->dim[1] != 0) return "k or v heads do not divide the query heads";
  }
  for (const Dims4* d : {&g.q, &g.k, &g.v, &g.o}) {
    if (d->stride[3] != 1) return "a head dim is not contiguous";
    for (int i = 0; i < 3; ++i)
      if (d->stride[i] % 8 != 0) return "rows are not 16-byte aligned";
  }
  if (g.q.dim[3] % 8 != 0 || g.v.dim[3] % 8 != 0) return "head dims are not multiples of 8";
  if (args.inputs.size() > 3) {
    const TensorView& m = args.inputs[3];
    if (m.dtype != DType::kBool && !is_floating(m.dtype)) return "the mask is not bool or float";
    if (m.rank > 4 || m.rank > out.rank) return "mask rank exceeds the output's";
    Dims4 bd = right_aligned(m);
    if (bd.dim[3] != g.k.dim[2]) return "the mask broadcasts over the keys";
    if ((bd.dim[0] != 1 && bd.dim[0] != B) || (bd.dim[1] != 1 && bd.dim[1] != H) ||
        (bd.dim[2] != 1 && bd.dim[2] != g.q.dim[2]))
      return "the mask does not broadcast to the scores";
    g.has_bias = true;
    g.bias_from_bool = m.dtype == DType::kBool;
    g.bias_dtype = g.bias_from_bool ? g.io : m.dtype;
    for (int i = 0; i < 4; ++i) g.mask_strides[i] = bd.stride[i];
    // A converted bool mask is a packed copy over the broadcast dims.
    if (!g.bias_from_bool && bd.stride[3] != 1) return "the mask's key dim is not contiguous";
    pack_strides(bd, g.bias_from_bool);
    g.bias = bd;
  }
  g.causal = args.attrs.getBool("causal", false);
  g.scale = static_cast<float>(
      args.attrs.getDouble("scale", 1.0 / std::sqrt(static_cast<double>(g.q.dim[3]))));
  return nullptr;
}

// One SDPA graph per geometry; cuDNN's execution plans for it are built on first use, by index
// (the tactic data names one; without it, the first that builds, as cuDNN's heuristic orders
// them).
struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN refused this geometry
  int64_t plans = 0;
  std::string why;
  std::mutex mu;                   // guards the vectors below
  std::vector<int8_t> built;       // per plan: 0 not tried, 1 built, -1 failed
  std::vector<int64_t> workspace;  // per plan, once built
};

// Builds plan `index` on first use; false when cuDNN cannot build it.
bool ensure_plan(Plan& p, int64_t index) {
  if (!p.graph || index < 0 || index >= p.plans) return false;
  std::lock_guard<std::mutex> lock(p.mu);
  int8_t& state = p.built[static_cast<size_t>(index)];
  if (state == 0) {
    int64_t ws = 0;
    state = p.graph->build_plan_at_index(index).is_good() &&
                    p.graph->get_workspace_size_plan_at_index(index, ws).is_good()
                ? 1
                : -1;
    p.workspace[static_cast<size_t>(index)] = ws;
  }
  return state == 1;
}

constexpr uint32_t kPlanMagic = 0x4453'4C4B;  // "KLSD"

// The plan `data` names when it builds, else (no plan named, or an engine built under another
// cuDNN whose plan list differs) the first plan that builds; -1 when none does. `workspace` gets
// the plan's workspace bytes.
int64_t plan_index(Plan& p, std::span<const uint8_t> data, int64_t& workspace) {
  int64_t index = decode_tagged_index(kPlanMagic, data);
  if (index >= 0 && !ensure_plan(p, index)) index = -1;
  for (int64_t i = 0; index < 0 && i < p.plans; ++i)
    if (ensure_plan(p, i)) index = i;
  if (index >= 0) {
    std::lock_guard<std::mutex> lock(p.mu);
    workspace = p.workspace[static_cast<size_t>(index)];
  }
  return index;
}

std::shared_ptr<fe::graph::Tensor_attributes> add_tensor(fe::graph::Graph& g, const char* name,
                                                         int64_t uid, const Dims4& d) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({d.dim[0], d.dim[1], d.dim[2], d.dim[3]})
                      .set_stride({d.stride[0], d.stride[1], d.stride[2], d.stride[3]}));
}

std::shared_ptr<Plan> build_plan(cudnnHandle_t h, const Geometry& geo) {
  auto plan = std::make_shared<Plan>();
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe_dtype(geo.io))
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  auto q = add_tensor(*g, "Q", kQ, geo.q);
  auto k = add_tensor(*g, "K", kK, geo.k);
  auto v = add_tensor(*g, "V", kV, geo.v);
  auto options = fe::graph::SDPA_attributes()
                     .set_name("kiln_sdpa")
                     .set_generate_stats(false)
                     .set_attn_scale(geo.scale);
  if (geo.causal) options.set_causal_mask(true);
  if (geo.has_bias) {
    auto bias = add_tensor(*g, "Bias", kBias, geo.bias);
    bias->set_data_type(fe_dtype(geo.bias_dtype));
    options.set_bias(bias);
  }
  auto [o, stats] = g->sdpa(q, k, v, options);
  (void)stats;
  o->set_output(true)
      .set_uid(kO)
      .set_dim({geo.o.dim[0], geo.o.dim[1], geo.o.dim[2], geo.o.dim[3]})
      .set_stride({geo.o.stride[0], geo.o.stride[1], geo.o.stride[2], geo.o.stride[3]});
  auto failed = [&](const char* stage, fe::error_t e) {
    plan->why = std::string(stage) + ": " + e.get_message();
    return plan;
  };
  if (auto e = g->validate(); e.is_bad()) return failed("validate", e);
  if (auto e = g->build_operation_graph(h); e.is_bad()) return failed("build_operation_graph", e);
  if (auto e = g->create_execution_plans({fe::HeurMode_t::A}); e.is_bad())
    return failed("create_execution_plans", e);
  if (auto e = g->check_support(h); e.is_bad()) return failed("check_support", e);
  plan->plans = g->get_execution_plan_count();
  if (plan->plans <= 0) {
    plan->why = "no execution plan";
    return plan;
  }
  plan->built.assign(static_cast<size_t>(plan->plans), 0);
  plan->workspace.assign(static_cast<size_t>(plan->plans), 0);
  plan->graph = std::move(g);
  return plan;
}

// Process-wide: one graph per (handle, geometry), refusals included.
std::shared_ptr<Plan> find_plan(cudnnHandle_t h, const Geometry& geo) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<Plan>> cache;
  const std::string key = geo.key(h);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto plan = build_plan(h, geo);
  cache.emplace(key, plan);
  return plan;
}

std::atomic<int64_t> g_served{0};

// Bytes of the workspace's front that hold a bool mask converted to a bias (0: none).
size_t converted_mask_bytes(const Geometry& g) {
  if (!g.bias_from_bool) return 0;
  return align_up(static_cast<size_t>(g.bias.dim[0] * g.bias.dim[1] * g.bias.dim[2] *
                                      g.bias.dim[3]) *
                  2);
}

}  // namespace

std::vector<TacticCandidate> attention_cudnn_candidates(CudaBackendState& state,
                                                        const KernelArgs& args, int max) {
  std::vector<TacticCandidate> out;
  Geometry geo;
  if (!state.cudnn || describe(args, geo) != nullptr) return out;
  std::shared_ptr<Plan> plan = find_plan(state.cudnn, geo);
  for (int64_t i = 0; i < plan->plans && static_cast<int>(out.size()) < max; ++i) {
    if (!ensure_plan(*plan, i)) continue;
    std::string name;
    if (plan->graph->get_plan_name_at_index(i, name).is_bad()) name = "?";
    out.push_back({"cuda.attention.cudnn", encode_tagged_index(kPlanMagic, i),
                   str("cudnn sdpa plan ", i, " (", name, ")"), kCudnnAttentionHandicap});
  }
  return out;
}

size_t attention_cudnn_workspace(const KernelArgs& args) {
  CudaBackendState* state = state_of(args);
  Geometry geo;
  if (!state || !state->cudnn || describe(args, geo) != nullptr) return 0;
  std::shared_ptr<Plan> plan = find_plan(state->cudnn, geo);
  int64_t plan_workspace = 0;
  if (plan_index(*plan, args.tactic_data, plan_workspace) < 0) return 0;
  return converted_mask_bytes(geo) + static_cast<size_t>(plan_workspace);
}

Status run_attention_cudnn(const KernelArgs& args, bool& served) {
  served = false;
  CudaBackendState* state = state_of(args);
  Geometry geo;
  if (!state || !state->cudnn || describe(args, geo) != nullptr) return Status::Ok();
  for (size_t i = 0; i < args.inputs.size(); ++i)
    if (!aligned_to(args.inputs[i].data, 16)) return Status::Ok();
  if (!aligned_to(args.outputs[0].data, 16)) return Status::Ok();
  std::shared_ptr<Plan> plan = find_plan(state->cudnn, geo);
  int64_t plan_workspace = 0;
  const int64_t index = plan_index(*plan, args.tactic_data, plan_workspace);
  if (index < 0) return Status::Ok();
  const size_t front = converted_mask_bytes(geo);
  if (front + static_cast<size_t>(plan_workspace) > args.workspace_bytes)
    return Status::Ok();  // sized for another geometry: the fallback needs none
  void* bias = args.inputs.size() > 3 ? const_cast<void*>(args.inputs[3].data) : nullptr;
  if (geo.bias_from_bool) {
    KILN_RETURN_IF_ERROR(launch_bool_mask_to_bias(args, bias, geo.bias.dim, geo.mask_strides,
                                                  geo.io, args.workspace));
    bias = args.workspace;
  }
  cudnnHandle_t h = state->cudnn;
  if (cudnnStatus_t s = cudnnSetStream(h, stream_of(args)); s != CUDNN_STATUS_SUCCESS)
    return Status(StatusCode::kCudaError,
                  str(op_label(args), ": cudnnSetStream: ", cudnnGetErrorString(s)));
  std::unordered_map<int64_t, void*> pack = {{kQ, const_cast<void*>(args.inputs[0].data)},
                                             {kK, const_cast<void*>(args.inputs[1].data)},
                                             {kV, const_cast<void*>(args.inputs[2].data)},
                                             {kO, args.outputs[0].data}};
  if (geo.has_bias) pack[kBias] = bias;
  void* ws = static_cast<char*>(args.workspace) + front;
  if (fe::error_t e = plan->graph->execute_plan_at_index(h, pack, ws, index); e.is_bad())
    return Status(StatusCode::kCudaError,
                  str(op_label(args), ": cuDNN SDPA execute: ", e.get_message()));
  served = true;
  g_served.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

int64_t attention_cudnn_run_count() { return g_served.load(std::memory_order_relaxed); }

}  // namespace kiln::cuda
