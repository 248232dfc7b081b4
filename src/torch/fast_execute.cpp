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
// After Python.h (which the headers above include): PyMemberDef's T_OBJECT and READONLY.
#include <structmember.h>

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
std::optional<Tensors> plain_tensors(PyObject* const* items, size_t count) {
  const bool grad = c10::GradMode::is_enabled();
  Tensors tensors;
  tensors.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (!THPVariable_CheckExact(items[i])) return std::nullopt;
    const at::Tensor& t = THPVariable_Unpack(items[i]);
    if (!t.defined() || !kPlainKeys.isSupersetOf(t.key_set())) return std::nullopt;
    if (grad && t.requires_grad()) return std::nullopt;
    tensors.push_back(t);
  }
  return tensors;
}

std::optional<Tensors> plain_tensors(py::handle inputs) {
  if (!PyList_Check(inputs.ptr()) && !PyTuple_Check(inputs.ptr())) return std::nullopt;
  return plain_tensors(PySequence_Fast_ITEMS(inputs.ptr()),
                       static_cast<size_t>(PySequence_Fast_GET_SIZE(inputs.ptr())));
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
    if (!PyTuple_Check(args.ptr())) return py::none();
    return call(module, &PyTuple_GET_ITEM(args.ptr(), 0), static_cast<size_t>(PyTuple_GET_SIZE(args.ptr())));
  }

  // The same over the positional arguments as an array (DirectCall's vectorcall).
  py::object call(py::handle module, PyObject* const* args, size_t count) const {
    if (count != num_inputs_) return py::none();
    if (!plain_eager_state()) return py::none();
    std::optional<Tensors> tensors = plain_tensors(args, count);
    if (!tensors) return py::none();
    py::object engine = py::reinterpret_steal<py::object>(PyObject_GetAttr(module.ptr(), attribute_.ptr()));
    if (!engine) {
      PyErr_Clear();
      return py::none();
    }
    EngineHolder* holder = holder_of_cached(engine);
    if (!holder) return py::none();
    // The module's graph and its engine disagree: the forward says why (checked before running,
    // so the engine does not run twice).
    for (size_t index : outputs_)
      if (index >= holder->numOutputs()) return py::none();
    // `engine` (a reference held for the call) keeps the holder alive, whatever happens to the
    // module's attribute while the engine runs without the GIL.
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
  // The engine's holder, or null when `engine` is not an Engine. The last engine's holder is
  // remembered with a weak reference to its Python object: the same live object is the same
  // engine, so its holder needs no new cast (a pybind lookup); a replaced attribute, or a dead
  // object whose address was reused, misses. No strong reference: a module whose engine was
  // replaced frees the old one at once.
  EngineHolder* holder_of_cached(py::handle engine) const {
    if (cached_engine_ && PyWeakref_GetObject(cached_engine_.ptr()) == engine.ptr()) return cached_holder_;
    c10::intrusive_ptr<EngineHolder> holder = holder_of(engine);
    if (!holder) return nullptr;
    PyObject* weak = PyWeakref_NewRef(engine.ptr(), nullptr);
    if (!weak) {
      PyErr_Clear();  // no weak reference to this object: no cache, still correct
      cached_engine_ = py::object();
      return holder.get();  // `engine` keeps it alive for the caller
    }
    cached_engine_ = py::reinterpret_steal<py::object>(weak);
    cached_holder_ = holder.get();
    return cached_holder_;
  }

  py::str attribute_;
  size_t num_inputs_;
  std::vector<size_t> outputs_;
  int shape_;
  mutable py::object cached_engine_;  // a weakref to the last engine object, or null
  mutable EngineHolder* cached_holder_ = nullptr;
};

// kiln._C.DirectCall(engine_call, fallback, hooks_module, is_compiling): the class-level
// __call__ of a compiled module whose forward is one engine call (python/kiln/_codegen.py,
// direct_call). It does in C what kiln._codegen._direct_call does in Python on the common path:
// with no keyword arguments, no hooks (the module's and nn.Module's global ones), no
// module.compile(), no TorchScript tracing and no torch.compile tracing, it runs the EngineCall
// on the positional arguments, and the module's forward where the EngineCall declines; anything
// else goes to `fallback` (_direct_call itself) with the same arguments. It saves the Python frame of _direct_call and
// pybind's argument dispatch of EngineCall.__call__.
//
// A method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR): a call of the module reaches the vectorcall
// with the module as the first argument and no bound method made; `module.__call__` still gives
// a bound method.
struct DirectCallObject {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject* engine_call;  // a kiln._C.EngineCall
  PyObject* fallback;
  PyObject* hooks_module;  // torch.nn.modules.module (its global hook dicts)
  PyObject* is_compiling;  // torch.compiler.is_compiling
  const EngineCall* call;  // engine_call's C++ object
};

PyObject* interned(const char* text) {
  PyObject* s = PyUnicode_InternFromString(text);
  if (!s) throw py::error_already_set();
  return s;  // kept for the process
}

// Whether the attribute `name` of `owner` is truthy (a non-empty hook dict, a compiled call);
// -1 on error (the Python error is set).
int attribute_truthy(PyObject* owner, PyObject* name) {
  PyObject* value = PyObject_GetAttr(owner, name);
  if (!value) return -1;
  const int truthy = value == Py_None ? 0 : PyObject_IsTrue(value);
  Py_DECREF(value);
  return truthy;
}

// 1 when nothing would run around the forward (what _direct_call checks), 0 when something
// would, -1 on error.
int nothing_around_forward(const DirectCallObject* self, PyObject* module) {
  static PyObject* const instance_names[] = {interned("_forward_hooks"), interned("_forward_pre_hooks"),
                                             interned("_backward_hooks"), interned("_backward_pre_hooks"),
                                             interned("_compiled_call_impl")};
  static PyObject* const global_names[] = {interned("_global_forward_hooks"), interned("_global_forward_pre_hooks"),
                                           interned("_global_backward_hooks"),
                                           interned("_global_backward_pre_hooks")};
  for (PyObject* name : instance_names)
    if (int t = attribute_truthy(module, name); t != 0) return t < 0 ? -1 : 0;
  for (PyObject* name : global_names)
    if (int t = attribute_truthy(self->hooks_module, name); t != 0) return t < 0 ? -1 : 0;
  if (torch::jit::tracer::isTracing()) return 0;
  PyObject* compiling = PyObject_CallNoArgs(self->is_compiling);
  if (!compiling) return -1;
  const int yes = PyObject_IsTrue(compiling);
  Py_DECREF(compiling);
  return yes < 0 ? -1 : !yes;
}

PyObject* direct_call_vectorcall(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* self = reinterpret_cast<DirectCallObject*>(callable);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs >= 1 && (!kwnames || PyTuple_GET_SIZE(kwnames) == 0)) {
    // An error while checking (say, an attribute missing from an unusual module) is left to the
    // Python path, which meets it again and raises it as it always did.
    const int plain = nothing_around_forward(self, args[0]);
    if (plain < 0) PyErr_Clear();
    if (plain > 0) {
      try {
        py::object result = self->call->call(args[0], args + 1, static_cast<size_t>(nargs - 1));
        if (!result.is_none()) return result.release().ptr();
      } catch (py::error_already_set& e) {
        e.restore();
        return nullptr;
      } catch (...) {
        // The engine's errors, as pybind would raise them from EngineCall.__call__.
        py::detail::try_translate_exceptions();
        return nullptr;
      }
      // The EngineCall declined after the checks passed: module.forward(*args), as _direct_call
      // does then (without making the checks and the EngineCall's attempt a second time).
      static PyObject* const forward = interned("forward");
      return PyObject_VectorcallMethod(forward, args, static_cast<size_t>(nargs), nullptr);
    }
  }
  return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
}

PyObject* direct_call_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  PyObject *engine_call, *fallback, *hooks_module, *is_compiling;
  static const char* names[] = {"engine_call", "fallback", "hooks_module", "is_compiling", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:DirectCall", const_cast<char**>(names), &engine_call,
                                   &fallback, &hooks_module, &is_compiling))
    return nullptr;
  const EngineCall* call = nullptr;
  try {
    call = py::handle(engine_call).cast<const EngineCall*>();
  } catch (const py::cast_error&) {
    PyErr_SetString(PyExc_TypeError, "DirectCall: engine_call must be a kiln._C.EngineCall");
    return nullptr;
  }
  if (!call || !PyCallable_Check(fallback) || !PyCallable_Check(is_compiling)) {
    PyErr_SetString(PyExc_TypeError, "DirectCall: engine_call must be an EngineCall, fallback and is_compiling callables");
    return nullptr;
  }
  auto* self = reinterpret_cast<DirectCallObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  self->vectorcall = direct_call_vectorcall;
  self->engine_call = Py_NewRef(engine_call);
  self->fallback = Py_NewRef(fallback);
  self->hooks_module = Py_NewRef(hooks_module);
  self->is_compiling = Py_NewRef(is_compiling);
  self->call = call;
  return reinterpret_cast<PyObject*>(self);
}

int direct_call_traverse(PyObject* o, visitproc visit, void* arg) {
  auto* self = reinterpret_cast<DirectCallObject*>(o);
  Py_VISIT(self->engine_call);
  Py_VISIT(self->fallback);
  Py_VISIT(self->hooks_module);
  Py_VISIT(self->is_compiling);
  return 0;
}

int direct_call_clear(PyObject* o) {
  auto* self = reinterpret_cast<DirectCallObject*>(o);
  self->call = nullptr;
  Py_CLEAR(self->engine_call);
  Py_CLEAR(self->fallback);
  Py_CLEAR(self->hooks_module);
  Py_CLEAR(self->is_compiling);
  return 0;
}

void direct_call_dealloc(PyObject* o) {
  PyObject_GC_UnTrack(o);
  direct_call_clear(o);
  Py_TYPE(o)->tp_free(o);
}

// Called as a plain object (DirectCall(...)(module, *args)): the same as through a module.
PyObject* direct_call_call(PyObject* o, PyObject* args, PyObject* kwargs) {
  return PyVectorcall_Call(o, args, kwargs);
}

PyObject* direct_call_get(PyObject* o, PyObject* obj, PyObject* /*type*/) {
  if (!obj || obj == Py_None) return Py_NewRef(o);
  return PyMethod_New(o, obj);
}

// Read-only attributes (None once cleared).
PyMemberDef direct_call_members[] = {
    {"fallback", T_OBJECT, offsetof(DirectCallObject, fallback), READONLY,
     "what a call that is not plain goes to"},
    {"engine_call", T_OBJECT, offsetof(DirectCallObject, engine_call), READONLY,
     "the kiln._C.EngineCall run on the plain path"},
    {nullptr, 0, 0, 0, nullptr}};

PyTypeObject DirectCallType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "kiln._C.DirectCall";
  t.tp_basicsize = sizeof(DirectCallObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR;
  t.tp_doc = "The __call__ of a compiled module whose forward is one engine call (kiln._codegen): "
             "DirectCall(engine_call, fallback, hooks_module, is_compiling).";
  t.tp_new = direct_call_new;
  t.tp_dealloc = direct_call_dealloc;
  t.tp_traverse = direct_call_traverse;
  t.tp_clear = direct_call_clear;
  t.tp_call = direct_call_call;
  t.tp_descr_get = direct_call_get;
  t.tp_vectorcall_offset = offsetof(DirectCallObject, vectorcall);
  t.tp_members = direct_call_members;
  return t;
}();

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
      .def("__call__", py::overload_cast<py::handle, py::handle>(&EngineCall::call, py::const_),
           py::arg("module"), py::arg("args"));
  if (PyType_Ready(&DirectCallType) < 0) throw py::error_already_set();
  Py_INCREF(&DirectCallType);
  m.add_object("DirectCall", py::handle(reinterpret_cast<PyObject*>(&DirectCallType)));
}

}  // namespace kiln::torch_ext
