#pragma once

#include <pybind11/pybind11.h>

#include <optional>

#include "kiln/attrs.h"
#include "kiln/sym_expr.h"

namespace kiln::torch_ext {

namespace py = pybind11;

// One function per topic, each adding its part of kiln._C (module.cpp calls them in order).
void bind_symexpr(py::module_& m);  // DType, SymExpr, sym_max, sym_min
void bind_network(py::module_& m);  // Network
void bind_builder(py::module_& m);  // build, engine_info
void bind_engine(py::module_& m);   // make_engine, ABI_VERSION
void bind_fast_execute(py::module_& m);  // execute_engine_fast
void bind_testing(py::module_& m);  // _convert_attrs, _raise_status (for tests/python)

// An int (anything with __index__ but bool) or a SymExpr, as a SymExpr; nullopt otherwise.
std::optional<SymExpr> to_sym_expr(py::handle value);
bool is_python_int(py::handle value);
// The attributes of add_op, converted as python_api.md says; `where` prefixes errors.
Attrs to_attrs(const py::dict& attrs, const std::string& where);

}  // namespace kiln::torch_ext
