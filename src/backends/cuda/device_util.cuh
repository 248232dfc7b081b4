#pragma once

// Device-side helpers for the Kiln CUDA kernels (.cu only): storage types per dtype, conversions
// with the CPU backend's rounding rules, host dtype dispatch, strided index decomposition with
// dim coalescing, warp/block reductions, grid sizing.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "backends/cuda/cuda_util.h"

namespace kiln::cuda {

// ---- storage types ----------------------------------------------------------------------------

using half = __half;
using bf16 = __nv_bfloat16;

template <typename T>
inline constexpr bool kIsHalfLike = std::is_same_v<T, half> || std::is_same_v<T, bf16>;
template <typename T>
inline constexpr bool kIsFloatLike = std::is_same_v<T, float> || kIsHalfLike<T>;
template <typename T>
inline constexpr bool kIsIntLike = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The type kernels compute in: float for float/fp16/bf16, the type itself otherwise.
template <typename T>
using ComputeT = std::conditional_t<kIsHalfLike<T>, float, T>;

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  if constexpr (std::is_same_v<T, half>) {
    return __half2float(v);
  } else if constexpr (std::is_same_v<T, bf16>) {
    return __bfloat162float(v);
  } else {
    return static_cast<float>(v);
  }
}

// Saturating float -> integer, truncating toward zero, NaN -> 0 (the CPU backend's rule).
template <typename T, typename S>
__device__ __forceinline__ T saturate_int(S v) {
  constexpr T lo = std::numeric_limits<T>::min();
  constexpr T hi = std::numeric_limits<T>::max();
  if (v != v) return T{0};
  if (v <= static_cast<S>(lo)) return lo;
  if (v >= static_cast<S>(hi)) return hi;
  return static_cast<T>(v);
}

// float/double -> storage type: floats round to nearest even, ints saturate, bool is v != 0.
template <typename T, typename S>
__device__ __forceinline__ T from_floating(S v) {
  if constexpr (std::is_same_v<T, half>) {
    return __float2half_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, bf16>) {
    return __float2bfloat16_rn(static_cast<float>(v));
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != S{0};
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    return saturate_int<T>(v);
  }
}
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  return from_floating<T>(v);
}

// Storage <-> compute type (identity except for fp16/bf16).
template <typename T>
__device__ __forceinline__ ComputeT<T> load(T v) {
  if constexpr (kIsHalfLike<T>) {
    return to_float(v);
  } else {
    return v;
  }
}
template <typename T>
__device__ __forceinline__ T store(ComputeT<T> v) {
  if constexpr (kIsHalfLike<T>) {
    return from_float<T>(v);
  } else {
    return v;
  }
}

// Element `off` of a tensor whose dtype is known only at run time, as float (parameters and
// masks, which may have another float dtype than the data).
__device__ __forceinline__ float load_float_dyn(const void* p, DType dtype, int64_t off) {
  switch (dtype) {
    case DType::kFloat16: return __half2float(static_cast<const half*>(p)[off]);
    case DType::kBFloat16: return __bfloat162float(static_cast<const bf16*>(p)[off]);
    case DType::kInt64: return static_cast<float>(static_cast<const int64_t*>(p)[off]);
    case DType::kInt32: return static_cast<float>(static_cast<const int32_t*>(p)[off]);
    case DType::kInt8: return static_cast<float>(static_cast<const int8_t*>(p)[off]);
    case DType::kUInt8: return static_cast<float>(static_cast<const uint8_t*>(p)[off]);
    case DType::kBool: return static_cast<const bool*>(p)[off] ? 1.0f : 0.0f;
    default: return static_cast<const float*>(p)[off];
  }
}

__device__ __forceinline__ void raise_device_error(uint32_t* word, uint32_t bit) {
  if (word) atomicOr(word, bit);
}

// ---- host dtype dispatch ----------------------------------------------------------------------

template <typename T>
struct TypeTag {
  using type = T;
};

// f(TypeTag<T>{}) with T the storage type of `dtype`; every branch returns the same type.
template <typename F>
inline decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat16: return f(TypeTag<half>{});
    case DType::kBFloat16: return f(TypeTag<bf16>{});
    case DType::kInt64: return f(TypeTag<int64_t>{});
    case DType::kInt32: return f(TypeTag<int32_t>{});
    case DType::kInt8: return f(TypeTag<int8_t>{});
    case DType::kUInt8: return f(TypeTag<uint8_t>{});
    case DType::kBool: return f(TypeTag<bool>{});
    case DType::kFloat32:
    default: return f(TypeTag<float>{});
  }
}
// float32/float16/bfloat16 only; other dtypes return `unsupported_result`.
template <typename R, typename F>
inline R dispatch_floating(DType dtype, R unsupported_result, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(TypeTag<float>{});
    case DType::kFloat16: return f(TypeTag<half>{});
    case DType::kBFloat16: return f(TypeTag<bf16>{});
    default: return unsupported_result;
  }
}
// An unsigned integer of `bytes` size: for kernels that only move elements.
template <typename F>
inline decltype(auto) dispatch_by_size(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: return f(TypeTag<uint8_t>{});
    case 2: return f(TypeTag<uint16_t>{});
    case 4: return f(TypeTag<uint32_t>{});
    default: return f(TypeTag<uint64_t>{});
  }
}

// ---- strided indexing -------------------------------------------------------------------------

// N operands walked over one logical shape: element `i` (row-major) of the shape sits at
// offsets[k] = sum_d idx_d * strides[k][d] in operand k. Built on the host by make_index, which
// drops size-1 dims and merges dims that are contiguous in every operand, so a plain contiguous
// walk becomes rank 1 (no divisions). Passed to kernels by value.
template <int N>
struct StridedIndex {
  int rank = 0;
  int64_t shape[kMaxRank] = {};
  int64_t strides[N][kMaxRank] = {};

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&o)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = 0;
    if (rank == 1) {
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] = i * strides[k][0];
      return;
    }
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t s = shape[d];
      const int64_t q = i / s;
      const int64_t r = i - q * s;
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) o[k] += r * strides[k][d];
    }
  }
  __device__ __forceinline__ int64_t offset(int64_t i) const {
    int64_t o[N];
    offsets(i, o);
    return o[0];
  }
};

// The index over `shape` (rank dims) for operands with the given stride arrays.
template <int N>
inline StridedIndex<N> make_index(const int64_t* shape, int rank,
                                  const int64_t* const (&strides)[N]) {
  StridedIndex<N> ix;
  // Keep the non-1 dims, innermost first, merging a dim into the one inside it when every
  // operand steps over the inner dim exactly.
  int64_t sh[kMaxRank];
  int64_t st[N][kMaxRank];
  int r = 0;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (r > 0) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        if (strides[k][d] != st[k][r - 1] * sh[r - 1]) merge = false;
      if (merge) {
        sh[r - 1] *= shape[d];
        continue;
      }
    }
    sh[r] = shape[d];
    for (int k = 0; k < N; ++k) st[k][r] = strides[k][d];
    ++r;
  }
  ix.rank = r;
  for (int i = 0; i < r; ++i) {  // back to outermost-first
    ix.shape[i] = sh[r - 1 - i];
    for (int k = 0; k < N; ++k) ix.strides[k][i] = st[k][r - 1 - i];
  }
  return ix;
}
inline StridedIndex<1> make_index(const TensorView& v) {
  const int64_t* s[1] = {v.strides};
  return make_index<1>(v.shape, v.rank, s);
}

// ---- launch geometry --------------------------------------------------------------------------

inline constexpr int kBlock = 256;

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(int64_t n, int block = kBlock) {
  int64_t g = (n + block - 1) / block;
  if (g < 1) g = 1;
  if (g > (1 << 20)) g = 1 << 20;
  return static_cast<unsigned>(g);
}

#define KILN_GRID_STRIDE(i, n)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ---- reductions -------------------------------------------------------------------------------

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. `scratch` holds 32 T in shared memory; the call ends with a barrier so it can be reused.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  __syncthreads();
  return r;
}

struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
// max / min that propagate NaN (torch.amax semantics).
struct NanMaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return (a != a || a > b) ? a : b;
  }
};
struct NanMinOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return (a != a || a < b) ? a : b;
  }
};

}  // namespace kiln::cuda
