// Scaled dot-product attention on tensor cores (flash-attention 2 forward) for fp16 and bf16
// with head dims 64 and 128, sm_80 and later. Same semantics as attention.cu (PyTorch's math
// backend); that kernel serves every case this one refuses.
//
// A block of 4 warps owns 64 consecutive query rows of one batch entry (16 rows per warp). Key
// and value tiles of 64 rows stream through shared memory with cp.async, double buffered: the
// next tile loads while the current one is consumed. Per tile a warp computes S = Q K^T with
// mma.sync m16n8k16 (fp32 accumulators), applies scale, mask and causality, updates its rows'
// running max and sum (online softmax, base 2), and accumulates O += P V with P taken straight
// from the S accumulators (rounded to the input dtype, as flash attention does). Shared-memory
// rows are padded by 16 bytes so ldmatrix reads are free of bank conflicts.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>

#include "backends/cuda/attention_common.cuh"
#include "backends/cuda/tensor_core_ptx.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlockM = 64;  // query rows per block
constexpr int kBlockN = 64;  // keys per tile
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

std::atomic<int64_t> g_launches{0};
std::atomic<int64_t> short_launches{0};  // of which the short-sequence kernel

template <int D>
constexpr int row_stride() {
  return D + 8;  // elements; 16 bytes of padding per row
}

template <int D>
constexpr size_t smem_bytes() {
  // Q tile, then two K tiles, then two V tiles; 2-byte elements.
  return static_cast<size_t>(kBlockM + 4 * kBlockN) * row_stride<D>() * 2;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    attention_mma_kernel(const AttnParams p, int64_t batches) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int LD = row_stride<D>();
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* qs = reinterpret_cast<T*>(smem_raw);  // [kBlockM][LD]; reused to stage the output
  T* ks = qs + kBlockM * LD;               // [2][kBlockN][LD]
  T* vs = ks + 2 * kBlockN * LD;           // [2][kBlockN][LD]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int L = static_cast<int>(p.L), S = static_cast<int>(p.S);
  const int m_tiles = (L + kBlockM - 1) / kBlockM;
  // Causal blocks near the end of the sequence do the most work: start them first.
  const int mt =
      p.causal ? m_tiles - 1 - static_cast<int>(blockIdx.x) : static_cast<int>(blockIdx.x);
  const int i0 = mt * kBlockM;
  const int row0 = warp * 16;  // the warp's first row within the tile
  const int key_end = p.causal ? min(S, i0 + kBlockM) : S;
  const int n_tiles = (key_end + kBlockN - 1) / kBlockN;
  const float scale_log2 = p.scale * kLog2e;

  for (int64_t b = blockIdx.y; b < batches; b += gridDim.y) {
    const EntryOffsets eo = entry_offsets(p, b);
    const T* qb = static_cast<const T*>(p.q) + eo.q;
    const T* kb = static_cast<const T*>(p.k) + eo.k;
    const T* vb = static_cast<const T*>(p.v) + eo.v;
    const int64_t mask_base = eo.mask;

    for (int c = tid; c < kBlockM * kChunks; c += kThreads) {
      const int r = c / kChunks, cc = c - r * kChunks, i = i0 + r;
      const bool valid = i < L;
      const T* src = valid ? qb + static_cast<int64_t>(i) * p.q_rs + cc * 8 : qb;
      cp_async_16(smem_addr(qs + r * LD + cc * 8), src, valid);
    }
    cp_async_commit();
    auto load_kv = [&](int t) {
      const int j0 = t * kBlockN, buf = t & 1;
      T* kd = ks + buf * kBlockN * LD;
      T* vd = vs + buf * kBlockN * LD;
      for (int c = tid; c < kBlockN * kChunks; c += kThreads) {
        const int r = c / kChunks, cc = c - r * kChunks, j = j0 + r;
        const bool valid = j < S;  // rows past S are zeros: P is 0 there, and 0 * 0 stays 0
        const int64_t j64 = valid ? j : 0;
        cp_async_16(smem_addr(kd + r * LD + cc * 8), kb + j64 * p.k_rs + (valid ? cc * 8 : 0),
                    valid);
        cp_async_16(smem_addr(vd + r * LD + cc * 8), vb + j64 * p.v_rs + (valid ? cc * 8 : 0),
                    valid);
      }
    };
    if (n_tiles > 0) load_kv(0);
    cp_async_commit();

    float o[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[dt][e] = 0.0f;
    float row_max[2] = {-INFINITY, -INFINITY};
    float row_sum[2] = {0.0f, 0.0f};  // this thread's share; the quad's sum at the end
    uint32_t qf[D / 16][4];

    for (int t = 0; t < n_tiles; ++t) {
      if (t + 1 < n_tiles) load_kv(t + 1);
      cp_async_commit();   // possibly empty: keeps one group per iteration
      cp_async_wait<1>();  // Q and tile t have landed
      __syncthreads();
      if (t == 0) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          const int r = row0 + (lane & 15), c = kk * 16 + (lane >> 4) * 8;
          ldmatrix_x4(qf[kk], smem_addr(qs + r * LD + c));
        }
      }
      const T* kt = ks + (t & 1) * kBlockN * LD;
      const T* vt = vs + (t & 1) * kBlockN * LD;

      float s[kBlockN / 8][4];
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < kBlockN / 16; ++np) {
          uint32_t bf[4];
          const int r = np * 16 + (lane & 7) + ((lane >> 4) << 3);
          const int c = kk * 16 + ((lane >> 3) & 1) * 8;
          ldmatrix_x4(bf, smem_addr(kt + r * LD + c));
          mma_16816<T>(s[2 * np], qf[kk], bf[0], bf[1]);
          mma_16816<T>(s[2 * np + 1], qf[kk], bf[2], bf[3]);
        }
      }

      // Scale to base 2; mask, causality and the ragged key tail only where they can apply.
      const int j0 = t * kBlockN;
      const bool edge =
          p.has_mask || j0 + kBlockN > S || (p.causal && j0 + kBlockN - 1 > i0 + row0);
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[nt][e] * scale_log2;
          if (edge) {
            const int j = j0 + nt * 8 + (lane & 3) * 2 + (e & 1);
            const int i = i0 + row0 + (lane >> 2) + (e >> 1) * 8;
            bool keep = j < S && !(p.causal && j > i);
            if (keep && p.has_mask && i < L) {
              const int64_t mo =
                  mask_base + static_cast<int64_t>(i) * p.m_rs + static_cast<int64_t>(j) * p.m_cs;
              if (p.mask_dtype == DType::kBool) {
                keep = static_cast<const bool*>(p.mask)[mo];
              } else {
                x += load_float_dyn(p.mask, p.mask_dtype, mo) * kLog2e;
              }
            }
            if (!keep) x = -INFINITY;
          }
          s[nt][e] = x;
        }
      }

      // Online softmax: rows lane/4 (h = 0) and lane/4 + 8 (h = 1); a quad shares a row.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt)
          mx = fmaxf(mx, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(row_max[h], mx);
        // All keys so far masked: keep every p at 0 (exp2(-inf - -inf) would be NaN).
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float alpha = exp2f(row_max[h] - m_use);  // old max -inf: 0
        row_max[h] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) {
          s[nt][2 * h] = exp2f(s[nt][2 * h] - m_use);
          s[nt][2 * h + 1] = exp2f(s[nt][2 * h + 1] - m_use);
          sum += s[nt][2 * h] + s[nt][2 * h + 1];
        }
        row_sum[h] = row_sum[h] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[dt][2 * h] *= alpha;
          o[dt][2 * h + 1] *= alpha;
        }
      }

      // O += P V: the S accumulators of two n-tiles form one A fragment (16 keys).
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        uint32_t a[4];
        a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t bf[4];
          const int r = kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
          const int c = dp * 16 + (lane >> 4) * 8;
          ldmatrix_x4_trans(bf, smem_addr(vt + r * LD + c));
          mma_16816<T>(o[2 * dp], a, bf[0], bf[1]);
          mma_16816<T>(o[2 * dp + 1], a, bf[2], bf[3]);
        }
      }
      __syncthreads();  // every warp is done with buffer t & 1 before tile t + 2 lands there
    }
    cp_async_wait<0>();  // with no key tiles the Q copy may still be in flight
    __syncthreads();

    // Normalize (a row whose keys were all masked has sum 0 and stays zeros, as torch),
    // stage the warp's 16 rows in the Q buffer, then write whole 16-byte row chunks.
    float inv[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = row_sum[h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[h] = l > 0.0f ? 1.0f / l : 0.0f;
    }
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int r = row0 + (lane >> 2), c = dt * 8 + (lane & 3) * 2;
      *reinterpret_cast<uint32_t*>(qs + r * LD + c) =
          pack2<T>(o[dt][0] * inv[0], o[dt][1] * inv[0]);
      *reinterpret_cast<uint32_t*>(qs + (r + 8) * LD + c) =
          pack2<T>(o[dt][2] * inv[1], o[dt][3] * inv[1]);
    }
    __syncwarp();
    // Rows are o_rs apart: D when contiguous, H * D when sequence-major (seq_major_out).
    T* ob = static_cast<T*>(p.out) + eo.out;
    for (int c = lane; c < 16 * kChunks; c += 32) {
      const int r = row0 + c / kChunks, cc = c % kChunks, i = i0 + r;
      if (i < L)
        *reinterpret_cast<uint4*>(ob + static_cast<int64_t>(i) * p.o_rs + cc * 8) =
            *reinterpret_cast<const uint4*>(qs + r * LD + cc * 8);
    }
    __syncthreads();  // the staging reads are done before the next batch entry's Q lands
  }
#endif
}

// Short sequences (S <= kShortMaxS keys): a block owns one batch entry (or, when there are too
// few of those to fill the device, a range of its query rows) and loads that entry's K and V
// into shared memory once, in full, in groups of 64 keys that each signal a barrier as they land
// (a strip waits for a group before its keys, so compute starts on the first keys). Its warps
// then take 16-row query strips in turn (a snake order, so causal strips of unequal length pair
// up). Work is skipped at a granularity of 16 rows and 16 keys: L = 197 computes 208 x 208
// scores, not 256 x 256. Each warp's next Q unit loads while the current one runs.
//
// Keys go in blocks of up to 4 chunks of 16. Only a strip's last block can hold keys a row must
// not see (the ragged tail past S; under causality, the diagonal chunk, which is always the last
// one since strips and chunks are both 16 wide), so only that block tests key indices, and it
// does so with selects, not branches. A general mask is added in every block (kHasMask).
constexpr int kShortWarps = 4;
constexpr int kShortMaxS = 256;

template <int D>
constexpr size_t short_smem_bytes(int kv_rows, bool mask_row) {
  // K and V, kv_rows each, then one 16-row Q buffer per warp, 2-byte elements; then, for a
  // mask shared by all query rows, its staged row (kv_rows floats).
  return static_cast<size_t>(2 * kv_rows + kShortWarps * 16) * row_stride<D>() * 2 +
         (mask_row ? static_cast<size_t>(kv_rows) * sizeof(float) : 0);
}

// The running state of one 16-row strip: O accumulators and, per row half h (rows lane / 4 and
// lane / 4 + 8), the running max (base 2, scaled), this thread's share of the sum, and the first
// key the row must not see (checked blocks only).
template <int D>
struct StripState {
  float o[D / 8][4];
  float row_max[2];
  float row_sum[2];
  int limit[2];
};

// Max and sum of a register array as a tree (log-depth dependency chains, not linear ones).
template <int N>
__device__ __forceinline__ float tree_max(const float* v) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    return fmaxf(tree_max<N / 2>(v), tree_max<N - N / 2>(v + N / 2));
  }
}
template <int N>
__device__ __forceinline__ float tree_sum(const float* v) {
  if constexpr (N == 1) {
    return v[0];
  } else {
    return tree_sum<N / 2>(v) + tree_sum<N - N / 2>(v + N / 2);
  }
}

// One block of NC 16-key chunks starting at key j0 (i_lo: the strip row of half 0).
// k_lane / v_lane: this lane's ldmatrix addresses at key 0. Without a mask the scores stay
// unscaled until the exponent: the scale is positive (the launcher checks), so the raw max is
// the scaled max over the scale, and one FMA gives score * scale - max for exp2.
template <typename T, int D, int NC, bool kCheck, bool kHasMask>
__device__ __forceinline__ void attend_block(StripState<D>& st, const uint32_t (&qf)[D / 16][4],
                                             uint32_t k_lane, uint32_t v_lane, int j0,
                                             float scale_log2, const AttnParams& p,
                                             int64_t mask_base, int i_lo,
                                             const float* mask_row) {
  constexpr int LD = row_stride<D>();
  const int lane = threadIdx.x & 31;
  float s[2 * NC][4];
#pragma unroll
  for (int nt = 0; nt < 2 * NC; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[nt][e] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t bf[NC][4];
#pragma unroll
    for (int np = 0; np < NC; ++np)
      ldmatrix_x4(bf[np], k_lane + ((j0 + np * 16) * LD + kk * 16) * 2);
#pragma unroll
    for (int np = 0; np < NC; ++np) {
      mma_16816<T>(s[2 * np], qf[kk], bf[np][0], bf[np][1]);
      mma_16816<T>(s[2 * np + 1], qf[kk], bf[np][2], bf[np][3]);
    }
  }
  // Scale (mask only), the general mask, and the key limits.
#pragma unroll
  for (int nt = 0; nt < 2 * NC; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[nt][e];
      const int j = j0 + nt * 8 + (lane & 3) * 2 + (e & 1);
      if constexpr (kHasMask) {
        x *= scale_log2;
        const int i = i_lo + (e >> 1) * 8;
        if (mask_row) {
          x += mask_row[j];  // the block's staged row (0 past the keys), already times log2(e)
        } else if (i < p.L && j < p.S) {
          const int64_t mo =
              mask_base + static_cast<int64_t>(i) * p.m_rs + static_cast<int64_t>(j) * p.m_cs;
          if (p.mask_dtype == DType::kBool) {
            if (!static_cast<const bool*>(p.mask)[mo]) x = -INFINITY;
          } else {
            x += load_float_dyn(p.mask, p.mask_dtype, mo) * kLog2e;
          }
        }
      }
      if constexpr (kCheck) x = j < st.limit[e >> 1] ? x : -INFINITY;
      s[nt][e] = x;
    }
  const float x_scale = kHasMask ? 1.0f : scale_log2;  // what the scores still need
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float v[4 * NC];
#pragma unroll
    for (int nt = 0; nt < 2 * NC; ++nt) {
      v[2 * nt] = s[nt][2 * h];
      v[2 * nt + 1] = s[nt][2 * h + 1];
    }
    float mx = tree_max<4 * NC>(v) * x_scale;
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(st.row_max[h], mx);
    // All keys so far masked: keep every p at 0 (exp2(-inf - -inf) would be NaN).
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = fast_exp2(st.row_max[h] - m_use);  // old max -inf: 0
    st.row_max[h] = m_new;
#pragma unroll
    for (int nt = 0; nt < 2 * NC; ++nt) {
      s[nt][2 * h] = fast_exp2(fmaf(s[nt][2 * h], x_scale, -m_use));
      s[nt][2 * h + 1] = fast_exp2(fmaf(s[nt][2 * h + 1], x_scale, -m_use));
      v[2 * nt] = s[nt][2 * h];
      v[2 * nt + 1] = s[nt][2 * h + 1];
    }
    st.row_sum[h] = fmaf(st.row_sum[h], alpha, tree_sum<4 * NC>(v));
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      st.o[dt][2 * h] *= alpha;
      st.o[dt][2 * h + 1] *= alpha;
    }
  }
  // O += P V: the S accumulators of two n-tiles form one A fragment (16 keys).
#pragma unroll
  for (int kk = 0; kk < NC; ++kk) {
    uint32_t a[4];
    a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
    a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
    a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
    a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    uint32_t bf[D / 16][4];
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp)
      ldmatrix_x4_trans(bf[dp], v_lane + ((j0 + kk * 16) * LD + dp * 16) * 2);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      mma_16816<T>(st.o[2 * dp], a, bf[dp][0], bf[dp][1]);
      mma_16816<T>(st.o[2 * dp + 1], a, bf[dp][2], bf[dp][3]);
    }
  }
}

// The last (checked) block of a strip: `nc` chunks, 1 to NC, each count its own instantiation.
template <typename T, int D, int NC, bool kHasMask>
__device__ __forceinline__ void attend_last_block(int nc, StripState<D>& st,
                                                  const uint32_t (&qf)[D / 16][4],
                                                  uint32_t k_lane, uint32_t v_lane, int j0,
                                                  float scale_log2, const AttnParams& p,
                                                  int64_t mask_base, int i_lo,
                                                  const float* mask_row) {
  if constexpr (NC > 0) {
    if (nc == NC) {
      attend_block<T, D, NC, true, kHasMask>(st, qf, k_lane, v_lane, j0, scale_log2, p,
                                             mask_base, i_lo, mask_row);
    } else {
      attend_last_block<T, D, NC - 1, kHasMask>(nc, st, qf, k_lane, v_lane, j0, scale_log2, p,
                                                mask_base, i_lo, mask_row);
    }
  }
}

// (Two strips per warp side by side, sharing the K and V fragments, measured slower on the
// H100: at 168 registers they spill.)
template <typename T, int D, bool kHasMask>
__global__ void __launch_bounds__(kShortWarps * 32, D == 64 ? 3 : 2)
    attention_short_kernel(const AttnParams p, int64_t batches, int strips_per_block) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int LD = row_stride<D>();
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int L = static_cast<int>(p.L), S = static_cast<int>(p.S);
  const int n_strips = (L + 15) / 16;
  // Causal: later strips do more work; start their blocks first.
  const int blk = p.causal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : blockIdx.x;
  const int first = blk * strips_per_block;
  const int last = min(n_strips, first + strips_per_block);
  // Keys this block needs (causal keeps j <= i), rounded up to whole 16-key chunks.
  const int key_end = p.causal ? min(S, last * 16) : S;
  const int kv_rows = (key_end + 15) & ~15;
  T* ks = reinterpret_cast<T*>(smem_raw);      // [kv_rows][LD]
  T* vs = ks + kv_rows * LD;                   // [kv_rows][LD]
  T* qs = vs + kv_rows * LD + warp * 16 * LD;  // this warp's [16][LD]
  // A mask that is the same for every query row (a key padding mask, m_rs == 0) is staged once
  // per batch entry as floats times log2(e) ([kv_rows], after the Q buffers): each score then
  // adds a shared-memory word instead of loading the mask from global memory.
  float* mask_row = (kHasMask && p.m_rs == 0)
                        ? reinterpret_cast<float*>(vs + kv_rows * LD + kShortWarps * 16 * LD)
                        : nullptr;
  // This lane's ldmatrix addresses at key 0 (K: rows of the 16x16 B tile; V: transposed).
  const uint32_t k_lane =
      smem_addr(ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8);
  const uint32_t v_lane =
      smem_addr(vs + ((lane & 7) + (((lane >> 3) & 1) << 3)) * LD + (lane >> 4) * 8);
  const float scale_log2 = p.scale * kLog2e;
  // The warp's n-th strip: snake order over the block's strips.
  auto strip_of = [&](int n) {
    const int in_round = (n & 1) ? kShortWarps - 1 - warp : warp;
    return first + n * kShortWarps + in_round;
  };

  // K and V land in groups of 64 keys, each completing its own barrier, so a strip starts on
  // its first keys while the later ones are still in flight (at most 4 groups: S <= 256). A
  // block uses the same groups for every batch entry, so one phase parity serves them all.
  __shared__ __align__(8) uint64_t kv_bar[kShortMaxS / 64];
  if (tid == 0)
    for (int g = 0; g < kShortMaxS / 64; ++g)
      mbarrier_init(smem_addr(&kv_bar[g]), kShortWarps * 32);
  __syncthreads();
  uint32_t parity = 0;

  for (int64_t b = blockIdx.y; b < batches; b += gridDim.y) {
    const EntryOffsets eo = entry_offsets(p, b);
    const T* qb = static_cast<const T*>(p.q) + eo.q;
    const T* kb = static_cast<const T*>(p.k) + eo.k;
    const T* vb = static_cast<const T*>(p.v) + eo.v;
    T* ob = static_cast<T*>(p.out) + eo.out;
    const int64_t mask_base = eo.mask;

    auto load_q = [&](int strip) {  // the warp's lanes copy one strip of Q
      for (int c = lane; c < 16 * kChunks; c += 32) {
        const int r = c / kChunks, cc = c - r * kChunks, i = strip * 16 + r;
        const bool valid = i < L;
        const T* src = valid ? qb + static_cast<int64_t>(i) * p.q_rs + cc * 8 : qb;
        cp_async_16(smem_addr(qs + r * LD + cc * 8), src, valid);
      }
    };
    __syncthreads();  // the previous batch entry is done with K and V
    if (strip_of(0) < last) load_q(strip_of(0));
    cp_async_commit();  // the warp's first Q strip, waited for before the strips start
    const int kv_groups = (kv_rows + 63) / 64;
    for (int g = 0; g < kv_groups; ++g) {
      const int r_end = min(kv_rows, g * 64 + 64);
      for (int c = g * 64 * kChunks + tid; c < r_end * kChunks; c += kShortWarps * 32) {
        const int r = c / kChunks, cc = c - r * kChunks;
        const bool valid = r < key_end;  // rows past the keys are zeros: P is 0 there
        const int64_t r64 = valid ? r : 0;
        cp_async_16(smem_addr(ks + r * LD + cc * 8), kb + r64 * p.k_rs + (valid ? cc * 8 : 0),
                    valid);
        cp_async_16(smem_addr(vs + r * LD + cc * 8), vb + r64 * p.v_rs + (valid ? cc * 8 : 0),
                    valid);
      }
      cp_async_arrive_noinc(smem_addr(&kv_bar[g]));  // every thread, copies or not
    }
    cp_async_commit();
    if (mask_row) {
      for (int j = tid; j < kv_rows; j += kShortWarps * 32) {
        float m = 0.0f;  // keys past key_end: never seen (causal) or cut by the key limit
        if (j < key_end) {
          const int64_t mo = mask_base + static_cast<int64_t>(j) * p.m_cs;
          m = p.mask_dtype == DType::kBool
                  ? (static_cast<const bool*>(p.mask)[mo] ? 0.0f : -INFINITY)
                  : load_float_dyn(p.mask, p.mask_dtype, mo) * kLog2e;
        }
        mask_row[j] = m;
      }
    }
    cp_async_wait<1>();  // this thread's Q copies; K and V are waited for per group
    __syncthreads();

    for (int n = 0; strip_of(n) < last; ++n) {
      const int i0 = strip_of(n) * 16;
      if (n > 0) {
        cp_async_wait<0>();
        __syncwarp();
      }
      uint32_t qf[D / 16][4];
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        ldmatrix_x4(qf[kk], smem_addr(qs + (lane & 15) * LD + kk * 16 + (lane >> 4) * 8));
      __syncwarp();
      if (strip_of(n + 1) < last) load_q(strip_of(n + 1));  // lands while this strip runs
      cp_async_commit();

      StripState<D> st;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt)
#pragma unroll
        for (int e = 0; e < 4; ++e) st.o[dt][e] = 0.0f;
      const int i_lo = i0 + (lane >> 2);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        st.row_max[h] = -INFINITY;
        st.row_sum[h] = 0.0f;
        st.limit[h] = p.causal ? min(S, i_lo + 8 * h + 1) : S;
      }
      const int kend = p.causal ? min(S, i0 + 16) : S;
      const int n_chunks = (kend + 15) / 16;
      const int full_blocks = (n_chunks - 1) / 4;  // the last block (1-4 chunks) is checked
      for (int fb = 0; fb < full_blocks; ++fb) {
        mbarrier_wait(smem_addr(&kv_bar[fb]), parity);
        attend_block<T, D, 4, false, kHasMask>(st, qf, k_lane, v_lane, fb * 64, scale_log2, p,
                                               mask_base, i_lo, mask_row);
      }
      // No keys at all (S = 0) leaves zeros below.
      if (n_chunks > 0) {
        mbarrier_wait(smem_addr(&kv_bar[full_blocks]), parity);
        attend_last_block<T, D, 4, kHasMask>(n_chunks - full_blocks * 4, st, qf, k_lane, v_lane,
                                             full_blocks * 64, scale_log2, p, mask_base, i_lo,
                                             mask_row);
      }
      // Normalize (all keys masked: sum 0, zeros as torch) and store the pairs straight from
      // the accumulators: a quad writes 16 contiguous bytes of a row.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float l = st.row_sum[h];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const int i = i_lo + 8 * h;
        if (i < L) {
          T* orow = ob + static_cast<int64_t>(i) * p.o_rs + (lane & 3) * 2;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<uint32_t*>(orow + dt * 8) =
                pack2<T>(st.o[dt][2 * h] * inv, st.o[dt][2 * h + 1] * inv);
        }
      }
    }
    cp_async_wait<0>();
    parity ^= 1;
  }
#endif
}

// The operand's rows and batch entries start on 16-byte boundaries (8 elements of 2 bytes).
bool rows_aligned(const void* data, int64_t row_stride, const BatchMap& m, int nb) {
  if (!aligned_to(data, 16) || row_stride % 8 != 0) return false;
  for (int d = 0; d < nb; ++d)
    if (m.stride[d] % 8 != 0) return false;
  return true;
}

template <typename T, int D>
Status launch(const KernelArgs& args, const AttnParams& p, int64_t batches) {
  constexpr size_t bytes = smem_bytes<D>();
  auto* kernel = attention_mma_kernel<T, D>;
  if (bytes > 48 * 1024)
    KILN_CUDA_CHECK(args,
                    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)),
                    "cudaFuncSetAttribute");
  const int64_t m_tiles = (p.L + kBlockM - 1) / kBlockM;
  const dim3 grid(static_cast<unsigned>(m_tiles),
                  static_cast<unsigned>(std::min<int64_t>(batches, 65535)));
  kernel<<<grid, kThreads, bytes, stream_of(args)>>>(p, batches);
  KILN_RETURN_IF_ERROR(check_launch(args, "attention kernel (tensor cores)"));
  g_launches.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

// Whether the short-sequence kernel serves `p`: all of a batch entry's keys fit in shared memory
// beside the Q buffers (S <= 256 at head dim 64, S <= 128 at 128). KILN_SHORT_ATTENTION=0 turns
// it off (A/B timing).
bool short_kernel_serves(const AttnParams& p) {
  static const bool enabled = [] {
    const char* e = std::getenv("KILN_SHORT_ATTENTION");
    return !(e && e[0] == '0');
  }();
  // A positive scale: the kernel takes the max of unscaled scores.
  return enabled && p.scale > 0.0f && p.S <= (p.E == 64 ? kShortMaxS : kShortMaxS / 2);
}

template <typename T, int D>
Status launch_short(const KernelArgs& args, const AttnParams& p, int64_t batches) {
  auto* kernel =
      p.has_mask ? attention_short_kernel<T, D, true> : attention_short_kernel<T, D, false>;
  const int n_strips = static_cast<int>((p.L + 15) / 16);
  // Whole batch entries per block when there are enough of them to fill the device; else split
  // each entry's strips over blocks, down to one strip per warp.
  const CudaBackendState* state = state_of(args);
  const int64_t sms = state && state->sm_count > 0 ? state->sm_count : 132;
  const int max_split = (n_strips + kShortWarps - 1) / kShortWarps;
  static const int forced_split = [] {  // KILN_SHORT_SPLIT=n: n blocks per entry (A/B timing)
    const char* e = std::getenv("KILN_SHORT_SPLIT");
    return e ? std::atoi(e) : 0;
  }();
  const int split = static_cast<int>(std::clamp<int64_t>(
      forced_split > 0 ? forced_split : (2 * sms + batches - 1) / batches, 1, max_split));
  const int strips_per_block = (n_strips + split - 1) / split;
  const int blocks_x = (n_strips + strips_per_block - 1) / strips_per_block;
  const int kv_rows = static_cast<int>((p.S + 15) & ~int64_t{15});
  const size_t bytes = short_smem_bytes<D>(kv_rows, p.has_mask && p.m_rs == 0);
  if (bytes > 48 * 1024)
    KILN_CUDA_CHECK(args,
                    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)),
                    "cudaFuncSetAttribute");
  const dim3 grid(static_cast<unsigned>(blocks_x),
                  static_cast<unsigned>(std::min<int64_t>(batches, 65535)));
  kernel<<<grid, kShortWarps * 32, bytes, stream_of(args)>>>(p, batches, strips_per_block);
  KILN_RETURN_IF_ERROR(check_launch(args, "attention kernel (tensor cores, short sequences)"));
  g_launches.fetch_add(1, std::memory_order_relaxed);
  short_launches.fetch_add(1, std::memory_order_relaxed);
  return Status::Ok();
}

template <typename T, int D>
Status launch_any(const KernelArgs& args, const AttnParams& p, int64_t batches) {
  return short_kernel_serves(p) ? launch_short<T, D>(args, p, batches)
                                : launch<T, D>(args, p, batches);
}

}  // namespace

const char* attention_mma_refusal(const KernelArgs& args, const AttnParams& p, DType dtype) {
  if (dtype != DType::kFloat16 && dtype != DType::kBFloat16) return "dtype is not fp16/bf16";
  if (p.E != p.Ev || (p.E != 64 && p.E != 128)) return "head dims are not 64 or 128";
  if (p.q_cs != 1 || p.k_cs != 1 || p.v_cs != 1 || p.o_cs != 1)
    return "a head dim is not contiguous";
  if (!rows_aligned(p.q, p.q_rs, p.qm, p.nb) || !rows_aligned(p.k, p.k_rs, p.km, p.nb) ||
      !rows_aligned(p.v, p.v_rs, p.vm, p.nb) || !rows_aligned(p.out, p.o_rs, p.om, p.nb))
    return "rows are not 16-byte aligned";
  if (p.L > (int64_t{1} << 30) || p.S > (int64_t{1} << 30)) return "sequence too long";
  if ((p.L + kBlockM - 1) / kBlockM > 0x7fffffff) return "too many query tiles";
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "cannot query the device";
  }
  if (major < 8) return "device older than sm_80";
  (void)args;
  return nullptr;
}

Status launch_attention_mma(const KernelArgs& args, const AttnParams& p, DType dtype,
                            int64_t batches) {
  if (dtype == DType::kFloat16)
    return p.E == 64 ? launch_any<half, 64>(args, p, batches)
                     : launch_any<half, 128>(args, p, batches);
  return p.E == 64 ? launch_any<bf16, 64>(args, p, batches)
                   : launch_any<bf16, 128>(args, p, batches);
}

int64_t attention_mma_launch_count() { return g_launches.load(std::memory_order_relaxed); }
int64_t attention_mma_short_launch_count() {
  return short_launches.load(std::memory_order_relaxed);
}

}  // namespace kiln::cuda
