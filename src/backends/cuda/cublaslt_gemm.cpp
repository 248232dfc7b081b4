// cuBLASLt descriptors, heuristics, algorithm (de)serialization and the matmul call.

#include "backends/cuda/cublaslt_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kiln::cuda {
namespace {

constexpr uint32_t kAlgoMagic = 0x3154'4C4B;  // "KLT1"

Status lt_error(cublasStatus_t s, const char* what) {
  return Status(StatusCode::kCudaError,
                str(what, " failed: ", cublasLtGetStatusName(s), " (", cublasLtGetStatusString(s),
                    ")"));
}
#define KILN_LT_CHECK(expr, what)                           \
  do {                                                      \
    cublasStatus_t kiln_lt_s_ = (expr);                     \
    if (kiln_lt_s_ != CUBLAS_STATUS_SUCCESS) return lt_error(kiln_lt_s_, what); \
  } while (0)

// Descriptors of one problem, destroyed with the object.
struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  LtDescs() = default;
  LtDescs(const LtDescs&) = delete;
  LtDescs& operator=(const LtDescs&) = delete;
  ~LtDescs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Status make_layout(cublasLtMatrixLayout_t* out, cudaDataType_t t, uint64_t rows, uint64_t cols,
                   int64_t ld, int64_t batches, int64_t batch_stride) {
  KILN_LT_CHECK(cublasLtMatrixLayoutCreate(out, t, rows, cols, ld), "cublasLtMatrixLayoutCreate");
  if (batches > 1) {
    const int32_t count = static_cast<int32_t>(batches);
    KILN_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                   &count, sizeof(count)),
                  "setting the batch count");
    KILN_LT_CHECK(cublasLtMatrixLayoutSetAttribute(
                      *out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride,
                      sizeof(batch_stride)),
                  "setting the batch stride");
  }
  return Status::Ok();
}

// The largest power of two (<= 256) dividing the address of every batch's matrix.
uint32_t alignment(const void* p, int64_t batch_stride, size_t es, bool assume) {
  if (assume) return 256;
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | static_cast<uint64_t>(batch_stride) * es | 256;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

cublasLtEpilogue_t epilogue_of(bool bias, LtActivation act) {
  switch (act) {
    case LtActivation::kRelu:
      return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case LtActivation::kGeluTanh:
      return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    case LtActivation::kNone:
      break;
  }
  return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

// with_epilogue: p's bias and activation go into the matmul descriptor; otherwise a plain GEMM.
Status make_descs(const GemmProblem& p, bool with_epilogue, size_t workspace_limit, LtDescs& d) {
  KILN_LT_CHECK(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
                "cublasLtMatmulDescCreate");
  KILN_LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &p.op_a,
                                               sizeof(p.op_a)),
                "setting transa");
  KILN_LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &p.op_b,
                                               sizeof(p.op_b)),
                "setting transb");
  const cublasLtEpilogue_t epi =
      with_epilogue ? epilogue_of(p.bias != nullptr, p.activation) : CUBLASLT_EPILOGUE_DEFAULT;
  if (epi != CUBLASLT_EPILOGUE_DEFAULT) {
    KILN_LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                 sizeof(epi)),
                  "setting the epilogue");
  }
  if (with_epilogue && p.bias) {
    // The bias is in D's dtype (the default bias type for 16F/16BF/32F outputs with 32F compute).
    KILN_LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                 &p.bias, sizeof(p.bias)),
                  "setting the bias pointer");
    if (p.batches > 1) {  // one bias for every batch (linear over strided batches)
      const int64_t bias_stride = 0;
      KILN_LT_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE,
                                                   &bias_stride, sizeof(bias_stride)),
                    "setting the bias batch stride");
    }
  }
  KILN_RETURN_IF_ERROR(
      make_layout(&d.a, p.dtype, p.a_rows, p.a_cols, p.lda, p.batches, p.a_batch_stride));
  KILN_RETURN_IF_ERROR(
      make_layout(&d.b, p.dtype, p.b_rows, p.b_cols, p.ldb, p.batches, p.b_batch_stride));
  KILN_RETURN_IF_ERROR(make_layout(&d.d, p.dtype, p.m, p.n, static_cast<int64_t>(p.m), p.batches,
                                   p.d_batch_stride));
  KILN_LT_CHECK(cublasLtMatmulPreferenceCreate(&d.pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = workspace_limit;
  KILN_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
                    d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
                "setting the workspace limit");
  const uint32_t al[4] = {alignment(p.a, p.a_batch_stride, p.elem_size, p.assume_aligned),
                          alignment(p.b, p.b_batch_stride, p.elem_size, p.assume_aligned),
                          alignment(p.c ? p.c : p.d, p.d_batch_stride, p.elem_size, p.assume_aligned),
                          alignment(p.d, p.d_batch_stride, p.elem_size, p.assume_aligned)};
  const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    KILN_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, attrs[i], &al[i], sizeof(al[i])),
                  "setting an alignment preference");
  return Status::Ok();
}

Result<std::vector<LtAlgo>> heuristic(CudaBackendState& state, const GemmProblem& p,
                                      const LtDescs& d, int max) {
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(std::max(1, max)));
  int returned = 0;
  cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(
      state.cublaslt, d.op, d.a, d.b, d.d, d.d, d.pref, static_cast<int>(results.size()),
      results.data(), &returned);
  std::vector<LtAlgo> out;
  if (s == CUBLAS_STATUS_NOT_SUPPORTED) return out;
  KILN_LT_CHECK(s, "cublasLtMatmulAlgoGetHeuristic");
  for (int i = 0; i < returned; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS)
      out.push_back({results[i].algo, results[i].workspaceSize, results[i].wavesCount});
  return out;
}

// Split-K policy (lt_split_k_variants).
constexpr float kSplitKMaxWaves = 0.75f;  // the best algorithm leaves a quarter of the SMs idle
constexpr uint64_t kSplitKMinK = 128;     // of K per split: shorter slices are mostly overhead
constexpr float kSplitKWaveCap = 2.0f;    // past ~2 waves more splits only add partial sums
constexpr size_t kSplitKBases = 3;        // distinct heuristic algorithms to split
constexpr int32_t kSplitKCounts[] = {2, 3, 4, 6, 8, 12, 16};

bool same_algo(const cublasLtMatmulAlgo_t& x, const cublasLtMatmulAlgo_t& y) {
  return std::memcmp(&x, &y, sizeof(x)) == 0;
}

// Whether cuBLASLt accepts `algo` for the problem of `d` (epilogue included) within
// `workspace_limit`; if so, appends it to `out` with the check's workspace and waves unless an
// identical algorithm is in `base` or `out` already.
bool offer_variant(CudaBackendState& state, const LtDescs& d, const cublasLtMatmulAlgo_t& algo,
                   size_t workspace_limit, const std::vector<LtAlgo>& base,
                   std::vector<LtAlgo>& out) {
  cublasLtMatmulHeuristicResult_t check{};
  if (cublasLtMatmulAlgoCheck(state.cublaslt, d.op, d.a, d.b, d.d, d.d, &algo, &check) !=
          CUBLAS_STATUS_SUCCESS ||
      check.state != CUBLAS_STATUS_SUCCESS || check.workspaceSize > workspace_limit)
    return false;
  const auto same = [&](const LtAlgo& x) { return same_algo(x.algo, algo); };
  if (std::none_of(base.begin(), base.end(), same) && std::none_of(out.begin(), out.end(), same))
    out.push_back({algo, check.workspaceSize, check.wavesCount});
  return true;
}

Status set_split_k(cublasLtMatmulAlgo_t& a, int32_t splits, uint32_t scheme) {
  KILN_LT_CHECK(cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                                     sizeof(splits)),
                "setting the split-K count");
  KILN_LT_CHECK(cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                     &scheme, sizeof(scheme)),
                "setting the reduction scheme");
  return Status::Ok();
}

const char* reduction_name(uint32_t scheme) {
  switch (scheme) {
    case CUBLASLT_REDUCTION_SCHEME_NONE: return "none";
    case CUBLASLT_REDUCTION_SCHEME_INPLACE: return "inplace";
    case CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE: return "compute-type";
    case CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE: return "output-type";
    default: return "?";
  }
}

bool all_aligned(const GemmProblem& p) {
  return alignment(p.a, p.a_batch_stride, p.elem_size, false) == 256 &&
         alignment(p.b, p.b_batch_stride, p.elem_size, false) == 256 &&
         alignment(p.d, p.d_batch_stride, p.elem_size, false) == 256 &&
         (!p.c || alignment(p.c, p.d_batch_stride, p.elem_size, false) == 256) &&
         (!p.bias || alignment(p.bias, 0, p.elem_size, false) == 256);
}

bool deserialize(std::span<const uint8_t> data, cublasLtMatmulAlgo_t& algo) {
  if (data.size() != sizeof(uint32_t) + sizeof(algo)) return false;
  uint32_t magic;
  std::memcpy(&magic, data.data(), sizeof(magic));
  if (magic != kAlgoMagic) return false;
  std::memcpy(&algo, data.data() + sizeof(magic), sizeof(algo));
  return true;
}

// KILN_TACTIC_DEBUG=1: report on stderr every GEMM that runs another algorithm than its tactic.
bool tactic_debug() {
  static const bool on = [] {
    const char* v = std::getenv("KILN_TACTIC_DEBUG");
    return v && v[0] == '1';
  }();
  return on;
}

}  // namespace

Result<std::vector<LtAlgo>> lt_heuristic(CudaBackendState& state, const GemmProblem& p,
                                         size_t workspace_limit, int max) {
  LtDescs d;
  KILN_RETURN_IF_ERROR(make_descs(p, true, workspace_limit, d));
  return heuristic(state, p, d, max);
}

Result<std::vector<LtAlgo>> lt_split_k_variants(CudaBackendState& state, const GemmProblem& p,
                                                size_t workspace_limit,
                                                const std::vector<LtAlgo>& base, int max_added) {
  std::vector<LtAlgo> out;
  // Strided batches already multiply the CTAs; waves 0 means the heuristic did not say.
  if (base.empty() || max_added <= 0 || p.batches != 1 || p.k < 2 * kSplitKMinK) return out;
  if (!(base[0].waves > 0.0f && base[0].waves < kSplitKMaxWaves)) return out;
  LtDescs d;
  KILN_RETURN_IF_ERROR(make_descs(p, true, workspace_limit, d));

  // The first distinct algorithms that can split K (told apart with their own split-K setting
  // cleared, since the heuristic may return split-K configurations of one kernel), each with the
  // split counts K allows, those that come closest to one full wave first.
  struct Base {
    cublasLtMatmulAlgo_t algo;
    uint32_t schemes = 0;
    std::vector<int32_t> splits;
  };
  std::vector<Base> bases;
  for (const LtAlgo& b : base) {
    if (bases.size() == kSplitKBases) break;
    int32_t support = 0;
    uint32_t schemes = 0;
    size_t written = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(&b.algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &support,
                                          sizeof(support), &written) != CUBLAS_STATUS_SUCCESS ||
        !support)
      continue;
    if (cublasLtMatmulAlgoCapGetAttribute(&b.algo, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK,
                                          &schemes, sizeof(schemes),
                                          &written) != CUBLAS_STATUS_SUCCESS ||
        !(schemes & CUBLASLT_REDUCTION_SCHEME_MASK))
      continue;
    Base nb{b.algo, schemes, {}};
    KILN_RETURN_IF_ERROR(set_split_k(nb.algo, 1, CUBLASLT_REDUCTION_SCHEME_NONE));
    if (std::any_of(bases.begin(), bases.end(),
                    [&](const Base& x) { return same_algo(x.algo, nb.algo); }))
      continue;
    const float waves = b.waves > 0.0f ? b.waves : base[0].waves;
    for (int32_t s : kSplitKCounts)
      if (p.k / static_cast<uint64_t>(s) >= kSplitKMinK && waves * s <= kSplitKWaveCap)
        nb.splits.push_back(s);
    std::stable_sort(nb.splits.begin(), nb.splits.end(), [&](int32_t x, int32_t y) {
      return std::abs(std::log(waves * x)) < std::abs(std::log(waves * y));
    });
    if (!nb.splits.empty()) bases.push_back(std::move(nb));
  }

  // Round-robin over the bases so the cap keeps the best split counts of each. In-place (one
  // kernel) and compute-type (float partials, a separate reduction) both, as timing decides;
  // output-type partials lose precision, so only when neither of the others passes.
  size_t rounds = 0;
  for (const Base& b : bases) rounds = std::max(rounds, b.splits.size());
  for (size_t r = 0; r < rounds; ++r) {
    for (const Base& b : bases) {
      if (r >= b.splits.size()) continue;
      bool passed = false;
      for (uint32_t scheme : {CUBLASLT_REDUCTION_SCHEME_INPLACE,
                              CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE,
                              CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE}) {
        if (out.size() >= static_cast<size_t>(max_added)) return out;
        if (!(b.schemes & scheme)) continue;
        if (scheme == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE && passed) continue;
        cublasLtMatmulAlgo_t algo = b.algo;
        KILN_RETURN_IF_ERROR(set_split_k(algo, b.splits[r], scheme));
        passed = offer_variant(state, d, algo, workspace_limit, base, out) || passed;
      }
    }
  }
  return out;
}

namespace {

struct LtTile {
  cublasLtMatmulTile_t id;
  uint32_t m, n;  // D's rows (cuBLASLt's m) x columns per CTA
};
#define KILN_LT_TILE(a, b) \
  { CUBLASLT_MATMUL_TILE_##a##x##b, a, b }
#define KILN_LT_TILE_ROW(a)                                                                   \
  KILN_LT_TILE(a, 88), KILN_LT_TILE(a, 96), KILN_LT_TILE(a, 104), KILN_LT_TILE(a, 112),       \
      KILN_LT_TILE(a, 120), KILN_LT_TILE(a, 128), KILN_LT_TILE(a, 136), KILN_LT_TILE(a, 144), \
      KILN_LT_TILE(a, 152), KILN_LT_TILE(a, 160), KILN_LT_TILE(a, 168), KILN_LT_TILE(a, 176), \
      KILN_LT_TILE(a, 184), KILN_LT_TILE(a, 192)
constexpr LtTile kVariantTiles[] = {KILN_LT_TILE_ROW(128), KILN_LT_TILE_ROW(192),
                                    KILN_LT_TILE_ROW(256)};
#undef KILN_LT_TILE_ROW
#undef KILN_LT_TILE

// A wave or nearly (GPT-2 b32's fc2 and out-projection, 4096 x 768: 0.98 waves of 256x96).
constexpr float kTileVariantMinWaves = 0.9f;
constexpr size_t kTileVariantTiles = 8;  // the best-filling tiles tried
constexpr size_t kTileVariantBases = 3;  // heuristic algorithms they are tried on
constexpr int32_t kTileVariantOptions[] = {1, 3, 5, 7};

// How well `t` fills the GPU for an m x n D: the share of the last wave's SMs busy (one CTA per
// SM) times the share of the tiles' area inside D.
double tile_fill(const LtTile& t, uint64_t m, uint64_t n, int sm_count) {
  const uint64_t tm = (m + t.m - 1) / t.m, tn = (n + t.n - 1) / t.n;
  const double waves = static_cast<double>(tm * tn) / sm_count;
  return waves / std::ceil(waves) * static_cast<double>(m * n) /
         static_cast<double>(tm * t.m * tn * t.n);
}

}  // namespace

Result<std::vector<LtAlgo>> lt_tile_variants(CudaBackendState& state, const GemmProblem& p,
                                             size_t workspace_limit,
                                             const std::vector<LtAlgo>& base, int sm_count,
                                             int max_added) {
  static const bool enabled = [] {
    const char* e = std::getenv("KILN_LT_TILE_VARIANTS");
    return !(e && e[0] == '0');
  }();
  std::vector<LtAlgo> out;
  if (!enabled || base.empty() || max_added <= 0 || p.batches != 1 || sm_count <= 0 ||
      !(base[0].waves >= kTileVariantMinWaves))
    return out;
  std::vector<LtTile> tiles(std::begin(kVariantTiles), std::end(kVariantTiles));
  // Best fill first; among equals the larger tile (fewer CTAs, less operand traffic).
  std::stable_sort(tiles.begin(), tiles.end(), [&](const LtTile& x, const LtTile& y) {
    const double fx = std::round(tile_fill(x, p.m, p.n, sm_count) * 1e3);
    const double fy = std::round(tile_fill(y, p.m, p.n, sm_count) * 1e3);
    return fx != fy ? fx > fy : x.m * x.n > y.m * y.n;
  });
  tiles.resize(std::min(tiles.size(), kTileVariantTiles));
  LtDescs d;
  KILN_RETURN_IF_ERROR(make_descs(p, true, workspace_limit, d));
  for (size_t b = 0; b < std::min(base.size(), kTileVariantBases); ++b) {
    int32_t options = 0;
    size_t written = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(&base[b].algo, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX,
                                          &options, sizeof(options),
                                          &written) != CUBLAS_STATUS_SUCCESS)
      continue;
    for (const LtTile& t : tiles) {
      for (int32_t option : kTileVariantOptions) {
        if (option > options) continue;
        if (out.size() >= static_cast<size_t>(max_added)) return out;
        // A configuration cuBLASLt refuses at any step is no candidate, not an error.
        cublasLtMatmulAlgo_t algo = base[b].algo;
        const uint32_t tile = t.id;
        if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                                 sizeof(tile)) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &option,
                                                 sizeof(option)) == CUBLAS_STATUS_SUCCESS)
          offer_variant(state, d, algo, workspace_limit, base, out);
      }
    }
  }
  return out;
}

Status run_lt_matmul(CudaBackendState& state, const GemmProblem& p,
                     std::span<const uint8_t> tactic, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream, bool* epilogue_applied) {
  bool with_epilogue = p.bias != nullptr || p.activation != LtActivation::kNone;
  LtDescs d;
  KILN_RETURN_IF_ERROR(make_descs(p, true, workspace_bytes, d));
  cublasLtMatmulAlgo_t algo;
  bool have = false;
  const char* refused = nullptr;  // why the built tactic was not used
  cublasStatus_t check_status = CUBLAS_STATUS_SUCCESS;
  if (tactic.empty()) {
    refused = "no tactic";
  } else if (!all_aligned(p)) {
    refused = "operands not 256-byte aligned";
  } else if (!deserialize(tactic, algo)) {
    refused = "tactic data is not a cuBLASLt algorithm";
  } else {
    cublasLtMatmulHeuristicResult_t check{};
    check_status = cublasLtMatmulAlgoCheck(state.cublaslt, d.op, d.a, d.b, d.d, d.d, &algo, &check);
    have = check_status == CUBLAS_STATUS_SUCCESS && check.workspaceSize <= workspace_bytes;
    if (!have)
      refused = check_status != CUBLAS_STATUS_SUCCESS ? "cublasLtMatmulAlgoCheck refused it"
                                                      : "it needs more workspace";
  }
  if (refused && tactic_debug())
    std::fprintf(stderr,
                 "kiln: cuBLASLt GEMM m=%llu n=%llu k=%llu batches=%lld: tactic not used (%s, "
                 "%s); asking the heuristic\n",
                 static_cast<unsigned long long>(p.m), static_cast<unsigned long long>(p.n),
                 static_cast<unsigned long long>(p.k), static_cast<long long>(p.batches), refused,
                 cublasLtGetStatusName(check_status));
  if (!have) {
    KILN_ASSIGN_OR_RETURN(std::vector<LtAlgo> algos, heuristic(state, p, d, 1));
    if (algos.empty() && with_epilogue) {  // no algorithm with the epilogue: the caller adds it
      with_epilogue = false;
      LtDescs plain;
      KILN_RETURN_IF_ERROR(make_descs(p, false, workspace_bytes, plain));
      std::swap(d.op, plain.op);
      KILN_ASSIGN_OR_RETURN(algos, heuristic(state, p, d, 1));
    }
    if (algos.empty())
      return Status(StatusCode::kUnsupported,
                    "cuBLASLt has no algorithm for this matmul (dtype, layout or alignment)");
    algo = algos[0].algo;
  }
  if (epilogue_applied) *epilogue_applied = with_epilogue;
  // C (when given) is read in D's layout and added before the bias and activation.
  const float alpha = 1.0f, beta = p.c ? 1.0f : 0.0f;
  KILN_LT_CHECK(cublasLtMatmul(state.cublaslt, d.op, &alpha, p.a, d.a, p.b, d.b, &beta,
                               p.c ? p.c : p.d, d.d, p.d, d.d, &algo, workspace, workspace_bytes,
                               stream),
                "cublasLtMatmul");
  return Status::Ok();
}

std::vector<uint8_t> serialize_lt_algo(const LtAlgo& a) {
  std::vector<uint8_t> out(sizeof(uint32_t) + sizeof(a.algo));
  std::memcpy(out.data(), &kAlgoMagic, sizeof(kAlgoMagic));
  std::memcpy(out.data() + sizeof(kAlgoMagic), &a.algo, sizeof(a.algo));
  return out;
}

bool is_lt_tactic(std::span<const uint8_t> tactic) {
  cublasLtMatmulAlgo_t algo;
  return deserialize(tactic, algo);
}

std::string describe_lt_algo(const LtAlgo& a) {
  int32_t id = -1, tile = -1;
  size_t written = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&a.algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), &written);
  cublasLtMatmulAlgoConfigGetAttribute(&a.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile),
                                       &written);
  int32_t splits = 1;
  uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
  cublasLtMatmulAlgoConfigGetAttribute(&a.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                       sizeof(splits), &written);
  cublasLtMatmulAlgoConfigGetAttribute(&a.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                       sizeof(scheme), &written);
  int32_t option = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&a.algo, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &option,
                                       sizeof(option), &written);
  std::string out = str("cublaslt algo ", id, " tile ", tile, " option ", option, " ws ",
                        a.workspace, " waves ", a.waves);
  if (splits > 1) out += str(" splitk ", splits, " ", reduction_name(scheme));
  return out;
}

}  // namespace kiln::cuda
