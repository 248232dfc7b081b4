// Indexing: embedding, gather, index_select. Values of any dtype move as raw elements; indices
// are int32 or int64 read through their strides. An index outside [0, size) never reads out of
// bounds: it is clamped into range (a zero element when the dim is empty) and the context's
// device error word gets kDeviceErrorIndexOutOfRange (see cuda_kernels.h).

#include <algorithm>

#include "backends/cuda/device_util.cuh"

namespace kiln::cuda {
namespace {

// The index value at `off`, clamped into [0, size); size 0 sets `empty`.
template <typename I>
__device__ __forceinline__ int64_t checked_index(const I* ind, int64_t off, int64_t size,
                                                 uint32_t* err, bool& empty) {
  int64_t v = static_cast<int64_t>(ind[off]);
  empty = size == 0;
  if (v < 0 || v >= size) {
    raise_device_error(err, kDeviceErrorIndexOutOfRange);
    v = v < 0 ? 0 : size - 1;
    if (v < 0) v = 0;
  }
  return v;
}

// out[p, j] = w[ind[p], j]: p walks the indices (any strides), j the D columns of w.
template <typename I, typename U>
__global__ void embedding_kernel(StridedIndex<1> ind_ix, const I* ind, const U* w, int64_t rs,
                                 int64_t cs, int64_t rows, U* y, int64_t n, int64_t D,
                                 uint32_t* err) {
  KILN_GRID_STRIDE(i, n) {
    const int64_t p = i / D, j = i - p * D;
    bool empty;
    const int64_t r = checked_index(ind, ind_ix.offset(p), rows, err, empty);
    y[i] = empty ? U{0} : w[r * rs + j * cs];
  }
}

// The same for rows of whole 16-byte vectors (w's columns contiguous, its row stride and D a
// multiple of 16 bytes, both pointers aligned): a warp moves one row, lane by lane, so every
// index is read once per row and every access is a coalesced 16-byte one. out has P rows of Dv
// vectors; rs_v is w's row stride in vectors.
template <typename I>
__global__ void embedding_rows_kernel(StridedIndex<1> ind_ix, const I* ind, const uint4* w,
                                      int64_t rs_v, int64_t rows, uint4* y, int64_t P,
                                      int64_t Dv, uint32_t* err) {
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; p < P;
       p += static_cast<int64_t>(gridDim.x) * blockDim.y) {
    bool empty;
    const int64_t r = checked_index(ind, ind_ix.offset(p), rows, err, empty);
    const uint4* src = w + r * rs_v;
    uint4* dst = y + p * Dv;
    for (int64_t j = threadIdx.x; j < Dv; j += blockDim.x) dst[j] = empty ? uint4{} : src[j];
  }
}

// Walks the output (gather: the index's shape; index_select: the output's shape) with two
// operands: o[0] = x offset of every position but `dim`, o[1] = the index tensor's offset of
// this position. x offset = o[0] + ind[o[1]] * dim_stride.
template <typename I, typename U>
__global__ void gather_kernel(StridedIndex<2> ix, const U* x, const I* ind, int64_t dim_stride,
                              int64_t dim_size, U* y, int64_t n, uint32_t* err) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    bool empty;
    const int64_t v = checked_index(ind, o[1], dim_size, err, empty);
    y[i] = empty ? U{0} : x[o[0] + v * dim_stride];
  }
}

Status supports_indexed(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 2)
    return invalid_argument(op_kind_name(op.kind), ": expected 2 inputs, got ", dtypes.size());
  if (dtypes[1] != DType::kInt64 && dtypes[1] != DType::kInt32)
    return unsupported(op_kind_name(op.kind), ": indices must be int32 or int64, got ",
                       dtype_name(dtypes[1]));
  return Status::Ok();
}

// Calls f(TypeTag<I>, TypeTag<U>) for the index and element types.
template <typename F>
Status dispatch_indexed(const KernelArgs& args, DType index_dtype, DType value_dtype, F&& f) {
  if (index_dtype != DType::kInt64 && index_dtype != DType::kInt32)
    return kernel_unsupported(args, "indices must be int32 or int64, got ",
                              dtype_name(index_dtype));
  dispatch_by_size(dtype_size(value_dtype), [&](auto utag) {
    if (index_dtype == DType::kInt64) {
      f(TypeTag<int64_t>{}, utag);
    } else {
      f(TypeTag<int32_t>{}, utag);
    }
  });
  return check_launch(args, "indexing kernel");
}

Status run_embedding(const KernelArgs& args) {
  const TensorView& w = args.inputs[0];
  const TensorView& ind = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (w.rank != 2) return kernel_error(args, "weight has ", w.rank, " dims, expected 2");
  const int64_t D = w.shape[1];
  if (out.dtype != w.dtype || out.numel() != ind.numel() * D)
    return kernel_error(args, "output does not match indices.shape + [", D, "]");
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const StridedIndex<1> ind_ix = make_index(ind);
  cudaStream_t stream = stream_of(args);
  uint32_t* err = error_word(args);
  const int64_t esize = static_cast<int64_t>(dtype_size(w.dtype));
  if ((w.strides[1] == 1 || D == 1) && (D * esize) % 16 == 0 && (w.strides[0] * esize) % 16 == 0 &&
      aligned_to(w.data, 16) && aligned_to(out.data, 16)) {
    const int64_t P = ind.numel(), Dv = D * esize / 16;
    constexpr int kRowsPerBlock = kBlock / 32;
    const dim3 block(32, kRowsPerBlock);
    const auto grid = static_cast<unsigned>(std::min<int64_t>((P + kRowsPerBlock - 1) / kRowsPerBlock, 65535));
    return dispatch_indexed(args, ind.dtype, w.dtype, [&](auto itag, auto) {
      using I = typename decltype(itag)::type;
      embedding_rows_kernel<I><<<grid, block, 0, stream>>>(
          ind_ix, ind.as<const I>(), w.as<const uint4>(), w.strides[0] * esize / 16, w.shape[0],
          out.as<uint4>(), P, Dv, err);
    });
  }
  return dispatch_indexed(args, ind.dtype, w.dtype, [&](auto itag, auto utag) {
    using I = typename decltype(itag)::type;
    using U = typename decltype(utag)::type;
    embedding_kernel<I, U><<<grid_for(n), kBlock, 0, stream>>>(
        ind_ix, ind.as<const I>(), w.as<const U>(), w.strides[0], w.strides[1], w.shape[0],
        out.as<U>(), n, D, err);
  });
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
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  int64_t xs[kMaxRank];
  for (int i = 0; i < x.rank; ++i) xs[i] = i == dim ? 0 : x.strides[i];
  const int64_t* strides[2] = {xs, ind.strides};
  const StridedIndex<2> ix = make_index<2>(ind.shape, ind.rank, strides);
  cudaStream_t stream = stream_of(args);
  uint32_t* err = error_word(args);
  return dispatch_indexed(args, ind.dtype, x.dtype, [&](auto itag, auto utag) {
    using I = typename decltype(itag)::type;
    using U = typename decltype(utag)::type;
    gather_kernel<I, U><<<grid_for(n), kBlock, 0, stream>>>(
        ix, x.as<const U>(), ind.as<const I>(), x.strides[dim], x.shape[dim], out.as<U>(), n,
        err);
  });
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
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  // Operand 0: x without dim; operand 1: the index tensor along dim (its 1-D stride).
  int64_t xs[kMaxRank], is[kMaxRank];
  const int64_t ind_stride = ind.rank == 1 ? ind.strides[0] : 0;
  for (int i = 0; i < x.rank; ++i) {
    xs[i] = i == dim ? 0 : x.strides[i];
    is[i] = i == dim ? ind_stride : 0;
  }
  const int64_t* strides[2] = {xs, is};
  const StridedIndex<2> ix = make_index<2>(out.shape, out.rank, strides);
  cudaStream_t stream = stream_of(args);
  uint32_t* err = error_word(args);
  return dispatch_indexed(args, ind.dtype, x.dtype, [&](auto itag, auto utag) {
    using I = typename decltype(itag)::type;
    using U = typename decltype(utag)::type;
    gather_kernel<I, U><<<grid_for(n), kBlock, 0, stream>>>(
        ix, x.as<const U>(), ind.as<const I>(), x.strides[dim], x.shape[dim], out.as<U>(), n,
        err);
  });
}

}  // namespace

void register_indexing_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kEmbedding, "cuda.embedding", supports_indexed, run_embedding});
  out.push_back({OpKind::kGather, "cuda.gather", supports_indexed, run_gather});
  out.push_back({OpKind::kIndexSelect, "cuda.index_select", supports_indexed, run_index_select});
}

}  // namespace kiln::cuda
