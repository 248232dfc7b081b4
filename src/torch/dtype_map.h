#pragma once

#include <c10/core/ScalarType.h>

#include <optional>

#include "kiln/dtype.h"

namespace kiln::torch_ext {

inline c10::ScalarType to_torch_dtype(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return c10::ScalarType::Float;
    case DType::kFloat16: return c10::ScalarType::Half;
    case DType::kBFloat16: return c10::ScalarType::BFloat16;
    case DType::kInt64: return c10::ScalarType::Long;
    case DType::kInt32: return c10::ScalarType::Int;
    case DType::kInt8: return c10::ScalarType::Char;
    case DType::kUInt8: return c10::ScalarType::Byte;
    case DType::kBool: return c10::ScalarType::Bool;
  }
  return c10::ScalarType::Undefined;
}

// nullopt for torch dtypes Kiln has no equivalent of (float64, complex, ...).
inline std::optional<DType> to_kiln_dtype(c10::ScalarType type) {
  for (int i = 0; i < kNumDTypes; ++i) {
    auto dtype = static_cast<DType>(i);
    if (to_torch_dtype(dtype) == type) return dtype;
  }
  return std::nullopt;
}

}  // namespace kiln::torch_ext
