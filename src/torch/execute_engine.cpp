// kiln::execute_engine: binds torch tensors to an engine's inputs by position, allocates its
// outputs through torch's allocator on the engine's device (or reuses pre-allocated ones), and
// runs it on the current torch stream of that device without synchronizing the host.
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include <chrono>

#include "dtype_map.h"
#include "engine_class.h"
#include "torch_status.h"

namespace kiln::torch_ext {

namespace {

std::string dtype_text(c10::ScalarType type) {
  auto kiln_dtype = to_kiln_dtype(type);
  return kiln_dtype ? dtype_name(*kiln_dtype) : c10::toString(type);
}

std::string dims_text(c10::IntArrayRef dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace

std::vector<at::Tensor> EngineHolder::execute(at::TensorList inputs) {
  const std::string& n = name_;
  TORCH_CHECK_VALUE(inputs.size() == inputs_.size(), "execute_engine '", n, "': got ",
                    inputs.size(), " inputs, engine expects ", inputs_.size(), " (",
                    c10::Join(", ", input_names_), ")");
  // Check everything before touching the context, so a bad call leaves it as it was.
  c10::SmallVector<at::Tensor, 8> contiguous;  // no heap allocation up to eight inputs
  contiguous.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const BindingInfo& b = *inputs_[i];
    const at::Tensor& t = inputs[i];
    TORCH_CHECK_VALUE(t.defined(), "execute_engine '", n, "': input '", b.name, "' is undefined");
    TORCH_CHECK_VALUE(t.scalar_type() == to_torch_dtype(b.dtype), "execute_engine '", n,
                      "': input '", b.name, "' has dtype ", dtype_text(t.scalar_type()),
                      ", engine expects ", dtype_name(b.dtype));
    check_input_device(n, b.name, t, device_);
    TORCH_CHECK_VALUE(static_cast<size_t>(t.dim()) == b.shape.size(), "execute_engine '", n,
                      "': input '", b.name, "' has ", t.dim(), " dims ", dims_text(t.sizes()),
                      ", engine expects ", b.shape.size(), " (", shape_str(b.shape), ")");
    for (size_t d = 0; d < b.shape.size(); ++d) {
      const SymExpr& e = b.shape[d];
      int64_t size = t.size(static_cast<int64_t>(d));
      if (!e.isConstant() || e.constant() == size) continue;
      TORCH_CHECK_VALUE(false, "execute_engine '", n, "': input '", b.name, "' has shape ",
                        dims_text(t.sizes()), ", engine expects ", shape_str(b.shape), " (dim ",
                        d, " is ", size, ", expected ", e.constant(), ")");
    }
    contiguous.push_back(t.contiguous());
  }

  std::lock_guard<std::mutex> lock(mutex_);
  const auto start = std::chrono::steady_clock::now();
  if (!context_) context_ = value_or_throw(engine_->createExecutionContext(true));
  auto check = [&](const Status& status) {
    if (!status.ok()) throw_status(status.withContext("execute_engine '" + n + "'"));
  };
  for (size_t i = 0; i < contiguous.size(); ++i) {
    const std::string& binding = inputs_[i]->name;
    const at::Tensor& t = contiguous[i];
    check(context_->setInputShape(binding, std::span<const int64_t>(t.sizes().data(), t.dim())));
    check(context_->setTensorAddress(binding, const_cast<void*>(t.const_data_ptr())));
  }
  void* stream = current_stream(device_);
  // Kept buffers were made on the stream of the last call: only that stream may reuse them
  // without waiting (the graph's readers of an owned output ran there).
  const bool reuse = preallocate_ && stream == kept_stream_;
  std::vector<at::Tensor> outputs;
  outputs.reserve(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const BindingInfo* b = outputs_[i];
    std::vector<int64_t>& dims = shape_scratch_;  // keeps its buffer from call to call
    check(context_->getTensorShape(b->name, dims));
    at::Tensor out;
    if (reuse && kept_[i].defined() && kept_[i].sizes() == c10::IntArrayRef(dims)) {
      out = owned_[i] ? kept_[i] : std::move(kept_[i]);
    } else {
      out = at::empty(dims, at::TensorOptions().dtype(to_torch_dtype(b->dtype)).device(device_.device));
    }
    check(context_->setTensorAddress(b->name, out.data_ptr()));
    outputs.push_back(std::move(out));
  }
  enqueue_on_device(n, *context_, device_, stream);
  ++calls_;
  if (preallocate_) {
    // Owned outputs keep their buffer; the user's get next call's tensors now, while the
    // device works on this one (seed 002).
    for (size_t i = 0; i < outputs_.size(); ++i)
      kept_[i] = owned_[i] ? outputs[i] : at::empty_like(outputs[i]);
    kept_stream_ = stream;
  }
  execute_host_ns_ +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  return outputs;
}

std::vector<std::tuple<std::string, int64_t>> EngineHolder::runtimeStats() {
  std::lock_guard<std::mutex> lock(mutex_);
  const ExecutionContext* c = context_.get();
  auto get = [&](int64_t (ExecutionContext::*f)() const) { return c ? (c->*f)() : int64_t{0}; };
  return {{"calls", calls_},
          {"cuda_graph_replays", get(&ExecutionContext::cudaGraphReplays)},
          {"cuda_graph_captures", get(&ExecutionContext::cudaGraphCaptures)},
          {"cuda_graph_staged_copies", get(&ExecutionContext::cudaGraphStagedCopies)},
          {"cuda_graph_device_launches", get(&ExecutionContext::cudaGraphDeviceLaunches)},
          {"plain_launches", get(&ExecutionContext::plainLaunches)},
          {"cuda_graph_nodes", get(&ExecutionContext::cudaGraphNodes)},
          {"cuda_graph_prefetch_nodes", get(&ExecutionContext::cudaGraphPrefetchNodes)},
          {"execute_host_ns", execute_host_ns_},
          {"enqueue_host_ns", get(&ExecutionContext::enqueueHostNanoseconds)},
          {"graph_launch_host_ns", get(&ExecutionContext::graphLaunchHostNanoseconds)}};
}

std::string EngineHolder::cudaGraphFailure() {
  std::lock_guard<std::mutex> lock(mutex_);
  return context_ ? context_->cudaGraphFailure() : std::string();
}

std::string EngineHolder::l2Prefetch() {
  std::lock_guard<std::mutex> lock(mutex_);
  return context_ ? context_->l2Prefetch() : std::string();
}

void EngineHolder::setPreAllocatedOutputs(bool enabled, const std::vector<bool>& owned) {
  TORCH_CHECK_VALUE(!enabled || owned.size() == outputs_.size(), "Kiln engine '", name_,
                    "': pre-allocated outputs need one 'owned' flag per output (",
                    outputs_.size(), "), got ", owned.size());
  std::lock_guard<std::mutex> lock(mutex_);
  preallocate_ = enabled;
  owned_ = enabled ? owned : std::vector<bool>(outputs_.size(), false);
  kept_.assign(outputs_.size(), at::Tensor());
  kept_stream_ = nullptr;
}

namespace {

std::vector<at::Tensor> execute_engine(at::TensorList inputs,
                                       c10::intrusive_ptr<EngineHolder> engine) {
  return engine->execute(inputs);
}

}  // namespace

}  // namespace kiln::torch_ext

TORCH_LIBRARY_IMPL(kiln, CPU, m) { m.impl("execute_engine", &kiln::torch_ext::execute_engine); }
// CUDA tensors reach the same kernel, whose device check (engine_device.cpp) answers for them.
TORCH_LIBRARY_IMPL(kiln, CUDA, m) { m.impl("execute_engine", &kiln::torch_ext::execute_engine); }
// An engine with no inputs (a block that only computes from constants, such as position ids)
// dispatches on no tensor: this kernel takes that call, on the engine's own device.
TORCH_LIBRARY_IMPL(kiln, CompositeExplicitAutograd, m) {
  m.impl("execute_engine", &kiln::torch_ext::execute_engine);
}
