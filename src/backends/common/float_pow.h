#pragma once

// torch.pow of float operands as ATen computes it: the exponents ATen special-cases (2, 3, 0.5,
// -0.5, -1, -2) as products, square roots and reciprocals, any other through powf. Shared by the
// CPU and CUDA binary kernels; pointwise_codegen.cpp emits the same definition (kiln_pow) into the
// NVRTC source, which can include no header, through KILN_FLOAT_POW_SOURCE. A cube as a product
// is also far cheaper on the GPU than powf (GPT-2's tanh GELU computes x^3 on every activation).

#include <cmath>

#if defined(__CUDACC__)
#define KILN_POW_HD __host__ __device__ __forceinline__
#else
#define KILN_POW_HD inline
#endif

namespace kiln {

// The definition, once: expanded here for C++ and CUDA, and stringified by pointwise_codegen.cpp
// into the NVRTC source (KILN_FLOAT_POW_SOURCE(__device__ __forceinline__, kiln_pow)).
#define KILN_FLOAT_POW_DEFINITION(QUALIFIERS, NAME) \
  QUALIFIERS float NAME(float a, float b) {          \
    if (b == 2.0f) return a * a;                     \
    if (b == 3.0f) return a * a * a;                 \
    if (b == 0.5f) return sqrtf(a);                  \
    if (b == -0.5f) return 1.0f / sqrtf(a);          \
    if (b == -1.0f) return 1.0f / a;                 \
    if (b == -2.0f) return 1.0f / (a * a);           \
    return powf(a, b);                               \
  }
#define KILN_FLOAT_POW_STRINGIFY(...) #__VA_ARGS__
#define KILN_FLOAT_POW_EXPAND_AND_STRINGIFY(...) KILN_FLOAT_POW_STRINGIFY(__VA_ARGS__)
#define KILN_FLOAT_POW_SOURCE(QUALIFIERS, NAME) \
  KILN_FLOAT_POW_EXPAND_AND_STRINGIFY(KILN_FLOAT_POW_DEFINITION(QUALIFIERS, NAME))

KILN_FLOAT_POW_DEFINITION(KILN_POW_HD, float_pow)

}  // namespace kiln

#undef KILN_POW_HD
