#pragma once

// Exact (erf) gelu for GEMM epilogues, as one float function the host and the device share: the
// CUTLASS epilogue (sm90a/linear_gelu_cutlass.cuh) applies it to every output element, and the
// CPU tests check its accuracy against a double-precision reference without a GPU. No CUDA or
// CUTLASS header: under nvcc the function is __host__ __device__, elsewhere plain C++.
//
// Why not 0.5 x (1 + erff(x / sqrt 2)): in an epilogue the cost grows with the FP ops per
// element (about 1 us per op on ViT-B/16 b32's fc1, 6304x3072x768, in tools/cutlass_sweep), and
// CUDA's erff takes one of two polynomial paths by |x|, so a warp of random data runs both.

#include <cmath>

#if defined(__CUDACC__)
#define KILN_GELU_HD __host__ __device__ __forceinline__
#else
#define KILN_GELU_HD inline
#endif

namespace kiln::cuda {

// gelu(x) = x Phi(x) with one MUFU op (exp2) and ten FP ops: Phi(-|x|) = 2^E(|x|), E a degree-7
// polynomial fitted (least squares reweighted toward minimax) to log2(erfc(|x| / sqrt 2) / 2) on
// [0, 6], within 4.8e-6, and gelu = max(x, 0) - |x| Phi(-|x|) for either sign (no cancellation
// for x < 0). |x| is clamped to 6: past it the result is within 6e-9 of gelu (+inf stays +inf,
// -inf gives -6e-9); a NaN stays NaN.
// Accuracy in float (tests/cpp/backends/gelu_math_test.cpp): relative error below 5e-6 where
// |x| < 5; rounded to fp16, about 0.2% of N(0, 1.5^2) samples differ from the exact gelu's fp16
// (PyTorch's float formula: about 0.3%).
KILN_GELU_HD float gelu_exp2(float x) {
  const float a = fminf(fabsf(x), 6.0f);
  float e = -1.835291641e-06f;
  e = fmaf(e, a, 6.160883640e-05f);
  e = fmaf(e, a, -9.306159336e-04f);
  e = fmaf(e, a, 8.508282714e-03f);
  e = fmaf(e, a, -5.396094918e-02f);
  e = fmaf(e, a, -4.584634304e-01f);
  e = fmaf(e, a, -1.151251435e+00f);
  e = fmaf(e, a, -9.999952316e-01f);
  float h, pos;  // h = Phi(-|x|); pos = max(x, 0), keeping a NaN (fmaxf would answer 0)
#if defined(__CUDA_ARCH__)
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(h) : "f"(e));
  asm("max.NaN.f32 %0, %1, 0f00000000;" : "=f"(pos) : "f"(x));
#else
  h = std::exp2(e);
  pos = x < 0.0f ? 0.0f : x;
#endif
  return fmaf(-a, h, pos);
}

}  // namespace kiln::cuda

#undef KILN_GELU_HD
