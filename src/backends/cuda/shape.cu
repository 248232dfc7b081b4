// Shape and data movement. The view ops (reshape, permute, expand, slice, select, split,
// squeeze, unsqueeze) share one "materialize" kernel: the op's view function (computed on the
// host from the input's strides and the attrs) gives each output's layout over the input, and a
// strided copy (launch_copy, copy.cu) writes it into the contiguous output. Also concat, pad,
// flip, arange, fill, copy.
// Every dtype: elements move as raw bits.

#include <cstring>
#include <string>
#include <vector>

#include "backends/common/concat_check.h"
#include "backends/common/view_check.h"
#include "backends/cuda/device_util.cuh"
#include "ir/half.h"
#include "ir/op_def.h"

namespace kiln::cuda {
namespace {

template <typename U>
__global__ void fill_kernel(U* dst, int64_t n, U value) {
  KILN_GRID_STRIDE(i, n) { dst[i] = value; }
}

// `value` stored in `dtype` (the cast rules: floats round to nearest even, ints saturate and
// truncate, NaN -> 0, bool is value != 0), as raw bits in the low bytes.
uint64_t value_bits(DType dtype, double value) {
  uint64_t bits = 0;
  auto put = [&](auto v) { std::memcpy(&bits, &v, sizeof(v)); };
  auto sat = [&](auto tag) {
    using T = decltype(tag);
    if (value != value) return T{0};
    if (value <= static_cast<double>(std::numeric_limits<T>::min()))
      return std::numeric_limits<T>::min();
    if (value >= static_cast<double>(std::numeric_limits<T>::max()))
      return std::numeric_limits<T>::max();
    return static_cast<T>(value);
  };
  switch (dtype) {
    case DType::kFloat32: put(static_cast<float>(value)); break;
    case DType::kFloat16: put(float_to_half(static_cast<float>(value))); break;
    case DType::kBFloat16: put(float_to_bf16(static_cast<float>(value))); break;
    case DType::kInt64: put(sat(int64_t{})); break;
    case DType::kInt32: put(sat(int32_t{})); break;
    case DType::kInt8: put(sat(int8_t{})); break;
    case DType::kUInt8: put(sat(uint8_t{})); break;
    case DType::kBool: put(static_cast<uint8_t>(value != 0.0)); break;
  }
  return bits;
}

// ---- view ops ---------------------------------------------------------------------------------

template <OpKind kKind>
Status run_view(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const ViewFn view = op_def(kKind).view;
  if (!view) return internal_error(op_label(args), ": op has no view function");
  ViewLayout layout;
  layout.shape.assign(in.shape, in.shape + in.rank);
  layout.strides.assign(in.strides, in.strides + in.rank);
  for (size_t k = 0; k < args.outputs.size(); ++k) {
    const TensorView& out = args.outputs[k];
    if (out.dtype != in.dtype) return kernel_error(args, "output dtype differs from the input's");
    ViewLayout ol;
    if (!view(layout, args.attrs, args.bindings, static_cast<int>(k), ol)) {
      KILN_RETURN_IF_ERROR(select_index_check(args, kKind, in));
      // Only a reshape of a non-contiguous input cannot be a view: copy in row-major order.
      if constexpr (kKind == OpKind::kReshape) {
        if (out.numel() == in.numel()) {
          KILN_RETURN_IF_ERROR(
              launch_copy(args, in, contiguous_view(out.data, out.dtype, in.shape, in.rank)));
          continue;
        }
      }
      return kernel_error(args, "input layout cannot be viewed as output ", k);
    }
    if (static_cast<int>(ol.shape.size()) != out.rank || ol.strides.size() != ol.shape.size())
      return kernel_error(args, "view of output ", k, " has rank ", ol.shape.size(),
                          ", the output has ", out.rank);
    TensorView src = in;
    src.rank = out.rank;
    for (int i = 0; i < out.rank; ++i) {
      if (ol.shape[i] != out.shape[i])
        return kernel_error(args, "view of output ", k, " has dim ", i, " = ", ol.shape[i],
                            ", the output has ", out.shape[i]);
      src.shape[i] = ol.shape[i];
      src.strides[i] = ol.strides[i];
    }
    src.data = static_cast<std::byte*>(in.data) + ol.offset * int64_t(dtype_size(in.dtype));
    TensorView dst = out;
    set_contiguous_strides(dst);
    KILN_RETURN_IF_ERROR(launch_copy(args, src, dst));
  }
  return Status::Ok();
}

// ---- concat -----------------------------------------------------------------------------------

Status run_concat(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", 0);
  KILN_RETURN_IF_ERROR(check_concat_args(args, dim));
  int64_t at = 0;
  for (const TensorView& in : args.inputs) {
    TensorView dst = in;  // the slab of the output this input fills: its shape, out's strides
    int64_t s = 1;
    for (int i = out.rank - 1; i >= 0; --i) {
      dst.strides[i] = s;
      s *= out.shape[i];
    }
    dst.data = static_cast<std::byte*>(out.data) +
               at * dst.strides[dim] * int64_t(dtype_size(out.dtype));
    KILN_RETURN_IF_ERROR(launch_copy(args, in, dst));
    at += in.shape[dim];
  }
  return Status::Ok();
}

// ---- pad --------------------------------------------------------------------------------------

enum PadMode : int { kConstant, kReflect, kReplicate };

struct PadGeom {
  int rank = 0;
  int mode = kConstant;
  int64_t out_shape[kMaxRank] = {};
  int64_t in_shape[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
  int64_t before[kMaxRank] = {};
};

template <typename U>
__global__ void pad_kernel(PadGeom g, const U* x, U* y, int64_t n, U fill) {
  KILN_GRID_STRIDE(i, n) {
    int64_t rest = i, off = 0;
    bool pad = false;
    for (int d = g.rank - 1; d >= 0; --d) {
      const int64_t o = rest % g.out_shape[d];
      rest /= g.out_shape[d];
      const int64_t size = g.in_shape[d];
      int64_t s = o - g.before[d];
      if (s < 0 || s >= size) {
        if (g.mode == kConstant) {
          pad = true;
          continue;
        }
        if (g.mode == kReflect) s = s < 0 ? -s : 2 * (size - 1) - s;
        else s = s < 0 ? 0 : size - 1;
      }
      off += s * g.in_strides[d];
    }
    y[i] = pad ? fill : x[off];
  }
}

// A rank-4 constant pad of the last dim only, after its elements, to rows of 8 or 16 bytes: the
// channel padding of a convolution's NHWC input (layout.cpp), whose input is usually the
// network's NCHW image seen through a permute. One thread per output row of V (no index
// division: the grid's y and z are dims 1 and 0); the reads of one channel are coalesced when
// dim 2 has stride 1, as in that permute. At ResNet-50's stem (batch 32, 3 -> 4 channels) this
// is one pass of 9.6 MB in and 12.8 MB out, where cuDNN's own padding took a strided pack, a
// workspace clear and a padding kernel.
template <typename U, typename V>
__global__ void pad_last_dim_kernel(PadGeom g, const U* x, V* y, U fill) {
  constexpr int kCols = sizeof(V) / sizeof(U);
  const int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (w >= g.out_shape[2]) return;
  const int64_t h = blockIdx.y, n = blockIdx.z;
  const U* src = x + n * g.in_strides[0] + h * g.in_strides[1] + w * g.in_strides[2];
  union {
    V vec;
    U cols[kCols];
  } row;
#pragma unroll
  for (int c = 0; c < kCols; ++c) row.cols[c] = c < g.in_shape[3] ? src[c * g.in_strides[3]] : fill;
  y[(n * g.out_shape[1] + h) * g.out_shape[2] + w] = row.vec;
}

// The row bytes (8 or 16) with which pad_last_dim_kernel serves this pad into `out`, or 0.
size_t last_dim_pad_row_bytes(const PadGeom& g, size_t element_bytes, const void* out) {
  if (g.rank != 4 || g.mode != kConstant || element_bytes > 4 || g.out_shape[0] > 65535 ||
      g.out_shape[1] > 65535)
    return 0;
  for (int d = 0; d < 4; ++d)
    if (g.before[d] != 0 || (d < 3 && g.in_shape[d] != g.out_shape[d])) return 0;
  const size_t row_bytes = static_cast<size_t>(g.out_shape[3]) * element_bytes;
  return (row_bytes == 8 || row_bytes == 16) && aligned_to(out, row_bytes) ? row_bytes : 0;
}

Status supports_pad(const Op& op, std::span<const DType> dtypes) {
  const std::string mode = op.attrs.getString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "replicate")
    return unsupported("pad: unknown mode '", mode, "'");
  return Status::Ok();
}

Status run_pad(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const std::string mode_name = args.attrs.getString("mode", "constant");
  PadGeom g;
  g.mode = mode_name == "reflect" ? kReflect : mode_name == "replicate" ? kReplicate : kConstant;
  if (mode_name != "constant" && g.mode == kConstant)
    return kernel_unsupported(args, "unknown mode '", mode_name, "'");
  const std::vector<int64_t> pads = args.attrs.getInts("pads", {});
  const int npairs = static_cast<int>(pads.size() / 2);
  if (pads.size() % 2 || npairs > in.rank)
    return kernel_error(args, pads.size(), " pads for rank ", in.rank);
  if (out.rank != in.rank || out.dtype != in.dtype)
    return kernel_error(args, "output rank or dtype differs from the input's");
  g.rank = in.rank;
  for (int d = 0; d < in.rank; ++d) {
    const int from_end = in.rank - 1 - d;
    const int64_t before = from_end < npairs ? pads[2 * from_end] : 0;
    const int64_t after = from_end < npairs ? pads[2 * from_end + 1] : 0;
    const int64_t size = in.shape[d];
    if (size + before + after != out.shape[d])
      return kernel_error(args, "output dim ", d, " is ", out.shape[d], ", expected ",
                          size + before + after);
    if (g.mode == kReflect && (before >= size || after >= size) && out.shape[d] > 0)
      return kernel_error(args, "reflect pads (", before, ", ", after,
                          ") must be smaller than dim ", d, " of size ", size);
    if (g.mode == kReplicate && size == 0 && out.shape[d] > 0)
      return kernel_error(args, "replicate padding of an empty dim ", d);
    g.out_shape[d] = out.shape[d];
    g.in_shape[d] = size;
    g.in_strides[d] = in.strides[d];
    g.before[d] = before;
  }
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const uint64_t bits = value_bits(out.dtype, args.attrs.getDouble("value", 0.0));
  cudaStream_t stream = stream_of(args);
  const size_t row_bytes = last_dim_pad_row_bytes(g, dtype_size(in.dtype), out.data);
  dispatch_by_size(dtype_size(in.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    U fill;
    std::memcpy(&fill, &bits, sizeof(U));
    if constexpr (sizeof(U) <= 4) {
      if (row_bytes) {
        const dim3 grid(static_cast<unsigned>((g.out_shape[2] + kBlock - 1) / kBlock),
                        static_cast<unsigned>(g.out_shape[1]),
                        static_cast<unsigned>(g.out_shape[0]));
        if (row_bytes == 8)
          pad_last_dim_kernel<U, uint2>
              <<<grid, kBlock, 0, stream>>>(g, in.as<const U>(), out.as<uint2>(), fill);
        else
          pad_last_dim_kernel<U, uint4>
              <<<grid, kBlock, 0, stream>>>(g, in.as<const U>(), out.as<uint4>(), fill);
        return;
      }
    }
    pad_kernel<U><<<grid_for(n), kBlock, 0, stream>>>(g, in.as<const U>(), out.as<U>(), n, fill);
  });
  return check_launch(args, "pad kernel");
}

// ---- flip, copy -------------------------------------------------------------------------------

Status run_flip(const KernelArgs& args) {
  TensorView src;
  bool empty = false;
  KILN_RETURN_IF_ERROR(flip_view(args, src, empty));
  if (empty) return Status::Ok();
  TensorView dst = args.outputs[0];
  set_contiguous_strides(dst);
  return launch_copy(args, src, dst);
}

Status run_copy(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out) || in.dtype != out.dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  TensorView dst = out;
  set_contiguous_strides(dst);
  return launch_copy(args, in, dst);
}

// ---- arange, fill -----------------------------------------------------------------------------

template <typename T>
__global__ void arange_kernel(T* y, int64_t n, int64_t start, int64_t step) {
  KILN_GRID_STRIDE(i, n) {
    const int64_t v = start + i * step;
    if constexpr (kIsIntLike<T>) {
      y[i] = static_cast<T>(v);
    } else {
      y[i] = from_floating<T>(static_cast<double>(v));
    }
  }
}

Status run_arange(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  KILN_ASSIGN_OR_RETURN(int64_t start, args.attrs.getSym("start", 0).evaluate(args.bindings));
  KILN_ASSIGN_OR_RETURN(int64_t end, args.attrs.getSym("end", 0).evaluate(args.bindings));
  const int64_t step = args.attrs.getInt("step", 1);
  if (step == 0) return kernel_error(args, "step must be nonzero");
  const int64_t span = end - start;
  int64_t n = step > 0 ? (span + step - 1) / step : (span + step + 1) / step;
  if (n < 0) n = 0;
  if (out.numel() != n)
    return kernel_error(args, "output has ", out.numel(), " elements, arange gives ", n);
  if (n == 0) return Status::Ok();
  cudaStream_t stream = stream_of(args);
  dispatch_all(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    arange_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(out.as<T>(), n, start, step);
  });
  return check_launch(args, "arange kernel");
}

Status run_fill(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  return launch_fill(args, out.data, out.dtype, out.numel(), args.attrs.getDouble("value", 0.0));
}

}  // namespace

Status launch_fill(const KernelArgs& args, void* dst, DType dtype, int64_t n, double value) {
  if (n == 0) return Status::Ok();
  const uint64_t bits = value_bits(dtype, value);
  cudaStream_t stream = stream_of(args);
  dispatch_by_size(dtype_size(dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    U v;
    std::memcpy(&v, &bits, sizeof(U));
    fill_kernel<U><<<grid_for(n), kBlock, 0, stream>>>(static_cast<U*>(dst), n, v);
  });
  return check_launch(args, "fill kernel");
}

void register_shape_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kReshape, "cuda.materialize", nullptr, run_view<OpKind::kReshape>});
  out.push_back({OpKind::kPermute, "cuda.materialize", nullptr, run_view<OpKind::kPermute>});
  out.push_back({OpKind::kExpand, "cuda.materialize", nullptr, run_view<OpKind::kExpand>});
  out.push_back({OpKind::kSlice, "cuda.materialize", nullptr, run_view<OpKind::kSlice>});
  out.push_back({OpKind::kSelect, "cuda.materialize", nullptr, run_view<OpKind::kSelect>});
  out.push_back({OpKind::kSplit, "cuda.materialize", nullptr, run_view<OpKind::kSplit>});
  out.push_back({OpKind::kSqueeze, "cuda.materialize", nullptr, run_view<OpKind::kSqueeze>});
  out.push_back({OpKind::kUnsqueeze, "cuda.materialize", nullptr, run_view<OpKind::kUnsqueeze>});
  out.push_back({OpKind::kConcat, "cuda.concat", supports_same_dtypes, run_concat});
  out.push_back({OpKind::kPad, "cuda.pad", supports_pad, run_pad});
  out.push_back({OpKind::kFlip, "cuda.flip", nullptr, run_flip});
  out.push_back({OpKind::kArange, "cuda.arange", nullptr, run_arange});
  out.push_back({OpKind::kFill, "cuda.fill", nullptr, run_fill});
  out.push_back({OpKind::kCopy, "cuda.copy", nullptr, run_copy});
}

}  // namespace kiln::cuda
