// launch_copy: the strided copy behind every view op (permute, expand, slice...), concat, flip
// and copy. Elements move as raw bits. The walk is first coalesced (make_index), then:
// - when the innermost dim is contiguous in both operands (a permute that keeps the last dim
//   last, a concat slab), runs of it are moved as wider units, up to 16 bytes;
// - a walk contiguous in both operands is the same widened kernel, not a cudaMemcpyAsync: a
//   memcpy node in a captured graph makes cudaGraphLaunch block the host (graph_memset.cu);
// - when the destination's innermost dim is another dim than the source's (a transpose), a
//   tiled shared-memory transpose reads and writes along the contiguous dims;
// - anything else takes an element-per-thread kernel: with 32-bit index math (multiply-shift
//   division) when every offset fits, else the 64-bit StridedIndex.

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

template <typename U>
__global__ void copy_kernel(StridedIndex<2> ix, const U* src, U* dst, int64_t n) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    dst[o[1]] = src[o[0]];
  }
}

// Unsigned division by a run-time constant as a multiply-high, an add and a shift
// (Granlund-Montgomery, as PyTorch's IntDivider): exact for dividends and divisors below 2^31.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    for (s = 0; s < 31; ++s)
      if ((1u << s) >= d) break;
    const uint64_t one = 1;
    m = static_cast<uint32_t>(((one << 32) * ((one << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

// A coalesced walk whose element count and offsets all fit in 31 bits.
struct CopyIndex32 {
  int rank = 0;
  FastDiv shape[kMaxRank];
  int32_t src_strides[kMaxRank] = {};
  int32_t dst_strides[kMaxRank] = {};
};

template <typename U>
__global__ void copy32_kernel(CopyIndex32 ix, const U* src, U* dst, uint32_t n) {
  const uint32_t stride = gridDim.x * blockDim.x;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint32_t rest = i;
    int32_t so = 0, dof = 0;
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; --d) {
      if (d >= ix.rank) continue;
      const uint32_t q = ix.shape[d].div(rest);
      const int32_t r = static_cast<int32_t>(rest - q * ix.shape[d].d);
      rest = q;
      so += r * ix.src_strides[d];
      dof += r * ix.dst_strides[d];
    }
    dst[dof] = src[so];
  }
}

// dst and src walked over dims [batch..., a..., b] where src steps 1 along dim a and dst steps 1
// along the last dim b: 32x32 tiles staged in shared memory (padded against bank conflicts), so
// both the reads (along a) and the writes (along b) are coalesced.
struct TransposeGeom {
  int64_t len_a = 0, len_b = 0;
  int64_t src_stride_b = 0, dst_stride_a = 0;
  int batch_rank = 0;
  int64_t batches = 1;
  int64_t batch_shape[kMaxRank] = {};
  int64_t batch_src[kMaxRank] = {};
  int64_t batch_dst[kMaxRank] = {};
};

inline constexpr int kTile = 32;
inline constexpr int kTileRows = 8;  // block of 32 x 8 threads, 4 elements each per tile

template <typename U>
__global__ void transpose_kernel(TransposeGeom g, const U* src, U* dst) {
  __shared__ U tile[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles_a = (g.len_a + kTile - 1) / kTile;
  const int64_t tiles_b = (g.len_b + kTile - 1) / kTile;
  for (int64_t z = blockIdx.z; z < g.batches; z += gridDim.z) {
    int64_t rest = z, so = 0, dof = 0;
    for (int d = g.batch_rank - 1; d >= 0; --d) {
      const int64_t q = rest / g.batch_shape[d];
      const int64_t r = rest - q * g.batch_shape[d];
      rest = q;
      so += r * g.batch_src[d];
      dof += r * g.batch_dst[d];
    }
    for (int64_t ta = blockIdx.y; ta < tiles_a; ta += gridDim.y) {
      for (int64_t tb = blockIdx.x; tb < tiles_b; tb += gridDim.x) {
        const int64_t a0 = ta * kTile, b0 = tb * kTile;
        for (int j = ty; j < kTile; j += kTileRows) {
          const int64_t a = a0 + tx, b = b0 + j;
          if (a < g.len_a && b < g.len_b) tile[j][tx] = src[so + a + b * g.src_stride_b];
        }
        __syncthreads();
        for (int j = ty; j < kTile; j += kTileRows) {
          const int64_t b = b0 + tx, a = a0 + j;
          if (a < g.len_a && b < g.len_b) dst[dof + b + a * g.dst_stride_a] = tile[tx][j];
        }
        __syncthreads();
      }
    }
  }
}

// When the innermost dim is contiguous in both operands, the walk in units of the widest
// power-of-two size up to 16 bytes that divides the run, every other stride and both pointers.
// Returns the unit size (es when nothing wider fits; ix is then unchanged).
size_t widen(StridedIndex<2>& ix, size_t es, const void* src, const void* dst) {
  if (ix.rank == 0) return es;
  const int last = ix.rank - 1;
  if (ix.strides[0][last] != 1 || ix.strides[1][last] != 1) return es;
  for (size_t w = 16; w > es; w /= 2) {
    const int64_t f = static_cast<int64_t>(w / es);
    bool ok = ix.shape[last] % f == 0 && aligned_to(src, w) && aligned_to(dst, w);
    for (int d = 0; d < last && ok; ++d)
      ok = ix.strides[0][d] % f == 0 && ix.strides[1][d] % f == 0;
    if (!ok) continue;
    int64_t shape[kMaxRank], s0[kMaxRank], s1[kMaxRank];
    for (int d = 0; d < last; ++d) {
      shape[d] = ix.shape[d];
      s0[d] = ix.strides[0][d] / f;
      s1[d] = ix.strides[1][d] / f;
    }
    shape[last] = ix.shape[last] / f;
    s0[last] = s1[last] = 1;
    const int64_t* st[2] = {s0, s1};
    ix = make_index<2>(shape, ix.rank, st);  // re-coalesce: the run may now be one unit
    return w;
  }
  return es;
}

// The transpose geometry when the walk is one (see transpose_kernel), with both tile dims long
// enough that tiles are not mostly empty.
bool as_transpose(const StridedIndex<2>& ix, TransposeGeom& g) {
  if (ix.rank < 2) return false;
  const int last = ix.rank - 1;
  if (ix.strides[1][last] != 1 || ix.strides[0][last] == 1) return false;
  int a = -1;
  for (int d = 0; d < last; ++d)
    if (ix.strides[0][d] == 1) a = d;
  if (a < 0 || ix.shape[a] < 8 || ix.shape[last] < 8) return false;
  g.len_a = ix.shape[a];
  g.len_b = ix.shape[last];
  g.src_stride_b = ix.strides[0][last];
  g.dst_stride_a = ix.strides[1][a];
  for (int d = 0; d < last; ++d) {
    if (d == a) continue;
    g.batch_shape[g.batch_rank] = ix.shape[d];
    g.batch_src[g.batch_rank] = ix.strides[0][d];
    g.batch_dst[g.batch_rank] = ix.strides[1][d];
    g.batches *= ix.shape[d];
    ++g.batch_rank;
  }
  return true;
}

// The 32-bit form of the walk, when its element count and every offset fit in 31 bits.
bool as_index32(const StridedIndex<2>& ix, int64_t n, CopyIndex32& out) {
  constexpr int64_t kLimit = int64_t{1} << 31;
  if (n >= kLimit) return false;
  int64_t extent[2] = {0, 0};
  for (int d = 0; d < ix.rank; ++d)
    for (int k = 0; k < 2; ++k) extent[k] += (ix.shape[d] - 1) * std::abs(ix.strides[k][d]);
  if (extent[0] >= kLimit || extent[1] >= kLimit) return false;
  out.rank = ix.rank;
  for (int d = 0; d < ix.rank; ++d) {
    out.shape[d] = FastDiv(static_cast<uint32_t>(ix.shape[d]));
    out.src_strides[d] = static_cast<int32_t>(ix.strides[0][d]);
    out.dst_strides[d] = static_cast<int32_t>(ix.strides[1][d]);
  }
  return true;
}

// f(TypeTag<U>) with U an unsigned type (or uint4) of `bytes` size.
template <typename F>
void dispatch_unit(size_t bytes, F&& f) {
  switch (bytes) {
    case 1:
      return f(TypeTag<uint8_t>{});
    case 2:
      return f(TypeTag<uint16_t>{});
    case 4:
      return f(TypeTag<uint32_t>{});
    case 8:
      return f(TypeTag<uint64_t>{});
    default:
      return f(TypeTag<uint4>{});
  }
}

}  // namespace

Status launch_copy(const KernelArgs& args, const TensorView& src, const TensorView& dst) {
  const int64_t n = src.numel();
  if (n == 0) return Status::Ok();
  if (src.dtype != dst.dtype || !same_shape(src, dst))
    return internal_error(op_label(args), ": strided copy between different shapes or dtypes");
  const size_t es = dtype_size(src.dtype);
  cudaStream_t stream = stream_of(args);
  const int64_t* strides[2] = {src.strides, dst.strides};
  StridedIndex<2> ix = make_index<2>(src.shape, src.rank, strides);
  const size_t unit = widen(ix, es, src.data, dst.data);
  const int64_t units = n * static_cast<int64_t>(es) / static_cast<int64_t>(unit);
  TransposeGeom tg;
  CopyIndex32 ix32;
  const bool transpose = as_transpose(ix, tg);
  const bool index32 = !transpose && as_index32(ix, units, ix32);
  dispatch_unit(unit, [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* s = src.as<const U>();
    U* d = dst.as<U>();
    if (transpose) {
      const int64_t tiles_a = (tg.len_a + kTile - 1) / kTile;
      const int64_t tiles_b = (tg.len_b + kTile - 1) / kTile;
      const dim3 grid(static_cast<unsigned>(std::min<int64_t>(tiles_b, 65535)),
                      static_cast<unsigned>(std::min<int64_t>(tiles_a, 65535)),
                      static_cast<unsigned>(std::min<int64_t>(tg.batches, 65535)));
      transpose_kernel<U><<<grid, dim3(kTile, kTileRows), 0, stream>>>(tg, s, d);
    } else if (index32) {
      copy32_kernel<U>
          <<<grid_for(units), kBlock, 0, stream>>>(ix32, s, d, static_cast<uint32_t>(units));
    } else {
      copy_kernel<U><<<grid_for(units), kBlock, 0, stream>>>(ix, s, d, units);
    }
  });
  return check_launch(args, "copy kernel");
}

}  // namespace kiln::cuda
