// Private hooks for tests/python: they expose the conversions the public bindings use, so tests
// can check them without depending on any op's definition.
#include <pybind11/stl.h>

#include "bindings.h"
#include "py_status.h"

namespace kiln::torch_ext {

namespace {

const char* kStatusCodes[] = {"ok",          "invalid_argument", "out_of_range", "not_found",
                              "unsupported", "truncated",        "corrupt_file", "version_mismatch",
                              "wrong_target", "cuda_error",      "out_of_memory", "internal"};

// An attribute as (kind, value) with the value converted back to Python.
py::tuple attr_to_python(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> py::tuple {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t>) return py::make_tuple("int", v);
        else if constexpr (std::is_same_v<T, double>) return py::make_tuple("float", v);
        else if constexpr (std::is_same_v<T, bool>) return py::make_tuple("bool", v);
        else if constexpr (std::is_same_v<T, std::string>) return py::make_tuple("str", v);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return py::make_tuple("ints", v);
        else if constexpr (std::is_same_v<T, std::vector<double>>) return py::make_tuple("floats", v);
        else if constexpr (std::is_same_v<T, SymExpr>) return py::make_tuple("sym", v);
        else if constexpr (std::is_same_v<T, Shape>) return py::make_tuple("shape", v);
        else return py::make_tuple("dtype", v);
      },
      value);
}

}  // namespace

void bind_testing(py::module_& m) {
  m.def("_convert_attrs", [](const py::dict& attrs) {
    py::dict out;
    Attrs converted = to_attrs(attrs, "_convert_attrs");
    for (const auto& [name, value] : converted.values())
      out[py::str(name)] = attr_to_python(value);
    return out;
  });
  m.def("_raise_status", [](const std::string& code, const std::string& message) {
    for (size_t i = 1; i < std::size(kStatusCodes); ++i)
      if (code == kStatusCodes[i]) raise_status(Status(static_cast<StatusCode>(i), message));
    throw py::value_error("unknown status code '" + code + "'");
  });
}

}  // namespace kiln::torch_ext
