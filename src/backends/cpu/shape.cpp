// Shape and data movement. The view ops (reshape, permute, expand, slice, select, split, squeeze,
// unsqueeze) share one "materialize" kernel: the op's view function (src/ir/ops/shape.cpp) gives
// each output's layout over the input, and the kernel copies it into the contiguous output. Also
// concat, pad, flip, arange, fill and copy. Every dtype: elements move as raw bits.

#include <string>
#include <vector>

#include "backends/common/concat_check.h"
#include "backends/common/view_check.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"
#include "ir/op_def.h"

namespace kiln::cpu {
namespace {

// ---- view ops -------------------------------------------------------------------------------

template <OpKind kKind>
Status run_view(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const ViewFn view = op_def(kKind).view;
  if (!view) return internal_error(args.op_name, ": op has no view function");
  ViewLayout layout;
  layout.shape.assign(in.shape, in.shape + in.rank);
  layout.strides.assign(in.strides, in.strides + in.rank);
  for (size_t k = 0; k < args.outputs.size(); ++k) {
    const TensorView& out = args.outputs[k];
    if (out.dtype != in.dtype) return kernel_error(args, "output dtype differs from the input's");
    ViewLayout ol;
    if (!view(layout, args.attrs, args.bindings, static_cast<int>(k), ol)) {
      KILN_RETURN_IF_ERROR(select_index_check(args, kKind, in));
      // Only a reshape of a non-contiguous input cannot be a view: it copies in row-major order.
      if (kKind != OpKind::kReshape || out.numel() != in.numel())
        return kernel_error(args, "input layout cannot be viewed as output ", k);
      copy_to_contiguous(in, out.data);
      continue;
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
    copy_to_contiguous(src, out.data);
  }
  return Status::Ok();
}

// ---- concat ---------------------------------------------------------------------------------

Status run_concat(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", 0);
  KILN_RETURN_IF_ERROR(check_concat_args(args, dim));
  int64_t at = 0;
  for (const TensorView& in : args.inputs) {
    // The slab of the output this input fills: its shape, the output's strides.
    TensorView dst = in;
    contiguous_strides(out.shape, out.rank, dst.strides);
    dst.data =
        static_cast<std::byte*>(out.data) + at * dst.strides[dim] * int64_t(dtype_size(out.dtype));
    copy_view(in, dst);
    at += in.shape[dim];
  }
  return Status::Ok();
}

// ---- pad ------------------------------------------------------------------------------------

enum class PadMode { kConstant, kReflect, kReplicate };

Status supports_pad(const Op& op, std::span<const DType> dtypes) {
  std::string mode = op.attrs.getString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "replicate")
    return unsupported("pad: unknown mode '", mode, "'");
  return Status::Ok();
}

Status run_pad(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  std::string mode_name = args.attrs.getString("mode", "constant");
  PadMode mode = mode_name == "reflect"     ? PadMode::kReflect
                 : mode_name == "replicate" ? PadMode::kReplicate
                                            : PadMode::kConstant;
  if (mode_name != "constant" && mode == PadMode::kConstant)
    return kernel_unsupported(args, "unknown mode '", mode_name, "'");
  std::vector<int64_t> pads = args.attrs.getInts("pads", {});
  if (pads.size() % 2 || static_cast<int>(pads.size() / 2) > in.rank)
    return kernel_error(args, pads.size(), " pads for rank ", in.rank);
  if (out.rank != in.rank || out.dtype != in.dtype)
    return kernel_error(args, "output rank or dtype differs from the input's");
  // Per dim: the source element offset of every output coordinate, or -1 for padding.
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(in.rank));
  for (int d = 0; d < in.rank; ++d) {
    const int from_end = in.rank - 1 - d;
    const int64_t before = from_end < static_cast<int>(pads.size() / 2) ? pads[2 * from_end] : 0;
    const int64_t after = from_end < static_cast<int>(pads.size() / 2) ? pads[2 * from_end + 1] : 0;
    const int64_t size = in.shape[d];
    if (size + before + after != out.shape[d])
      return kernel_error(args, "output dim ", d, " is ", out.shape[d], ", expected ",
                          size + before + after);
    if (mode == PadMode::kReflect && (before >= size || after >= size) && out.shape[d] > 0)
      return kernel_error(args, "reflect pads (", before, ", ", after,
                          ") must be smaller than dim ", d, " of size ", size);
    if (mode == PadMode::kReplicate && size == 0 && out.shape[d] > 0)
      return kernel_error(args, "replicate padding of an empty dim ", d);
    auto& m = src[d];
    m.resize(static_cast<size_t>(out.shape[d]));
    for (int64_t o = 0; o < out.shape[d]; ++o) {
      int64_t s = o - before;
      if (s < 0 || s >= size) {
        if (mode == PadMode::kConstant) {
          m[o] = -1;
          continue;
        }
        if (mode == PadMode::kReflect)
          s = s < 0 ? -s : 2 * (size - 1) - s;
        else
          s = s < 0 ? 0 : size - 1;
      }
      m[o] = s * in.strides[d];
    }
  }
  if (out.numel() == 0) return Status::Ok();
  // The fill value's bits in the output dtype.
  uint64_t value_bits = 0;
  TensorView value_view = out;
  value_view.data = &value_bits;
  store_double(value_view, 0, args.attrs.getDouble("value", 0.0));
  dispatch_by_size(dtype_size(in.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* x = in.as<const U>();
    U* y = out.as<U>();
    U fill;
    std::memcpy(&fill, &value_bits, sizeof(U));
    int64_t idx[kMaxRank] = {};
    for (int64_t i = 0, n = out.numel(); i < n; ++i) {
      int64_t off = 0;
      bool pad = false;
      for (int d = 0; d < out.rank; ++d) {
        int64_t s = src[d][idx[d]];
        pad |= s < 0;
        off += s;
      }
      y[i] = pad ? fill : x[off];
      for (int d = out.rank - 1; d >= 0; --d) {
        if (++idx[d] < out.shape[d]) break;
        idx[d] = 0;
      }
    }
  });
  return Status::Ok();
}

// ---- flip, copy -----------------------------------------------------------------------------

Status run_flip(const KernelArgs& args) {
  TensorView src;
  bool empty = false;
  KILN_RETURN_IF_ERROR(flip_view(args, src, empty));
  if (empty) return Status::Ok();
  TensorView dst = args.outputs[0];
  set_contiguous_strides(dst);
  copy_view(src, dst);
  return Status::Ok();
}

Status run_copy(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out) || in.dtype != out.dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  copy_to_contiguous(in, out.data);
  return Status::Ok();
}

// ---- arange, fill ---------------------------------------------------------------------------

Status run_arange(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  KILN_ASSIGN_OR_RETURN(int64_t start, args.attrs.getSym("start", 0).evaluate(args.bindings));
  KILN_ASSIGN_OR_RETURN(int64_t end, args.attrs.getSym("end", 0).evaluate(args.bindings));
  const int64_t step = args.attrs.getInt("step", 1);
  if (step == 0) return kernel_error(args, "step must be nonzero");
  // ceil((end - start) / step), at least 0
  const int64_t span = end - start;
  int64_t n = step > 0 ? (span + step - 1) / step : (span + step + 1) / step;
  if (n < 0) n = 0;
  if (out.numel() != n)
    return kernel_error(args, "output has ", out.numel(), " elements, arange gives ", n);
  dispatch_all(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* y = out.as<T>();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (kIsIntLike<T>)
        y[i] = static_cast<T>(start + i * step);
      else
        y[i] = from_double<T>(static_cast<double>(start + i * step));
    }
  });
  return Status::Ok();
}

Status run_fill(const KernelArgs& args) {
  const TensorView& out = args.outputs[0];
  const double value = args.attrs.getDouble("value", 0.0);
  dispatch_all(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = from_double<T>(value);
    T* y = out.as<T>();
    for (int64_t i = 0, n = out.numel(); i < n; ++i) y[i] = v;
  });
  return Status::Ok();
}

}  // namespace

void register_shape_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kReshape, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kReshape>, 1, 1, -1>});
  out.push_back({OpKind::kPermute, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kPermute>, 1, 1, -1>});
  out.push_back({OpKind::kExpand, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kExpand>, 1, 1, -1>});
  out.push_back({OpKind::kSlice, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kSlice>, 1, 1, -1>});
  out.push_back({OpKind::kSelect, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kSelect>, 1, 1, -1>});
  out.push_back({OpKind::kSplit, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kSplit>, 1, 1, -1>});
  out.push_back({OpKind::kSqueeze, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kSqueeze>, 1, 1, -1>});
  out.push_back({OpKind::kUnsqueeze, "cpu.materialize", nullptr,
                 checked_kernel<run_view<OpKind::kUnsqueeze>, 1, 1, -1>});
  out.push_back(
      {OpKind::kConcat, "cpu.concat", supports_same_dtypes, checked_kernel<run_concat, 1, -1>});
  out.push_back({OpKind::kPad, "cpu.pad", supports_pad, checked_kernel<run_pad, 1>});
  out.push_back({OpKind::kFlip, "cpu.flip", nullptr, checked_kernel<run_flip, 1>});
  out.push_back({OpKind::kArange, "cpu.arange", nullptr, checked_kernel<run_arange, 0>});
  out.push_back({OpKind::kFill, "cpu.fill", nullptr, checked_kernel<run_fill, 0>});
  out.push_back({OpKind::kCopy, "cpu.copy", nullptr, checked_kernel<run_copy, 1>});
}

}  // namespace kiln::cpu
