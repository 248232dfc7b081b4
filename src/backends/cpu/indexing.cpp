// Indexing: embedding, gather, index_select. Values of any dtype move as raw elements; indices
// are int32 or int64 and are all checked before anything is read, so a bad index never reads out
// of bounds: it fails with out_of_range naming the op and the index.

#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {
namespace {

Status supports_indexed(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 2)
    return invalid_argument(op_kind_name(op.kind), ": expected 2 inputs, got ", dtypes.size());
  if (dtypes[1] != DType::kInt64 && dtypes[1] != DType::kInt32)
    return unsupported(op_kind_name(op.kind), ": indices must be int32 or int64, got ",
                       dtype_name(dtypes[1]));
  return Status::Ok();
}

// The indices of `v` (any strides) in row-major order, each checked against [0, size).
Result<std::vector<int64_t>> load_indices(const KernelArgs& args, const TensorView& v, int64_t dim,
                                          int64_t size) {
  if (v.dtype != DType::kInt64 && v.dtype != DType::kInt32)
    return kernel_unsupported(args, "indices must be int32 or int64, got ", dtype_name(v.dtype));
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>(v.numel()));
  for_each_offset(v, [&](int64_t o) { idx.push_back(load_index(v, o)); });
  for (int64_t i : idx)
    if (i < 0 || i >= size) return index_out_of_range(args, i, dim, size);
  return idx;
}

Status run_embedding(const KernelArgs& args) {
  const TensorView& w = args.inputs[0];
  const TensorView& ind = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (w.rank != 2) return kernel_error(args, "weight has ", w.rank, " dims, expected 2");
  if (out.dtype != w.dtype || out.numel() != ind.numel() * w.shape[1])
    return kernel_error(args, "output does not match indices.shape + [", w.shape[1], "]");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, load_indices(args, ind, 0, w.shape[0]));
  const int64_t d = w.shape[1], rs = w.strides[0], cs = w.strides[1];
  dispatch_by_size(dtype_size(w.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* src = w.as<const U>();
    U* dst = out.as<U>();
    for (int64_t r : idx) {
      const U* row = src + r * rs;
      for (int64_t j = 0; j < d; ++j) dst[j] = row[j * cs];
      dst += d;
    }
  });
  return Status::Ok();
}

Status run_gather(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& ind = args.inputs[1];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", 0);
  if (dim < 0 || dim >= x.rank) return kernel_error(args, "dim ", dim, " out of range");
  if (ind.rank != x.rank)
    return kernel_error(args, "index has ", ind.rank, " dims, expected ", x.rank);
  for (int i = 0; i < x.rank; ++i)
    if (i != dim && ind.shape[i] > x.shape[i])
      return kernel_error(args, "index size ", ind.shape[i], " exceeds input size ", x.shape[i],
                          " at dim ", i);
  if (!same_shape(ind, out) || out.dtype != x.dtype)
    return kernel_error(args, "output must have the index's shape and the input's dtype");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, load_indices(args, ind, dim, x.shape[dim]));
  // x offset of every position but `dim`: x's strides with 0 at dim.
  int64_t xs[kMaxRank];
  for (int i = 0; i < x.rank; ++i) xs[i] = i == dim ? 0 : x.strides[i];
  const int64_t dim_stride = x.strides[dim];
  dispatch_by_size(dtype_size(x.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* src = x.as<const U>();
    U* dst = out.as<U>();
    int64_t i = 0;
    for_each_offset<1>(ind.shape, ind.rank, {xs}, [&](const std::array<int64_t, 1>& o) {
      dst[i] = src[o[0] + idx[i] * dim_stride];
      ++i;
    });
  });
  return Status::Ok();
}

Status run_index_select(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& ind = args.inputs[1];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", 0);
  if (dim < 0 || dim >= x.rank) return kernel_error(args, "dim ", dim, " out of range");
  if (ind.rank > 1) return kernel_error(args, "index has ", ind.rank, " dims, expected 1");
  if (out.rank != x.rank || out.dtype != x.dtype || out.shape[dim] != ind.numel())
    return kernel_error(args, "output does not match the input with dim ", dim, " of size ",
                        ind.numel());
  for (int i = 0; i < x.rank; ++i)
    if (i != dim && out.shape[i] != x.shape[i])
      return kernel_error(args, "output dim ", i, " differs from the input's");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> idx, load_indices(args, ind, dim, x.shape[dim]));
  // Operand 0: x offset without dim; operand 1: the coordinate along dim.
  int64_t xs[kMaxRank], unit[kMaxRank];
  for (int i = 0; i < x.rank; ++i) {
    xs[i] = i == dim ? 0 : x.strides[i];
    unit[i] = i == dim ? 1 : 0;
  }
  const int64_t dim_stride = x.strides[dim];
  dispatch_by_size(dtype_size(x.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* src = x.as<const U>();
    U* dst = out.as<U>();
    for_each_offset<2>(out.shape, out.rank, {xs, unit}, [&](const std::array<int64_t, 2>& o) {
      *dst++ = src[o[0] + idx[o[1]] * dim_stride];
    });
  });
  return Status::Ok();
}

}  // namespace

void register_indexing_kernels(std::vector<CpuKernel>& out) {
  out.push_back(
      {OpKind::kEmbedding, "cpu.embedding", supports_indexed, checked_kernel<run_embedding, 2>});
  out.push_back({OpKind::kGather, "cpu.gather", supports_indexed, checked_kernel<run_gather, 2>});
  out.push_back({OpKind::kIndexSelect, "cpu.index_select", supports_indexed,
                 checked_kernel<run_index_select, 2>});
}

}  // namespace kiln::cpu
