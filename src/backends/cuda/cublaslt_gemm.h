#pragma once

// A thin cuBLASLt layer for matmul, linear (linalg.cpp) and 1x1 convolutions (conv.cpp): one
// column-major strided-batched problem D = act(op(A) op(B) (+ C) (+ bias per row of D)), float32
// compute and scale, and the
// serialized form of an algorithm that tactic selection stores in the engine.

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/cuda_kernels.h"
#include "kiln/status.h"

namespace kiln::cuda {

// cuBLASLt's own scratch per call (NVIDIA recommends 32 MiB on Hopper).
inline constexpr size_t kGemmLibraryWorkspace = size_t{32} << 20;

// Activations cuBLASLt applies in its epilogue (in float32, before rounding into D). Its GELU is
// the tanh approximation, so only gelu_tanh maps to it; exact (erf) gelu runs as a separate
// kernel after the matmul (linalg.cpp).
enum class LtActivation { kNone, kRelu, kGeluTanh };

struct GemmProblem {
  cudaDataType_t dtype = CUDA_R_32F;  // A, B and D
  size_t elem_size = 4;
  uint64_t m = 0, n = 0, k = 0;  // D is m x n (column-major, ld m)
  int64_t batches = 1;
  cublasOperation_t op_a = CUBLAS_OP_N, op_b = CUBLAS_OP_N;
  uint64_t a_rows = 0, a_cols = 0, b_rows = 0, b_cols = 0;  // stored layouts
  int64_t lda = 1, ldb = 1;
  int64_t a_batch_stride = 0, b_batch_stride = 0, d_batch_stride = 0;  // elements; 0 = shared
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  const void* bias = nullptr;  // m elements of D's dtype, or nullptr
  const void* c = nullptr;     // added to the product before the epilogue (D's layout), or nullptr
  LtActivation activation = LtActivation::kNone;  // epilogue activation, after the bias
  bool assume_aligned = false;  // build time: pointers unknown, assume 256-byte alignment
};

struct LtAlgo {
  cublasLtMatmulAlgo_t algo;
  size_t workspace = 0;
  float waves = 0.0f;
};

// Up to `max` algorithms from the heuristic, best first, each needing <= workspace_limit bytes.
Result<std::vector<LtAlgo>> lt_heuristic(CudaBackendState& state, const GemmProblem& p,
                                         size_t workspace_limit, int max);

// Split-K copies of the heuristic's first algorithms (`base`, best first, as lt_heuristic returns
// them), for problems that leave most SMs idle: small M (batch-1 transformer layers) launches
// far fewer CTAs than there are SMs and the GEMM runs weight-bandwidth bound. Empty unless
// base[0].waves < 0.75, p.batches == 1 and K keeps >= 128 per split. Each variant passed
// cublasLtMatmulAlgoCheck for p (with its epilogue), needs <= workspace_limit bytes, differs
// from every algorithm in `base`, and carries the check's workspace and waves. At most
// `max_added`; the caller times them with the rest.
Result<std::vector<LtAlgo>> lt_split_k_variants(CudaBackendState& state, const GemmProblem& p,
                                                size_t workspace_limit,
                                                const std::vector<LtAlgo>& base, int max_added);

// Tile variants for problems of about a wave or more: the heuristic offers a handful of tile
// shapes and misses those whose CTAs fill the SMs' waves better. Copies of the heuristic's first
// algorithms (`base`) with the tiles of 128, 192 or 256 x 88 to 192 that best fill whole waves
// of `sm_count` SMs, each with cuBLASLt's odd custom options (the kernel variants those won
// with on the H100, tools/lt_explore.cpp). Empty unless base[0].waves >= 0.9 and
// p.batches == 1, and empty with KILN_LT_TILE_VARIANTS=0 (A/B timing). Same guarantees as
// lt_split_k_variants; at most `max_added`.
inline constexpr int kMaxConvTileVariants = 24;  // per 1x1 convolution run as a GEMM
Result<std::vector<LtAlgo>> lt_tile_variants(CudaBackendState& state, const GemmProblem& p,
                                             size_t workspace_limit,
                                             const std::vector<LtAlgo>& base, int sm_count,
                                             int max_added);

// Runs the problem on `stream`: with the algorithm in `tactic` when it is valid for this problem
// (and the pointers are 256-byte aligned, as the build assumed), else the heuristic's first.
// When no algorithm serves the epilogue (bias and/or activation), runs without one and sets
// *epilogue_applied false (the caller adds the bias and applies the activation).
Status run_lt_matmul(CudaBackendState& state, const GemmProblem& p,
                     std::span<const uint8_t> tactic, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream, bool* epilogue_applied);

std::vector<uint8_t> serialize_lt_algo(const LtAlgo& a);
// Whether `tactic` is a serialized cuBLASLt algorithm (serialize_lt_algo's form).
bool is_lt_tactic(std::span<const uint8_t> tactic);
// "cublaslt algo 21 tile 7 option 0 ws 1048576 waves 0.8", plus " splitk 4 inplace" for split-K
// algorithms.
std::string describe_lt_algo(const LtAlgo& a);

// Tactic candidates of a matmul (linear = false) or linear with these concrete args (linalg.cpp).
Result<std::vector<TacticCandidate>> gemm_tactics(CudaBackendState& state, const KernelArgs& args,
                                                  bool linear, size_t workspace_limit,
                                                  int max_candidates);

}  // namespace kiln::cuda
