#include "builder/tactics.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <random>

#include "backends/common/l2_prefetch_rule.h"
#include "backends/cpu/cpu_kernels.h"
#include "builder/plan.h"
#include "builder/timing_cache.h"
#include "ir/half.h"
#include "ir/op_def.h"
#include "kiln/version.h"

namespace kiln::builder {

std::vector<std::pair<size_t, size_t>> warm_input_bytes(const Network& network, const Op& op,
                                                        const OpShapes& shapes, size_t l2_bytes,
                                                        bool weights_too) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t budget = l2_bytes;
  const bool weights = weights_too && streams_weights(op.kind);
  for (const bool constants : {false, true}) {
    if (constants && !weights) break;
    for (size_t i = 0; i < shapes.inputs.size() && i < op.inputs.size() && budget > 0; ++i) {
      if (network.tensor(op.inputs[i]).isConstant() != constants) continue;
      const TensorView& v = shapes.inputs[i];
      const size_t bytes = std::min(
          budget, static_cast<size_t>(shapes.input_offsets[i] + v.extent()) * dtype_size(v.dtype));
      if (bytes == 0) continue;
      out.emplace_back(i, bytes);
      budget -= bytes;
    }
  }
  return out;
}

WeightTraffic weight_traffic(const Network& network, const std::vector<OpShapes>& shapes) {
  WeightTraffic t;
  for (size_t o = 0; o < network.ops().size() && o < shapes.size(); ++o) {
    const Op& op = network.ops()[o];
    if (!streams_weights(op.kind)) continue;
    auto bytes = [](const TensorView& v) {
      return static_cast<size_t>(v.extent()) * dtype_size(v.dtype);
    };
    size_t weights = 0, activations = 0;
    for (size_t i = 0; i < op.inputs.size() && i < shapes[o].inputs.size(); ++i)
      (network.tensor(op.inputs[i]).isConstant() ? weights : activations) +=
          bytes(shapes[o].inputs[i]);
    for (const TensorView& v : shapes[o].outputs) activations += bytes(v);
    if (weights == 0) continue;
    t.weight_bytes += weights;
    t.activation_bytes += activations;
    ++t.steps;
  }
  return t;
}

namespace {

// Small random values of v's dtype (zeros for integers and bool: indices stay in range).
void fill_random(std::byte* data, DType dtype, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  const size_t es = dtype_size(dtype);
  for (int64_t i = 0; i < n; ++i) {
    std::byte* p = data + static_cast<size_t>(i) * es;
    const float x = dist(rng);
    if (dtype == DType::kFloat32) {
      std::memcpy(p, &x, 4);
    } else if (dtype == DType::kFloat16) {
      uint16_t h = float_to_half(x);
      std::memcpy(p, &h, 2);
    } else if (dtype == DType::kBFloat16) {
      uint16_t h = float_to_bf16(x);
      std::memcpy(p, &h, 2);
    } else {
      std::memset(p, 0, es);
    }
  }
}

class CpuTacticProvider final : public TacticProvider {
 public:
  Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op,
                                                  const OpShapes&) override {
    std::vector<DType> dtypes;
    for (Tensor t : op.inputs) dtypes.push_back(network.tensor(t).dtype);
    std::vector<TacticCandidate> out;
    std::string reasons;
    for (const cpu::CpuKernel& k : cpu::kernels_for(op.kind)) {
      Status s = k.supports ? k.supports(op, dtypes) : Status::Ok();
      if (s.ok()) {
        TacticCandidate c;
        c.name = k.tactic;
        out.push_back(std::move(c));
      } else {
        reasons += (reasons.empty() ? "" : "; ") + s.message();
      }
    }
    if (out.empty()) {
      return unsupported(op_kind_name(op.kind), " '", op.name, "': no CPU kernel supports it",
                         reasons.empty() ? std::string() : " (" + reasons + ")");
    }
    return out;
  }

  bool can_time() const override { return true; }

  // Runs the kernel on host buffers of random values: one warm-up, then the median of 5. Only
  // asked for ops with several CPU kernels.
  Result<double> time(const Network&, const Op& op, const OpShapes& shapes,
                      const TacticCandidate& tactic) override {
    const cpu::CpuKernel* k = cpu::find_kernel(op.kind, tactic.name);
    if (!k) return not_found("no CPU kernel '", tactic.name, "'");
    std::vector<std::vector<std::byte>> buffers;
    std::vector<TensorView> ins = shapes.inputs, outs = shapes.outputs;
    for (size_t i = 0; i < ins.size(); ++i) {
      const size_t es = dtype_size(ins[i].dtype);
      const int64_t n = shapes.input_offsets[i] + ins[i].extent();
      buffers.emplace_back(static_cast<size_t>(n) * es + 1);
      fill_random(buffers.back().data(), ins[i].dtype, n, static_cast<uint32_t>(i + 1));
      ins[i].data = buffers.back().data() + static_cast<size_t>(shapes.input_offsets[i]) * es;
    }
    for (TensorView& v : outs) {
      buffers.emplace_back(static_cast<size_t>(v.numel()) * dtype_size(v.dtype) + 1);
      v.data = buffers.back().data();
    }
    KernelArgs args{op.name.c_str(), op.attrs, ins, outs, shapes.bindings};
    KILN_RETURN_IF_ERROR(k->run(args));
    std::vector<double> ms;
    for (int r = 0; r < 5; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      KILN_RETURN_IF_ERROR(k->run(args));
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(ms.begin(), ms.begin() + 2, ms.end());
    return ms[2];
  }
};

void append_view(std::string& s, const TensorView& v, int64_t offset) {
  s += dtype_name(v.dtype);
  s += "[";
  for (int d = 0; d < v.rank; ++d) s += str(d ? "," : "", v.shape[d]);
  s += "]{";
  for (int d = 0; d < v.rank; ++d) s += str(d ? "," : "", v.strides[d]);
  s += str("}+", offset);
}

// What a timing depends on besides the device and the candidate: kind, attrs, and each tensor's
// dtype, opt dims and strides. Names are left out so a similar model hits the same entries.
std::string op_signature(const Network& network, const Op& op, const OpShapes& shapes) {
  std::vector<std::string> names = network.symbolNames();
  std::string s = str(op_kind_name(op.kind), "(", op.attrs.str(names), ") in ");
  for (size_t i = 0; i < shapes.inputs.size(); ++i) {
    if (i) s += " ";
    append_view(s, shapes.inputs[i], shapes.input_offsets[i]);
  }
  s += " out ";
  for (size_t i = 0; i < shapes.outputs.size(); ++i) {
    if (i) s += " ";
    append_view(s, shapes.outputs[i], 0);
  }
  return s;
}

std::string candidate_key(const std::string& prefix, const TacticCandidate& c) {
  std::string key = str(prefix, " | ", c.name, " ", fnv1a_hex(c.data.data(), c.data.size()));
  if (!c.label.empty()) key += " " + c.label;
  return key;
}

}  // namespace

std::unique_ptr<TacticProvider> make_cpu_tactic_provider() {
  return std::make_unique<CpuTacticProvider>();
}

Result<std::vector<OpShapes>> opt_op_shapes(const Network& network) {
  const auto& tensors = network.tensors();
  std::vector<int64_t> opt;
  for (const SymbolInfo& s : network.symbols()) opt.push_back(s.opt);
  std::vector<TensorView> views(tensors.size());
  std::vector<int64_t> offsets(tensors.size(), 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorView& v = views[i];
    v.dtype = tensors[i].dtype;
    if (tensors[i].shape.size() > static_cast<size_t>(kMaxRank))
      return unsupported("tensor '", tensors[i].name, "' has more than ", kMaxRank, " dims");
    v.rank = static_cast<int>(tensors[i].shape.size());
    for (int d = 0; d < v.rank; ++d) {
      KILN_ASSIGN_OR_RETURN(v.shape[d], tensors[i].shape[static_cast<size_t>(d)].evaluate(opt));
      v.shape[d] = std::max<int64_t>(v.shape[d], 0);
    }
    set_contiguous_strides(v);
  }
  // The plan decides which view ops alias (as the engine will run them); tactics do not affect
  // that, so placeholder tactics do. A network the planner refuses is left contiguous.
  std::vector<TacticCandidate> placeholders(network.ops().size());
  auto plan = assemble_plan(network, placeholders);
  if (plan.ok()) {
    for (const format::PlanStep& step : plan->steps) {
      if (!step.is_view) continue;
      const size_t in = static_cast<size_t>(step.inputs[0]);
      ViewLayout in_layout;
      in_layout.shape.assign(views[in].shape, views[in].shape + views[in].rank);
      in_layout.strides.assign(views[in].strides, views[in].strides + views[in].rank);
      in_layout.offset = offsets[in];
      for (size_t o = 0; o < step.outputs.size(); ++o) {
        TensorView& out = views[static_cast<size_t>(step.outputs[o])];
        ViewLayout layout;
        if (!op_def(step.kind).view(in_layout, step.attrs, opt, static_cast<int>(o), layout) ||
            static_cast<int>(layout.shape.size()) != out.rank ||
            !std::equal(layout.shape.begin(), layout.shape.end(), out.shape))
          continue;
        std::copy(layout.strides.begin(), layout.strides.end(), out.strides);
        offsets[static_cast<size_t>(step.outputs[o])] = layout.offset;
      }
    }
  }
  std::vector<OpShapes> out;
  out.reserve(network.ops().size());
  for (const Op& op : network.ops()) {
    OpShapes s;
    for (Tensor t : op.inputs) {
      s.inputs.push_back(views[static_cast<size_t>(t.id)]);
      s.input_offsets.push_back(offsets[static_cast<size_t>(t.id)]);
    }
    for (Tensor t : op.outputs) s.outputs.push_back(views[static_cast<size_t>(t.id)]);
    s.bindings = opt;
    out.push_back(std::move(s));
  }
  return out;
}

Result<TacticSelection> select_tactics(const Network& network, TacticProvider& provider,
                                       const BuilderConfig& config, const std::string& device_key,
                                       std::vector<std::string>& log) {
  const auto& ops = network.ops();
  const int64_t num_ops = static_cast<int64_t>(ops.size());
  auto progress = [&](const char* stage, int64_t done, int64_t total) {
    if (config.progress) config.progress({stage, done, total});
  };
  KILN_ASSIGN_OR_RETURN(std::vector<OpShapes> shapes, opt_op_shapes(network));
  provider.plan_network(network, shapes);
  const std::string method = provider.timing_method();
  std::vector<std::vector<TacticCandidate>> cands(ops.size());
  std::vector<size_t> to_time;
  for (size_t i = 0; i < ops.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(cands[i], provider.candidates(network, ops[i], shapes[i]));
    if (cands[i].empty())
      return internal_error(op_kind_name(ops[i].kind), " '", ops[i].name, "': no tactic candidates");
    if (config.optimization_level > 0 && cands[i].size() > 1 && provider.can_time())
      to_time.push_back(i);
    progress("tactics", static_cast<int64_t>(i + 1), num_ops);
  }

  TacticSelection sel;
  std::vector<size_t> best(ops.size(), 0);
  if (!to_time.empty()) {
    TimingCache cache = TimingCache::load(config.timing_cache_path, log);
    // Level 1 times the first kLevelOneCandidates of each registered kernel (a library's heuristic
    // lists its best first), so one kernel's long list cannot crowd out another kernel's, and
    // every candidate marked always_timed.
    const size_t limit = config.optimization_level == 1 ? size_t{kLevelOneCandidates} : SIZE_MAX;
    const std::string prefix_base = str(device_key, method.empty() ? "" : " ", method, " | kiln ",
                                        version(), " kernels ", kernels_id(), " | ");
    int64_t failed = 0;
    const int64_t total = static_cast<int64_t>(to_time.size());
    for (int64_t n = 0; n < total; ++n) {
      progress("tactic timing", n, total);
      const size_t i = to_time[static_cast<size_t>(n)];
      const std::string prefix = prefix_base + op_signature(network, ops[i], shapes[i]);
      double best_score = -1;  // ms * handicap
      std::map<std::string, size_t> per_kernel;  // candidates timed so far, by registered kernel
      for (size_t c = 0; c < cands[i].size(); ++c) {
        if (++per_kernel[cands[i][c].name] > limit && !cands[i][c].always_timed) continue;
        const std::string key = candidate_key(prefix, cands[i][c]);
        std::optional<double> ms = cache.find(key);
        if (ms) {
          ++sel.cache_hits;
        } else {
          ++sel.timings;
          auto timed = provider.time(network, ops[i], shapes[i], cands[i][c]);
          ms = timed.ok() ? *timed : TimingCache::kFailed;
          if (!timed.ok()) ++failed;
          cache.put(key, *ms);
        }
        const double score = *ms * cands[i][c].handicap;
        if (*ms >= 0 && (best_score < 0 || score < best_score)) {
          best_score = score;
          best[i] = c;
        }
      }
    }
    progress("tactic timing", total, total);
    log.push_back(str("tactic timing", method.empty() ? "" : " (" + method + ")", ": ", total,
                      " ops with several candidates, ", sel.timings, " timed, ", sel.cache_hits,
                      " from the timing cache, ", failed, " candidates failed and were dropped"));
    cache.save(log);
  }
  sel.tactics.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) sel.tactics.push_back(std::move(cands[i][best[i]]));
  return sel;
}

}  // namespace kiln::builder
