#include "kiln/dtype.h"

#include <array>

namespace kiln {
namespace {

struct DTypeInfo {
  const char* name;
  size_t size;
  bool floating;
  bool integer;
};

constexpr std::array<DTypeInfo, kNumDTypes> kInfo = {{
    {"float32", 4, true, false},
    {"float16", 2, true, false},
    {"bfloat16", 2, true, false},
    {"int64", 8, false, true},
    {"int32", 4, false, true},
    {"int8", 1, false, true},
    {"uint8", 1, false, true},
    {"bool", 1, false, false},
}};

const DTypeInfo& info(DType d) { return kInfo[static_cast<size_t>(d) % kNumDTypes]; }

}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
const char* dtype_name(DType dtype) { return info(dtype).name; }
bool is_floating(DType dtype) { return info(dtype).floating; }
bool is_integer(DType dtype) { return info(dtype).integer; }

Result<DType> parse_dtype(std::string_view name) {
  for (size_t i = 0; i < kInfo.size(); ++i) {
    if (name == kInfo[i].name) return static_cast<DType>(i);
  }
  if (name == "float" || name == "fp32") return DType::kFloat32;
  if (name == "half" || name == "fp16") return DType::kFloat16;
  if (name == "bf16") return DType::kBFloat16;
  if (name == "long") return DType::kInt64;
  if (name == "int") return DType::kInt32;
  return invalid_argument("unknown dtype '", name,
                          "' (expected float32, float16, bfloat16, int64, int32, int8, uint8, bool)");
}

}  // namespace kiln
