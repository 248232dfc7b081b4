// Normalizations: batch_norm (inference: a per-channel affine map), layer_norm and rms_norm over
// the trailing dims, group_norm over channel groups. The three statistics norms share one
// kernel: a block per normalized row (a contiguous range of logical indices), two passes for
// mean and variance, float32 statistics. Inputs are read in place through their strides;
// parameters may have any float dtype and strides. Also the per-channel bias add used by conv.
// layer_norm (residual or not) and rms_norm over rows of up to 8192 contiguous elements take a
// faster kernel (fast_row_norm_kernel): a warp per row up to 1024 elements, else a block per
// row, the row held in registers and read with 16-byte loads when aligned. The rows themselves
// may lie anywhere (a transposed view such as attention's [L, N, E] read as [N, L, E]).

#include <algorithm>
#include <cstdlib>
#include <string>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

// An optional parameter tensor read as float at a logical index.
struct Param {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  StridedIndex<1> ix;
  __device__ __forceinline__ float at(int64_t i) const {
    return load_float_dyn(data, dtype, ix.offset(i));
  }
};

// Optional input i as a Param, checked to hold n elements (absent: data nullptr).
Result<Param> param(const KernelArgs& args, size_t i, int64_t n, const char* what) {
  Param p;
  if (i >= args.inputs.size() || args.inputs[i].data == nullptr) return p;
  const TensorView& v = args.inputs[i];
  if (v.numel() != n)
    return kernel_error(args, what, " has ", v.numel(), " elements, expected ", n);
  if (!is_floating(v.dtype)) return kernel_unsupported(args, what, " must be a float tensor");
  p.data = v.data;
  p.dtype = v.dtype;
  p.ix = make_index(v);
  return p;
}

Status check_out(const KernelArgs& args) {
  if (!same_shape(args.inputs[0], args.outputs[0]) ||
      args.inputs[0].dtype != args.outputs[0].dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  if (!is_floating(args.inputs[0].dtype))
    return kernel_unsupported(args, "needs a float dtype, got ", dtype_name(args.inputs[0].dtype));
  return Status::Ok();
}

template <typename T>
__global__ void batch_norm_kernel(StridedIndex<1> ix, const T* x, T* y, int64_t n, int64_t C,
                                  int64_t inner, Param mean, Param var, Param w, Param b,
                                  float eps) {
  KILN_GRID_STRIDE(i, n) {
    const int64_t c = (i / inner) % C;
    float s = 1.0f / sqrtf(var.at(c) + eps);
    if (w.data) s *= w.at(c);
    const float t = (b.data ? b.at(c) : 0.0f) - mean.at(c) * s;
    y[i] = from_float<T>(to_float(x[ix.offset(i)]) * s + t);
  }
}

enum NormMode : int { kLayer, kRms, kGroup };

// Rows of `len` logical elements: row r covers logical indices [r*len, (r+1)*len). The weight /
// bias index of element j is j (layer, rms) or its channel (group: (r % groups)*cpg + j/inner).
template <typename T>
__global__ void row_norm_kernel(StridedIndex<1> ix, const T* x, T* y, int64_t rows, int64_t len,
                                int mode, Param w, Param b, float eps, int64_t groups,
                                int64_t cpg, int64_t inner) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * len;
    float mean = 0.0f, var = 0.0f;
    if (mode == kRms) {
      float ss = 0.0f;
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const float v = to_float(x[ix.offset(base + j)]);
        ss += v * v;
      }
      var = block_reduce(ss, SumOp{}, scratch) / static_cast<float>(len);
    } else {
      float s = 0.0f;
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) s += to_float(x[ix.offset(base + j)]);
      mean = block_reduce(s, SumOp{}, scratch) / static_cast<float>(len);
      float m2 = 0.0f;
      for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const float d = to_float(x[ix.offset(base + j)]) - mean;
        m2 += d * d;
      }
      var = block_reduce(m2, SumOp{}, scratch) / static_cast<float>(len);
    }
    const float r = 1.0f / sqrtf(var + eps);
    const int64_t ch0 = mode == kGroup ? (row % groups) * cpg : 0;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      const int64_t p = mode == kGroup ? ch0 + j / inner : j;
      float v = (to_float(x[ix.offset(base + j)]) - mean) * r;
      if (w.data) v *= w.at(p);
      if (b.data) v += b.at(p);
      y[base + j] = from_float<T>(v);
    }
  }
}

// layer_norm with residual=true (op_list.inc): row r normalizes s = x + residual, where s is
// rounded to T as the unfused add stored it and optionally written to `sum_out`. The row is read
// once: s is kept in shared memory (`cache`, len floats) when it fits, else recomputed.
template <typename T>
__global__ void residual_layer_norm_kernel(StridedIndex<1> ix, StridedIndex<1> rx, const T* x,
                                           const T* res, T* y, T* sum_out, int64_t rows,
                                           int64_t len, Param w, Param b, float eps, bool cache) {
  extern __shared__ float row_cache[];
  __shared__ float scratch[32];
  auto sum_at = [&](int64_t i) {
    return to_float(from_float<T>(to_float(x[ix.offset(i)]) + to_float(res[rx.offset(i)])));
  };
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * len;
    float s = 0.0f;
    // Each thread reads back only the cache slots it wrote: no barrier needed around them.
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      const float v = sum_at(base + j);
      if (cache) row_cache[j] = v;
      if (sum_out) sum_out[base + j] = from_float<T>(v);
      s += v;
    }
    const float mean = block_reduce(s, SumOp{}, scratch) / static_cast<float>(len);
    float m2 = 0.0f;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      const float d = (cache ? row_cache[j] : sum_at(base + j)) - mean;
      m2 += d * d;
    }
    const float var = block_reduce(m2, SumOp{}, scratch) / static_cast<float>(len);
    const float r = 1.0f / sqrtf(var + eps);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      float v = ((cache ? row_cache[j] : sum_at(base + j)) - mean) * r;
      if (w.data) v *= w.at(j);
      if (b.data) v += b.at(j);
      y[base + j] = from_float<T>(v);
    }
  }
}

// layer_norm / rms_norm (rms: no mean) of contiguous rows of `len` elements, optionally of
// s = x + res rounded to T (written to sum_out when not null), as residual_layer_norm_kernel.
// kBlockRow false: a warp per row, blockDim.x / 32 rows per block, the parameters staged in
// shared memory as float (dynamic: weight then bias, len each, when present). kBlockRow true: a
// block per row, parameters read in place. Each thread keeps kChunks vectors of VW elements of
// its row in registers: len <= 32 * VW * kChunks (warp) or blockDim.x * VW * kChunks (block).
// len is a multiple of VW and the pointers are aligned to VW elements. Row r of x starts at
// element rix.offsets(r)[0], of res at [1] (both multiples of VW); y and sum_out are contiguous.
template <typename T, int VW, int kChunks, bool kBlockRow>
__global__ void fast_row_norm_kernel(const T* __restrict__ x, const T* __restrict__ res,
                                     T* __restrict__ y, T* __restrict__ sum_out,
                                     StridedIndex<2> rix, int64_t rows, int len, bool rms, Param w,
                                     Param b, const T* __restrict__ wt, const T* __restrict__ bt,
                                     float eps) {
  using Vec = VecOf<T, VW>;
  extern __shared__ float staged[];
  __shared__ float scratch[32];
  const int lanes = kBlockRow ? static_cast<int>(blockDim.x) : 32;
  const int lane = kBlockRow ? static_cast<int>(threadIdx.x) : static_cast<int>(threadIdx.x & 31);
  const int group = kBlockRow ? 0 : static_cast<int>(threadIdx.x >> 5);
  const int groups = kBlockRow ? 1 : static_cast<int>(blockDim.x >> 5);
  float* sw = staged;
  float* sb = staged + (w.data ? len : 0);
  // wt / bt: the weight and bias when they are contiguous, aligned and of x's dtype, read as
  // vectors beside x (staging them would cost each block 2 * len dependent loads).
  const bool typed = (!w.data || wt) && (!b.data || bt);
  if (!kBlockRow && !typed) {
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
      if (w.data) sw[j] = w.at(j);
      if (b.data) sb[j] = b.at(j);
    }
    __syncthreads();
  }
  auto reduce = [&](float v) {
    if constexpr (kBlockRow) {
      return block_reduce(v, SumOp{}, scratch);
    } else {
      return warp_reduce(v, SumOp{});
    }
  };
  const int nvec = len / VW;
  const float inv_len = 1.0f / static_cast<float>(len);
  // Uniform per warp (per block when kBlockRow): the reductions see every lane.
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * groups + group; row < rows;
       row += static_cast<int64_t>(gridDim.x) * groups) {
    const int64_t base = row * len;
    int64_t in_off[2];
    rix.offsets(row, in_off);
    const Vec* xr = reinterpret_cast<const Vec*>(x + in_off[0]);
    // The typed weight and bias are loaded now, with x, so their latency hides behind x's and
    // the reductions instead of following them (vectors only: the scalar variants have no
    // registers to spare at 512 threads).
    constexpr bool kPrefetch = VW > 1;
    Vec wv[kPrefetch ? kChunks : 1], bv[kPrefetch ? kChunks : 1];
    if (kPrefetch && typed) {
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int vi = c * lanes + lane;
        if (vi < nvec) {
          if (wt) wv[c] = reinterpret_cast<const Vec*>(wt)[vi];
          if (bt) bv[c] = reinterpret_cast<const Vec*>(bt)[vi];
        }
      }
    }
    float v[kChunks][VW];
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = c * lanes + lane;
      if (vi < nvec) {
        const Vec xv = xr[vi];
        if (res) {
          const Vec rv = reinterpret_cast<const Vec*>(res + in_off[1])[vi];
          Vec sv;
#pragma unroll
          for (int k = 0; k < VW; ++k) {
            sv.v[k] = from_float<T>(to_float(xv.v[k]) + to_float(rv.v[k]));
            v[c][k] = to_float(sv.v[k]);
          }
          if (sum_out) reinterpret_cast<Vec*>(sum_out + base)[vi] = sv;
        } else {
#pragma unroll
          for (int k = 0; k < VW; ++k) v[c][k] = to_float(xv.v[k]);
        }
#pragma unroll
        for (int k = 0; k < VW; ++k) s += v[c][k];
      } else {
#pragma unroll
        for (int k = 0; k < VW; ++k) v[c][k] = 0.0f;
      }
    }
    const float mean = rms ? 0.0f : reduce(s) * inv_len;
    float m2 = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if (c * lanes + lane < nvec) {
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const float d = v[c][k] - mean;
          m2 += d * d;
        }
      }
    }
    const float r = 1.0f / sqrtf(reduce(m2) * inv_len + eps);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = c * lanes + lane;
      if (vi < nvec) {
        Vec o;
        if (typed) {
          Vec w1, b1;
          if constexpr (kPrefetch) {
            w1 = wv[c];
            b1 = bv[c];
          } else {
            if (wt) w1 = reinterpret_cast<const Vec*>(wt)[vi];
            if (bt) b1 = reinterpret_cast<const Vec*>(bt)[vi];
          }
#pragma unroll
          for (int k = 0; k < VW; ++k) {
            float t = (v[c][k] - mean) * r;
            if (wt) t *= to_float(w1.v[k]);
            if (bt) t += to_float(b1.v[k]);
            o.v[k] = from_float<T>(t);
          }
          reinterpret_cast<Vec*>(y + base)[vi] = o;
          continue;
        }
#pragma unroll
        for (int k = 0; k < VW; ++k) {
          const int j = vi * VW + k;
          float t = (v[c][k] - mean) * r;
          if constexpr (kBlockRow) {
            if (w.data) t *= w.at(j);
            if (b.data) t += b.at(j);
          } else {
            if (w.data) t *= sw[j];
            if (b.data) t += sb[j];
          }
          o.v[k] = from_float<T>(t);
        }
        reinterpret_cast<Vec*>(y + base)[vi] = o;
      }
    }
  }
}

// The warp-per-row layer_norm / rms_norm for 2-byte dtypes with typed parameters (or none):
// fast_row_norm_kernel's arithmetic, the same operations in the same order, with the
// row kept as its packed 16-byte vectors (kChunks of them per lane, exactly what len needs)
// instead of floats, and the weight and bias read when used. About half the registers, so about
// twice the rows in flight per SM (fp16, len 768: 54 registers, 9 blocks of 4 warps per SM,
// against 92 and 5).
template <typename T, int kChunks>
__global__ void __launch_bounds__(128) packed_row_norm_kernel(
    const T* __restrict__ x, const T* __restrict__ res, T* __restrict__ y, T* __restrict__ sum_out,
    StridedIndex<2> rix, int64_t rows, int len, bool rms, const T* __restrict__ wt,
    const T* __restrict__ bt, float eps) {
  constexpr int VW = 8;
  using Vec = VecOf<T, VW>;
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int group = static_cast<int>(threadIdx.x >> 5);
  const int groups = static_cast<int>(blockDim.x >> 5);
  const int nvec = len / VW;
  const float inv_len = 1.0f / static_cast<float>(len);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * groups + group; row < rows;
       row += static_cast<int64_t>(gridDim.x) * groups) {
    const int64_t base = row * len;
    int64_t in_off[2];
    rix.offsets(row, in_off);
    const Vec* xr = reinterpret_cast<const Vec*>(x + in_off[0]);
    Vec v[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = c * 32 + lane;
      if (vi < nvec) v[c] = xr[vi];
    }
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = c * 32 + lane;
      if (vi >= nvec) continue;
      if (res) {
        const Vec rv = reinterpret_cast<const Vec*>(res + in_off[1])[vi];
#pragma unroll
        for (int k = 0; k < VW; ++k) v[c].v[k] = from_float<T>(to_float(v[c].v[k]) + to_float(rv.v[k]));
        if (sum_out) reinterpret_cast<Vec*>(sum_out + base)[vi] = v[c];
      }
#pragma unroll
      for (int k = 0; k < VW; ++k) s += to_float(v[c].v[k]);
    }
    const float mean = rms ? 0.0f : warp_reduce(s, SumOp{}) * inv_len;
    float m2 = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if (c * 32 + lane >= nvec) continue;
#pragma unroll
      for (int k = 0; k < VW; ++k) {
        const float d = to_float(v[c].v[k]) - mean;
        m2 += d * d;
      }
    }
    const float r = 1.0f / sqrtf(warp_reduce(m2, SumOp{}) * inv_len + eps);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int vi = c * 32 + lane;
      if (vi >= nvec) continue;
      Vec w1, b1, o;
      if (wt) w1 = reinterpret_cast<const Vec*>(wt)[vi];
      if (bt) b1 = reinterpret_cast<const Vec*>(bt)[vi];
#pragma unroll
      for (int k = 0; k < VW; ++k) {
        float t = (to_float(v[c].v[k]) - mean) * r;
        if (wt) t *= to_float(w1.v[k]);
        if (bt) t += to_float(b1.v[k]);
        o.v[k] = from_float<T>(t);
      }
      reinterpret_cast<Vec*>(y + base)[vi] = o;
    }
  }
}

// KILN_PACKED_NORM=0: layer_norm takes fast_row_norm_kernel where packed_row_norm_kernel would
// serve (for A/B timing).
bool packed_norm_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("KILN_PACKED_NORM");
    return !(v && v[0] == '0');
  }();
  return on;
}

template <typename T>
__global__ void channel_bias_kernel(T* y, int64_t n, int64_t C, int64_t inner, Param bias) {
  KILN_GRID_STRIDE(i, n) {
    y[i] = from_float<T>(to_float(y[i]) + bias.at((i / inner) % C));
  }
}

Status supports_norm(const Op& op, std::span<const DType> dtypes) {
  for (DType d : dtypes)
    if (!is_floating(d))
      return unsupported(op_kind_name(op.kind), ": needs float inputs, got ", dtype_name(d));
  return Status::Ok();
}

int threads_for(int64_t len) { return len >= 1024 ? 256 : len >= 128 ? 128 : 32; }

int sm_count() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    (void)cudaGetLastError();  // not a launch error: do not let check_launch report it
    return 128;
  }
  return sms;
}

// The fast kernel for layer_norm / rms_norm (res: the residual, or null) when every tensor is
// contiguous and a row fits in registers. False: the caller runs the general kernels.
template <typename T, int VW>
bool launch_fast_norm_vw(const T* x, const T* res, T* y, T* sum_out, const StridedIndex<2>& rix,
                         int64_t rows, int len, bool rms, Param w, Param b, const T* wt,
                         const T* bt, float eps, cudaStream_t stream) {
  const bool typed = (!w.data || wt) && (!b.data || bt);
  const int64_t sms = sm_count();
  if constexpr (VW > 1) {
    // Few rows (a transformer at batch 1: 128-197 rows of 768): a warp per row leaves about one
    // warp per SM, each lane with 24 elements in series; a block per row with one vector per
    // thread has all of a row's loads in flight at once.
    const int row_threads = (len / VW + 31) / 32 * 32;
    if (len <= 1024 && rows > 0 && rows <= 2 * sms && row_threads >= 64 &&
        row_threads <= 512) {
      fast_row_norm_kernel<T, VW, 1, true><<<static_cast<unsigned>(rows), row_threads, 0, stream>>>(
          x, res, y, sum_out, rix, rows, len, rms, w, b, wt, bt, eps);
      return true;
    }
  }
  if constexpr (VW == 8 && sizeof(T) == 2) {
    if (len <= 1024 && typed && packed_norm_enabled()) {
      const int warps = rows >= 4 * sms ? 4 : 1;  // as below: fewer rows spread over more SMs
      const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((rows + warps - 1) / warps, sms * 16));
      const int chunks = (len / VW + 31) / 32;
      auto go = [&](auto kernel) {
        kernel<<<blocks, warps * 32, 0, stream>>>(x, res, y, sum_out, rix, rows, len, rms, wt, bt, eps);
      };
      switch (chunks) {
        case 1: go(packed_row_norm_kernel<T, 1>); break;
        case 2: go(packed_row_norm_kernel<T, 2>); break;
        case 3: go(packed_row_norm_kernel<T, 3>); break;
        default: go(packed_row_norm_kernel<T, 4>); break;
      }
      return true;
    }
  }
  if (len <= 1024) {
    constexpr int kChunks = 32 / VW;  // 32 elements per lane
    const int warps = rows >= 4 * sms ? 4 : 1;
    const int64_t want = (rows + warps - 1) / warps;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(want, sms * 16));
    const size_t smem =
        typed ? 0 : static_cast<size_t>((w.data ? len : 0) + (b.data ? len : 0)) * 4;
    fast_row_norm_kernel<T, VW, kChunks, false><<<blocks, warps * 32, smem, stream>>>(
        x, res, y, sum_out, rix, rows, len, rms, w, b, wt, bt, eps);
    return true;
  }
  constexpr int kChunks = 16 / VW;  // 16 elements per thread
  // At most 512 threads: the kernel needs about 96 registers a thread (no 1024-thread block).
  const int threads = len <= 256 * 16 ? 256 : 512;
  if (len > threads * 16) return false;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
  fast_row_norm_kernel<T, VW, kChunks, true><<<blocks, threads, 0, stream>>>(
      x, res, y, sum_out, rix, rows, len, rms, w, b, wt, bt, eps);
  return true;
}

// Whether the trailing `k` dims of `v` (the normalized row) are one contiguous run.
bool rows_contiguous(const TensorView& v, int k) {
  const int lead = v.rank - k;
  const int64_t* s[1] = {v.strides + lead};
  return is_flat(make_index<1>(v.shape + lead, k, s));
}

// Picks the vector width: 16 bytes when len, every pointer and every row start allow it, else
// one element. The rows of x and res may be strided (rix); each row's `len` elements (the
// trailing k dims) must be contiguous.
Result<bool> try_fast_norm(const KernelArgs& args, const TensorView* res, void* sum_out,
                           int64_t len, int k, bool rms, Param w, Param b) {
  const TensorView& x = args.inputs[0];
  const TensorView& y = args.outputs[0];
  if (len > 8 * 1024 || !rows_contiguous(x, k) || !is_flat(make_index(y))) return false;
  if (res && !rows_contiguous(*res, k)) return false;
  const int64_t* lead_strides[2] = {x.strides, (res ? res : &x)->strides};
  const StridedIndex<2> rix = make_index<2>(x.shape, x.rank - k, lead_strides);
  const int64_t rows = x.numel() / len;
  const float eps = static_cast<float>(args.attrs.getDouble("eps", 1e-5));
  cudaStream_t stream = stream_of(args);
  bool served = dispatch_floating(x.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = kVecWidth<T>;
    const T* xp = x.as<const T>();
    const T* rp = res ? res->as<const T>() : nullptr;
    T* yp = y.as<T>();
    T* sp = static_cast<T*>(sum_out);
    bool rows_aligned = true;
    for (int d = 0; d < rix.rank; ++d)
      rows_aligned = rows_aligned && rix.strides[0][d] % V == 0 && rix.strides[1][d] % V == 0;
    const bool vec = len % V == 0 && rows_aligned && aligned_to(xp, 16) && aligned_to(yp, 16) &&
                     (!rp || aligned_to(rp, 16)) && (!sp || aligned_to(sp, 16));
    // Parameters read as vectors beside x: contiguous, x's dtype, aligned like x.
    auto typed = [&](const Param& p) -> const T* {
      if (!p.data || p.dtype != x.dtype || !is_flat(p.ix)) return nullptr;
      return !vec || aligned_to(p.data, 16) ? static_cast<const T*>(p.data) : nullptr;
    };
    const T* wt = typed(w);
    const T* bt = typed(b);
    const int n = static_cast<int>(len);
    return vec ? launch_fast_norm_vw<T, V>(xp, rp, yp, sp, rix, rows, n, rms, w, b, wt, bt, eps,
                                           stream)
               : launch_fast_norm_vw<T, 1>(xp, rp, yp, sp, rix, rows, n, rms, w, b, wt, bt, eps,
                                           stream);
  });
  if (!served) return false;
  KILN_RETURN_IF_ERROR(check_launch(args, "layer_norm kernel"));
  return true;
}

Status run_batch_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  if (x.rank < 2) return kernel_error(args, "input needs at least 2 dims, got ", x.rank);
  if (args.inputs.size() < 3) return kernel_error(args, "needs mean and var inputs");
  const int64_t n = x.numel(), C = x.shape[1];
  if (n == 0) return Status::Ok();
  const int64_t inner = n / (x.shape[0] * C);
  KILN_ASSIGN_OR_RETURN(Param mean, param(args, 1, C, "mean"));
  KILN_ASSIGN_OR_RETURN(Param var, param(args, 2, C, "var"));
  KILN_ASSIGN_OR_RETURN(Param w, param(args, 3, C, "weight"));
  KILN_ASSIGN_OR_RETURN(Param b, param(args, 4, C, "bias"));
  if (!mean.data || !var.data) return kernel_error(args, "mean and var are required");
  const float eps = static_cast<float>(args.attrs.getDouble("eps", 1e-5));
  const StridedIndex<1> ix = make_index(x);
  cudaStream_t stream = stream_of(args);
  dispatch_floating(x.dtype, 0, [&](auto tag) {
    using T = typename decltype(tag)::type;
    batch_norm_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
        ix, x.as<const T>(), args.outputs[0].as<T>(), n, C, inner, mean, var, w, b, eps);
    return 0;
  });
  return check_launch(args, "batch_norm kernel");
}

Status launch_row_norm(const KernelArgs& args, int mode, int64_t rows, int64_t len, Param w,
                       Param b, int64_t groups, int64_t cpg, int64_t inner) {
  const TensorView& x = args.inputs[0];
  const float eps = static_cast<float>(args.attrs.getDouble("eps", 1e-5));
  const StridedIndex<1> ix = make_index(x);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
  cudaStream_t stream = stream_of(args);
  dispatch_floating(x.dtype, 0, [&](auto tag) {
    using T = typename decltype(tag)::type;
    row_norm_kernel<T><<<blocks, threads_for(len), 0, stream>>>(
        ix, x.as<const T>(), args.outputs[0].as<T>(), rows, len, mode, w, b, eps, groups, cpg,
        inner);
    return 0;
  });
  return check_launch(args, "norm kernel");
}

template <bool kIsRms>
Status run_trailing_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  const int64_t k = args.attrs.getInt("normalized_ndim", 1);
  if (k < 0 || k > x.rank)
    return kernel_error(args, "normalized_ndim ", k, " out of range for rank ", x.rank);
  int64_t len = 1;
  for (int i = x.rank - static_cast<int>(k); i < x.rank; ++i) len *= x.shape[i];
  if (x.numel() == 0) return Status::Ok();
  // layer_norm residual=true: inputs (x, weight?, bias?, residual).
  const bool residual = !kIsRms && args.attrs.getBool("residual", false);
  const size_t num_params = args.inputs.size() - (residual ? 2 : 1);
  Param w, b;
  if (num_params >= 1) {
    KILN_ASSIGN_OR_RETURN(w, param(args, 1, len, "weight"));
  }
  if constexpr (!kIsRms) {
    if (num_params >= 2) {
      KILN_ASSIGN_OR_RETURN(b, param(args, 2, len, "bias"));
    }
  }
  if (residual) {
    const TensorView& res = args.inputs.back();
    if (!same_shape(res, x) || res.dtype != x.dtype)
      return kernel_error(args, "residual shape or dtype differs from the input's");
    void* sum_out = nullptr;
    if (args.outputs.size() > 1) {
      const TensorView& s = args.outputs[1];
      if (!same_shape(s, x) || s.dtype != x.dtype)
        return kernel_error(args, "sum output shape or dtype differs from the input's");
      sum_out = s.data;
    }
    KILN_ASSIGN_OR_RETURN(bool fast, try_fast_norm(args, &res, sum_out, len, static_cast<int>(k), false, w, b));
    if (fast) return Status::Ok();
    const int64_t rows = x.numel() / len;
    const float eps = static_cast<float>(args.attrs.getDouble("eps", 1e-5));
    const bool cache = len <= 12 * 1024;  // 48 KiB of floats: the default dynamic shared limit
    const size_t smem = cache ? static_cast<size_t>(len) * sizeof(float) : 0;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20));
    const StridedIndex<1> ix = make_index(x), rx = make_index(res);
    cudaStream_t stream = stream_of(args);
    dispatch_floating(x.dtype, 0, [&](auto tag) {
      using T = typename decltype(tag)::type;
      residual_layer_norm_kernel<T><<<blocks, threads_for(len), smem, stream>>>(
          ix, rx, x.as<const T>(), res.as<const T>(), args.outputs[0].as<T>(),
          static_cast<T*>(sum_out), rows, len, w, b, eps, cache);
      return 0;
    });
    return check_launch(args, "residual layer_norm kernel");
  }
  KILN_ASSIGN_OR_RETURN(bool fast, try_fast_norm(args, nullptr, nullptr, len, static_cast<int>(k), kIsRms, w, b));
  if (fast) return Status::Ok();
  return launch_row_norm(args, kIsRms ? kRms : kLayer, x.numel() / len, len, w, b, 1, 1, 1);
}

Status run_group_norm(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_out(args));
  const TensorView& x = args.inputs[0];
  if (x.rank < 2) return kernel_error(args, "input needs at least 2 dims, got ", x.rank);
  const int64_t N = x.shape[0], C = x.shape[1];
  const int64_t groups = args.attrs.getInt("groups", 1);
  if (groups <= 0 || C % groups != 0)
    return kernel_error(args, "groups ", groups, " does not divide ", C, " channels");
  if (x.numel() == 0) return Status::Ok();
  const int64_t inner = x.numel() / (N * C), cpg = C / groups;
  KILN_ASSIGN_OR_RETURN(Param w, param(args, 1, C, "weight"));
  KILN_ASSIGN_OR_RETURN(Param b, param(args, 2, C, "bias"));
  return launch_row_norm(args, kGroup, N * groups, cpg * inner, w, b, groups, cpg, inner);
}

}  // namespace

Status launch_channel_bias(const KernelArgs& args, void* y, DType dtype, int64_t N, int64_t C,
                           int64_t inner, const TensorView& bias) {
  const int64_t n = N * C * inner;
  if (n == 0) return Status::Ok();
  if (bias.numel() != C)
    return kernel_error(args, "bias has ", bias.numel(), " elements, expected ", C);
  if (!is_floating(bias.dtype)) return kernel_unsupported(args, "bias must be a float tensor");
  Param p;
  p.data = bias.data;
  p.dtype = bias.dtype;
  p.ix = make_index(bias);
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    channel_bias_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(static_cast<T*>(y), n, C, inner, p);
    return true;
  });
  if (!served) return kernel_unsupported(args, "bias add on ", dtype_name(dtype));
  return check_launch(args, "bias kernel");
}

void register_norm_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kBatchNorm, "cuda.batch_norm", supports_norm, run_batch_norm});
  out.push_back({OpKind::kLayerNorm, "cuda.layer_norm", supports_norm, run_trailing_norm<false>});
  out.push_back({OpKind::kGroupNorm, "cuda.group_norm", supports_norm, run_group_norm});
  out.push_back({OpKind::kRmsNorm, "cuda.rms_norm", supports_norm, run_trailing_norm<true>});
}

}  // namespace kiln::cuda
