#include "kiln/builder.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "builder/passes/passes.h"
#include "builder/plan.h"
#include "builder/tactics.h"
#include "format/engine_plan.h"
#include "kiln/version.h"
#ifdef KILN_HAS_CUDA
#include "backends/cuda/pointwise_codegen.h"
#endif

namespace kiln {
namespace {

struct Device {
  format::DeviceKind kind = format::DeviceKind::kCpu;
  int index = 0;
};

Result<Device> parse_device(const std::string& device) {
  if (device == "cpu") return Device{};
  if (device == "cuda" || (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                           device.find_first_not_of("0123456789", 5) == std::string::npos)) {
#ifdef KILN_HAS_CUDA
    return Device{format::DeviceKind::kCuda, device == "cuda" ? 0 : std::stoi(device.substr(5))};
#else
    return unsupported("target '", device, "': this Kiln was built without CUDA (KILN_CUDA=OFF)");
#endif
  }
  return invalid_argument("unknown target device '", device, "' (expected \"cpu\" or \"cuda:N\")");
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "cpu";
}

std::string platform_name() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  std::string os = u.sysname;
  for (char& c : os) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return os + "-" + u.machine;
}

Status apply_profile(Network& network, const BuilderConfig& config) {
  if (config.profiles.size() > 1)
    return unsupported("only one optimization profile is supported, got ", config.profiles.size());
  if (config.profiles.empty()) return Status::Ok();
  auto names = network.symbolNames();
  for (const OptimizationProfile::Range& r : config.profiles[0].ranges) {
    auto it = std::find(names.begin(), names.end(), r.symbol);
    if (it == names.end())
      return not_found("optimization profile names symbol '", r.symbol, "', which the network does not have");
    KILN_RETURN_IF_ERROR(network.setSymbolRange(static_cast<int32_t>(it - names.begin()), r.min, r.opt, r.max)
                             .withContext("optimization profile for '" + r.symbol + "'"));
  }
  return Status::Ok();
}

// The runtime reads a symbol's value from an input dim that is exactly that symbol. A symbol that
// no input carries that way, but that a shape or attribute uses, could never be known at run time.
Status check_symbols_bindable(const Network& network) {
  const std::vector<SymbolInfo>& symbols = network.symbols();
  std::vector<bool> bindable(symbols.size(), false);
  for (Tensor t : network.inputs())
    for (const SymExpr& d : network.tensor(t).shape)
      if (d.isSymbol()) bindable[static_cast<size_t>(d.symbolId())] = true;
  auto check = [&](const SymExpr& e, const std::string& where) -> Status {
    std::vector<int32_t> ids;
    e.collectSymbols(ids);
    for (int32_t id : ids) {
      if (bindable[static_cast<size_t>(id)]) continue;
      return invalid_argument("dynamic dim '", symbols[static_cast<size_t>(id)].name, "' is used by ", where,
                              " but is not a whole dim of any input, so its value cannot be known at run time");
    }
    return Status::Ok();
  };
  for (const TensorInfo& t : network.tensors())
    for (const SymExpr& d : t.shape) KILN_RETURN_IF_ERROR(check(d, "tensor '" + t.name + "'"));
  for (const Op& op : network.ops()) {
    for (const auto& [name, value] : op.attrs.values()) {
      std::string where = str(op_kind_name(op.kind), " '", op.name, "' (", name, ")");
      if (const auto* e = std::get_if<SymExpr>(&value)) KILN_RETURN_IF_ERROR(check(*e, where));
      if (const auto* s = std::get_if<Shape>(&value))
        for (const SymExpr& d : *s) KILN_RETURN_IF_ERROR(check(d, where));
    }
  }
  return Status::Ok();
}

std::string options_json(const BuilderConfig& config) {
  std::string json = str("{\"device\": \"", config.device, "\", \"optimization_level\": ",
                         config.optimization_level, ", \"cuda_graphs\": ",
                         config.cuda_graphs ? "true" : "false", ", \"profile\": {");
  if (!config.profiles.empty()) {
    bool first = true;
    for (const auto& r : config.profiles[0].ranges) {
      json += str(first ? "" : ", ", "\"", r.symbol, "\": [", r.min, ", ", r.opt, ", ", r.max, "]");
      first = false;
    }
  }
  return json + "}}";
}

// KILN_SKIP_PASSES="name,name": optimization passes left out of a build, for A/B timing, by their
// log names with '_' for spaces allowed ("sibling_linears"). Only passes whose absence leaves a
// correct engine can be named; any other name is an error.
Result<std::vector<std::string>> skipped_passes() {
  static const char* const kSkippable[] = {"sibling linears"};
  std::vector<std::string> out;
  const char* v = std::getenv("KILN_SKIP_PASSES");
  if (!v || !*v) return out;
  const std::string list = v;
  for (size_t at = 0; at <= list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    std::string name = list.substr(at, comma - at);
    std::replace(name.begin(), name.end(), '_', ' ');
    at = comma + 1;
    if (name.empty()) continue;
    bool known = false;
    for (const char* k : kSkippable) known = known || name == k;
    if (!known) {
      std::string names;
      for (const char* k : kSkippable) names += str(names.empty() ? "'" : ", '", k, "'");
      return invalid_argument("KILN_SKIP_PASSES names '", name,
                              "'; the passes a build may skip are ", names);
    }
    out.push_back(name);
  }
  return out;
}

}  // namespace

Result<HostMemory> Builder::build(const Network& source, const BuilderConfig& config,
                                  BuildReport* report) {
  KILN_ASSIGN_OR_RETURN(Device device, parse_device(config.device));
  auto progress = [&](const char* stage, int64_t done, int64_t total) {
    if (config.progress) config.progress({stage, done, total});
  };
  Network network = source;
  KILN_RETURN_IF_ERROR(apply_profile(network, config));
  KILN_RETURN_IF_ERROR(network.verify().withContext("network '" + network.name() + "'"));
  if (network.outputs().empty()) return invalid_argument("network '", network.name(), "' has no outputs");

  std::vector<std::string> log;
  using Pass = Result<Network> (*)(const Network&, std::vector<std::string>&);
  const std::pair<const char*, Pass> passes[] = {
      {"dead code elimination", builder::eliminate_dead_code},
      {"constant folding", builder::fold_constants},
      {"batch-norm folding", builder::fold_batch_norm},
      {"simplification", builder::simplify},
      {"gelu recognition", builder::recognize_gelu},
      // Before the epilogue/pointwise fusions, which would take the scale and mask add apart.
      {"attention fusion", builder::fuse_attention},
      {"no-op attention masks", builder::drop_noop_attention_masks},
      // Before pointwise fusion, which merges the conversion into the mask's own kernel.
      {"attention masks", device.kind == format::DeviceKind::kCuda
                              ? builder::attention_masks_to_bias
                              : builder::keep_bool_attention_masks},
      {"patch convolutions", builder::patch_conv_to_gemm},
      {"conv epilogue fusion", builder::fuse_conv_epilogues},
      // NHWC for half-precision convs on CUDA only (cuDNN's tensor-core layout).
      {"layout assignment", device.kind == format::DeviceKind::kCuda ? builder::assign_nhwc_layout
                                                                     : builder::skip_layout},
      // Fusions. Conv/gemm epilogue passes go here, before these two; pointwise fusion stays last.
      // Before the linears over views: attention written sequence-major leaves HF's heads' merge
      // a view, and ViT's a view the linear after it reads as rows.
      {"attention layout", builder::attention_seq_major_out},
      // Linears over views first: the views they leave after the GEMM fold in view chains.
      {"linear permutes", builder::move_permutes_after_linear},
      {"view chains", builder::fold_view_chains},
      {"gemm epilogue fusion", builder::fuse_gemm_epilogues},
      {"sibling linears", builder::merge_sibling_linears},
      {"residual norm fusion", builder::fuse_residual_norm},
      {"pointwise fusion", builder::fuse_pointwise},
      {"dead code elimination", builder::eliminate_dead_code},
      {"output isolation", builder::isolate_outputs},
  };
  const int64_t num_passes = static_cast<int64_t>(std::size(passes));
  KILN_ASSIGN_OR_RETURN(const std::vector<std::string> skipped, skipped_passes());
  for (int64_t i = 0; i < num_passes; ++i) {
    progress(passes[i].first, i, num_passes);
    if (std::find(skipped.begin(), skipped.end(), passes[i].first) != skipped.end()) {
      log.push_back(str(passes[i].first, ": skipped (KILN_SKIP_PASSES)"));
      continue;
    }
    auto next = passes[i].second(network, log);
    if (!next.ok()) return next.status().withContext(str("builder pass '", passes[i].first, "'"));
    network = std::move(next).value();
#ifndef NDEBUG
    KILN_RETURN_IF_ERROR(network.verify().withContext(str("after pass '", passes[i].first, "' (builder bug)")));
#endif
  }
  progress("passes", num_passes, num_passes);
  KILN_RETURN_IF_ERROR(check_symbols_bindable(network).withContext("network '" + network.name() + "'"));

  std::unique_ptr<builder::TacticProvider> provider;
  format::Target target;
  target.platform = platform_name();
  if (device.kind == format::DeviceKind::kCpu) {
    provider = builder::make_cpu_tactic_provider();
    target.device_name = cpu_name();
  } else {
#ifdef KILN_HAS_CUDA
    KILN_ASSIGN_OR_RETURN(provider, builder::make_cuda_tactic_provider(
                                        device.index, config.workspace_limit,
                                        builder::library_candidates(config.optimization_level)));
    KILN_ASSIGN_OR_RETURN(format::Target cuda_target, builder::cuda_build_target(device.index));
    cuda_target.platform = target.platform;
    target = cuda_target;
#endif
  }
  // Timings are valid for one device model and SM (the timing cache's key, with the provider's
  // timing method).
  const std::string device_key =
      device.kind == format::DeviceKind::kCpu
          ? str("cpu ", target.device_name, " ", target.platform)
          : str("cuda ", target.device_name, " sm_", target.sm_major, target.sm_minor);
  KILN_ASSIGN_OR_RETURN(builder::TacticSelection selection,
                        builder::select_tactics(network, *provider, config, device_key, log));
  const std::vector<builder::TacticCandidate>& tactics = selection.tactics;

  progress("memory planning", 0, 1);
  builder::MemoryPlan memory;
  KILN_ASSIGN_OR_RETURN(format::EnginePlan plan, builder::assemble_plan(network, tactics, &memory));
  log.push_back(str("memory plan: arena ", memory.arena_bytes, " bytes (", memory.naive_bytes,
                    " without reuse)"));
  progress("memory planning", 1, 1);

#ifdef KILN_HAS_CUDA
  // The source of each generated kernel, for `kiln inspect --kernels`. Its CUBIN stays in the
  // step's tactic data, which the runtime loads (kernels[].cubin is left empty, not duplicated).
  for (const format::PlanStep& step : plan.steps) {
    if (step.kind != OpKind::kPointwise || step.tactic_data.empty()) continue;
    auto g = cuda::decode_generated(step.tactic_data);
    if (g.ok()) plan.kernels.push_back({step.name + " (" + g->kernel_name + ")", g->source, {}});
  }
#endif
  plan.kiln_version = version();
  plan.build_options = options_json(config);
  plan.target = target;
  progress("serialization", 0, 1);
  auto bytes = format::write_engine(plan);
  progress("serialization", 1, 1);
  if (report) {
    report->pass_log = std::move(log);
    report->tactic_timings = selection.timings;
    report->timing_cache_hits = selection.cache_hits;
  }
  return bytes;
}

}  // namespace kiln
