// The conv epilogue when cuDNN's fused conv-bias-activation call does not serve a conv:
// y = act(y + bias[c] + z) in one pass over the conv's output (conv.cpp).

#include "backends/cuda/conv_tactics.h"
#include "backends/cuda/device_util.cuh"

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

}  // namespace

Status launch_conv_epilogue(const KernelArgs& args, const ConvEpilogue& e) {
  const int64_t n = e.outer * e.channels * e.inner;
  if (n == 0) return Status::Ok();
  if (e.channels <= 0 || e.inner <= 0) return kernel_error(args, "bad epilogue geometry");
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(e.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv_epilogue_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
        static_cast<T*>(e.y), n, e.channels, e.inner, static_cast<const T*>(e.bias),
        static_cast<const T*>(e.residual), e.relu);
    return true;
  });
  if (!served) return kernel_unsupported(args, "conv epilogue on ", dtype_name(e.dtype));
  return check_launch(args, "conv epilogue kernel");
}

}  // namespace kiln::cuda
