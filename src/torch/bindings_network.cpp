// kiln._C.Network: the network-building API, with Python values converted to attributes.
#include <pybind11/stl.h>

#include "bindings.h"
#include "kiln/network.h"
#include "py_status.h"

namespace kiln::torch_ext {

namespace {

std::string type_name(py::handle value) {
  return py::str(py::type::of(value).attr("__name__"));
}

int64_t to_int64(py::handle value) {
  return to_sym_expr(value)->constant();  // callers checked is_python_int
}

// A list or tuple attribute: empty or all ints -> ints; any SymExpr -> Shape (ints become
// constants); floats, alone or with ints -> floats.
AttrValue list_attr(py::sequence items, const std::string& where) {
  bool has_float = false, has_sym = false;
  for (py::handle item : items) {
    if (is_python_int(item)) continue;
    if (PyFloat_Check(item.ptr())) {
      has_float = true;
    } else if (py::isinstance<SymExpr>(item)) {
      has_sym = true;
    } else {
      throw py::type_error(str(where, ": list element of type ", type_name(item),
                               " (lists hold ints, floats or SymExprs)"));
    }
  }
  if (has_sym && has_float) throw py::type_error(str(where, ": list mixes SymExprs and floats"));
  if (has_sym) {
    Shape shape;
    for (py::handle item : items) shape.push_back(*to_sym_expr(item));
    return shape;
  }
  if (has_float) {
    std::vector<double> values;
    for (py::handle item : items)
      values.push_back(PyFloat_Check(item.ptr()) ? item.cast<double>()
                                                 : static_cast<double>(to_int64(item)));
    return values;
  }
  std::vector<int64_t> values;
  for (py::handle item : items) values.push_back(to_int64(item));
  return values;
}

// bool before int: Python's bool is an int.
std::optional<AttrValue> attr_value(py::handle value, const std::string& where) {
  if (value.is_none()) return std::nullopt;  // an absent optional attribute
  if (PyBool_Check(value.ptr())) return AttrValue(value.cast<bool>());
  if (is_python_int(value)) return AttrValue(to_int64(value));
  if (PyFloat_Check(value.ptr())) return AttrValue(value.cast<double>());
  if (py::isinstance<py::str>(value)) return AttrValue(value.cast<std::string>());
  if (py::isinstance<DType>(value)) return AttrValue(value.cast<DType>());
  if (py::isinstance<SymExpr>(value)) return AttrValue(value.cast<SymExpr>());
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value))
    return list_attr(py::reinterpret_borrow<py::sequence>(value), where);
  throw py::type_error(str(where, ": unsupported type ", type_name(value)));
}

Tensor tensor_arg(const Network& net, int64_t id, const std::string& where) {
  if (id < 0 || id >= static_cast<int64_t>(net.tensors().size()))
    raise_status(out_of_range(where, ": tensor id ", id, " does not exist (network '", net.name(),
                              "' has ", net.tensors().size(), " tensors)"));
  return Tensor{static_cast<int32_t>(id)};
}

Shape shape_arg(py::sequence dims, const std::string& where) {
  Shape shape;
  for (py::handle d : dims) {
    auto e = to_sym_expr(d);
    if (!e) throw py::type_error(str(where, ": dims are ints or SymExprs, got ", type_name(d)));
    shape.push_back(*e);
  }
  return shape;
}

// The bytes of a C-contiguous buffer (bytes, bytearray, memoryview, numpy array).
std::vector<std::byte> buffer_bytes(py::handle data, const std::string& where) {
  Py_buffer view;
  if (PyObject_GetBuffer(data.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
    PyErr_Clear();
    throw py::type_error(str(where, ": data must be a C-contiguous bytes-like object, got ",
                             type_name(data)));
  }
  auto* begin = static_cast<const std::byte*>(view.buf);
  std::vector<std::byte> bytes(begin, begin + view.len);
  PyBuffer_Release(&view);
  return bytes;
}

}  // namespace

Attrs to_attrs(const py::dict& attrs, const std::string& where) {
  Attrs out;
  for (auto [key, value] : attrs) {
    if (!py::isinstance<py::str>(key))
      throw py::type_error(str(where, ": attribute names must be str, got ", type_name(key)));
    std::string name = key.cast<std::string>();
    if (auto v = attr_value(value, str(where, ": attribute '", name, "'"))) out.set(name, *v);
  }
  return out;
}

void bind_network(py::module_& m) {
  py::class_<Network>(m, "Network")
      .def(py::init<std::string>(), py::arg("name") = "network")
      .def_property_readonly("name", &Network::name)
      .def("add_symbol",
           [](Network& net, const std::string& name, int64_t min, int64_t opt, int64_t max) {
             return unwrap(net.addSymbol(name, min, opt, max));
           },
           py::arg("name"), py::arg("min"), py::arg("opt"), py::arg("max"))
      .def("add_input",
           [](Network& net, const std::string& name, DType dtype, py::sequence shape) {
             return unwrap(net.addInput(name, dtype, shape_arg(shape, "add_input '" + name + "'")))
                 .id;
           },
           py::arg("name"), py::arg("dtype"), py::arg("shape"))
      .def("add_constant",
           [](Network& net, const std::string& name, DType dtype, std::vector<int64_t> dims,
              py::handle data) {
             std::vector<std::byte> bytes = buffer_bytes(data, "add_constant '" + name + "'");
             return unwrap(net.addConstant(name, dtype, dims, std::span<const std::byte>(bytes))).id;
           },
           py::arg("name"), py::arg("dtype"), py::arg("dims"), py::arg("data"))
      .def("add_op",
           [](Network& net, const std::string& kind, const std::vector<int64_t>& inputs,
              const py::dict& attrs, const std::string& name) {
             std::string where = "add_op " + kind + (name.empty() ? "" : " '" + name + "'");
             OpKind op = unwrap(parse_op_kind(kind));
             std::vector<Tensor> tensors;
             for (int64_t id : inputs) tensors.push_back(tensor_arg(net, id, where));
             auto outputs = unwrap(net.addOp(op, std::move(tensors), to_attrs(attrs, where), name));
             std::vector<int32_t> ids;
             for (Tensor t : outputs) ids.push_back(t.id);
             return ids;
           },
           py::arg("kind"), py::arg("inputs"), py::arg("attrs") = py::dict(),
           py::arg("name") = "")
      .def("mark_output",
           [](Network& net, int64_t id, const std::string& name) {
             check(net.markOutput(tensor_arg(net, id, "mark_output '" + name + "'"), name));
           },
           py::arg("id"), py::arg("name"))
      .def("dtype",
           [](const Network& net, int64_t id) { return net.tensor(tensor_arg(net, id, "dtype")).dtype; },
           py::arg("id"))
      .def("shape",
           [](const Network& net, int64_t id) { return net.tensor(tensor_arg(net, id, "shape")).shape; },
           py::arg("id"))
      .def("tensor_name",
           [](const Network& net, int64_t id) {
             return net.tensor(tensor_arg(net, id, "tensor_name")).name;
           },
           py::arg("id"))
      .def("num_tensors", [](const Network& net) { return net.tensors().size(); })
      .def("num_ops", [](const Network& net) { return net.ops().size(); })
      .def("op_kinds",
           [](const Network& net) {
             std::vector<std::string> kinds;
             for (const Op& op : net.ops()) kinds.emplace_back(op_kind_name(op.kind));
             return kinds;
           })
      .def("verify", [](const Network& net) { check(net.verify()); })
      .def("__str__", &Network::toString);
}

}  // namespace kiln::torch_ext
