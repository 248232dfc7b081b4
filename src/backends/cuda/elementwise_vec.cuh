#pragma once

// Fast paths for contiguous elementwise kernels (.cu only): each thread moves one 16-byte vector
// of the wider operand per step (8 halves, 4 floats), grid-stride, with a scalar tail. The index
// is a plain element count: no per-element division. Callers check `vec_ok` first (run-time
// alignment of every pointer) and keep their strided kernel for everything else.

#include <cstdint>

#include "backends/cuda/device_util.cuh"

namespace kiln::cuda {

// Elements per vector for an op reading In and writing Out: 16 bytes of the wider type.
template <typename In, typename Out = In>
inline constexpr int kVecWidth = 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));

// N elements of T loaded or stored with one instruction of N * sizeof(T) bytes.
template <typename T, int N>
struct alignas(sizeof(T) * N) VecOf {
  T v[N];
};

// Whether `ix` (make_index output) walks every operand contiguously: rank 0 (one element) or
// rank 1 with every stride 1.
template <int N>
inline bool is_flat(const StridedIndex<N>& ix) {
  if (ix.rank == 0) return true;
  if (ix.rank != 1) return false;
  for (int k = 0; k < N; ++k)
    if (ix.strides[k][0] != 1) return false;
  return true;
}

// Blocks for a vectorized grid-stride loop over nvec vectors (at least one, for the tail).
inline unsigned vec_grid(int64_t nvec) { return grid_for(nvec > 0 ? nvec : 1); }

// y[i] = f(x[i]) for i < n. x and y aligned to their vector sizes.
template <typename In, typename Out, typename F>
__global__ void map_vec_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n, F f) {
  constexpr int V = kVecWidth<In, Out>;
  using VI = VecOf<In, V>;
  using VO = VecOf<Out, V>;
  const int64_t nvec = n / V;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nvec; i += stride) {
    const VI a = reinterpret_cast<const VI*>(x)[i];
    VO o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = f(a.v[k]);
    reinterpret_cast<VO*>(y)[i] = o;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = f(x[i]);
}

// y[i] = f(a[i], b[i]) for i < n.
template <typename In, typename Out, typename F>
__global__ void zip_vec_kernel(const In* __restrict__ a, const In* __restrict__ b,
                               Out* __restrict__ y, int64_t n, F f) {
  constexpr int V = kVecWidth<In, Out>;
  using VI = VecOf<In, V>;
  using VO = VecOf<Out, V>;
  const int64_t nvec = n / V;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nvec; i += stride) {
    const VI va = reinterpret_cast<const VI*>(a)[i];
    const VI vb = reinterpret_cast<const VI*>(b)[i];
    VO o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = f(va.v[k], vb.v[k]);
    reinterpret_cast<VO*>(y)[i] = o;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) y[i] = f(a[i], b[i]);
}

// A contiguous [n / row_len, row_len] operand `full` with a row `row` of row_len elements
// broadcast over it (a bias), or a single element (row_len 1). y[i] = f(full[i], row[i % len])
// (row_is_b) or f(row[i % len], full[i]). row_len is 1 or a multiple of the vector width; the
// column is computed once per vector, in 32 bits when n < 2^32 (Index = uint32_t).
template <typename In, typename Out, typename Index, typename F>
__global__ void row_broadcast_vec_kernel(const In* __restrict__ full, const In* __restrict__ row,
                                         Out* __restrict__ y, int64_t n, int64_t row_len,
                                         bool row_is_b, F f) {
  constexpr int V = kVecWidth<In, Out>;
  using VI = VecOf<In, V>;
  using VO = VecOf<Out, V>;
  const int64_t nvec = n / V;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const Index len = static_cast<Index>(row_len);
  const In scalar = row[0];
  for (int64_t i = tid; i < nvec; i += stride) {
    const VI va = reinterpret_cast<const VI*>(full)[i];
    VI vb;
    if (row_len == 1) {
#pragma unroll
      for (int k = 0; k < V; ++k) vb.v[k] = scalar;
    } else {
      const Index col = static_cast<Index>(i * V) % len;
      vb = *reinterpret_cast<const VI*>(row + col);
    }
    VO o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = row_is_b ? f(va.v[k], vb.v[k]) : f(vb.v[k], va.v[k]);
    reinterpret_cast<VO*>(y)[i] = o;
  }
  for (int64_t i = nvec * V + tid; i < n; i += stride) {
    const In r = row[static_cast<Index>(i) % len];
    y[i] = row_is_b ? f(full[i], r) : f(r, full[i]);
  }
}

}  // namespace kiln::cuda
