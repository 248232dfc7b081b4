#pragma once

// layout "nhwc" for the CUDA conv and pool kernels: the op's tensors are [N, H, W, C]; kernels
// read their geometry from NCHW-ordered views of them (dims and strides permuted, same data).

#include <string>

#include "backends/cuda/cuda_util.h"

namespace kiln::cuda {

// attrs layout: false for "nchw" (or absent), true for "nhwc" (rank-4 x and output only).
inline Result<bool> read_nhwc(const KernelArgs& args) {
  const std::string layout = args.attrs.getString("layout", "nchw");
  if (layout == "nchw") return false;
  if (layout != "nhwc") return kernel_unsupported(args, "unknown layout '", layout, "'");
  if (args.inputs.empty() || args.inputs[0].rank != 4 || args.outputs.empty() ||
      args.outputs[0].rank != 4)
    return kernel_error(args, "layout nhwc needs a rank-4 input and output");
  return true;
}

// The NCHW-ordered view of a rank-4 [N, H, W, C] tensor; also KRSC [O, kh, kw, Cg] weights to
// [O, Cg, kh, kw].
inline TensorView nchw_view(const TensorView& v) {
  TensorView out = v;
  const int perm[4] = {0, 3, 1, 2};
  for (int i = 0; i < 4; ++i) {
    out.shape[i] = v.shape[perm[i]];
    out.strides[i] = v.strides[perm[i]];
  }
  return out;
}

}  // namespace kiln::cuda
