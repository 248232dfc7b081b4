// GPU machine diagnostic: how much faster than cuBLASLt's heuristic list (what Kiln's builder
// times) the other configurations cuBLASLt accepts run, for the transformer linears of the
// benchmark models at batch 32.
//
// Three candidate sets per shape, each timed with events (median of back-to-back runs):
//   heuristic  cublasLtMatmulAlgoGetHeuristic, best fit, up to 32 results (the builder's list);
//   by-id      the same heuristic limited to each algorithm id of cublasLtMatmulAlgoGetIds;
//   mutations  the heuristic's algorithms with every tile, stages and custom option their
//              capabilities list that cublasLtMatmulAlgoCheck accepts.
// Everything is screened with a few runs, then the best 12 re-timed.
//
//   g++ -O2 -std=c++20 -I/usr/local/cuda/include tools/lt_explore.cpp -L/usr/local/cuda/lib64
//     -lcublasLt -lcudart -o build/lab/lt_explore
//   build/lab/lt_explore [SHAPE_FILTER [CSV]]

#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "probe_check.h"

namespace {

struct Shape {
  const char* name;
  int M, N, K;  // tokens, out features, in features
  bool residual;
  cublasLtEpilogue_t epi;
};

const Shape kShapes[] = {
    {"vit_qkv", 6304, 2304, 768, false, CUBLASLT_EPILOGUE_BIAS},
    {"vit_outproj", 6304, 768, 768, true, CUBLASLT_EPILOGUE_BIAS},
    {"vit_fc1", 6304, 3072, 768, false, CUBLASLT_EPILOGUE_BIAS},
    {"vit_fc2", 6304, 768, 3072, true, CUBLASLT_EPILOGUE_BIAS},
    {"gpt2_qkv", 4096, 2304, 768, false, CUBLASLT_EPILOGUE_BIAS},
    {"gpt2_outproj", 4096, 768, 768, true, CUBLASLT_EPILOGUE_BIAS},
    {"gpt2_fc1", 4096, 3072, 768, false, CUBLASLT_EPILOGUE_GELU_BIAS},
    {"gpt2_fc2", 4096, 768, 3072, true, CUBLASLT_EPILOGUE_BIAS},
    {"b1vit_qkv", 197, 2304, 768, false, CUBLASLT_EPILOGUE_BIAS},
    {"b1vit_fc2", 197, 768, 3072, true, CUBLASLT_EPILOGUE_BIAS},
    {"b1gpt2_qkv", 128, 2304, 768, false, CUBLASLT_EPILOGUE_BIAS},
    {"b1gpt2_fc1", 128, 3072, 768, false, CUBLASLT_EPILOGUE_GELU_BIAS},
    {"b1gpt2_fc2", 128, 768, 3072, true, CUBLASLT_EPILOGUE_BIAS},
    {"rn_fc", 32, 1000, 2048, false, CUBLASLT_EPILOGUE_BIAS},
};

constexpr size_t kWorkspace = size_t{32} << 20;

struct Cand {
  cublasLtMatmulAlgo_t algo;
  size_t ws;
  std::string source;
  float waves = 0.f;
  float us = 1e30f;
};

std::string describe(const cublasLtMatmulAlgo_t& a) {
  int32_t id = -1, splits = 1;
  uint32_t tile = 0, stages = 0, swizzle = 0, cluster = 0, scheme = 0, custom = 0;
  uint16_t inner = 0;
  size_t w;
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof(stages),
                                       &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits, sizeof(splits),
                                       &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                       sizeof(scheme), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swizzle,
                                       sizeof(swizzle), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &custom,
                                       sizeof(custom), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, &inner,
                                       sizeof(inner), &w);
  cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster,
                                       sizeof(cluster), &w);
  char buf[200];
  std::snprintf(buf, sizeof(buf),
                "id %d tile %u stages %u cluster %u inner %u split %d/%u swz %u opt %u", id, tile,
                stages, cluster, inner, splits, scheme, swizzle, custom);
  return buf;
}

struct Problem {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, d;
  const Shape* s;
};

Problem make_problem(const Shape& s, const void* bias) {
  Problem p{};
  p.s = &s;
  LK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  LK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  LK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &s.epi, sizeof(s.epi)));
  LK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  // Kiln's view: weight [N, K] row-major is A (K x N column-major, transposed), the activation
  // [M, K] row-major is B (K x M column-major), D is N x M column-major = [M, N] row-major.
  LK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16F, s.K, s.N, s.K));
  LK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16F, s.K, s.M, s.K));
  LK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16F, s.N, s.M, s.N));
  return p;
}

cublasLtMatmulPreference_t make_pref(uint32_t mode) {
  cublasLtMatmulPreference_t pref;
  LK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = kWorkspace;
  LK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                          sizeof(ws)));
  if (mode)
    LK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_SEARCH_MODE, &mode,
                                            sizeof(mode)));
  return pref;
}

bool same(const cublasLtMatmulAlgo_t& x, const cublasLtMatmulAlgo_t& y) {
  return std::memcmp(&x, &y, sizeof(x)) == 0;
}

void add(std::vector<Cand>& out, const cublasLtMatmulAlgo_t& a, size_t ws, const std::string& src,
         float waves) {
  for (const Cand& c : out)
    if (same(c.algo, a)) return;
  out.push_back({a, ws, src, waves});
}

}  // namespace

int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : "";
  std::FILE* csv = argc > 2 ? std::fopen(argv[2], "w") : nullptr;  // every candidate, screened
  cublasLtHandle_t lt;
  LK(cublasLtCreate(&lt));
  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  size_t max_elems = 0;
  for (const Shape& s : kShapes)
    max_elems = std::max({max_elems, size_t(s.M) * s.K, size_t(s.N) * s.K, size_t(s.M) * s.N});
  std::vector<__half> host(max_elems);
  for (size_t i = 0; i < max_elems; ++i)
    host[i] = __float2half(float((i * 2654435761u) % 1000) / 1000.f - 0.5f);
  void *x, *w, *c, *dd, *bias, *ws;
  CK(cudaMalloc(&x, max_elems * 2));
  CK(cudaMalloc(&w, max_elems * 2));
  CK(cudaMalloc(&c, max_elems * 2));
  CK(cudaMalloc(&dd, max_elems * 2));
  CK(cudaMalloc(&bias, 1 << 16));
  CK(cudaMalloc(&ws, kWorkspace));
  for (void* p : {x, w, c}) CK(cudaMemcpy(p, host.data(), max_elems * 2, cudaMemcpyHostToDevice));
  CK(cudaMemset(bias, 0, 1 << 16));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));

  int ids[512];
  int n_ids = 0;
  LK(cublasLtMatmulAlgoGetIds(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16F, CUDA_R_16F,
                              CUDA_R_16F, CUDA_R_16F, 512, ids, &n_ids));
  std::printf("lt_explore: %d algorithm ids:", n_ids);
  for (int i = 0; i < n_ids; ++i) std::printf(" %d", ids[i]);
  std::printf("\n");

  for (const Shape& s : kShapes) {
    if (!std::strstr(s.name, filter)) continue;
    Problem p = make_problem(s, bias);
    const float alpha = 1.f, beta = s.residual ? 1.f : 0.f;
    auto run = [&](const Cand& cand) {
      return cublasLtMatmul(lt, p.op, &alpha, w, p.a, x, p.b, &beta, s.residual ? c : dd, p.d, dd,
                            p.d, &cand.algo, ws, kWorkspace, stream);
    };
    // Back to back, as in a CUDA graph: the mean over `reps` runs between two events, the best
    // of three such batches.
    auto time_us = [&](const Cand& cand, int reps) {
      for (int i = 0; i < 3; ++i)
        if (run(cand) != CUBLAS_STATUS_SUCCESS) return 1e30f;
      float best = 1e30f;
      for (int r = 0; r < 3; ++r) {
        CK(cudaEventRecord(e0, stream));
        for (int i = 0; i < reps; ++i) run(cand);
        CK(cudaEventRecord(e1, stream));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        best = std::min(best, ms * 1e3f / reps);
      }
      return best;
    };
    std::vector<Cand> cands;
    // 1. The builder's list.
    cublasLtMatmulPreference_t pref = make_pref(0);
    std::vector<cublasLtMatmulHeuristicResult_t> res(64);
    int got = 0;
    LK(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.d, p.d, pref, 32, res.data(), &got));
    for (int i = 0; i < got; ++i)
      if (res[i].state == CUBLAS_STATUS_SUCCESS)
        add(cands, res[i].algo, res[i].workspaceSize, "heur#" + std::to_string(i),
            res[i].wavesCount);
    const size_t n_heur = cands.size();
    // 2. The heuristic per algorithm id.
    cublasLtMatmulPreference_t by_id = make_pref(CUBLASLT_SEARCH_LIMITED_BY_ALGO_ID);
    for (int i = 0; i < n_ids; ++i) {
      for (auto& r : res) {
        std::memset(&r, 0, sizeof(r));
        cublasLtMatmulAlgoInit(lt, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16F, CUDA_R_16F,
                               CUDA_R_16F, CUDA_R_16F, ids[i], &r.algo);
      }
      got = 0;
      if (cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.d, p.d, by_id, 64, res.data(),
                                         &got) != CUBLAS_STATUS_SUCCESS)
        continue;
      for (int j = 0; j < got; ++j)
        if (res[j].state == CUBLAS_STATUS_SUCCESS)
          add(cands, res[j].algo, res[j].workspaceSize,
              "byid" + std::to_string(ids[i]) + "#" + std::to_string(j), res[j].wavesCount);
    }
    const size_t n_byid = cands.size() - n_heur;
    // 3. Mutations of the heuristic's algorithms: every tile, stages and custom option their id's
    //    capabilities list, keeping the rest of the returned configuration (id 66's nvjet
    //    kernels refuse configurations built from cublasLtMatmulAlgoInit alone).
    size_t checked = 0;
    const auto check_start = std::chrono::steady_clock::now();
    const size_t n_bases = cands.size();
    for (size_t bi = 0; bi < n_bases; ++bi) {
      const cublasLtMatmulAlgo_t base = cands[bi].algo;
      size_t bytes = 0;
      std::vector<uint32_t> tiles, stages;
      if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, nullptr, 0,
                                            &bytes) == CUBLAS_STATUS_SUCCESS &&
          bytes) {
        tiles.resize(bytes / sizeof(uint32_t));
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, tiles.data(), bytes,
                                          &bytes);
      }
      bytes = 0;
      if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, nullptr, 0,
                                            &bytes) == CUBLAS_STATUS_SUCCESS &&
          bytes) {
        stages.resize(bytes / sizeof(uint32_t));
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_STAGES_IDS, stages.data(), bytes,
                                          &bytes);
      }
      int32_t custom_max = 0;
      cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX, &custom_max,
                                        sizeof(custom_max), &bytes);
      uint32_t st0 = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&base, CUBLASLT_ALGO_CONFIG_STAGES_ID, &st0, sizeof(st0),
                                           &bytes);
      if (std::find(stages.begin(), stages.end(), st0) == stages.end()) stages.push_back(st0);
      for (uint32_t tile : tiles)
        for (uint32_t st : stages)
          for (int32_t opt = 0; opt <= std::min(custom_max, 15); ++opt) {
            cublasLtMatmulAlgo_t b = base;
            cublasLtMatmulAlgoConfigSetAttribute(&b, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                                 sizeof(tile));
            cublasLtMatmulAlgoConfigSetAttribute(&b, CUBLASLT_ALGO_CONFIG_STAGES_ID, &st,
                                                 sizeof(st));
            cublasLtMatmulAlgoConfigSetAttribute(&b, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &opt,
                                                 sizeof(opt));
            cublasLtMatmulHeuristicResult_t chk{};
            ++checked;
            if (cublasLtMatmulAlgoCheck(lt, p.op, p.a, p.b, p.d, p.d, &b, &chk) ==
                    CUBLAS_STATUS_SUCCESS &&
                chk.state == CUBLAS_STATUS_SUCCESS && chk.workspaceSize <= kWorkspace)
              add(cands, b, chk.workspaceSize, "mut" + std::to_string(bi), chk.wavesCount);
          }
    }
    const size_t n_manual = cands.size() - n_heur - n_byid;
    const double check_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - check_start)
            .count();
    std::printf(
        "== %s M=%d N=%d K=%d%s: %zu heuristic, %zu by id, %zu mutations (of %zu checked)\n",
        s.name, s.M, s.N, s.K, s.residual ? " +C" : "", n_heur, n_byid, n_manual, checked);
    std::printf("  checks took %.1f ms (%.2f us each)\n", check_ms,
                1e3 * check_ms / std::max<size_t>(checked, 1));
    for (Cand& cd : cands) cd.us = time_us(cd, 4);
    if (csv)
      for (const Cand& cd : cands)
        std::fprintf(csv, "%s,%s,%s,%.3f,%zu,%.2f\n", s.name, cd.source.c_str(),
                     describe(cd.algo).c_str(), cd.waves, cd.ws, cd.us);
    std::vector<Cand*> order;
    for (Cand& cd : cands) order.push_back(&cd);
    std::sort(order.begin(), order.end(), [](Cand* l, Cand* r) { return l->us < r->us; });
    if (order.size() > 12) order.resize(12);
    // Re-time the best, plus the heuristic's first (the builder's usual pick) and its best.
    float heur_best = 1e30f;
    for (size_t i = 0; i < n_heur; ++i) heur_best = std::min(heur_best, cands[i].us);
    for (int round = 0; round < 2; ++round)
      for (Cand* cd : order) cd->us = std::min(round ? cd->us : 1e30f, time_us(*cd, 30));
    for (Cand* cd : order)
      std::printf("  %8.2f us  %-12s %s ws %zu\n", cd->us, cd->source.c_str(),
                  describe(cd->algo).c_str(), cd->ws);
    float h0 = n_heur ? time_us(cands[0], 30) : 0.f;
    std::printf(
        "  heuristic first %.2f us, heuristic best (screen) %.2f us, %.1f TFLOP/s at the best\n",
        h0, heur_best, 2.0 * s.M * s.N * s.K / (order.empty() ? 1 : order[0]->us) / 1e6);
    std::fflush(stdout);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulPreferenceDestroy(by_id);
  }
  return 0;
}
