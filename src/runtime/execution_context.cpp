#include <algorithm>
#include <cstring>

#include "kiln/runtime.h"
#include "runtime/context_state.h"
#include "runtime/cuda_runtime.h"
#include "runtime/host_clock.h"

namespace kiln {

using format::PlanTensor;
using format::TensorRole;

namespace {

std::string dims_str(std::span<const int64_t> dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

Status ContextState::resolveShapes() {
  const format::EnginePlan& p = plan();
  shapes_ready = false;
  pointers_ready = false;  // the layouts below reset every view's data pointer
  ++shape_generation;
  const size_t num_symbols = p.symbols.size();
  std::vector<int64_t> values(num_symbols, 0);
  std::vector<int32_t> bound_by(num_symbols, -1);
  // Bind symbols from the dims that are plain symbols, then check every input dim.
  for (size_t b = 0; b < p.inputs.size(); ++b) {
    const format::Binding& binding = p.inputs[b];
    const Shape& shape = p.tensors[static_cast<size_t>(binding.tensor)].shape;
    if (!input_set[b]) {
      bool all_constant = std::all_of(shape.begin(), shape.end(), [](const SymExpr& e) { return e.isConstant(); });
      if (!all_constant) return invalid_argument("input '", binding.name, "' has dynamic dims and no shape: call setInputShape");
      input_dims[b].clear();
      for (const SymExpr& e : shape) input_dims[b].push_back(e.constant());
      input_set[b] = true;
    }
    for (size_t d = 0; d < shape.size(); ++d) {
      if (!shape[d].isSymbol()) continue;
      size_t id = static_cast<size_t>(shape[d].symbolId());
      int64_t v = input_dims[b][d];
      if (bound_by[id] >= 0 && values[id] != v) {
        return invalid_argument("inputs '", p.inputs[static_cast<size_t>(bound_by[id])].name, "' and '",
                                binding.name, "' disagree on dynamic dim '", p.symbols[id].name, "': ",
                                values[id], " vs ", v);
      }
      values[id] = v;
      bound_by[id] = static_cast<int32_t>(b);
    }
  }
  for (size_t id = 0; id < num_symbols; ++id) {
    // The builder refuses symbols that are used but not the plain dim of an input, so an unbound
    // symbol is unused: any value does.
    if (bound_by[id] < 0) values[id] = p.symbols[id].opt;
  }
  for (size_t b = 0; b < p.inputs.size(); ++b) {
    const Shape& shape = p.tensors[static_cast<size_t>(p.inputs[b].tensor)].shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      KILN_ASSIGN_OR_RETURN(int64_t expected, shape[d].evaluate(values));
      if (expected != input_dims[b][d]) {
        return invalid_argument("input '", p.inputs[b].name, "' dim ", d, " is ", input_dims[b][d], ", expected ",
                                shape[d].str(es->symbol_names), " = ", expected);
      }
    }
  }
  symbols = values;

  // Layouts: contiguous for every tensor with storage of its own, views computed step by step.
  tensors.resize(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const PlanTensor& t = p.tensors[i];
    ResolvedTensor& r = tensors[i];
    r.view = TensorView{};
    r.view.dtype = t.dtype;
    r.view.rank = static_cast<int>(t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) {
      KILN_ASSIGN_OR_RETURN(r.view.shape[d], t.shape[d].evaluate(symbols));
      if (r.view.shape[d] < 0)
        return invalid_argument("tensor '", t.name, "' dim ", d, " evaluates to ", r.view.shape[d], " for these input shapes");
    }
    set_contiguous_strides(r.view);
    r.root = static_cast<int32_t>(i);
    r.offset = 0;
    if (t.role == TensorRole::kActivation) {
      int64_t bytes = r.view.numel() * static_cast<int64_t>(dtype_size(t.dtype));
      if (bytes > t.max_bytes)
        return out_of_range("tensor '", t.name, "' needs ", bytes, " bytes for these input shapes, more than the ",
                            t.max_bytes, " planned at the profile's max shapes");
    }
  }
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const format::PlanStep& step = p.steps[s];
    if (!step.is_view) continue;
    ResolvedTensor& in = tensors[static_cast<size_t>(step.inputs[0])];
    ViewLayout in_layout;
    in_layout.shape.assign(in.view.shape, in.view.shape + in.view.rank);
    in_layout.strides.assign(in.view.strides, in.view.strides + in.view.rank);
    in_layout.offset = in.offset;
    for (size_t o = 0; o < step.outputs.size(); ++o) {
      ResolvedTensor& out = tensors[static_cast<size_t>(step.outputs[o])];
      ViewLayout layout;
      if (!es->views[s](in_layout, step.attrs, symbols, static_cast<int>(o), layout) ||
          static_cast<int>(layout.shape.size()) != out.view.rank ||
          !std::equal(layout.shape.begin(), layout.shape.end(), out.view.shape)) {
        return internal_error("step '", step.name, "': cannot view input ", dims_str(in_layout.shape), " as ",
                              dims_str({out.view.shape, static_cast<size_t>(out.view.rank)}));
      }
      std::copy(layout.strides.begin(), layout.strides.end(), out.view.strides);
      out.offset = layout.offset;
      out.root = in.root;
    }
  }
  shapes_ready = true;
  return Status::Ok();
}

Status ContextState::run(void* stream, void* backend, void* workspace, size_t workspace_bytes) {
  if (!shapes_ready) KILN_RETURN_IF_ERROR(resolveShapes());
  if (!pointers_ready) KILN_RETURN_IF_ERROR(bindPointers());
  return launch(stream, backend, workspace, workspace_bytes);
}

Status ContextState::checkAddresses() const {
  const format::EnginePlan& p = plan();
  const size_t num_inputs = p.inputs.size();
  for (size_t b = 0; b < addresses.size(); ++b) {
    if (addresses[b]) continue;
    const format::Binding& binding = b < num_inputs ? p.inputs[b] : p.outputs[b - num_inputs];
    if (tensors[static_cast<size_t>(binding.tensor)].view.numel() > 0)
      return invalid_argument(b < num_inputs ? "input '" : "output '", es->bindings[b].name,
                              "' has no address: call setTensorAddress");
  }
  return Status::Ok();
}

Status ContextState::bindPointers() {
  KILN_RETURN_IF_ERROR(checkAddresses());
  const format::EnginePlan& p = plan();
  // Base address of every storage root, then each tensor's data pointer.
  const size_t num_inputs = p.inputs.size();
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const PlanTensor& t = p.tensors[i];
    ResolvedTensor& r = tensors[i];
    std::byte* base = nullptr;
    switch (t.role) {
      case TensorRole::kInput:
      case TensorRole::kOutput: {
        size_t slot = t.role == TensorRole::kInput ? static_cast<size_t>(t.binding)
                                                   : num_inputs + static_cast<size_t>(t.binding);
        base = static_cast<std::byte*>(addresses[slot]);
        break;
      }
      case TensorRole::kConstant:
        base = const_cast<std::byte*>(es->constant_ptrs[static_cast<size_t>(t.constant)]);
        break;
      case TensorRole::kActivation:
        base = arena + t.arena_offset;
        break;
      case TensorRole::kView:
        continue;  // after its root
    }
    r.view.data = base;
  }
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    ResolvedTensor& r = tensors[i];
    if (p.tensors[i].role != TensorRole::kView) continue;
    auto* base = static_cast<std::byte*>(tensors[static_cast<size_t>(r.root)].view.data);
    r.view.data = base ? base + r.offset * static_cast<int64_t>(dtype_size(r.view.dtype)) : nullptr;
  }
  pointers_ready = true;
  return Status::Ok();
}

Status ContextState::launch(void* stream, void* backend, void* workspace, size_t workspace_bytes,
                            StepObserver* observer) {
  const format::EnginePlan& p = plan();
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const format::PlanStep& step = p.steps[s];
    if (step.is_view) continue;
    scratch_in.clear();
    scratch_out.clear();
    for (int32_t t : step.inputs) scratch_in.push_back(tensors[static_cast<size_t>(t)].view);
    for (int32_t t : step.outputs) scratch_out.push_back(tensors[static_cast<size_t>(t)].view);
    KernelArgs args{step.name.c_str(), step.attrs, scratch_in, scratch_out, symbols, stream};
    args.tactic_data = step.tactic_data;
    args.backend = backend;
    args.workspace = workspace;
    args.workspace_bytes = workspace_bytes;
    args.prepared = es->prepared[s].get();
    Status st = es->kernels[s](args);
    if (!st.ok()) return st.withContext(str("step '", step.name, "' (", op_kind_name(step.kind), ")"));
    if (observer) KILN_RETURN_IF_ERROR(observer->afterStep(s));
  }
  return Status::Ok();
}

size_t ContextState::workspaceBytes(void* backend) {
  size_t most = 0;
  const format::EnginePlan& p = plan();
  for (size_t s = 0; s < p.steps.size(); ++s) {
    if (!es->workspaces[s]) continue;
    const format::PlanStep& step = p.steps[s];
    scratch_in.clear();
    scratch_out.clear();
    for (int32_t t : step.inputs) scratch_in.push_back(tensors[static_cast<size_t>(t)].view);
    for (int32_t t : step.outputs) scratch_out.push_back(tensors[static_cast<size_t>(t)].view);
    KernelArgs args{step.name.c_str(), step.attrs, scratch_in, scratch_out, symbols, nullptr};
    args.tactic_data = step.tactic_data;
    args.backend = backend;
    most = std::max(most, es->workspaces[s](args));
  }
  return most;
}

Result<std::unique_ptr<ExecutionContext>> Engine::createExecutionContext(bool allocate_memory) {
  std::unique_ptr<ExecutionContext> ctx(new ExecutionContext());
  auto st = std::make_unique<ContextState>();
  st->engine = shared_from_this();
  st->es = state_.get();
  st->input_dims.resize(state_->plan.inputs.size());
  st->input_set.assign(state_->plan.inputs.size(), false);
  st->addresses.assign(state_->bindings.size(), nullptr);
#ifdef KILN_HAS_CUDA
  if (state_->kind == format::DeviceKind::kCuda) {
    KILN_RETURN_IF_ERROR(cuda_create_context(*st, allocate_memory));
    ctx->state_ = std::move(st);
    return ctx;
  }
#endif
  if (allocate_memory && state_->plan.arena_bytes > 0) {
    st->owned_arena = allocate_aligned(static_cast<size_t>(state_->plan.arena_bytes));
    st->arena = st->owned_arena.get();
    st->arena_size = static_cast<size_t>(state_->plan.arena_bytes);
  }
  ctx->state_ = std::move(st);
  return ctx;
}

ExecutionContext::~ExecutionContext() = default;

const Engine& ExecutionContext::engine() const { return *state_->engine; }

namespace {

Result<size_t> find_binding(const EngineState& es, const std::string& name) {
  for (size_t i = 0; i < es.bindings.size(); ++i)
    if (es.bindings[i].name == name) return i;
  std::string known;
  for (const auto& b : es.bindings) known += (known.empty() ? "" : ", ") + b.name;
  return not_found("engine '", es.plan.name, "' has no binding '", name, "' (bindings: ", known, ")");
}

}  // namespace

Status ExecutionContext::setInputShape(const std::string& name, std::span<const int64_t> dims) {
  ContextState& st = *state_;
  KILN_ASSIGN_OR_RETURN(size_t index, find_binding(*st.es, name));
  const BindingInfo& b = st.es->bindings[index];
  if (!b.is_input) return invalid_argument("'", name, "' is an output; only inputs take shapes");
  if (dims.size() != b.shape.size())
    return invalid_argument("input '", name, "' has rank ", b.shape.size(), ", got shape ", dims_str(dims));
  for (size_t d = 0; d < dims.size(); ++d) {
    const SymExpr& e = b.shape[d];
    if (e.isConstant() && e.constant() != dims[d])
      return invalid_argument("input '", name, "' dim ", d, " is fixed at ", e.constant(), ", got ", dims[d]);
    if (e.isSymbol()) {
      const SymbolInfo& sym = st.plan().symbols[static_cast<size_t>(e.symbolId())];
      if (dims[d] < sym.min || dims[d] > sym.max)
        return out_of_range("input '", name, "' dim ", d, " is ", dims[d], ", outside the range [", sym.min, ", ",
                            sym.max, "] of dynamic dim '", sym.name, "' this engine was built for");
    }
  }
  if (!st.input_set[index] || !std::equal(dims.begin(), dims.end(), st.input_dims[index].begin(), st.input_dims[index].end())) {
    st.input_dims[index].assign(dims.begin(), dims.end());
    st.input_set[index] = true;
    st.shapes_ready = false;
  }
  return Status::Ok();
}

Status ExecutionContext::getTensorShape(const std::string& name, std::vector<int64_t>& dims) const {
  ContextState& st = *state_;
  KILN_ASSIGN_OR_RETURN(size_t index, find_binding(*st.es, name));
  if (!st.shapes_ready) KILN_RETURN_IF_ERROR(st.resolveShapes());
  const format::Binding& b = index < st.plan().inputs.size() ? st.plan().inputs[index]
                                                             : st.plan().outputs[index - st.plan().inputs.size()];
  const TensorView& v = st.tensors[static_cast<size_t>(b.tensor)].view;
  dims.assign(v.shape, v.shape + v.rank);
  return Status::Ok();
}

Result<std::vector<int64_t>> ExecutionContext::getTensorShape(const std::string& name) const {
  std::vector<int64_t> dims;
  KILN_RETURN_IF_ERROR(getTensorShape(name, dims));
  return dims;
}

Status ExecutionContext::setTensorAddress(const std::string& name, void* data) {
  KILN_ASSIGN_OR_RETURN(size_t index, find_binding(*state_->es, name));
  // The same pointer again changes nothing (no rebinding, and a CUDA graph still matches).
  if (state_->addresses[index] != data) {
    state_->addresses[index] = data;
    state_->pointers_ready = false;
  }
  return Status::Ok();
}

Status ExecutionContext::setDeviceMemory(void* memory, size_t bytes) {
  ContextState& st = *state_;
  auto needed = static_cast<size_t>(st.plan().arena_bytes);
  if (bytes < needed)
    return invalid_argument("activation memory of ", bytes, " bytes is smaller than the ", needed,
                            " bytes engine '", st.plan().name, "' needs (deviceMemorySize)");
  if (reinterpret_cast<uintptr_t>(memory) % 256 != 0)
    return invalid_argument("activation memory must be 256-byte aligned");
  if (st.arena != memory) st.pointers_ready = false;
  st.owned_arena.reset();
  st.arena = static_cast<std::byte*>(memory);
  st.arena_size = bytes;
  return Status::Ok();
}

Status ExecutionContext::enqueue(cudaStream_t stream) {
  AddHostNanoseconds timed(state_->enqueue_host_ns);
#ifdef KILN_HAS_CUDA
  if (state_->es->kind == format::DeviceKind::kCuda) return cuda_enqueue(*state_, stream);
#endif
  if (stream != nullptr)
    return invalid_argument("engine '", state_->plan().name, "' runs on the CPU: enqueue takes no CUDA stream");
  if (!state_->arena && state_->plan().arena_bytes > 0)
    return invalid_argument("context was created without memory: call setDeviceMemory first");
  return state_->run(nullptr, nullptr, nullptr, 0);
}

void ExecutionContext::setCudaGraphs(bool enabled) {
  state_->cuda_graphs_requested = enabled;
#ifdef KILN_HAS_CUDA
  if (state_->cuda) cuda_set_graphs(*state_, enabled);
#endif
}

bool ExecutionContext::cudaGraphs() const {
#ifdef KILN_HAS_CUDA
  if (state_->cuda) return cuda_graphs_enabled(*state_);
#endif
  return false;
}

int64_t ExecutionContext::cudaGraphReplays() const { return state_->graph_replays; }
int64_t ExecutionContext::cudaGraphCaptures() const { return state_->graph_captures; }
int64_t ExecutionContext::cudaGraphStagedCopies() const { return state_->graph_staged_copies; }
int64_t ExecutionContext::cudaGraphDeviceLaunches() const { return state_->graph_device_launches; }
int64_t ExecutionContext::plainLaunches() const { return state_->plain_launches; }
const std::string& ExecutionContext::cudaGraphFailure() const { return state_->graph_failure; }
int64_t ExecutionContext::cudaGraphNodes() const { return state_->graph_nodes; }
int64_t ExecutionContext::cudaGraphPrefetchNodes() const { return state_->graph_prefetch_nodes; }
const std::string& ExecutionContext::l2Prefetch() const { return state_->l2_prefetch_reason; }
int64_t ExecutionContext::enqueueHostNanoseconds() const { return state_->enqueue_host_ns; }
int64_t ExecutionContext::graphLaunchHostNanoseconds() const { return state_->graph_launch_host_ns; }

Status ExecutionContext::execute(std::span<const TensorRef> inputs, std::span<void* const> outputs) {
  const EngineState& es = *state_->es;
  size_t num_inputs = es.plan.inputs.size();
  if (inputs.size() != num_inputs || outputs.size() != es.plan.outputs.size())
    return invalid_argument("engine '", es.plan.name, "' takes ", num_inputs, " inputs and ", es.plan.outputs.size(),
                            " outputs, got ", inputs.size(), " and ", outputs.size());
  for (size_t i = 0; i < num_inputs; ++i) {
    KILN_RETURN_IF_ERROR(setInputShape(es.bindings[i].name, inputs[i].dims));
    KILN_RETURN_IF_ERROR(setTensorAddress(es.bindings[i].name, inputs[i].data));
  }
  for (size_t o = 0; o < outputs.size(); ++o)
    KILN_RETURN_IF_ERROR(setTensorAddress(es.bindings[num_inputs + o].name, outputs[o]));
  return enqueue(nullptr);
}

}  // namespace kiln

#ifndef KILN_HAS_CUDA
namespace kiln {
// Without CUDA no context ever holds CUDA resources.
void destroy_cuda_resources(CudaResources*) {}
}  // namespace kiln
#endif
