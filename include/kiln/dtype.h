#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kiln/export.h"
#include "kiln/status.h"

namespace kiln {

// The values are part of the engine file format: append only.
enum class DType : uint8_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kInt64 = 3,
  kInt32 = 4,
  kInt8 = 5,
  kUInt8 = 6,
  kBool = 7,
};
inline constexpr int kNumDTypes = 8;

KILN_API size_t dtype_size(DType dtype);
KILN_API const char* dtype_name(DType dtype);  // "float32", "float16", ...
KILN_API Result<DType> parse_dtype(std::string_view name);
KILN_API bool is_floating(DType dtype);
KILN_API bool is_integer(DType dtype);  // signed and unsigned ints, not bool

}  // namespace kiln
