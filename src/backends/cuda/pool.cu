// Pooling: max and average pooling (1d/2d/3d) and adaptive average pooling with PyTorch's window
// rules, one thread per output element. Every case runs as 3-D (missing leading spatial dims
// have size 1); the input is read through its strides. The output shape (ceil_mode included)
// comes from inference; kernels only walk windows. layout "nhwc" (2-D): x is read through an
// NCHW view of its [N, H, W, C] strides and output elements are numbered in NHWC order.

#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"
#include "backends/cuda/nhwc.h"

namespace kiln::cuda {
namespace {

struct PoolGeom {
  int64_t N = 0, C = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, pad[3] = {0, 0, 0}, dil[3] = {1, 1, 1};
  int64_t xs_n = 0, xs_c = 0, xs[3] = {0, 0, 0};  // input strides
  bool channels_last = false;  // output element i is numbered [N, *sp, C] (layout nhwc)
};

Status read_spatial(const KernelArgs& args, const char* name, int sp, int64_t* dst) {
  const std::vector<int64_t> v = args.attrs.getInts(name, {});
  if (v.empty()) return Status::Ok();
  if (static_cast<int>(v.size()) != sp)
    return kernel_error(args, name, " has ", v.size(), " values, expected ", sp);
  for (int i = 0; i < sp; ++i) dst[3 - sp + i] = v[i];
  return Status::Ok();
}

Status read_geom(const KernelArgs& args, PoolGeom& g) {
  KILN_ASSIGN_OR_RETURN(g.channels_last, read_nhwc(args));
  const TensorView x = g.channels_last ? nchw_view(args.inputs[0]) : args.inputs[0];
  const TensorView y = g.channels_last ? nchw_view(args.outputs[0]) : args.outputs[0];
  if (x.rank < 3 || x.rank > 5 || y.rank != x.rank || y.shape[0] != x.shape[0] ||
      y.shape[1] != x.shape[1] || y.dtype != x.dtype)
    return kernel_error(args, "expected x[N, C, *spatial] of rank 3, 4 or 5 and an output of the "
                              "same rank, N, C and dtype");
  const int sp = x.rank - 2;
  g.N = x.shape[0];
  g.C = x.shape[1];
  g.xs_n = x.strides[0];
  g.xs_c = x.strides[1];
  for (int i = 0; i < sp; ++i) {
    g.in[3 - sp + i] = x.shape[2 + i];
    g.out[3 - sp + i] = y.shape[2 + i];
    g.xs[3 - sp + i] = x.strides[2 + i];
  }
  return Status::Ok();
}

// Splits output element i into (plane base offset in x, od, oh, ow).
__device__ __forceinline__ const void* locate(const PoolGeom& g, int64_t i, const char* x,
                                              size_t es, int64_t& od, int64_t& oh, int64_t& ow) {
  int64_t c = 0;
  if (g.channels_last) {
    c = i % g.C;
    i /= g.C;
  }
  ow = i % g.out[2];
  i /= g.out[2];
  oh = i % g.out[1];
  i /= g.out[1];
  od = i % g.out[0];
  i /= g.out[0];
  if (!g.channels_last) {
    c = i % g.C;
    i /= g.C;
  }
  const int64_t n = i;
  return x + (n * g.xs_n + c * g.xs_c) * static_cast<int64_t>(es);
}

template <typename T>
__global__ void max_pool_kernel(PoolGeom g, const T* x, T* y, int64_t n) {
  KILN_GRID_STRIDE(i, n) {
    int64_t od, oh, ow;
    const T* xp = static_cast<const T*>(
        locate(g, i, reinterpret_cast<const char*>(x), sizeof(T), od, oh, ow));
    float best = -INFINITY;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      const int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
      if (id < 0 || id >= g.in[0]) continue;
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        const int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
        if (ih < 0 || ih >= g.in[1]) continue;
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
          if (iw < 0 || iw >= g.in[2]) continue;
          const float v = to_float(xp[id * g.xs[0] + ih * g.xs[1] + iw * g.xs[2]]);
          if (v > best || v != v) best = v;  // a NaN in the window wins
        }
      }
    }
    y[i] = from_float<T>(best);
  }
}

// Max pooling, layout nhwc, 2-D, channels contiguous in x and y (C % V == 0, x, y and every x
// stride aligned to 16 bytes): thread i computes V consecutive channels of one output pixel with
// 16-byte loads. I is int32_t when every index and x offset fits (no 64-bit division).
template <typename I>
struct NhwcPoolGeom {
  I H = 0, W = 0, OH = 0, OW = 0, CV = 0;  // CV = C / V
  I kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  I xs_n = 0, xs_h = 0, xs_w = 0;  // x strides in elements (channel stride 1)
  I total = 0;                     // N * OH * OW * CV
};

template <typename T, typename I>
__global__ void max_pool_nhwc_vec_kernel(NhwcPoolGeom<I> g, const T* __restrict__ x,
                                         T* __restrict__ y) {
  constexpr int V = kVecWidth<T>;
  using Vec = VecOf<T, V>;
  const I stride = static_cast<I>(gridDim.x) * static_cast<I>(blockDim.x);
  const I first =
      static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x);
  for (I i = first; i < g.total; i += stride) {
    I p = i / g.CV;
    const I cv = i - p * g.CV;
    I q = p / g.OW;
    const I ow = p - q * g.OW;
    const I n = q / g.OH;
    const I oh = q - n * g.OH;
    const T* xp = x + n * g.xs_n + cv * V;
    float best[V];
#pragma unroll
    for (int k = 0; k < V; ++k) best[k] = -INFINITY;
    for (I kh = 0; kh < g.kh; ++kh) {
      const I ih = oh * g.sh - g.ph + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (I kw = 0; kw < g.kw; ++kw) {
        const I iw = ow * g.sw - g.pw + kw * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        const Vec a = *reinterpret_cast<const Vec*>(xp + ih * g.xs_h + iw * g.xs_w);
#pragma unroll
        for (int k = 0; k < V; ++k) {
          const float v = to_float(a.v[k]);
          if (v > best[k] || v != v) best[k] = v;  // a NaN in the window wins
        }
      }
    }
    Vec o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = from_float<T>(best[k]);
    reinterpret_cast<Vec*>(y)[i] = o;
  }
}

template <typename I>
NhwcPoolGeom<I> nhwc_pool_geom(const PoolGeom& g, int V) {
  NhwcPoolGeom<I> o;
  o.H = static_cast<I>(g.in[1]), o.W = static_cast<I>(g.in[2]);
  o.OH = static_cast<I>(g.out[1]), o.OW = static_cast<I>(g.out[2]);
  o.CV = static_cast<I>(g.C / V);
  o.kh = static_cast<I>(g.k[1]), o.kw = static_cast<I>(g.k[2]);
  o.sh = static_cast<I>(g.stride[1]), o.sw = static_cast<I>(g.stride[2]);
  o.ph = static_cast<I>(g.pad[1]), o.pw = static_cast<I>(g.pad[2]);
  o.dh = static_cast<I>(g.dil[1]), o.dw = static_cast<I>(g.dil[2]);
  o.xs_n = static_cast<I>(g.xs_n);
  o.xs_h = static_cast<I>(g.xs[1]), o.xs_w = static_cast<I>(g.xs[2]);
  o.total = static_cast<I>(g.N * g.out[1] * g.out[2] * (g.C / V));
  return o;
}

// Launches max_pool_nhwc_vec_kernel when it applies; false leaves the pool to the generic kernel.
template <typename T>
bool launch_max_pool_nhwc_vec(const PoolGeom& g, const T* x, T* y, cudaStream_t stream) {
  constexpr int V = kVecWidth<T>;
  if (!g.channels_last || g.xs_c != 1 || g.C % V != 0 || g.in[0] != 1 || g.out[0] != 1 ||
      g.k[0] != 1 || !aligned_to(x, 16) || !aligned_to(y, 16))
    return false;
  const int64_t xst[3] = {g.xs_n, g.xs[1], g.xs[2]};
  const int64_t ext[3] = {g.N, g.in[1], g.in[2]};
  int64_t span = g.C;  // one past the largest x offset read
  for (int d = 0; d < 3; ++d) {
    if (xst[d] < 0 || xst[d] % V != 0) return false;
    span += (ext[d] - 1) * xst[d];
  }
  const int64_t total = g.N * g.out[1] * g.out[2] * (g.C / V);
  // Window coordinates reach in + pad + (k - 1) * dil; keep them and the loop index in int32
  // with room for a grid stride (at most 2^28 threads).
  int64_t reach = 0;
  for (int d = 1; d < 3; ++d)
    reach = std::max(reach, (g.out[d] - 1) * g.stride[d] + (g.k[d] - 1) * g.dil[d] + g.in[d] +
                                g.pad[d]);
  const int64_t lim = int64_t{1} << 30;
  if (total < lim && span < lim && reach < lim) {
    max_pool_nhwc_vec_kernel<T, int32_t>
        <<<grid_for(total), kBlock, 0, stream>>>(nhwc_pool_geom<int32_t>(g, V), x, y);
  } else {
    max_pool_nhwc_vec_kernel<T, int64_t>
        <<<grid_for(total), kBlock, 0, stream>>>(nhwc_pool_geom<int64_t>(g, V), x, y);
  }
  return true;
}

// PyTorch's avg_pool: the window is clipped to the padded input for the count_include_pad
// divisor, then to the input for the sum (and for the divisor without count_include_pad).
template <typename T>
__global__ void avg_pool_kernel(PoolGeom g, const T* x, T* y, int64_t n, bool count_include_pad) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[3];
    const T* xp = static_cast<const T*>(
        locate(g, i, reinterpret_cast<const char*>(x), sizeof(T), o[0], o[1], o[2]));
    int64_t lo[3], hi[3], padded = 1, inside = 1;
    for (int d = 0; d < 3; ++d) {
      lo[d] = o[d] * g.stride[d] - g.pad[d];
      hi[d] = min(lo[d] + g.k[d], g.in[d] + g.pad[d]);
      padded *= hi[d] - lo[d];
      lo[d] = max(lo[d], int64_t{0});
      hi[d] = min(hi[d], g.in[d]);
      inside *= max(hi[d] - lo[d], int64_t{0});
    }
    float sum = 0.0f;
    for (int64_t id = lo[0]; id < hi[0]; ++id)
      for (int64_t ih = lo[1]; ih < hi[1]; ++ih)
        for (int64_t iw = lo[2]; iw < hi[2]; ++iw)
          sum += to_float(xp[id * g.xs[0] + ih * g.xs[1] + iw * g.xs[2]]);
    const int64_t divisor = count_include_pad ? padded : inside;
    y[i] = from_float<T>(inside == 0 ? 0.0f : sum / static_cast<float>(divisor));
  }
}

// Output o of a dim averages input [floor(o*in/out), ceil((o+1)*in/out)).
template <typename T>
__global__ void adaptive_avg_pool_kernel(PoolGeom g, const T* x, T* y, int64_t n) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[3];
    const T* xp = static_cast<const T*>(
        locate(g, i, reinterpret_cast<const char*>(x), sizeof(T), o[0], o[1], o[2]));
    int64_t lo[3], hi[3];
    for (int d = 0; d < 3; ++d) {
      lo[d] = o[d] * g.in[d] / g.out[d];
      hi[d] = ((o[d] + 1) * g.in[d] + g.out[d] - 1) / g.out[d];
    }
    float sum = 0.0f;
    for (int64_t id = lo[0]; id < hi[0]; ++id)
      for (int64_t ih = lo[1]; ih < hi[1]; ++ih)
        for (int64_t iw = lo[2]; iw < hi[2]; ++iw)
          sum += to_float(xp[id * g.xs[0] + ih * g.xs[1] + iw * g.xs[2]]);
    const int64_t count = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]);
    y[i] = from_float<T>(sum / static_cast<float>(count));
  }
}

Status run_pool(const KernelArgs& args) {
  PoolGeom g;
  KILN_RETURN_IF_ERROR(read_geom(args, g));
  const int sp = args.inputs[0].rank - 2;
  const std::string kind = args.attrs.getString("kind", "");
  KILN_RETURN_IF_ERROR(read_spatial(args, "kernel", sp, g.k));
  for (int i = 0; i < 3; ++i) g.stride[i] = g.k[i];  // stride defaults to the kernel
  KILN_RETURN_IF_ERROR(read_spatial(args, "stride", sp, g.stride));
  KILN_RETURN_IF_ERROR(read_spatial(args, "padding", sp, g.pad));
  KILN_RETURN_IF_ERROR(read_spatial(args, "dilation", sp, g.dil));
  for (int i = 0; i < 3; ++i)
    if (g.k[i] < 1 || g.stride[i] < 1 || g.dil[i] < 1 || g.pad[i] < 0)
      return kernel_error(args, "kernel, stride and dilation must be >= 1, padding >= 0");
  const bool is_max = kind == "max";
  if (!is_max && kind != "avg")
    return kernel_unsupported(args, "unknown pool kind '", kind, "' (expected max or avg)");
  if (!is_max && (g.dil[0] != 1 || g.dil[1] != 1 || g.dil[2] != 1))
    return kernel_unsupported(args, "avg pooling has no dilation");
  const TensorView& y = args.outputs[0];
  const int64_t n = y.numel();
  if (n == 0) return Status::Ok();
  const bool count_include_pad = args.attrs.getBool("count_include_pad", true);
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(y.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = args.inputs[0].as<const T>();
    if (is_max) {
      if (launch_max_pool_nhwc_vec<T>(g, x, y.as<T>(), stream)) return true;
      max_pool_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(g, x, y.as<T>(), n);
    } else {
      avg_pool_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(g, x, y.as<T>(), n,
                                                             count_include_pad);
    }
    return true;
  });
  if (!served) return kernel_unsupported(args, dtype_name(y.dtype), " is not supported");
  return check_launch(args, "pool kernel");
}

Status run_adaptive_avg_pool(const KernelArgs& args) {
  PoolGeom g;
  KILN_RETURN_IF_ERROR(read_geom(args, g));
  const TensorView& y = args.outputs[0];
  const int64_t n = y.numel();
  if (n == 0) return Status::Ok();
  for (int i = 0; i < 3; ++i)
    if (g.in[i] == 0) return kernel_error(args, "adaptive pooling of an empty spatial dim");
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(y.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    adaptive_avg_pool_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(
        g, args.inputs[0].as<const T>(), y.as<T>(), n);
    return true;
  });
  if (!served) return kernel_unsupported(args, dtype_name(y.dtype), " is not supported");
  return check_launch(args, "adaptive_avg_pool kernel");
}

Status supports_pool(const Op& op, std::span<const DType> dtypes) {
  for (DType d : dtypes)
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16)
      return unsupported(op_kind_name(op.kind), " '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
  if (op.kind == OpKind::kPool) {
    const std::string kind = op.attrs.getString("kind", "");
    if (kind != "max" && kind != "avg")
      return unsupported("pool '", op.name, "': unknown kind '", kind, "' (expected max or avg)");
  }
  return Status::Ok();
}

}  // namespace

void register_pool_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kPool, "cuda.pool.direct", supports_pool, run_pool});
  out.push_back({OpKind::kAdaptiveAvgPool, "cuda.adaptive_avg_pool.direct", supports_pool,
                 run_adaptive_avg_pool});
}

}  // namespace kiln::cuda
