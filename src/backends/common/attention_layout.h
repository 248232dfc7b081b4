#pragma once

// The attention output as every attention kernel (CPU, CUDA, cuDNN) indexes it, so that all of
// them honour the op's seq_major_out the same way.

#include <utility>

#include "backends/common/tensor_view.h"

namespace kiln {

// The output of an attention call as its logical [..., H, L, Ev] view. With attr seq_major_out
// the tensor is [..., L, H, Ev] (what transpose(1, 2) of the attention reads, laid out so that
// transpose is free): the view is the tensor with dims r-3 and r-2 and their strides swapped.
// Otherwise the output itself.
inline Result<TensorView> attention_output_view(const KernelArgs& args) {
  const char* op = args.op_name ? args.op_name : "attention";
  if (args.outputs.empty()) return invalid_argument(op, ": no output");
  TensorView v = args.outputs[0];
  if (!args.attrs.getBool("seq_major_out", false)) return v;
  if (v.rank < 3)
    return invalid_argument(op, ": seq_major_out needs an output of rank >= 3, got rank ", v.rank);
  std::swap(v.shape[v.rank - 3], v.shape[v.rank - 2]);
  std::swap(v.strides[v.rank - 3], v.strides[v.rank - 2]);
  return v;
}

}  // namespace kiln
