#pragma once

#include <span>

#include "backends/common/tensor_view.h"
#include "kiln/network.h"

namespace kiln {

// Shared by every backend's cumsum: the output dtypes it computes in, torch's default output
// dtype (bool and integers accumulate in int64, floats keep their dtype), the op check and the
// concrete-args check.
inline bool cumsum_dtype_ok(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16 ||
         d == DType::kInt32 || d == DType::kInt64;
}
inline DType cumsum_default_dtype(DType in) { return is_floating(in) ? in : DType::kInt64; }

inline Status supports_cumsum(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 1) return invalid_argument("cumsum: expected 1 input, got ", dtypes.size());
  const DType out = op.attrs.getDType("dtype", cumsum_default_dtype(dtypes[0]));
  if (!cumsum_dtype_ok(out))
    return unsupported("cumsum: output dtype ", dtype_name(out), " is not supported");
  return Status::Ok();
}

// One input and one output of the input's shape and the attrs' dtype, dim in range.
inline Status check_cumsum_args(const KernelArgs& args) {
  const char* name = args.op_name ? args.op_name : "cumsum";
  if (args.inputs.size() != 1 || args.outputs.size() != 1)
    return invalid_argument(name, ": expected 1 input and 1 output");
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", -1);
  if (dim < 0 || dim >= x.rank) return invalid_argument(name, ": dim ", dim, " out of range");
  bool same = x.rank == out.rank;
  for (int i = 0; same && i < x.rank; ++i) same = x.shape[i] == out.shape[i];
  if (!same) return invalid_argument(name, ": output shape differs from the input's");
  const DType want = args.attrs.getDType("dtype", cumsum_default_dtype(x.dtype));
  if (out.dtype != want)
    return invalid_argument(name, ": output dtype is ", dtype_name(out.dtype), ", expected ",
                            dtype_name(want));
  if (!cumsum_dtype_ok(out.dtype))
    return unsupported(name, ": output dtype ", dtype_name(out.dtype), " is not supported");
  return Status::Ok();
}

}  // namespace kiln
