// The tensor-core attention kernel (attention_mma.cu, tactic "cuda.attention.flash_mma") against
// a double-precision reference written here: fp16/bf16, head dims 64 and 128, ragged sequence
// lengths, L != S, causal, bool and float masks with broadcasting, HF's permuted [B, H, L, E]
// views of [B, L, H, E] memory, grouped-query heads. Each case also checks that it took the
// tensor-core path (or, for the fallback cases, that it did not). The same reference checks
// cuDNN's SDPA graph (tactic "cuda.attention.cudnn") and that it serves the model shapes. A last
// test prints timings of the CUDA-core, tensor-core and cuDNN kernels without asserting on them.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "backends/cuda/attention_cudnn.h"
#include "backends/cuda/attention_mma.h"
#include "cuda/cuda_test_util.h"
#include "ir/half.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

struct Case {
  Case(Shape64 q_, Shape64 k_, Shape64 v_, Shape64 mask_ = {}, DType mask_dtype_ = DType::kBool,
       bool causal_ = false, std::optional<double> scale_ = std::nullopt)
      : q(std::move(q_)),
        k(std::move(k_)),
        v(std::move(v_)),
        mask(std::move(mask_)),
        mask_dtype(mask_dtype_),
        causal(causal_),
        scale(scale_) {}
  Shape64 q, k, v;  // [..., L, E], [..., S, E], [..., S, Ev]
  Shape64 mask;     // empty: none
  DType mask_dtype;
  bool causal;
  std::optional<double> scale;
  bool permuted = false;  // q, k, v are [B, H, L, E] views of [B, L, H, E] memory (rank 4)
  bool seq_major = false;   // attr seq_major_out: the output is [..., L, H, Ev]
  int64_t masked_row = -1;  // >= 0: this row of a 2-D [L, S] mask is all masked
};

std::string dims_str(const Shape64& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Shape64 batch_of(const Case& c) {
  Shape64 batch;
  for (const Shape64* s : {&c.q, &c.k, &c.v}) {
    Shape64 b(s->begin(), s->end() - 2);
    if (b.size() > batch.size()) batch.insert(batch.begin(), b.size() - batch.size(), 1);
    b.insert(b.begin(), batch.size() - b.size(), 1);
    for (size_t d = 0; d < b.size(); ++d) batch[d] = std::max(batch[d], b[d]);
  }
  return batch;
}

// Row-major index into a tensor of `shape` for batch index `b` (of `batch`) and matrix element
// (i, j). Batch dims right-align; size-1 dims broadcast; fewer heads repeat-interleave (GQA).
int64_t at(const Shape64& shape, const Shape64& b, int64_t i, int64_t j, const Shape64& batch) {
  const size_t r = shape.size();
  const size_t nb = r >= 2 ? r - 2 : 0, lead = batch.size() - nb;
  int64_t l = 0;
  for (size_t d = 0; d < nb; ++d) {
    const int64_t n = shape[d], full = batch[lead + d];
    l = l * n + (n == 1 ? 0 : b[lead + d] / (full / n));
  }
  const int64_t rows = r >= 2 ? shape[r - 2] : 1, cols = shape[r - 1];
  l = l * rows + (rows == 1 ? 0 : i);
  return l * cols + (cols == 1 ? 0 : j);
}

std::vector<double> reference(const Case& c, const std::vector<double>& q,
                              const std::vector<double>& k, const std::vector<double>& v,
                              const std::vector<double>& m) {
  const Shape64 batch = batch_of(c);
  const int64_t L = c.q[c.q.size() - 2], E = c.q.back(), S = c.k[c.k.size() - 2], Ev = c.v.back();
  const double scale = c.scale ? *c.scale : 1.0 / std::sqrt(static_cast<double>(E));
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> out;
  std::vector<double> s(static_cast<size_t>(S));
  for (int64_t bi = 0; bi < numel(batch); ++bi) {
    const Shape64 b = unravel(bi, batch);
    for (int64_t i = 0; i < L; ++i) {
      double mx = ninf;
      const int64_t qi = at(c.q, b, i, 0, batch);  // head dims are >= 2: rows are contiguous
      for (int64_t j = 0; j < S; ++j) {
        const int64_t kj = at(c.k, b, j, 0, batch);
        double dot = 0;
        for (int64_t e = 0; e < E; ++e) dot += q[qi + e] * k[kj + e];
        s[j] = dot * scale;
        if (!c.mask.empty()) {
          const double mv = m[at(c.mask, b, i, j, batch)];
          if (c.mask_dtype == DType::kBool) {
            if (mv == 0) s[j] = ninf;
          } else {
            s[j] += mv;
          }
        }
        if (c.causal && j > i) s[j] = ninf;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      if (mx == ninf) {  // every key masked: zeros, like torch's _safe_softmax
        for (double& x : s) x = 0;
        sum = 1;
      }
      std::vector<double> acc(static_cast<size_t>(Ev), 0.0);
      for (int64_t j = 0; j < S; ++j) {
        const int64_t vj = at(c.v, b, j, 0, batch);
        for (int64_t e = 0; e < Ev; ++e) acc[e] += s[j] / sum * v[vj + e];
      }
      out.insert(out.end(), acc.begin(), acc.end());
    }
  }
  return out;
}

// A [B, H, n, E] tensor holding `values` (row-major in that order) in [B, n, H, E] memory.
TestTensor permuted_heads(DType dtype, const Shape64& shape, const std::vector<double>& values) {
  const int64_t B = shape[0], H = shape[1], n = shape[2], E = shape[3];
  TestTensor t = make_tensor(dtype, {B, n, H, E}, std::vector<double>(numel(shape), 0.0));
  t.shape = shape;
  for (int d = 0; d < 4; ++d) t.view.shape[d] = shape[d];
  t.view.strides[0] = n * H * E;
  t.view.strides[1] = E;
  t.view.strides[2] = H * E;
  t.view.strides[3] = 1;
  write_values(t.view, values);
  return t;
}

std::vector<double> mask_values(const Case& c, uint32_t seed) {
  const int64_t n = numel(c.mask);
  if (c.mask_dtype == DType::kBool) {
    // Mostly kept, so that few rows are fully masked (those are zeros, and checked as such).
    std::vector<double> r = random_ints(n, seed, 0, 3);
    for (double& x : r) x = x != 0 ? 1 : 0;
    if (c.masked_row >= 0)
      for (int64_t j = 0; j < c.mask[1]; ++j) r[c.masked_row * c.mask[1] + j] = 0;
    return r;
  }
  std::vector<double> r = round_all(c.mask_dtype, random_values(n, seed, -3, 1));
  if (n > 2) r[1] = -std::numeric_limits<double>::infinity();  // a masked-out key, torch-style
  if (c.masked_row >= 0)
    for (int64_t j = 0; j < c.mask[1]; ++j)
      r[c.masked_row * c.mask[1] + j] = -std::numeric_limits<double>::infinity();
  return r;
}

// Which kernel a case must have run.
enum class Path { kTensorCores, kCudaCores, kCudnn };

// Runs `c` through `tactic` and compares with the reference; `path` is the kernel the case must
// have taken (flash_mma: tensor cores or, for the fallback cases, CUDA cores; cudnn: cuDNN or
// one of those two).
void check_tactic(const char* tactic, const Case& c, DType dtype, Path path, uint32_t seed = 5,
                  std::span<const uint8_t> tactic_data = {}) {
  SCOPED_TRACE(str(dtype_name(dtype), " q ", dims_str(c.q), " k ", dims_str(c.k),
                   c.causal ? " causal" : "", c.mask.empty() ? "" : " mask ",
                   c.mask.empty() ? "" : dims_str(c.mask), c.permuted ? " permuted" : "",
                   c.seq_major ? " seq_major_out" : ""));
  std::vector<double> qv = round_all(dtype, random_values(numel(c.q), seed));
  std::vector<double> kv = round_all(dtype, random_values(numel(c.k), seed + 1));
  std::vector<double> vv = round_all(dtype, random_values(numel(c.v), seed + 2));
  std::vector<double> mv = c.mask.empty() ? std::vector<double>{} : mask_values(c, seed + 3);
  std::vector<double> ref = reference(c, qv, kv, vv, mv);
  auto make = [&](const Shape64& s, const std::vector<double>& v) {
    return c.permuted ? permuted_heads(dtype, s, v) : make_tensor(dtype, s, v);
  };
  TestTensor q = make(c.q, qv), k = make(c.k, kv), v = make(c.v, vv);
  Shape64 out_shape = batch_of(c);
  out_shape.push_back(c.q[c.q.size() - 2]);
  out_shape.push_back(c.v.back());
  if (c.seq_major) {
    // The reference [..., H, L, Ev] reordered as [..., L, H, Ev].
    const size_t r = out_shape.size();
    const int64_t H = out_shape[r - 3], L = out_shape[r - 2], Ev = out_shape[r - 1];
    std::vector<double> t(ref.size());
    for (int64_t b = 0; b < numel(out_shape) / (H * L * Ev); ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < L; ++i)
          for (int64_t e = 0; e < Ev; ++e)
            t[((b * L + i) * H + h) * Ev + e] = ref[((b * H + h) * L + i) * Ev + e];
    ref = std::move(t);
    std::swap(out_shape[r - 3], out_shape[r - 2]);
  }
  TestTensor out = make_output(dtype, out_shape);
  std::vector<const TestTensor*> inputs = {&q, &k, &v};
  TestTensor mask;
  if (!c.mask.empty()) {
    mask = make_tensor(c.mask_dtype, c.mask, mv);
    inputs.push_back(&mask);
  }
  Attrs attrs;
  attrs.set("causal", c.causal);
  if (c.seq_major) attrs.set("seq_major_out", true);
  if (c.scale) attrs.set("scale", *c.scale);
  const int64_t mma_before = cuda::attention_mma_launch_count();
  const int64_t dnn_before = cuda::attention_cudnn_run_count();
  Status s = gpu().run(OpKind::kAttention, attrs, inputs, {&out}, {}, nullptr, tactic_data, tactic);
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_EQ(cuda::attention_mma_launch_count() - mma_before, path == Path::kTensorCores ? 1 : 0);
  EXPECT_EQ(cuda::attention_cudnn_run_count() - dnn_before, path == Path::kCudnn ? 1 : 0);
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(dtype, ref)));
}

void check(const Case& c, DType dtype, bool tensor_cores = true, uint32_t seed = 5) {
  check_tactic("cuda.attention.flash_mma", c, dtype,
               tensor_cores ? Path::kTensorCores : Path::kCudaCores, seed);
}
void check_cudnn(const Case& c, DType dtype, Path path = Path::kCudnn) {
  check_tactic("cuda.attention.cudnn", c, dtype, path);
}

constexpr DType kHalfDTypes[] = {DType::kFloat16, DType::kBFloat16};

TEST(CudaAttentionMma, SquareSequencesIncludingRaggedTiles) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128})
      for (int64_t n : {1, 7, 128, 197, 256}) check({{2, 2, n, E}, {2, 2, n, E}, {2, 2, n, E}}, dt);
}

TEST(CudaAttentionMma, QueriesAndKeysOfDifferentLengths) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      check({{1, 3, 100, E}, {1, 3, 197, E}, {1, 3, 197, E}}, dt);
      check({{1, 3, 197, E}, {1, 3, 64, E}, {1, 3, 64, E}}, dt);
      check({{2, 1, E}, {2, 300, E}, {2, 300, E}}, dt);  // rank 3, one query
    }
}

TEST(CudaAttentionMma, CausalIsTopLeftAligned) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      check({{2, 2, 128, E}, {2, 2, 128, E}, {2, 2, 128, E}, {}, DType::kBool, true}, dt);
      check({{1, 2, 197, E}, {1, 2, 197, E}, {1, 2, 197, E}, {}, DType::kBool, true}, dt);
      check({{1, 2, 130, E}, {1, 2, 70, E}, {1, 2, 70, E}, {}, DType::kBool, true}, dt);
      check({{1, 2, 70, E}, {1, 2, 130, E}, {1, 2, 130, E}, {}, DType::kBool, true}, dt);
    }
}

TEST(CudaAttentionMma, BoolMasksBroadcast) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const Shape64 q = {3, 2, 77, E}, kv = {3, 2, 150, E};
      check({q, kv, kv, {3, 1, 1, 150}}, dt);  // padding mask
      check({q, kv, kv, {77, 150}}, dt);
      check({q, kv, kv, {150}}, dt);
      check({q, kv, kv, {3, 2, 77, 150}}, dt);
      check({q, kv, kv, {3, 1, 77, 1}}, dt);
    }
}

TEST(CudaAttentionMma, FloatMasksAreAdded) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const Shape64 q = {2, 3, 128, E}, kv = {2, 3, 197, E};
      check({q, kv, kv, {2, 1, 1, 197}, dt}, dt);
      check({q, kv, kv, {2, 1, 1, 197}, DType::kFloat32}, dt);
      check({q, kv, kv, {2, 3, 128, 197}, dt}, dt);
      check({q, kv, kv, {128, 197}, DType::kFloat32, true}, dt);  // mask and causal
    }
}

// torch (2.5 and later) gives zeros for a query whose keys are all masked, bool or -inf.
TEST(CudaAttentionMma, FullyMaskedRowsAreZeros) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (DType mdt : {DType::kBool, dt}) {
      Case c{{2, 2, 70, 64}, {2, 2, 90, 64}, {2, 2, 90, 64}, {70, 90}, mdt};
      c.masked_row = 3;
      check(c, dt);
      check_tactic("cuda.attention.flash_simt", c, dt, Path::kCudaCores);
      check_cudnn(c, dt);
    }
}

// The short kernel's blocks whose last round of strips leaves warps idle: one strip, two strips,
// and (after whole rounds) the 13th strip of ViT's 197 tokens; with a fully masked row, a key
// padding mask, and causality. (Splitting such a round's strips by keys over the idle warps
// and merging their softmax states was tried in session 21: correct, but 6-13% slower.)
TEST(CudaAttentionMma, LastRoundsThatLeaveWarpsIdle) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const int64_t S = E == 64 ? 200 : 128;
      for (int64_t L : {16, 32}) {
        const Shape64 q = {1, 1, L, E}, kv = {1, 1, S, E};
        check({q, kv, kv}, dt);
        Case masked{q, kv, kv, {L, S}, DType::kBool};
        masked.masked_row = 5;
        check(masked, dt);
        check({q, kv, kv, {1, 1, 1, S}, dt}, dt);
      }
      const Shape64 kv = {1, 1, S, E};
      check({kv, kv, kv, {}, DType::kBool, true}, dt);  // causal, L = S (at 200: 4+4+4+1 strips)
    }
  // Whole rounds before the last one: a block per entry (288 entries), 13 strips each.
  const Shape64 vit = {24, 12, 197, 64};
  Case masked{vit, vit, vit, {197, 197}, DType::kBool};
  masked.masked_row = 194;  // in the last strip
  check(masked, DType::kFloat16);
  check({vit, vit, vit, {}, DType::kBool, true}, DType::kBFloat16);
}

TEST(CudaAttentionMma, PermutedHeadViewsOfTokenMajorMemory) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const Shape64 s = {2, 12, 197, E};
      Case c{s, s, s};
      c.permuted = true;
      check(c, dt);
      c.mask = {2, 1, 1, 197};
      check(c, dt);
      Case g{{2, 4, 128, E}, {2, 4, 128, E}, {2, 4, 128, E}, {}, DType::kBool, true};
      g.permuted = true;
      check(g, dt);
    }
}

// seq_major_out: rows H * E apart. The tensor-core kernel and cuDNN still serve it (rows stay
// 16-byte aligned); other head dims run on CUDA cores.
TEST(CudaAttentionMma, SeqMajorOutputOnEveryPath) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const Shape64 s128 = {2, 4, 128, E}, s197 = {2, 3, 197, E};
      std::vector<Case> cases = {Case{s128, s128, s128},
                                 Case{s128, s128, s128, {}, DType::kBool, true},
                                 Case{s197, s197, s197, {2, 1, 1, 197}, dt},
                                 Case{{2, 4, 65, E}, {2, 2, 90, E}, {2, 2, 90, E}},
                                 Case{{3, 64, E}, {3, 64, E}, {3, 64, E}}};
      for (Case& c : cases) {
        c.seq_major = true;
        check(c, dt);
        check_tactic("cuda.attention.flash_simt", c, dt, Path::kCudaCores);
        check_cudnn(c, dt);
      }
      Case p{s197, s197, s197, {2, 1, 1, 197}, dt};  // HF's permuted inputs too
      p.permuted = true;
      p.seq_major = true;
      check(p, dt);
      check_cudnn(p, dt);
    }
  Case odd{{2, 3, 33, 96}, {2, 3, 40, 96}, {2, 3, 40, 96}};  // head dim 96: CUDA cores
  odd.seq_major = true;
  check(odd, DType::kFloat16, false);
  Case f32{{2, 3, 33, 64}, {2, 3, 40, 64}, {2, 3, 40, 64}, {}, DType::kBool, true};
  f32.seq_major = true;
  check(f32, DType::kFloat32, false);
}

TEST(CudaAttentionMma, BatchDimsBroadcastAndGroupedQueryHeads) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      check({{2, 4, 65, E}, {2, 2, 90, E}, {2, 2, 90, E}}, dt);
      check({{2, 4, 65, E}, {1, 1, 90, E}, {1, 1, 90, E}, {4, 65, 90}}, dt);
      check({{3, 2, 2, 33, E}, {3, 1, 2, 40, E}, {3, 1, 2, 40, E}}, dt);
    }
}

TEST(CudaAttentionMma, ScaleAttributeAndLargeBatch) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes) {
    check({{5, 2, 30, 64}, {5, 2, 40, 64}, {5, 2, 40, 64}, {}, DType::kBool, false, 0.3}, dt);
    check({{70, 3, 64}, {70, 5, 64}, {70, 5, 64}}, dt);
  }
}

// Which tensor-core kernel serves a case: the short-sequence one (all of an entry's keys in
// shared memory) up to 256 keys at head dim 64 and 128 at head dim 128, the streaming one past
// that. Both paths, with whole batch entries per block (many entries) and with an entry's
// strips split over blocks (few), causal or not, masked or not.
void check_kernel(const Case& c, DType dtype, bool short_kernel) {
  const int64_t before = cuda::attention_mma_short_launch_count();
  check(c, dtype);
  EXPECT_EQ(cuda::attention_mma_short_launch_count() - before, short_kernel ? 1 : 0)
      << "q " << dims_str(c.q) << " k " << dims_str(c.k);
}

TEST(CudaAttentionMma, ShortAndLongSequencesTakeTheirKernels) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes) {
    // Many batch entries (more than two per SM): a block per entry.
    check_kernel({{24, 12, 197, 64}, {24, 12, 197, 64}, {24, 12, 197, 64}}, dt, true);
    check_kernel({{24, 12, 128, 64}, {24, 12, 128, 64}, {24, 12, 128, 64}, {}, DType::kBool,
                  true},
                 dt, true);
    check_kernel({{24, 12, 100, 64}, {24, 12, 256, 64}, {24, 12, 256, 64}, {24, 1, 1, 256}, dt},
                 dt, true);
    // Few entries: strips split over blocks; L past S and S past L; head dim 128.
    check_kernel({{1, 3, 250, 64}, {1, 3, 256, 64}, {1, 3, 256, 64}, {}, DType::kBool, true},
                 dt, true);
    check_kernel({{2, 2, 33, 128}, {2, 2, 128, 128}, {2, 2, 128, 128}}, dt, true);
    // Past the short kernel's keys: streamed.
    check_kernel({{2, 2, 64, 64}, {2, 2, 257, 64}, {2, 2, 257, 64}}, dt, false);
    check_kernel({{1, 2, 300, 64}, {1, 2, 300, 64}, {1, 2, 300, 64}, {}, DType::kBool, true}, dt,
                 false);
    check_kernel({{2, 2, 70, 128}, {2, 2, 129, 128}, {2, 2, 129, 128}}, dt, false);
  }
  // A scale of zero or less: the short kernel takes the max of unscaled scores, so it refuses.
  check_kernel({{2, 2, 40, 64}, {2, 2, 50, 64}, {2, 2, 50, 64}, {}, DType::kBool, false, -0.5},
               DType::kFloat16, false);
  // More batch entries than a grid's y dimension holds (65535): blocks loop over entries.
  check_kernel({{65600, 1, 64}, {65600, 2, 64}, {65600, 2, 64}}, DType::kFloat16, true);
}

TEST(CudaAttentionMma, OtherShapesFallBackToCudaCores) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes) {
    check({{2, 2, 33, 96}, {2, 2, 40, 96}, {2, 2, 40, 96}}, dt, false);  // head dim 96
    check({{2, 2, 33, 64}, {2, 2, 40, 64}, {2, 2, 40, 32}}, dt, false);  // Ev != E
    check({{2, 2, 33, 32}, {2, 2, 40, 32}, {2, 2, 40, 32}}, dt, false);  // head dim 32
  }
  check({{2, 2, 33, 64}, {2, 2, 40, 64}, {2, 2, 40, 64}}, DType::kFloat32, false);
  // Sliced: the head dim has stride 2.
  const Shape64 s = {2, 2, 20, 64};
  std::vector<double> qv = round_all(DType::kFloat16, random_values(numel(s), 1));
  TestTensor q = make_tensor(DType::kFloat16, s, qv, Layout::kSliced);
  TestTensor out = make_output(DType::kFloat16, s);
  const int64_t before = cuda::attention_mma_launch_count();
  ASSERT_OK(gpu().run(OpKind::kAttention, {}, {&q, &q, &q}, {&out}, {}, nullptr, {},
                      "cuda.attention.flash_mma"));
  EXPECT_EQ(cuda::attention_mma_launch_count(), before);
  Case c{s, s, s};
  const std::vector<double> ref = reference(c, qv, qv, qv, {});
  EXPECT_TRUE(expect_close(out.view, ref, magnitude_tolerance(DType::kFloat16, ref)));
}

// cuDNN's SDPA graph (tactic "cuda.attention.cudnn") against the same reference: the model
// shapes (BERT's [B, 1, 1, S] additive mask, GPT-2's causal, ViT's ragged 197), grouped-query
// heads, HF's permuted views, broadcast masks; and the cases cuDNN does not serve, which must
// still be right (they run Kiln's kernels).
TEST(CudaAttentionCudnn, ServesModelShapesAndMatchesTheReference) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kHalfDTypes)
    for (int64_t E : {64, 128}) {
      const Shape64 s128 = {2, 3, 128, E}, s197 = {2, 3, 197, E};
      check_cudnn({s128, s128, s128}, dt);
      check_cudnn({s197, s197, s197}, dt);
      check_cudnn({s128, s128, s128, {}, DType::kBool, true}, dt);  // causal
      check_cudnn({{1, 2, 100, E}, {1, 2, 150, E}, {1, 2, 150, E}}, dt);  // L != S
      check_cudnn({s128, s128, s128, {2, 1, 1, 128}, dt}, dt);  // BERT's padding mask
      check_cudnn({s197, s197, s197, {2, 3, 197, 197}, dt}, dt);
      check_cudnn({{2, 4, 65, E}, {2, 2, 90, E}, {2, 2, 90, E}}, dt);  // grouped-query heads
      check_cudnn({{3, 64, E}, {3, 64, E}, {3, 64, E}}, dt);           // one batch dim
      check_cudnn({{5, 2, 30, 64}, {5, 2, 40, 64}, {5, 2, 40, 64}, {}, DType::kBool, false, 0.3},
                  dt);
      check_cudnn({s128, s128, s128, {2, 1, 128, 128}}, dt);  // GPT-2's bool mask
      check_cudnn({{2, 2, 77, E}, {2, 2, 150, E}, {2, 2, 150, E}, {77, 150}, DType::kBool, true},
                  dt);  // bool mask and causal
      Case p{{2, 12, 197, E}, {2, 12, 197, E}, {2, 12, 197, E}, {2, 1, 1, 197}, dt};
      p.permuted = true;
      check_cudnn(p, dt);
    }
}

// Every cuDNN execution plan the builder would time (tactic data: the plan index) at the model
// shapes: GPT-2's causal b1, ViT's ragged 197, BERT's padding mask.
TEST(CudaAttentionCudnn, EveryPlanCandidateMatchesTheReference) {
  KILN_REQUIRE_CUDA();
  const DType dt = DType::kFloat16;
  const Shape64 g = {1, 12, 128, 64}, v = {2, 12, 197, 64}, b = {2, 12, 128, 64};
  for (const Case& c : {Case{g, g, g, {}, DType::kBool, true}, Case{v, v, v},
                        Case{b, b, b, {2, 1, 1, 128}, dt}}) {
    std::vector<TestTensor> views;
    for (const Shape64* s : {&c.q, &c.k, &c.v}) views.push_back(make_output(dt, *s));
    if (!c.mask.empty()) views.push_back(make_output(c.mask_dtype, c.mask));
    TestTensor out = make_output(dt, {c.q[0], c.q[1], c.q[2], c.v[3]});
    Op op;
    op.kind = OpKind::kAttention;
    op.name = "sdpa";
    op.attrs.set("causal", c.causal);
    std::vector<TensorView> ins;
    for (const TestTensor& t : views) ins.push_back(t.view);
    TensorView outs[1] = {out.view};
    for (TensorView& w : ins) w.data = nullptr;
    outs[0].data = nullptr;
    auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{256} << 20, 8);
    ASSERT_TRUE(cands.ok()) << cands.status().toString();
    int plans = 0;
    for (const cuda::TacticCandidate& cand : *cands) {
      if (cand.tactic != "cuda.attention.cudnn") continue;
      SCOPED_TRACE(cand.label);
      ASSERT_FALSE(cand.data.empty()) << "a cuDNN candidate without a plan index";
      ++plans;
      check_tactic("cuda.attention.cudnn", c, dt, Path::kCudnn, 5, cand.data);
    }
    EXPECT_GE(plans, 1);
    std::printf("%s: %d cuDNN plan candidates\n", dims_str(c.q).c_str(), plans);
  }
}

TEST(CudaAttentionCudnn, APlanIndexThisCudnnCannotBuildRunsItsFirstPlan) {
  KILN_REQUIRE_CUDA();
  // An engine built under another cuDNN can name a plan this one does not have: cuDNN's first
  // plan that builds serves it (not Kiln's slower kernels).
  const DType dt = DType::kFloat16;
  const Shape64 g = {1, 12, 128, 64};
  const uint32_t magic = 0x4453'4C4B;  // "KLSD", attention_cudnn.cpp
  const int64_t index = 1000;
  std::vector<uint8_t> data(sizeof(magic) + sizeof(index));
  std::memcpy(data.data(), &magic, sizeof(magic));
  std::memcpy(data.data() + sizeof(magic), &index, sizeof(index));
  check_tactic("cuda.attention.cudnn", Case{g, g, g, {}, DType::kBool, true}, dt, Path::kCudnn, 6,
               data);
}

TEST(CudaAttentionCudnn, WhatCudnnDoesNotServeRunsKilnsKernels) {
  KILN_REQUIRE_CUDA();
  const DType dt = DType::kFloat16;
  check_cudnn({{2, 4, 65, 64}, {1, 1, 90, 64}, {1, 1, 90, 64}}, dt,
              Path::kTensorCores);  // k, v broadcast over the batch
  check_cudnn({{2, 2, 33, 64}, {2, 2, 40, 64}, {2, 2, 40, 64}}, DType::kFloat32,
              Path::kCudaCores);  // float32
  check_cudnn({{3, 2, 2, 33, 64}, {3, 2, 2, 40, 64}, {3, 2, 2, 40, 64}}, dt,
              Path::kTensorCores);  // three batch dims
}

// Device buffers for one timing case, filled once from the host.
struct DeviceBuf {
  void* p = nullptr;
  explicit DeviceBuf(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess); }
  ~DeviceBuf() { cudaFree(p); }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
};

TensorView view_of(void* data, DType dt, const Shape64& shape) {
  TensorView v;
  v.data = data;
  v.dtype = dt;
  v.rank = static_cast<int>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) v.shape[d] = shape[d];
  set_contiguous_strides(v);
  return v;
}

// Median-free simple timing: mean of `iters` launches after warm-up, in ms.
double time_tactic(const char* tactic, const KernelArgs& args, int iters) {
  const cuda::CudaKernel* k = cuda::find_kernel(OpKind::kAttention, tactic);
  EXPECT_NE(k, nullptr) << tactic;
  if (!k) return -1;
  cudaStream_t stream = static_cast<cudaStream_t>(args.stream);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(k->run(args).ok());
  cudaEvent_t start, stop;
  EXPECT_EQ(cudaEventCreate(&start), cudaSuccess);
  EXPECT_EQ(cudaEventCreate(&stop), cudaSuccess);
  EXPECT_EQ(cudaEventRecord(start, stream), cudaSuccess);
  for (int i = 0; i < iters; ++i) EXPECT_TRUE(k->run(args).ok());
  EXPECT_EQ(cudaEventRecord(stop, stream), cudaSuccess);
  EXPECT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = 0;
  EXPECT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

std::vector<double> read_device(const void* p, DType dt, int64_t n) {
  std::vector<uint16_t> raw(static_cast<size_t>(n));
  EXPECT_EQ(cudaMemcpy(raw.data(), p, raw.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<double> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i)
    out[i] = dt == DType::kFloat16 ? half_to_float(raw[i]) : bf16_to_float(raw[i]);
  return out;
}

// Timings of the CUDA-core and tensor-core kernels at BERT/ViT/GPT-2 sizes; printed, not
// asserted. The two kernels' outputs must agree.
TEST(CudaAttentionMma, PrintsTimingsOfBothKernels) {
  KILN_REQUIRE_CUDA();
  struct Size {
    const char* name;
    int64_t B, H, L, E;
    bool causal;
  };
  for (const Size& z :
       {Size{"bert-base", 32, 12, 128, 64, false}, Size{"vit-b/16", 32, 12, 197, 64, false},
        Size{"gpt2 causal", 32, 12, 128, 64, true},
        Size{"head dim 128", 16, 16, 512, 128, false}}) {
    const DType dt = DType::kFloat16;
    const Shape64 shape = {z.B, z.H, z.L, z.E};
    const int64_t n = numel(shape);
    std::vector<uint16_t> host(static_cast<size_t>(n));
    std::vector<double> vals = random_values(n, 3);
    for (int64_t i = 0; i < n; ++i) host[i] = float_to_half(static_cast<float>(vals[i]));
    DeviceBuf q(n * 2), k(n * 2), v(n * 2), o1(n * 2), o2(n * 2);
    for (DeviceBuf* b : {&q, &k, &v})
      ASSERT_EQ(cudaMemcpy(b->p, host.data(), n * 2, cudaMemcpyHostToDevice), cudaSuccess);
    Attrs attrs;
    attrs.set("causal", z.causal);
    attrs.set("scale", 1.0 / std::sqrt(static_cast<double>(z.E)));
    std::vector<TensorView> ins = {view_of(q.p, dt, shape), view_of(k.p, dt, shape),
                                   view_of(v.p, dt, shape)};
    std::vector<TensorView> out_simt = {view_of(o1.p, dt, shape)};
    std::vector<TensorView> out_mma = {view_of(o2.p, dt, shape)};
    KernelArgs a1{"attention", attrs, ins, out_simt, {}};
    KernelArgs a2{"attention", attrs, ins, out_mma, {}};
    a1.stream = a2.stream = gpu().stream();
    a1.backend = a2.backend = &gpu().state();
    const double simt = time_tactic("cuda.attention.flash_simt", a1, 20);
    const double mma = time_tactic("cuda.attention.flash_mma", a2, 20);
    // cuDNN into the same output buffer as the tensor-core kernel (compared below).
    const size_t ws_bytes = cuda::attention_cudnn_workspace(a2);
    DeviceBuf ws(std::max<size_t>(ws_bytes, 256));
    KernelArgs a3 = a2;
    a3.workspace = ws.p;
    a3.workspace_bytes = ws_bytes;
    const int64_t served = cuda::attention_cudnn_run_count();
    const double dnn = time_tactic("cuda.attention.cudnn", a3, 20);
    EXPECT_GT(cuda::attention_cudnn_run_count(), served) << z.name << ": cuDNN did not serve it";
    ASSERT_EQ(cudaStreamSynchronize(gpu().stream()), cudaSuccess);
    const double flops = 4.0 * z.B * z.H * z.L * z.L * z.E * (z.causal ? 0.5 : 1.0);
    std::printf(
        "[ timing ] attention %-12s B=%lld H=%lld L=S=%lld E=%lld fp16: cuda cores %.4f ms, "
        "tensor cores %.4f ms (%.1f TFLOP/s), cuDNN %.4f ms (%.1f TFLOP/s)\n",
        z.name, static_cast<long long>(z.B), static_cast<long long>(z.H),
        static_cast<long long>(z.L), static_cast<long long>(z.E), simt, mma,
        flops / (mma * 1e-3) / 1e12, dnn, flops / (dnn * 1e-3) / 1e12);
    const std::vector<double> want = read_device(o1.p, dt, n);
    const std::vector<double> got = read_device(o2.p, dt, n);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
    EXPECT_LT(worst, 1e-2) << z.name << ": cuDNN (last to write) and CUDA-core outputs differ";
  }
}

}  // namespace
}  // namespace kiln::test
