#pragma once

// torch.pow of float operands as ATen computes it: the exponents ATen special-cases (2, 3, 0.5,
// -0.5, -1, -2) as products, square roots and reciprocals, any other through powf. Shared by the
// CPU and CUDA binary kernels; pointwise_codegen.cpp emits the same function (kiln_pow) into the
// NVRTC source, which can include no header. A cube as a product is also far cheaper on the GPU
// than powf (GPT-2's tanh GELU computes x^3 on every activation).

#include <cmath>

#if defined(__CUDACC__)
#define KILN_POW_HD __host__ __device__ __forceinline__
#else
#define KILN_POW_HD inline
#endif

namespace kiln {

KILN_POW_HD float float_pow(float a, float b) {
  if (b == 2.0f) return a * a;
  if (b == 3.0f) return a * a * a;
  if (b == 0.5f) return sqrtf(a);
  if (b == -0.5f) return 1.0f / sqrtf(a);
  if (b == -1.0f) return 1.0f / a;
  if (b == -2.0f) return 1.0f / (a * a);
  return powf(a, b);
}

}  // namespace kiln

#undef KILN_POW_HD
