// tools/cutlass_sweep: times Kiln's CUTLASS sm90a GEMM configurations (epilogues: identity,
// Kiln's exact gelu_exp2 and a tanh.approx cost probe, each with the bias) against cuBLASLt's best
// bias-epilogue algorithm on the transformer GEMM shapes of the benchmark, fp16. A GPU machine
// diagnostic: tools/cutlass_sweep/run.sh builds and runs it.

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <iterator>
#include <cstdio>
#include <vector>

#include "backends/cuda/sm90a/linear_gelu_cutlass.h"

using kiln::cuda::sm90a::GeluGemm;
using SweepFn = double (*)(const GeluGemm&, void*, size_t, const char**);

// Weak: a configuration whose compile failed is reported as missing, not a link error.
#define DECL(c, a) \
  extern "C" __attribute__((weak)) double sweep_c##c##_a##a(const GeluGemm&, void*, size_t, const char**);
#define DECL_CFG(c) DECL(c, 0) DECL(c, 1) DECL(c, 2)
DECL_CFG(0) DECL_CFG(1) DECL_CFG(2) DECL_CFG(3) DECL_CFG(4) DECL_CFG(5) DECL_CFG(6) DECL_CFG(7)
DECL_CFG(8) DECL_CFG(9) DECL_CFG(10)
#define REF(c) sweep_c##c##_a0, sweep_c##c##_a1, sweep_c##c##_a2
static const SweepFn kFns[] = {REF(0), REF(1), REF(2), REF(3), REF(4), REF(5), REF(6), REF(7),
                               REF(8), REF(9), REF(10)};

__global__ void fill(half* p, size_t n, unsigned seed, float scale) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    p[i] = __float2half(((h & 0xffff) / 65535.0f - 0.5f) * scale);
  }
}

// The largest |a - b| over n halves, into *out (one block; a diagnostic, not fast).
__global__ void max_abs_diff(const half* a, const half* b, size_t n, float* out) {
  __shared__ float best[256];
  float m = 0.f;
  for (size_t i = threadIdx.x; i < n; i += blockDim.x)
    m = fmaxf(m, fabsf(__half2float(a[i]) - __half2float(b[i])));
  best[threadIdx.x] = m;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s) best[threadIdx.x] = fmaxf(best[threadIdx.x], best[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = best[0];
}

// cuBLASLt's fastest of its first 8 heuristic algorithms for y = x w^T + bias, in microseconds.
double cublaslt_us(cublasLtHandle_t lt, const GeluGemm& p, void* ws, size_t ws_bytes,
                   cublasLtEpilogue_t epi) {
  cublasLtMatmulDesc_t desc;
  cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias);
  cublasLtMatrixLayout_t a, b, d;
  cublasLtMatrixLayoutCreate(&a, CUDA_R_16F, p.K, p.N, p.ldw);
  cublasLtMatrixLayoutCreate(&b, CUDA_R_16F, p.K, p.M, p.ldx);
  cublasLtMatrixLayoutCreate(&d, CUDA_R_16F, p.N, p.M, p.N);
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                       sizeof ws_bytes);
  cublasLtMatmulHeuristicResult_t res[8];
  int n = 0;
  cublasLtMatmulAlgoGetHeuristic(lt, desc, a, b, d, d, pref, 8, res, &n);
  const float one = 1.f, zero = 0.f;
  double best = 1e30;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; i < n; ++i) {
    auto go = [&] {
      return cublasLtMatmul(lt, desc, &one, p.w, a, p.x, b, &zero, p.y, d, p.y, d, &res[i].algo,
                            ws, ws_bytes, nullptr);
    };
    if (go() != CUBLAS_STATUS_SUCCESS) continue;
    double t[5];
    for (int r = 0; r < 5; ++r) {
      cudaEventRecord(e0);
      for (int j = 0; j < 20; ++j) go();
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      t[r] = ms * 1000.0 / 20;
    }
    std::sort(t, t + 5);
    best = std::min(best, t[2]);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(d);
  cublasLtMatmulDescDestroy(desc);
  return best;
}

int main() {
  struct Shape { const char* name; int64_t M, N, K; };
  const Shape shapes[] = {{"vit b32 fc1", 6304, 3072, 768}, {"bert/gpt2 b32 fc1", 4096, 3072, 768},
                          {"vit b32 qkv", 6304, 2304, 768}, {"vit b32 fc2", 6304, 768, 3072},
                          {"gpt2 b32 out-proj", 4096, 768, 768}, {"vit b1 fc1", 197, 3072, 768}};
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const size_t max_elems = 6304 * 3072;
  half *x, *w, *bias, *y;
  cudaMalloc(&x, max_elems * 2);
  cudaMalloc(&w, 3072 * 3072 * 2);
  cudaMalloc(&bias, 3072 * 2);
  cudaMalloc(&y, max_elems * 2);
  const size_t ws_bytes = size_t{64} << 20;
  void* ws;
  cudaMalloc(&ws, ws_bytes);
  fill<<<1024, 256>>>(x, max_elems, 1, 4.f);
  fill<<<1024, 256>>>(w, 3072 * 3072, 2, 0.1f);
  fill<<<16, 256>>>(bias, 3072, 3, 1.f);
  half* ref[3];
  for (half*& r : ref) cudaMalloc(&r, max_elems * 2);
  float* d_diff;
  cudaMalloc(&d_diff, sizeof(float));
  cublasLtHandle_t lt;
  cublasLtCreate(&lt);
  for (const Shape& s : shapes) {
    GeluGemm p;
    p.M = s.M; p.N = s.N; p.K = s.K; p.ldx = s.K; p.ldw = s.K;
    p.x = x; p.w = w; p.bias = bias; p.y = y; p.sm_count = sms;
    const double flop = 2.0 * s.M * s.N * s.K;
    std::printf("== %s: M %lld N %lld K %lld\n", s.name, (long long)s.M, (long long)s.N,
                (long long)s.K);
    const double lt_us = cublaslt_us(lt, p, ws, ws_bytes, CUBLASLT_EPILOGUE_BIAS);
    std::printf("  %8.2f us %6.0f TFLOP/s  cublaslt bias (best of 8)\n", lt_us, flop / lt_us * 1e-6);
    const double lt_gelu = cublaslt_us(lt, p, ws, ws_bytes, CUBLASLT_EPILOGUE_GELU_BIAS);
    std::printf("  %8.2f us %6.0f TFLOP/s  cublaslt gelu_tanh+bias (best of 8)\n", lt_gelu,
                flop / lt_gelu * 1e-6);
    // Each activation's first configuration that runs gives the reference output the later
    // ones are checked against (the largest difference is printed beside their time).
    bool have_ref[3] = {false, false, false};
    for (size_t fi = 0; fi < std::size(kFns); ++fi) {
      const SweepFn f = kFns[fi];
      if (f == nullptr) {
        std::printf("  %8s    %6s           (a configuration that did not compile)\n", "-", "-");
        continue;
      }
      const char* name = "?";
      const double us = f(p, ws, ws_bytes, &name);
      const cudaError_t e = cudaGetLastError();
      if (us < 0 || e != cudaSuccess)
        std::printf("  %8s    %6s           %s: refused (%g, %s)\n", "-", "-", name, us,
                    cudaGetErrorString(e));
      else {
        const size_t act = fi % 3, n = static_cast<size_t>(s.M * s.N);
        float diff = -1.f;
        if (!have_ref[act]) {
          cudaMemcpy(ref[act], y, n * 2, cudaMemcpyDeviceToDevice);
          have_ref[act] = true;
        } else {
          max_abs_diff<<<1, 256>>>(ref[act], y, n, d_diff);
          cudaMemcpy(&diff, d_diff, sizeof diff, cudaMemcpyDeviceToHost);
        }
        std::printf("  %8.2f us %6.0f TFLOP/s  %s%s\n", us, flop / us * 1e-6, name,
                    diff < 0 ? "  (reference)" : (diff > 0.05f ? "  MISMATCH" : ""));
        if (diff >= 0) std::printf("             max |y - reference| %g\n", diff);
      }
    }
  }
  return 0;
}
