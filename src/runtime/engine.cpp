#include <cstring>
#include <fstream>

#include "backends/cpu/cpu_kernels.h"
#include "kiln/runtime.h"
#include "runtime/cuda_runtime.h"
#include "runtime/engine_state.h"

namespace kiln {

AlignedBytes allocate_aligned(size_t bytes) {
  size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
  return AlignedBytes(static_cast<std::byte*>(::operator new[](rounded, std::align_val_t(256))));
}

namespace {

// "cpu" -> -1, "cuda" -> 0, "cuda:N" -> N.
Result<int> parse_device(const std::string& device) {
  if (device == "cpu") return -1;
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
      device.find_first_not_of("0123456789", 5) == std::string::npos)
    return std::stoi(device.substr(5));
  return invalid_argument("unknown device '", device, "' (expected \"cpu\" or \"cuda:N\")");
}

Result<format::Target> expected_target(int device) {
  if (device < 0) return format::Target{};
#ifdef KILN_HAS_CUDA
  return cuda_target(device);
#else
  return unsupported("device 'cuda:", device, "': this Kiln was built without CUDA (KILN_CUDA=OFF)");
#endif
}

// Resolves each CPU step's kernel from its recorded tactic.
Status bind_cpu_kernels(EngineState& state) {
  const auto& steps = state.plan.steps;
  for (size_t i = 0; i < steps.size(); ++i) {
    const format::PlanStep& step = steps[i];
    if (step.is_view) continue;
    const cpu::CpuKernel* k = cpu::find_kernel(step.kind, step.tactic);
    if (!k)
      return unsupported("step '", step.name, "' (", op_kind_name(step.kind), ") uses tactic '",
                         step.tactic, "', which this Kiln build does not have");
    state.kernels[i] = k->run;
  }
  for (const format::Constant& c : state.plan.constants) state.constant_ptrs.push_back(c.bytes.data());
  return Status::Ok();
}

// BuilderConfig::cuda_graphs from the plan's build options (JSON written by the builder).
// Absent, as in engines from before the option existed, means on.
bool cuda_graphs_option(const std::string& json) {
  const std::string key = "\"cuda_graphs\"";
  size_t at = json.find(key);
  if (at == std::string::npos) return true;
  at = json.find_first_not_of(" \t\r\n:", at + key.size());
  return !(at != std::string::npos && json.compare(at, 5, "false") == 0);
}

// Input bindings first, then outputs, each in the file's order.
std::vector<BindingInfo> plan_bindings(const format::EnginePlan& plan) {
  std::vector<BindingInfo> bindings;
  for (int pass = 0; pass < 2; ++pass) {
    const auto& list = pass == 0 ? plan.inputs : plan.outputs;
    for (const format::Binding& b : list) {
      const format::PlanTensor& t = plan.tensors[static_cast<size_t>(b.tensor)];
      bindings.push_back({b.name, pass == 0, t.dtype, t.shape});
    }
  }
  return bindings;
}

EngineInfo plan_info(const format::EnginePlan& plan, const std::vector<BindingInfo>& bindings) {
  std::vector<std::string> symbol_names;
  for (const SymbolInfo& s : plan.symbols) symbol_names.push_back(s.name);
  EngineInfo info;
  info.name = plan.name;
  info.kiln_version = plan.kiln_version;
  info.format_version = plan.format_version;
  info.device = plan.target.kind == format::DeviceKind::kCpu
                    ? "cpu (" + plan.target.device_name + ")"
                    : str("cuda sm_", plan.target.sm_major, plan.target.sm_minor, " (",
                          plan.target.device_name, ")");
  info.platform = plan.target.platform;
  info.symbols = plan.symbols;
  info.bindings = bindings;
  for (const format::PlanStep& s : plan.steps) {
    StepInfo step{s.name, op_kind_name(s.kind), s.tactic, s.attrs.str(symbol_names), {}, {}};
    for (int32_t t : s.inputs) step.inputs.push_back(plan.tensors[static_cast<size_t>(t)].name);
    for (int32_t t : s.outputs) step.outputs.push_back(plan.tensors[static_cast<size_t>(t)].name);
    info.steps.push_back(std::move(step));
  }
  info.arena_bytes = plan.arena_bytes;
  for (const format::Constant& c : plan.constants) info.constant_bytes += static_cast<int64_t>(c.bytes.size());
  info.num_constants = static_cast<int64_t>(plan.constants.size());
  for (const format::GeneratedKernel& k : plan.kernels) info.kernels.push_back({k.name, k.source});
  info.build_options = plan.build_options;
  return info;
}

Result<std::vector<char>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open engine file '", path, "'");
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

Status bind_views(EngineState& state) {
  const auto& steps = state.plan.steps;
  state.kernels.assign(steps.size(), nullptr);
  state.views.assign(steps.size(), nullptr);
  state.workspaces.assign(steps.size(), nullptr);
  state.prepared.assign(steps.size(), nullptr);
  for (size_t i = 0; i < steps.size(); ++i) {
    const format::PlanStep& step = steps[i];
    if (!step.is_view) continue;
    state.views[i] = op_def(step.kind).view;
    if (!state.views[i])
      return Status(StatusCode::kCorruptFile, str("step '", step.name, "': ", op_kind_name(step.kind),
                                                  " is marked as a view but cannot alias"));
  }
  return Status::Ok();
}

Engine::~Engine() = default;

Result<std::shared_ptr<Engine>> Engine::deserialize(std::span<const std::byte> bytes,
                                                    const DeserializeOptions& options) {
  KILN_ASSIGN_OR_RETURN(int device, parse_device(options.device));
  KILN_ASSIGN_OR_RETURN(format::Target target, expected_target(device));
  auto state = std::make_unique<EngineState>();
  state->kind = target.kind;
  state->device = device;
  state->file = allocate_aligned(bytes.size());
  state->file_size = bytes.size();
  if (!bytes.empty()) std::memcpy(state->file.get(), bytes.data(), bytes.size());
  format::ReadOptions read;
  read.check_target = true;
  read.expected = target;
  KILN_ASSIGN_OR_RETURN(state->plan, format::read_engine({state->file.get(), bytes.size()}, read));
  const format::EnginePlan& plan = state->plan;
  state->cuda_graphs = cuda_graphs_option(plan.build_options);
  for (const SymbolInfo& s : plan.symbols) state->symbol_names.push_back(s.name);
  state->bindings = plan_bindings(plan);
  KILN_RETURN_IF_ERROR(bind_views(*state));
#ifdef KILN_HAS_CUDA
  if (state->kind == format::DeviceKind::kCuda) {
    KILN_RETURN_IF_ERROR(cuda_prepare_engine(*state));
  } else {
    KILN_RETURN_IF_ERROR(bind_cpu_kernels(*state));
  }
#else
  KILN_RETURN_IF_ERROR(bind_cpu_kernels(*state));
#endif
  std::shared_ptr<Engine> engine(new Engine());
  engine->state_ = std::move(state);
  return engine;
}

Result<std::shared_ptr<Engine>> Engine::load(const std::string& path, const DeserializeOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<char> data, read_file(path));
  auto engine = deserialize(std::as_bytes(std::span<const char>(data)), options);
  if (!engine.ok()) return engine.status().withContext("engine file '" + path + "'");
  return engine;
}

Result<EngineInfo> Engine::inspect(std::span<const std::byte> bytes) {
  // The reader wants 8-byte aligned bytes; the caller's need not be.
  AlignedBytes file = allocate_aligned(bytes.size());
  if (!bytes.empty()) std::memcpy(file.get(), bytes.data(), bytes.size());
  KILN_ASSIGN_OR_RETURN(format::EnginePlan plan, format::read_engine({file.get(), bytes.size()}));
  return plan_info(plan, plan_bindings(plan));
}

Result<EngineInfo> Engine::inspect(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<char> data, read_file(path));
  auto info = inspect(std::as_bytes(std::span<const char>(data)));
  if (!info.ok()) return info.status().withContext("engine file '" + path + "'");
  return info;
}

const std::string& Engine::name() const { return state_->plan.name; }
const std::vector<BindingInfo>& Engine::bindings() const { return state_->bindings; }
const std::vector<SymbolInfo>& Engine::symbols() const { return state_->plan.symbols; }
int64_t Engine::deviceMemorySize() const { return state_->plan.arena_bytes; }
std::span<const std::byte> Engine::serialized() const { return {state_->file.get(), state_->file_size}; }

std::vector<std::string> Engine::inputNames() const {
  std::vector<std::string> out;
  for (const auto& b : state_->bindings)
    if (b.is_input) out.push_back(b.name);
  return out;
}

std::vector<std::string> Engine::outputNames() const {
  std::vector<std::string> out;
  for (const auto& b : state_->bindings)
    if (!b.is_input) out.push_back(b.name);
  return out;
}

EngineInfo Engine::info() const { return plan_info(state_->plan, state_->bindings); }

std::vector<CudaDeviceInfo> cudaDevices() {
  std::vector<CudaDeviceInfo> devices;
#ifdef KILN_HAS_CUDA
  // cuda_target fails past the last device (or with no driver): that ends the list.
  for (int i = 0;; ++i) {
    auto target = cuda_target(i);
    if (!target.ok()) break;
    devices.push_back({i, target->sm_major, target->sm_minor, target->device_name});
  }
#endif
  return devices;
}

}  // namespace kiln
