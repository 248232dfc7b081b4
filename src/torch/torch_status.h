#pragma once

#include <c10/util/Exception.h>

#include <stdexcept>

#include "kiln/status.h"

namespace kiln::torch_ext {

// Raises a failed Status as the c10 exception torch turns into the matching Python one:
// invalid argument / out of range -> ValueError, unsupported -> NotImplementedError, others ->
// RuntimeError. The message is the Status message, unchanged.
[[noreturn]] inline void throw_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      TORCH_CHECK_VALUE(false, status.message());
      break;
    case StatusCode::kUnsupported:
      TORCH_CHECK_NOT_IMPLEMENTED(false, status.message());
      break;
    default:
      TORCH_CHECK(false, status.message());
  }
  throw std::logic_error(status.message());  // not reached
}

inline void check_status(const Status& status) {
  if (!status.ok()) throw_status(status);
}

template <typename T>
T value_or_throw(Result<T> result) {
  if (!result.ok()) throw_status(result.status());
  return std::move(result).value();
}

}  // namespace kiln::torch_ext
