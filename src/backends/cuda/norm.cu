// Normalizations: batch_norm (inference: a per-channel affine map), layer_norm and rms_norm over
// the trailing dims, group_norm over channel groups. The three statistics norms share one
// kernel: a block per normalized row (a contiguous range of logical indices), two passes for
// mean and variance, float32 statistics. Inputs are read in place through their strides;
// parameters may have any float dtype and strides. Also the per-channel bias add used by conv.

#include <algorithm>
#include <string>

#include "backends/cuda/device_util.cuh"

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
