#pragma once

#include <pybind11/pybind11.h>

#include "kiln/status.h"

namespace kiln::torch_ext {

namespace py = pybind11;

// Raises a failed Status as a Python exception, message unchanged: invalid argument / out of
// range -> ValueError, unsupported -> NotImplementedError, anything else -> RuntimeError.
[[noreturn]] inline void raise_status(const Status& status) {
  PyObject* type = PyExc_RuntimeError;
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      type = PyExc_ValueError;
      break;
    case StatusCode::kUnsupported:
      type = PyExc_NotImplementedError;
      break;
    default:
      break;
  }
  PyErr_SetString(type, status.message().c_str());
  throw py::error_already_set();
}

inline void check(const Status& status) {
  if (!status.ok()) raise_status(status);
}

template <typename T>
T unwrap(Result<T> result) {
  if (!result.ok()) raise_status(result.status());
  return std::move(result).value();
}

}  // namespace kiln::torch_ext
