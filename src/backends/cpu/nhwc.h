#pragma once

// layout "nhwc" for the CPU conv and pool kernels: the op's [N, H, W, C] tensors are read
// through an NCHW-ordered strided view (no copy), computed in NCHW as usual, and the NCHW result
// is transposed into the [N, H, W, C] output. Simple rather than fast: the CPU backend is the
// reference that makes the layout pass testable.

#include <string>

#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {

// attrs layout: false for "nchw" (or absent), true for "nhwc" (rank-4 tensors only).
inline Result<bool> read_nhwc(const KernelArgs& args) {
  const std::string layout = args.attrs.getString("layout", "nchw");
  if (layout == "nchw") return false;
  if (layout != "nhwc") return kernel_unsupported(args, "unknown layout '", layout, "'");
  for (const TensorView& v : args.inputs)
    if (v.rank != 4 && v.rank != 1) return kernel_error(args, "layout nhwc needs rank-4 tensors");
  if (args.outputs[0].rank != 4) return kernel_error(args, "layout nhwc needs a rank-4 output");
  return true;
}

// The NCHW-ordered view of a rank-4 [N, H, W, C] tensor (dims and strides permuted, same data).
// Also maps a KRSC weight [O, kh, kw, Cg] to its [O, Cg, kh, kw] view.
inline TensorView nchw_view(const TensorView& v) {
  TensorView out = v;
  const int perm[4] = {0, 3, 1, 2};
  for (int i = 0; i < 4; ++i) {
    out.shape[i] = v.shape[perm[i]];
    out.strides[i] = v.strides[perm[i]];
  }
  return out;
}

// dst[n, h, w, c] = src[n, c, h, w] for contiguous float buffers.
inline void nchw_to_nhwc(const float* src, int64_t N, int64_t C, int64_t H, int64_t W,
                         float* dst) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* s = src + (n * C + c) * H * W;
      float* d = dst + n * H * W * C + c;
      for (int64_t i = 0; i < H * W; ++i) d[i * C] = s[i];
    }
}

}  // namespace kiln::cpu
