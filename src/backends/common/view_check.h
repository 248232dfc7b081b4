#pragma once

// Why a view op's view function refused, when the cause is a bad value rather than a layout:
// shared by the CPU and CUDA view kernels so both report it the same way.

#include "backends/common/tensor_view.h"
#include "kiln/network.h"

namespace kiln {

// For select (the one view that fails on a value): kOutOfRange naming the index, dim and size
// when the index is past either end of its dim; OK otherwise.
inline Status select_index_check(const KernelArgs& args, OpKind kind, const TensorView& in) {
  if (kind != OpKind::kSelect) return Status::Ok();
  int64_t dim = args.attrs.getInt("dim", 0);
  auto index = args.attrs.getSym("index", 0).evaluate(args.bindings);
  if (!index.ok() || dim < 0 || dim >= in.rank || (*index >= 0 && *index < in.shape[dim]))
    return Status::Ok();
  return out_of_range(args.op_name ? args.op_name : "select", ": index ", *index,
                      " is out of range for dim ", dim, " of size ", in.shape[dim]);
}

}  // namespace kiln
