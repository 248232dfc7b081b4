#pragma once

// Host-side helpers shared by the CUDA kernels (.cu and .cpp): stream and state access, error
// Statuses, shape checks, and the launchers other families reuse (strided copies, casts into a
// contiguous buffer, fills, per-channel bias). Includes the CUDA runtime header: only files of
// this backend include it.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "backends/common/tensor_view.h"
#include "backends/cuda/cuda_kernels.h"
#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln::cuda {

inline cudaStream_t stream_of(const KernelArgs& args) {
  return static_cast<cudaStream_t>(args.stream);
}
inline CudaBackendState* state_of(const KernelArgs& args) {
  return static_cast<CudaBackendState*>(args.backend);
}
// The device error word of the context, or nullptr when the call has no backend state.
inline uint32_t* error_word(const KernelArgs& args) {
  CudaBackendState* s = state_of(args);
  return s ? s->device_errors : nullptr;
}

// ---- errors ---------------------------------------------------------------------------------

inline const char* op_label(const KernelArgs& args) { return args.op_name ? args.op_name : "kernel"; }

// "<op>: <message>" as invalid_argument / unsupported.
template <typename... Args>
Status kernel_error(const KernelArgs& args, const Args&... parts) {
  return invalid_argument(op_label(args), ": ", parts...);
}
template <typename... Args>
Status kernel_unsupported(const KernelArgs& args, const Args&... parts) {
  return unsupported(op_label(args), ": ", parts...);
}
// A CUDA runtime error as kCudaError: "<op>: <what>: <cuda message>".
inline Status cuda_status(const KernelArgs& args, cudaError_t err, const char* what) {
  return Status(StatusCode::kCudaError,
                str(op_label(args), ": ", what, ": ", cudaGetErrorName(err), " (",
                    cudaGetErrorString(err), ")"));
}
// After a launch: the launch error (a bad configuration), if any, naming the op.
inline Status check_launch(const KernelArgs& args, const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return cuda_status(args, err, what);
  return Status::Ok();
}
// The same for CUDA runtime calls that return an error code.
#define KILN_CUDA_CHECK(args, expr, what)                                  \
  do {                                                                     \
    cudaError_t kiln_cuda_err_ = (expr);                                   \
    if (kiln_cuda_err_ != cudaSuccess)                                     \
      return ::kiln::cuda::cuda_status((args), kiln_cuda_err_, (what));    \
  } while (0)

// ---- shapes ---------------------------------------------------------------------------------

inline bool same_shape(const TensorView& a, const TensorView& b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

// `in` viewed with `shape` (numpy broadcasting): missing leading dims and size-1 dims get
// stride 0. False when the shapes do not broadcast.
inline bool broadcast_view(const TensorView& in, const int64_t* shape, int rank, TensorView& out) {
  if (in.rank > rank) return false;
  out = in;
  out.rank = rank;
  const int lead = rank - in.rank;
  for (int i = 0; i < rank; ++i) {
    out.shape[i] = shape[i];
    if (i < lead) {
      out.strides[i] = 0;
      continue;
    }
    const int64_t d = in.shape[i - lead];
    if (d == shape[i]) {
      out.strides[i] = in.strides[i - lead];
    } else if (d == 1) {
      out.strides[i] = 0;
    } else {
      return false;
    }
  }
  return true;
}
inline bool broadcast_view(const TensorView& in, const TensorView& like, TensorView& out) {
  return broadcast_view(in, like.shape, like.rank, out);
}

// A contiguous view of `shape` over `data`.
inline TensorView contiguous_view(void* data, DType dtype, const int64_t* shape, int rank) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.rank = rank;
  for (int i = 0; i < rank; ++i) v.shape[i] = shape[i];
  set_contiguous_strides(v);
  return v;
}

inline size_t align_up(size_t n, size_t a = 256) { return (n + a - 1) / a * a; }
inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Whether the batch dims [0, nb) of v (broadcast to `shape`) step by one uniform stride.
inline bool uniform_batch(const TensorView& v, const int64_t* shape, int nb, int64_t& stride) {
  int64_t prod = 1;
  bool found = false;
  stride = 0;
  for (int d = nb - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (!found) {
      stride = v.strides[d];
      found = true;
    } else if (v.strides[d] != stride * prod) {
      return false;
    }
    prod *= shape[d];
  }
  return true;
}

// Tactic data that is one index (a cuDNN plan, a CUTLASS configuration) behind the magic word of
// the kernel that reads it, so a kernel never takes another kernel's data for its own.
inline std::vector<uint8_t> encode_tagged_index(uint32_t magic, int64_t index) {
  std::vector<uint8_t> out(sizeof(magic) + sizeof(index));
  std::memcpy(out.data(), &magic, sizeof(magic));
  std::memcpy(out.data() + sizeof(magic), &index, sizeof(index));
  return out;
}
// The index in `data`; -1 when `data` is not an index behind `magic`.
inline int64_t decode_tagged_index(uint32_t magic, std::span<const uint8_t> data) {
  uint32_t found = 0;
  int64_t index = -1;
  if (data.size() != sizeof(found) + sizeof(index)) return -1;
  std::memcpy(&found, data.data(), sizeof(found));
  if (found != magic) return -1;
  std::memcpy(&index, data.data() + sizeof(found), sizeof(index));
  return index;
}

// ---- launchers shared between families (defined in the .cu files named) ---------------------

// Copies strided `src` into strided `dst` element by element (same dtype and shape; any strides,
// including 0 in src and negative ones). Bit-exact. (shape.cu)
Status launch_copy(const KernelArgs& args, const TensorView& src, const TensorView& dst);
// Copies `src` (any strides, any dtype) into `dst`, a contiguous buffer of src.numel() elements
// of `dst_dtype`, converting per the cast rules. (cast.cu)
Status launch_convert(const KernelArgs& args, const TensorView& src, void* dst, DType dst_dtype);
// Fills n elements of `dtype` at dst with `value` (converted per the cast rules). (shape.cu)
Status launch_fill(const KernelArgs& args, void* dst, DType dtype, int64_t n, double value);
// y[n, c, i] += bias[c] for contiguous float y of [N, C, inner] (bias any float dtype and
// strides). (norm.cu)
Status launch_channel_bias(const KernelArgs& args, void* y, DType dtype, int64_t N, int64_t C,
                           int64_t inner, const TensorView& bias);

}  // namespace kiln::cuda
