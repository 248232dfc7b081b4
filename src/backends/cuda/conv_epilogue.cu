// The conv epilogue when cuDNN's fused conv-bias-activation call does not serve a conv:
// y = act(y + bias[c] + z) in one pass over the conv's output (conv.cpp).

#include "backends/cuda/conv_tactics.h"
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

template <typename T>
__global__ void conv_epilogue_kernel(T* y, int64_t n, int64_t C, int64_t inner, const T* bias,
                                     const T* z, bool relu) {
  KILN_GRID_STRIDE(i, n) {
    float v = to_float(y[i]);
    if (bias) v += to_float(bias[(i / inner) % C]);
    if (z) v += to_float(z[i]);
    if (relu) v = v > 0.0f ? v : (v != v ? v : 0.0f);  // NaN stays NaN, as torch.relu
    y[i] = from_float<T>(v);
  }
}

// inner == 1 (NHWC) with C % V == 0 and y, bias, residual 16-byte aligned: thread i handles the V
// consecutive channels of vector i (16-byte loads and stores; a vector never crosses a pixel), in
// float with the scalar kernel's order of operations. Index is uint32_t when the vector count
// fits (no 64-bit division for the channel), uint64_t otherwise. y and z may alias (no restrict).
template <typename T, typename Index>
__global__ void conv_epilogue_vec_kernel(T* y, Index nvec, Index cvec, const T* bias, const T* z,
                                         bool relu) {
  constexpr int V = kVecWidth<T>;
  using Vec = VecOf<T, V>;
  const Index stride = static_cast<Index>(gridDim.x) * blockDim.x;
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec;
       i += stride) {
    Vec a = reinterpret_cast<const Vec*>(y)[i];
    float v[V];
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = to_float(a.v[k]);
    if (bias) {
      const Vec b = reinterpret_cast<const Vec*>(bias)[i % cvec];
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += to_float(b.v[k]);
    }
    if (z) {
      const Vec r = reinterpret_cast<const Vec*>(z)[i];
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += to_float(r.v[k]);
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      if (relu) v[k] = v[k] > 0.0f ? v[k] : (v[k] != v[k] ? v[k] : 0.0f);  // NaN stays NaN
      a.v[k] = from_float<T>(v[k]);
    }
    reinterpret_cast<Vec*>(y)[i] = a;
  }
}

template <typename T>
bool vec_epilogue_applies(const ConvEpilogue& e) {
  constexpr int V = kVecWidth<T>;
  return e.inner == 1 && e.channels % V == 0 && aligned_to(e.y, 16) &&
         (!e.bias || aligned_to(e.bias, 16)) && (!e.residual || aligned_to(e.residual, 16));
}

}  // namespace

Status launch_conv_epilogue(const KernelArgs& args, const ConvEpilogue& e) {
  const int64_t n = e.outer * e.channels * e.inner;
  if (n == 0) return Status::Ok();
  if (e.channels <= 0 || e.inner <= 0) return kernel_error(args, "bad epilogue geometry");
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(e.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* y = static_cast<T*>(e.y);
    const T* bias = static_cast<const T*>(e.bias);
    const T* z = static_cast<const T*>(e.residual);
    if (vec_epilogue_applies<T>(e)) {
      constexpr int V = kVecWidth<T>;
      const int64_t nvec = n / V, cvec = e.channels / V;
      if (nvec < (int64_t{1} << 31)) {
        conv_epilogue_vec_kernel<T, uint32_t><<<grid_for(nvec), kBlock, 0, stream>>>(
            y, static_cast<uint32_t>(nvec), static_cast<uint32_t>(cvec), bias, z, e.relu);
      } else {
        conv_epilogue_vec_kernel<T, uint64_t><<<grid_for(nvec), kBlock, 0, stream>>>(
            y, static_cast<uint64_t>(nvec), static_cast<uint64_t>(cvec), bias, z, e.relu);
      }
      return true;
    }
    conv_epilogue_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
        static_cast<T*>(e.y), n, e.channels, e.inner, static_cast<const T*>(e.bias),
        static_cast<const T*>(e.residual), e.relu);
    return true;
  });
  if (!served) return kernel_unsupported(args, "conv epilogue on ", dtype_name(e.dtype));
  return check_launch(args, "conv epilogue kernel");
}

}  // namespace kiln::cuda
