#pragma once

#include <span>

#include "backends/common/tensor_view.h"
#include "kiln/network.h"

namespace kiln {

// Shared by every backend's concat: all inputs have one dtype.
inline Status supports_same_dtypes(const Op& op, std::span<const DType> dtypes) {
  for (DType d : dtypes)
    if (d != dtypes[0])
      return invalid_argument(op_kind_name(op.kind), ": input dtypes differ (",
                              dtype_name(dtypes[0]), " vs ", dtype_name(d), ")");
  return Status::Ok();
}

// Checks concat's concrete args: dim in range, inputs share dtype, rank and the other dims, and
// their sizes along dim add up to the output's.
inline Status check_concat_args(const KernelArgs& args, int64_t dim) {
  const char* name = args.op_name ? args.op_name : "concat";
  const TensorView& out = args.outputs[0];
  if (dim < 0 || dim >= out.rank) return invalid_argument(name, ": dim ", dim, " out of range");
  int64_t total = 0;
  for (const TensorView& in : args.inputs) {
    if (in.dtype != out.dtype || in.rank != out.rank)
      return invalid_argument(name, ": inputs must share the output's dtype and rank");
    for (int i = 0; i < in.rank; ++i)
      if (i != dim && in.shape[i] != out.shape[i])
        return invalid_argument(name, ": input dim ", i, " is ", in.shape[i], ", expected ", out.shape[i]);
    total += in.shape[dim];
  }
  if (total != out.shape[dim])
    return invalid_argument(name, ": inputs sum to ", total, " along dim ", dim, ", output has ",
                            out.shape[dim]);
  return Status::Ok();
}

}  // namespace kiln
