#pragma once

// View arithmetic shared by the CPU and CUDA shape kernels, so both backends compute and report
// it the same way.

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

// flip as a view: `src` becomes input 0 with the flipped dims' strides negated and its data at
// their last elements. `empty` is set when a flipped dim has size 0 (nothing to copy). The output
// must have the input's shape and dtype.
inline Status flip_view(const KernelArgs& args, TensorView& src, bool& empty) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const char* op = args.op_name ? args.op_name : "flip";
  bool same = in.rank == out.rank && in.dtype == out.dtype;
  for (int d = 0; same && d < in.rank; ++d) same = in.shape[d] == out.shape[d];
  if (!same) return invalid_argument(op, ": output shape or dtype differs from the input's");
  src = in;
  empty = false;
  int64_t start = 0;
  for (int64_t d : args.attrs.getInts("dims", {})) {
    if (d < 0 || d >= in.rank) return invalid_argument(op, ": dim ", d, " out of range");
    if (in.shape[d] == 0) {
      empty = true;
      return Status::Ok();
    }
    start += (in.shape[d] - 1) * in.strides[d];
    src.strides[d] = -in.strides[d];
  }
  src.data = static_cast<std::byte*>(in.data) + start * int64_t(dtype_size(in.dtype));
  return Status::Ok();
}

}  // namespace kiln
