// kiln._C.DType, kiln._C.SymExpr and its arithmetic.
#include <pybind11/stl.h>

#include <functional>

#include "bindings.h"
#include "kiln/dtype.h"
#include "py_status.h"

namespace kiln::torch_ext {

// bool and DType (a pybind enum) have __index__ too, but are not ints here.
bool is_python_int(py::handle value) {
  return !PyBool_Check(value.ptr()) && PyIndex_Check(value.ptr()) && !py::isinstance<DType>(value);
}

std::optional<SymExpr> to_sym_expr(py::handle value) {
  if (py::isinstance<SymExpr>(value)) return value.cast<SymExpr>();
  if (!is_python_int(value)) return std::nullopt;
  auto index = py::reinterpret_steal<py::object>(PyNumber_Index(value.ptr()));
  if (!index) throw py::error_already_set();
  long long v = PyLong_AsLongLong(index.ptr());  // OverflowError past int64
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return SymExpr(static_cast<int64_t>(v));
}

namespace {

using BinaryFn = SymExpr (*)(const SymExpr&, const SymExpr&);

SymExpr add(const SymExpr& a, const SymExpr& b) { return a + b; }
SymExpr sub(const SymExpr& a, const SymExpr& b) { return a - b; }
SymExpr mul(const SymExpr& a, const SymExpr& b) { return a * b; }

// `self op other` (or `other op self` when reflected); NotImplemented for other types so Python
// tries the other operand.
py::object apply(BinaryFn fn, const SymExpr& self, py::handle other, bool reflected) {
  auto rhs = to_sym_expr(other);
  if (!rhs) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  return py::cast(reflected ? fn(*rhs, self) : fn(self, *rhs));
}

SymExpr require_sym(py::handle value, const char* what) {
  auto e = to_sym_expr(value);
  if (!e)
    throw py::type_error(str(what, ": expected an int or a SymExpr, got ",
                             std::string(py::str(py::type::of(value).attr("__name__")))));
  return *e;
}

}  // namespace

void bind_symexpr(py::module_& m) {
  py::enum_<DType>(m, "DType")
      .value("float32", DType::kFloat32)
      .value("float16", DType::kFloat16)
      .value("bfloat16", DType::kBFloat16)
      .value("int64", DType::kInt64)
      .value("int32", DType::kInt32)
      .value("int8", DType::kInt8)
      .value("uint8", DType::kUInt8)
      .value("bool_", DType::kBool)
      .def_property_readonly("itemsize", [](DType d) { return dtype_size(d); });

  auto cls = py::class_<SymExpr>(m, "SymExpr");
  cls.def(py::init([](py::handle value) { return require_sym(value, "SymExpr()"); }),
          py::arg("value"))
      .def("is_constant", &SymExpr::isConstant)
      .def("is_symbol", &SymExpr::isSymbol)
      .def("constant",
           [](const SymExpr& e) {
             if (!e.isConstant())
               raise_status(invalid_argument("SymExpr ", e.str(), " is not a constant"));
             return e.constant();
           })
      .def("symbol_id",
           [](const SymExpr& e) {
             if (!e.isSymbol())
               raise_status(invalid_argument("SymExpr ", e.str(), " is not a symbol"));
             return e.symbolId();
           })
      .def("evaluate",
           [](const SymExpr& e, const std::vector<int64_t>& bindings) {
             return unwrap(e.evaluate(bindings));
           },
           py::arg("bindings"))
      .def("__str__", [](const SymExpr& e) { return e.str(); })
      .def("__repr__", [](const SymExpr& e) { return "SymExpr(" + e.str() + ")"; })
      .def("__eq__",
           [](const SymExpr& e, py::handle other) -> py::object {
             auto rhs = to_sym_expr(other);
             if (!rhs) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(e.equals(*rhs));
           })
      .def("__ne__",
           [](const SymExpr& e, py::handle other) -> py::object {
             auto rhs = to_sym_expr(other);
             if (!rhs) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(!e.equals(*rhs));
           })
      // Structurally equal expressions print alike, and a constant hashes like its int.
      .def("__hash__",
           [](const SymExpr& e) -> py::int_ {
             if (e.isConstant()) return py::int_(py::hash(py::int_(e.constant())));
             return py::int_(std::hash<std::string>{}(e.str()));
           })
      .def("__neg__", [](const SymExpr& e) { return SymExpr(0) - e; });

  struct Op {
    const char* name;
    const char* rname;
    BinaryFn fn;
  };
  for (const Op& op : {Op{"__add__", "__radd__", &add}, Op{"__sub__", "__rsub__", &sub},
                       Op{"__mul__", "__rmul__", &mul},
                       Op{"__floordiv__", "__rfloordiv__", &floordiv},
                       Op{"__mod__", "__rmod__", &mod}}) {
    BinaryFn fn = op.fn;
    cls.def(op.name, [fn](const SymExpr& a, py::handle b) { return apply(fn, a, b, false); });
    cls.def(op.rname, [fn](const SymExpr& a, py::handle b) { return apply(fn, a, b, true); });
  }

  m.def("sym_max",
        [](py::handle a, py::handle b) {
          return sym_max(require_sym(a, "sym_max"), require_sym(b, "sym_max"));
        },
        py::arg("a"), py::arg("b"));
  m.def("sym_min",
        [](py::handle a, py::handle b) {
          return sym_min(require_sym(a, "sym_min"), require_sym(b, "sym_min"));
        },
        py::arg("a"), py::arg("b"));
}

}  // namespace kiln::torch_ext
