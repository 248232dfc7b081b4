// GPU machine diagnostic: does prefetching the next GEMMs' weights into L2 on a side branch of
// the CUDA graph shorten a transformer forward whose GEMMs stream their weights from device
// memory (batch 1: 128 tokens, 170 MB of weights against a 50 MB L2)?
//
// A GPT-2-shaped chain of 12 layers, each: norm-like copy, QKV GEMM, attention-like copy,
// out-projection, norm-like copy, fc1, fc2 (cuBLASLt, the heuristic's first algorithm). Each
// layer has its own weights (cold), or all share one set (warm: the bound). The prefetch
// variants add, for every GEMM, a node on a second stream that prefetches its weights once the
// chain step `lookahead` steps before it has finished (so it runs beside the steps in between),
// chained one after another, joined at the end. Each variant's graph is replayed back to back;
// the figure is the median of 7 rounds of 50 replays, in us per forward. The "group N MB"
// variants prefetch groups of consecutive GEMMs' weights up to N MB, each group forked when the
// group before it starts.
//
// H100, device runs 1-2 of session 24 (us per forward; cold / warm bound / best prefetch):
//   128 tokens   289.0 / 254.8 / 265.5 (bulk, lookahead 3, 16 blocks); groups of 6 MB 273.5
//   197 tokens   322.6 / 313.6 / 320.0
//   4096 tokens  1263.0 / 1261.4 / every prefetch variant slower (1276-1364)
//
//   nvcc -O2 -std=c++20 -arch=sm_90 tools/l2_prefetch_probe.cu -lcublasLt -o build/lab/l2_probe
//   build/lab/l2_probe [TOKENS...]

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "probe_check.h"

namespace {

constexpr int kLayers = 12, kHidden = 768;
constexpr size_t kWorkspace = size_t{32} << 20;

// Bulk prefetch into L2 (sm_90 TMA): each thread issues chunks of `chunk` bytes.
__global__ void bulk_prefetch(const char* p, size_t bytes, unsigned chunk) {
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x * chunk;
  for (size_t off = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * chunk;
       off < bytes; off += step) {
    const unsigned n = static_cast<unsigned>(bytes - off < chunk ? bytes - off : chunk);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + off), "r"(n) : "memory");
  }
}

// Plain loads that keep the data in L2 (ld.global.cg), discarded.
__global__ void touch_prefetch(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) *sink = acc;
}

// Stand-in for a layer norm or attention: reads the activation and writes a copy.
__global__ void copy_act(const uint4* src, uint4* dst, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

struct Gemm {
  int N, K;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, d;
  cublasLtMatmulAlgo_t algo;
};

Gemm make_gemm(cublasLtHandle_t lt, int M, int N, int K) {
  Gemm g{N, K};
  LK(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  LK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  LK(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  LK(cublasLtMatrixLayoutCreate(&g.a, CUDA_R_16F, K, N, K));  // W [N, K] row-major
  LK(cublasLtMatrixLayoutCreate(&g.b, CUDA_R_16F, K, M, K));  // X [M, K] row-major
  LK(cublasLtMatrixLayoutCreate(&g.d, CUDA_R_16F, N, M, N));  // Y [M, N] row-major
  cublasLtMatmulPreference_t pref;
  LK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspace;
  LK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                          sizeof(ws)));
  cublasLtMatmulHeuristicResult_t r{};
  int got = 0;
  LK(cublasLtMatmulAlgoGetHeuristic(lt, g.desc, g.a, g.b, g.d, g.d, pref, 1, &r, &got));
  if (got < 1) {
    std::fprintf(stderr, "no algorithm for %dx%dx%d\n", M, N, K);
    std::exit(1);
  }
  g.algo = r.algo;
  cublasLtMatmulPreferenceDestroy(pref);
  return g;
}

struct Step {
  int gemm = -1;           // index into gemms, or -1 for a copy
  const half* w = nullptr;  // the GEMM's weights
};

struct Variant {
  std::string name;
  bool cold = true;
  int lookahead = 0;  // 0: no prefetch
  bool bulk = true;
  int blocks = 8;
  double group_mb = 0;  // > 0: weights prefetched in groups of this many MB, each forked when
                        // the group before it starts
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> token_counts;
  for (int i = 1; i < argc; ++i) token_counts.push_back(std::atoi(argv[i]));
  if (token_counts.empty()) token_counts = {128, 197, 4096};
  cublasLtHandle_t lt;
  LK(cublasLtCreate(&lt));
  cudaStream_t s0, s1;
  CK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  void* workspace;
  CK(cudaMalloc(&workspace, kWorkspace));
  unsigned* sink;
  CK(cudaMalloc(&sink, 4));

  const int shapes[4][2] = {{3 * kHidden, kHidden}, {kHidden, kHidden}, {4 * kHidden, kHidden},
                            {kHidden, 4 * kHidden}};
  size_t layer_elems = 0;
  for (auto& s : shapes) layer_elems += static_cast<size_t>(s[0]) * s[1];
  half* weights;
  CK(cudaMalloc(&weights, layer_elems * kLayers * sizeof(half)));
  CK(cudaMemset(weights, 0, layer_elems * kLayers * sizeof(half)));
  std::printf("weights %.1f MB a layer, %.1f MB in all\n", layer_elems * 2 / 1e6,
              layer_elems * 2 * kLayers / 1e6);

  for (int M : token_counts) {
    std::vector<Gemm> gemms;
    for (auto& s : shapes) gemms.push_back(make_gemm(lt, M, s[0], s[1]));
    half *x, *y, *big;
    CK(cudaMalloc(&x, static_cast<size_t>(M) * 4 * kHidden * sizeof(half)));
    CK(cudaMalloc(&y, static_cast<size_t>(M) * 4 * kHidden * sizeof(half)));
    CK(cudaMalloc(&big, static_cast<size_t>(M) * 4 * kHidden * sizeof(half)));
    CK(cudaMemset(x, 0, static_cast<size_t>(M) * 4 * kHidden * sizeof(half)));
    const size_t act_vec = static_cast<size_t>(M) * kHidden * sizeof(half) / 16;

    std::vector<Variant> variants = {{"cold", true, 0},
                                     {"warm (bound)", false, 0}};
    for (int la : {2, 3, 4})
      for (int blocks : {4, 16}) {
        variants.push_back({"bulk la" + std::to_string(la) + " b" + std::to_string(blocks),
                            true, la, true, blocks});
      }
    variants.push_back({"bulk la3 b32", true, 3, true, 32});
    for (double mb : {6.0, 12.0, 20.0})
      variants.push_back({"group " + std::to_string(static_cast<int>(mb)) + " MB", true, 0, true,
                          0, mb});

    std::printf("== %d tokens\n", M);
    for (const Variant& v : variants) {
      std::vector<Step> steps;
      for (int l = 0; l < kLayers; ++l) {
        const half* lw = weights + (v.cold ? layer_elems * l : 0);
        const int order[7] = {-1, 0, -1, 1, -1, 2, 3};
        for (int o : order) {
          if (o < 0) {
            steps.push_back({});
            continue;
          }
          size_t before = 0;
          for (int g = 0; g < o; ++g) before += static_cast<size_t>(shapes[g][0]) * shapes[g][1];
          steps.push_back({o, lw + before});
        }
      }
      std::vector<cudaEvent_t> events;
      auto fork = [&](cudaStream_t from, cudaStream_t to) {
        cudaEvent_t e;
        CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        events.push_back(e);
        CK(cudaEventRecord(e, from));
        CK(cudaStreamWaitEvent(to, e, 0));
      };
      // Grouped: groups of consecutive GEMMs up to group_mb; group g's prefetch is forked before
      // the first step of group g-1 (group 0's before step 0).
      std::vector<std::vector<size_t>> forks(steps.size());  // step -> GEMM steps to prefetch
      if (v.group_mb > 0) {
        std::vector<std::vector<size_t>> groups(1);
        double bytes = 0;
        for (size_t j = 0; j < steps.size(); ++j) {
          if (steps[j].gemm < 0) continue;
          const Gemm& g = gemms[static_cast<size_t>(steps[j].gemm)];
          const double b = static_cast<double>(g.N) * g.K * 2;
          if (!groups.back().empty() && bytes + b > v.group_mb * 1e6) {
            groups.emplace_back();
            bytes = 0;
          }
          groups.back().push_back(j);
          bytes += b;
        }
        for (size_t gi = 0; gi < groups.size(); ++gi) {
          const size_t at = gi == 0 ? 0 : groups[gi - 1].front();
          for (size_t j : groups[gi]) forks[at].push_back(j);
        }
      }
      CK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeThreadLocal));
      bool side_used = false;
      for (size_t k = 0; k < steps.size(); ++k) {
        if (!forks[k].empty()) {
          fork(s0, s1);
          side_used = true;
          for (size_t j : forks[k]) {  // one launch per GEMM here; Kiln would merge them
            const Gemm& g = gemms[static_cast<size_t>(steps[j].gemm)];
            const size_t bytes = static_cast<size_t>(g.N) * g.K * sizeof(half);
            const unsigned chunks = static_cast<unsigned>((bytes + 16383) / 16384);
            bulk_prefetch<<<(chunks + 31) / 32, 32, 0, s1>>>(
                reinterpret_cast<const char*>(steps[j].w), bytes, 16384);
          }
        }
        if (v.lookahead > 0) {
          for (size_t j = k; j < steps.size(); ++j) {
            if (steps[j].gemm < 0 || static_cast<int>(j - k) != v.lookahead - 1) continue;
            fork(s0, s1);  // after step k-1 finishes
            side_used = true;
            const Gemm& g = gemms[static_cast<size_t>(steps[j].gemm)];
            const size_t bytes = static_cast<size_t>(g.N) * g.K * sizeof(half);
            if (v.bulk)
              bulk_prefetch<<<v.blocks, 32, 0, s1>>>(reinterpret_cast<const char*>(steps[j].w),
                                                     bytes, 32768);
            else
              touch_prefetch<<<v.blocks, 256, 0, s1>>>(
                  reinterpret_cast<const uint4*>(steps[j].w), bytes / 16, sink);
          }
        }
        const Step& st = steps[k];
        if (st.gemm < 0) {
          copy_act<<<132, 256, 0, s0>>>(reinterpret_cast<const uint4*>(x),
                                        reinterpret_cast<uint4*>(big), act_vec);
        } else {
          const Gemm& g = gemms[static_cast<size_t>(st.gemm)];
          const float alpha = 1.0f, beta = 0.0f;
          LK(cublasLtMatmul(lt, g.desc, &alpha, st.w, g.a, x, g.b, &beta, y, g.d, y, g.d, &g.algo,
                            workspace, kWorkspace, s0));
        }
      }
      if (side_used) fork(s1, s0);
      cudaGraph_t graph;
      CK(cudaStreamEndCapture(s0, &graph));
      cudaGraphExec_t exec;
      CK(cudaGraphInstantiate(&exec, graph, 0));
      for (int i = 0; i < 20; ++i) CK(cudaGraphLaunch(exec, s0));
      cudaEvent_t a, b;
      CK(cudaEventCreate(&a));
      CK(cudaEventCreate(&b));
      std::vector<float> per;
      for (int r = 0; r < 7; ++r) {
        CK(cudaEventRecord(a, s0));
        for (int i = 0; i < 50; ++i) CK(cudaGraphLaunch(exec, s0));
        CK(cudaEventRecord(b, s0));
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        per.push_back(ms * 1000 / 50);
      }
      std::sort(per.begin(), per.end());
      std::printf("  %-16s %8.1f us per forward (min %.1f)\n", v.name.c_str(), per[3], per[0]);
      CK(cudaGraphExecDestroy(exec));
      CK(cudaGraphDestroy(graph));
      for (cudaEvent_t e : events) CK(cudaEventDestroy(e));
      CK(cudaEventDestroy(a));
      CK(cudaEventDestroy(b));
    }
    CK(cudaFree(x));
    CK(cudaFree(y));
    CK(cudaFree(big));
  }
  return 0;
}
