// kiln._C.execute_engine_fast: kiln::execute_engine for a plain eager call, without the
// dispatcher. A call through torch.ops parses its arguments against the schema, boxes them into
// IValues, computes the dispatch key set and unboxes them again: several microseconds per call,
// more than the engine's own host work (DESIGN.md 6, "host overhead"). Compiled modules call
// this first (python/kiln/_codegen.py); it answers None, and the caller takes torch.ops, whenever
// anything could make the dispatcher's path differ from a direct call:
//   - a tracer (torch.jit.trace), a TorchDispatchMode, a TorchFunctionMode, or dispatch keys
//     included by thread-local state (functorch transforms, functionalization);
//   - an input that is not exactly a torch.Tensor (FakeTensor and other subclasses), carries
//     keys beyond a CPU/CUDA dense tensor's (batched, functional, sparse, Python), or requires
//     grad while grad mode is on (the op has no autograd formula; the dispatcher says so);
//   - an engine argument that is not a torch.classes.kiln.Engine.
// The profiler still sees the call as kiln::execute_engine (RECORD_FUNCTION).
#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/record_function.h>
#include <c10/util/SmallVector.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/python/pybind_utils.h>

#include "bindings.h"
#include "engine_class.h"

namespace kiln::torch_ext {

namespace {

bool plain_eager_state() {
  if (torch::jit::tracer::isTracing()) return false;
  if (c10::impl::TorchDispatchModeTLS::stack_len() > 0) return false;
  if (at::impl::torch_function_mode_enabled()) return false;
  return (c10::impl::tls_local_dispatch_key_set().included_ - c10::default_included_set).empty();
}

// Keys a dense CPU or CUDA tensor from eager code carries, and nothing else.
constexpr c10::DispatchKeySet kPlainKeys = c10::DispatchKeySet({
    c10::DispatchKey::CPU,
    c10::DispatchKey::CUDA,
    c10::DispatchKey::ADInplaceOrView,
    c10::DispatchKey::AutogradCPU,
    c10::DispatchKey::AutogradCUDA,
    c10::DispatchKey::AutocastCPU,
    c10::DispatchKey::AutocastCUDA,
});

// The list's tensors when each is a plain eager tensor; nullopt otherwise. Up to eight inputs
// need no heap allocation.
using Tensors = c10::SmallVector<at::Tensor, 8>;
std::optional<Tensors> plain_tensors(py::handle inputs) {
  if (!PyList_Check(inputs.ptr()) && !PyTuple_Check(inputs.ptr())) return std::nullopt;
  py::sequence seq = py::reinterpret_borrow<py::sequence>(inputs);
  const bool grad = c10::GradMode::is_enabled();
  Tensors tensors;
  tensors.reserve(seq.size());
  for (py::handle item : seq) {
    if (!THPVariable_CheckExact(item.ptr())) return std::nullopt;
    const at::Tensor& t = THPVariable_Unpack(item.ptr());
    if (!t.defined() || !kPlainKeys.isSupersetOf(t.key_set())) return std::nullopt;
    if (grad && t.requires_grad()) return std::nullopt;
    tensors.push_back(t);
  }
  return tensors;
}

// The engine's holder, or null when `engine` is not a torch.classes.kiln.Engine.
c10::intrusive_ptr<EngineHolder> holder_of(py::handle engine) {
  const auto& engine_type = c10::getCustomClassType<c10::intrusive_ptr<EngineHolder>>();
  try {
    return torch::jit::toIValue(engine, engine_type).toCustomClass<EngineHolder>();
  } catch (const std::exception&) {
    return {};
  }
}

std::vector<at::Tensor> run(EngineHolder& holder, const Tensors& tensors) {
  py::gil_scoped_release no_gil;
  RECORD_FUNCTION("kiln::execute_engine", std::vector<c10::IValue>());
  return holder.execute(tensors);
}

py::object wrap(at::Tensor tensor) {
  return py::reinterpret_steal<py::object>(THPVariable_Wrap(std::move(tensor)));
}

py::object execute_engine_fast(py::handle inputs, py::handle engine) {
  if (!plain_eager_state()) return py::none();
  std::optional<Tensors> tensors = plain_tensors(inputs);
  if (!tensors) return py::none();
  c10::intrusive_ptr<EngineHolder> holder = holder_of(engine);
  if (!holder) return py::none();  // not an Engine: torch.ops names the argument at fault
  std::vector<at::Tensor> outputs = run(*holder, *tensors);
  py::list result(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) result[i] = wrap(std::move(outputs[i]));
  return result;
}

// A compiled module whose whole forward is one engine call on its positional arguments, in
// order, returning some of the engine's outputs (python/kiln/_codegen.py, `EngineCall`): the
// module's call without its generated forward, the input list, the output list and the
// indexing. It holds no reference to the engine (the module does): each call reads the
// module's attribute, so a module whose engine attribute was replaced runs the new engine.
class EngineCall {
 public:
  // `outputs`: the engine output index of each returned value; `shape`: 0 returns the single
  // value itself, 1 a tuple, 2 a list.
  EngineCall(std::string attribute, size_t num_inputs, std::vector<size_t> outputs, int shape)
      : attribute_(py::str(attribute)), num_inputs_(num_inputs), outputs_(std::move(outputs)), shape_(shape) {
    if (shape_ < 0 || shape_ > 2 || (shape_ == 0 && outputs_.size() != 1))
      throw py::value_error("EngineCall: shape must be 0 (one output), 1 (tuple) or 2 (list)");
  }

  // The module's result, or None where the caller must run its forward instead: a call the
  // fast path declines (execute_engine_fast's rules), another argument count, an attribute
  // that is no Engine, or an engine with fewer outputs than the graph reads.
  py::object call(py::handle module, py::handle args) const {
    if (!PyTuple_Check(args.ptr()) || static_cast<size_t>(PyTuple_GET_SIZE(args.ptr())) != num_inputs_)
      return py::none();
    if (!plain_eager_state()) return py::none();
    std::optional<Tensors> tensors = plain_tensors(args);
    if (!tensors) return py::none();
    py::object engine = py::reinterpret_steal<py::object>(PyObject_GetAttr(module.ptr(), attribute_.ptr()));
    if (!engine) {
      PyErr_Clear();
      return py::none();
    }
    c10::intrusive_ptr<EngineHolder> holder = holder_of(engine);
    if (!holder) return py::none();
    // The module's graph and its engine disagree: the forward says why (checked before running,
    // so the engine does not run twice).
    for (size_t index : outputs_)
      if (index >= holder->numOutputs()) return py::none();
    std::vector<at::Tensor> outputs = run(*holder, *tensors);
    if (shape_ == 0) return wrap(outputs[outputs_[0]]);
    py::object result = py::reinterpret_steal<py::object>(shape_ == 1 ? PyTuple_New(outputs_.size())
                                                                       : PyList_New(outputs_.size()));
    for (size_t i = 0; i < outputs_.size(); ++i) {
      PyObject* item = wrap(outputs[outputs_[i]]).release().ptr();
      if (shape_ == 1) PyTuple_SET_ITEM(result.ptr(), i, item);
      else PyList_SET_ITEM(result.ptr(), i, item);
    }
    return result;
  }

 private:
  py::str attribute_;
  size_t num_inputs_;
  std::vector<size_t> outputs_;
  int shape_;
};

}  // namespace

void bind_fast_execute(py::module_& m) {
  m.def("execute_engine_fast", &execute_engine_fast, py::arg("inputs"), py::arg("engine"),
        "kiln::execute_engine(inputs, engine) without the dispatcher, for a plain eager call; "
        "None where the dispatcher's path could differ (tracing, modes, tensor subclasses, "
        "inputs that need grad): the caller then calls torch.ops.kiln.execute_engine.");
  py::class_<EngineCall>(m, "EngineCall",
                         "The call of a compiled module whose forward is one engine call on its "
                         "positional arguments (kiln._codegen): call(module, args) returns the "
                         "module's result, or None where the module's forward must run instead.")
      .def(py::init<std::string, size_t, std::vector<size_t>, int>(), py::arg("attribute"),
           py::arg("num_inputs"), py::arg("outputs"), py::arg("shape"))
      .def("__call__", &EngineCall::call, py::arg("module"), py::arg("args"));
}

}  // namespace kiln::torch_ext
