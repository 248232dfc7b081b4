// Reductions (sum mean amax amin prod var) over arbitrary dims, softmax / log_softmax and cumsum
// along one dim. The kept dims and the reduced dims each get a strided index, so any input
// layout is read in place. One block reduces one output (a thread does when the reduced count is
// small). Float dtypes accumulate in double (as the CPU backend), integers in wrapping int64.

#include <algorithm>
#include <cub/block/block_scan.cuh>
#include <string>

#include "backends/common/cumsum_check.h"
#include "backends/cuda/device_util.cuh"

namespace kiln::cuda {
namespace {

enum RFn : int { kSum, kMean, kAmax, kAmin, kProd, kVar, kRFnCount };
constexpr const char* kReduceNames[] = {"sum", "mean", "amax", "amin", "prod", "var"};

int parse_reduce(const std::string& name) {
  for (int i = 0; i < kRFnCount; ++i)
    if (name == kReduceNames[i]) return i;
  return kRFnCount;
}

template <typename T>
using AccT = std::conditional_t<kIsFloatLike<T>, double, int64_t>;

// The running combination of fn (var accumulates the sum, like mean, in its first pass).
template <typename A>
struct Combine {
  int fn;
  __device__ __forceinline__ A operator()(A a, A b) const {
    switch (fn) {
      case kAmax: return NanMaxOp{}(a, b);
      case kAmin: return NanMinOp{}(a, b);
      case kProd:
        if constexpr (std::is_same_v<A, double>) {
          return a * b;
        } else {
          return static_cast<A>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
        }
      default:  // sum, mean, var
        if constexpr (std::is_same_v<A, double>) {
          return a + b;
        } else {
          return static_cast<A>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
        }
    }
  }
};

template <typename A>
__device__ __forceinline__ A identity(int fn) {
  if constexpr (std::is_same_v<A, double>) {
    return fn == kAmax ? -INFINITY : fn == kAmin ? INFINITY : fn == kProd ? 1.0 : 0.0;
  } else {
    return fn == kAmax   ? std::numeric_limits<A>::min()
           : fn == kAmin ? std::numeric_limits<A>::max()
           : fn == kProd ? A{1}
                         : A{0};
  }
}

template <typename T>
__device__ __forceinline__ AccT<T> load_acc(T v) {
  if constexpr (kIsFloatLike<T>) {
    return static_cast<double>(to_float(v));
  } else {
    return static_cast<int64_t>(v);
  }
}

template <typename T>
__device__ __forceinline__ T finish(int fn, AccT<T> acc, double m2, int64_t count,
                                    int64_t correction) {
  if constexpr (kIsFloatLike<T>) {
    if (fn == kMean) return from_floating<T>(acc / static_cast<double>(count));
    if (fn == kVar) {
      const double denom = static_cast<double>(count - correction);
      return from_floating<T>(m2 / (denom > 0.0 ? denom : 0.0));  // N <= correction: inf/nan
    }
    return from_floating<T>(acc);
  } else {
    return static_cast<T>(acc);  // bool: amax/amin of 0/1
  }
}

// One block per output.
template <typename T>
__global__ void reduce_block_kernel(StridedIndex<1> kept, StridedIndex<1> red, const T* x, T* y,
                                    int64_t outputs, int64_t count, int fn, int64_t correction) {
  using A = AccT<T>;
  __shared__ A scratch[32];
  __shared__ double scratch_d[32];
  const Combine<A> op{fn};
  for (int64_t o = blockIdx.x; o < outputs; o += gridDim.x) {
    const T* base = x + kept.offset(o);
    A acc = identity<A>(fn);
    for (int64_t r = threadIdx.x; r < count; r += blockDim.x)
      acc = op(acc, load_acc(base[red.offset(r)]));
    acc = block_reduce(acc, op, scratch);
    double m2 = 0.0;
    if constexpr (kIsFloatLike<T>) {
      if (fn == kVar) {  // second pass: squared deviations from the mean
        const double mean = acc / static_cast<double>(count);
        for (int64_t r = threadIdx.x; r < count; r += blockDim.x) {
          const double d = load_acc(base[red.offset(r)]) - mean;
          m2 += d * d;
        }
        m2 = block_reduce(m2, SumOp{}, scratch_d);
      }
    }
    if (threadIdx.x == 0) y[o] = finish<T>(fn, acc, m2, count, correction);
  }
}

// One thread per output (small reduced counts).
template <typename T>
__global__ void reduce_thread_kernel(StridedIndex<1> kept, StridedIndex<1> red, const T* x, T* y,
                                     int64_t outputs, int64_t count, int fn, int64_t correction) {
  using A = AccT<T>;
  const Combine<A> op{fn};
  KILN_GRID_STRIDE(o, outputs) {
    const T* base = x + kept.offset(o);
    A acc = identity<A>(fn);
    for (int64_t r = 0; r < count; ++r) acc = op(acc, load_acc(base[red.offset(r)]));
    double m2 = 0.0;
    if constexpr (kIsFloatLike<T>) {
      if (fn == kVar) {
        const double mean = acc / static_cast<double>(count);
        for (int64_t r = 0; r < count; ++r) {
          const double d = load_acc(base[red.offset(r)]) - mean;
          m2 += d * d;
        }
      }
    }
    y[o] = finish<T>(fn, acc, m2, count, correction);
  }
}

Status supports_reduce(const Op& op, std::span<const DType> dtypes) {
  const std::string name = op.attrs.getString("fn", "");
  const int fn = parse_reduce(name);
  if (fn == kRFnCount) return unsupported("reduce: unknown fn '", name, "'");
  if (dtypes.size() != 1) return invalid_argument("reduce: expected 1 input, got ", dtypes.size());
  const DType d = dtypes[0];
  if ((fn == kMean || fn == kVar) && !is_floating(d))
    return unsupported("reduce: ", name, " needs a float dtype, got ", dtype_name(d));
  if (d == DType::kBool && (fn == kSum || fn == kProd))
    return unsupported("reduce: ", name, " on bool is not supported (cast first)");
  return Status::Ok();
}

Status run_reduce(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const std::string name = args.attrs.getString("fn", "");
  const int fn = parse_reduce(name);
  if (fn == kRFnCount) return kernel_unsupported(args, "unknown reduce fn '", name, "'");
  if (out.dtype != x.dtype) return kernel_error(args, "output dtype differs from the input's");
  if ((fn == kMean || fn == kVar) && !is_floating(x.dtype))
    return kernel_unsupported(args, name, " needs a float dtype");
  if (x.dtype == DType::kBool && (fn == kSum || fn == kProd))
    return kernel_unsupported(args, name, " on bool");
  bool is_reduced[kMaxRank] = {};
  const std::vector<int64_t> dims = args.attrs.getInts("dims", {});
  for (int64_t d : dims) {
    if (d < 0 || d >= x.rank) return kernel_error(args, "reduce dim ", d, " out of range");
    is_reduced[d] = true;
  }
  if (dims.empty())
    for (int i = 0; i < x.rank; ++i) is_reduced[i] = true;
  TensorView kept = x, red = x;
  kept.rank = red.rank = 0;
  for (int i = 0; i < x.rank; ++i) {
    TensorView& v = is_reduced[i] ? red : kept;
    v.shape[v.rank] = x.shape[i];
    v.strides[v.rank] = x.strides[i];
    ++v.rank;
  }
  const int64_t outputs = kept.numel(), count = red.numel();
  if (outputs != out.numel())
    return kernel_error(args, "output has ", out.numel(), " elements, expected ", outputs);
  if (outputs == 0) return Status::Ok();
  if (count == 0 && (fn == kAmax || fn == kAmin))
    return kernel_error(args, name, " of an empty dim has no identity");
  const int64_t correction = args.attrs.getInt("correction", 1);
  const StridedIndex<1> kix = make_index(kept), rix = make_index(red);
  cudaStream_t stream = stream_of(args);
  dispatch_all(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (count < 32) {
      reduce_thread_kernel<T><<<grid_for(outputs), kBlock, 0, stream>>>(
          kix, rix, x.as<const T>(), out.as<T>(), outputs, count, fn, correction);
    } else {
      const int threads = count >= 2048 ? 256 : count >= 256 ? 128 : 32;
      const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outputs, 1 << 20));
      reduce_block_kernel<T><<<blocks, threads, 0, stream>>>(kix, rix, x.as<const T>(),
                                                             out.as<T>(), outputs, count, fn,
                                                             correction);
    }
  });
  return check_launch(args, "reduce kernel");
}

// ---- softmax / log_softmax --------------------------------------------------------------------

// One block per row of n elements: x at rows.offsets[0] + j*xs, y at rows.offsets[1] + j*ys.
template <typename T, bool kLog>
__global__ void softmax_kernel(StridedIndex<2> rows, const T* x, T* y, int64_t num_rows,
                               int64_t n, int64_t xs, int64_t ys) {
  __shared__ float scratch[32];
  for (int64_t row = blockIdx.x; row < num_rows; row += gridDim.x) {
    int64_t o[2];
    rows.offsets(row, o);
    const T* xr = x + o[0];
    T* yr = y + o[1];
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, to_float(xr[j * xs]));
    mx = block_reduce(mx, [](float a, float b) { return fmaxf(a, b); }, scratch);
    if (mx == -INFINITY) mx = 0.0f;  // all -inf: avoid inf - inf
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(to_float(xr[j * xs]) - mx);
    sum = block_reduce(sum, SumOp{}, scratch);
    if constexpr (kLog) {
      const float lse = logf(sum);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j * ys] = from_float<T>(to_float(xr[j * xs]) - mx - lse);
    } else {
      const float inv = 1.0f / sum;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
        yr[j * ys] = from_float<T>(expf(to_float(xr[j * xs]) - mx) * inv);
    }
  }
}

Status supports_softmax(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 1)
    return invalid_argument(op_kind_name(op.kind), ": expected 1 input, got ", dtypes.size());
  if (!is_floating(dtypes[0]))
    return unsupported(op_kind_name(op.kind), ": needs a float dtype, got ",
                       dtype_name(dtypes[0]));
  return Status::Ok();
}

template <bool kLog>
Status run_softmax(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", -1);
  if (dim < 0 || dim >= x.rank) return kernel_error(args, "dim ", dim, " out of range");
  if (!same_shape(x, out) || x.dtype != out.dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  if (out.numel() == 0) return Status::Ok();
  int64_t out_strides[kMaxRank];
  {
    int64_t s = 1;
    for (int i = out.rank - 1; i >= 0; --i) {
      out_strides[i] = s;
      s *= out.shape[i];
    }
  }
  int64_t shape[kMaxRank], xs[kMaxRank], ys[kMaxRank];
  int r = 0;
  for (int i = 0; i < x.rank; ++i) {
    if (i == dim) continue;
    shape[r] = x.shape[i];
    xs[r] = x.strides[i];
    ys[r] = out_strides[i];
    ++r;
  }
  const int64_t* strides[2] = {xs, ys};
  const StridedIndex<2> rows = make_index<2>(shape, r, strides);
  const int64_t n = x.shape[dim], num_rows = out.numel() / n;
  const int threads = n >= 2048 ? 256 : n >= 256 ? 128 : 32;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(num_rows, 1 << 20));
  cudaStream_t stream = stream_of(args);
  const bool served = dispatch_floating(x.dtype, false, [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_kernel<T, kLog><<<blocks, threads, 0, stream>>>(rows, x.as<const T>(), out.as<T>(),
                                                           num_rows, n, x.strides[dim],
                                                           out_strides[dim]);
    return true;
  });
  if (!served) return kernel_unsupported(args, "needs a float dtype, got ", dtype_name(x.dtype));
  return check_launch(args, "softmax kernel");
}

// ---- cumsum -----------------------------------------------------------------------------------
// torch.cumsum(x, dim, dtype), as the CPU backend: each element converted to the output type U,
// summed in U's accumulation type (float32 in double, fp16/bf16 in float, integers in wrapping
// 64 bits) and rounded to U at every position. Short lines: one thread scans one line. Long
// lines: one block per line, a cub::BlockScan per chunk of kScanBlock elements plus a carry.

inline constexpr int kScanBlock = 256;


template <typename U>
using CumAccT = std::conditional_t<std::is_same_v<U, float>, double,
                                   std::conditional_t<kIsHalfLike<U>, float, unsigned long long>>;

template <typename U, typename T>
__device__ __forceinline__ CumAccT<U> cumsum_load(T v) {
  if constexpr (kIsFloatLike<U>) {
    U u;
    if constexpr (kIsFloatLike<T>) {
      u = from_float<U>(to_float(v));
    } else {
      u = from_floating<U>(static_cast<double>(v));
    }
    return static_cast<CumAccT<U>>(to_float(u));
  } else {
    int64_t i;
    if constexpr (kIsFloatLike<T>) {
      i = static_cast<int64_t>(saturate_int<U>(to_float(v)));
    } else {
      i = static_cast<int64_t>(static_cast<U>(v));  // int64 -> int32 wraps
    }
    return static_cast<unsigned long long>(i);
  }
}
template <typename U>
__device__ __forceinline__ U cumsum_store(CumAccT<U> acc) {
  if constexpr (kIsFloatLike<U>) {
    return from_floating<U>(acc);
  } else {
    return static_cast<U>(static_cast<long long>(acc));
  }
}

// Lines at lines.offsets (x, y); element j of a line at x + o[0] + j*xs, y + o[1] + j*ys.
template <typename T, typename U>
__global__ void cumsum_thread_kernel(StridedIndex<2> lines, const T* x, U* y, int64_t num_lines,
                                     int64_t n, int64_t xs, int64_t ys) {
  KILN_GRID_STRIDE(line, num_lines) {
    int64_t o[2];
    lines.offsets(line, o);
    const T* xl = x + o[0];
    U* yl = y + o[1];
    CumAccT<U> acc = 0;
    for (int64_t j = 0; j < n; ++j) {
      acc += cumsum_load<U>(xl[j * xs]);
      yl[j * ys] = cumsum_store<U>(acc);
    }
  }
}

template <typename T, typename U>
__global__ void __launch_bounds__(kScanBlock)
    cumsum_block_kernel(StridedIndex<2> lines, const T* x, U* y, int64_t num_lines, int64_t n,
                        int64_t xs, int64_t ys) {
  using A = CumAccT<U>;
  using Scan = cub::BlockScan<A, kScanBlock>;
  __shared__ typename Scan::TempStorage temp;
  for (int64_t line = blockIdx.x; line < num_lines; line += gridDim.x) {
    int64_t o[2];
    lines.offsets(line, o);
    const T* xl = x + o[0];
    U* yl = y + o[1];
    A carry = 0;
    for (int64_t base = 0; base < n; base += kScanBlock) {
      const int64_t j = base + threadIdx.x;
      const A v = j < n ? cumsum_load<U>(xl[j * xs]) : A(0);
      A inclusive, total;
      Scan(temp).InclusiveSum(v, inclusive, total);
      if (j < n) yl[j * ys] = cumsum_store<U>(carry + inclusive);
      carry += total;
      __syncthreads();  // temp is reused by the next chunk
    }
  }
}

// The output types of cumsum; others return false.
template <typename F>
bool dispatch_cumsum_out(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32: f(TypeTag<float>{}); return true;
    case DType::kFloat16: f(TypeTag<half>{}); return true;
    case DType::kBFloat16: f(TypeTag<bf16>{}); return true;
    case DType::kInt32: f(TypeTag<int32_t>{}); return true;
    case DType::kInt64: f(TypeTag<int64_t>{}); return true;
    default: return false;
  }
}

Status run_cumsum(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_cumsum_args(args));
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", -1);
  if (out.numel() == 0) return Status::Ok();
  int64_t out_strides[kMaxRank];
  {
    int64_t s = 1;
    for (int i = out.rank - 1; i >= 0; --i) {
      out_strides[i] = s;
      s *= out.shape[i];
    }
  }
  int64_t shape[kMaxRank] = {}, xs[kMaxRank] = {}, ys[kMaxRank] = {};
  int r = 0;
  for (int i = 0; i < x.rank; ++i) {
    if (i == dim) continue;
    shape[r] = x.shape[i];
    xs[r] = x.strides[i];
    ys[r] = out_strides[i];
    ++r;
  }
  const int64_t* strides[2] = {xs, ys};
  const StridedIndex<2> lines = make_index<2>(shape, r, strides);
  const int64_t n = x.shape[dim], num_lines = out.numel() / n;
  // A block per line pays off when lines are long and too few to fill the device with threads.
  const bool block_scan = n >= 512 && num_lines < 16384;
  cudaStream_t stream = stream_of(args);
  dispatch_all(x.dtype, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    dispatch_cumsum_out(out.dtype, [&](auto out_tag) {
      using U = typename decltype(out_tag)::type;
      if (block_scan) {
        const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(num_lines, 1 << 20));
        cumsum_block_kernel<T, U><<<blocks, kScanBlock, 0, stream>>>(
            lines, x.as<const T>(), out.as<U>(), num_lines, n, x.strides[dim], out_strides[dim]);
      } else {
        cumsum_thread_kernel<T, U><<<grid_for(num_lines), kBlock, 0, stream>>>(
            lines, x.as<const T>(), out.as<U>(), num_lines, n, x.strides[dim], out_strides[dim]);
      }
    });
  });
  return check_launch(args, "cumsum kernel");
}

}  // namespace

void register_reduction_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kReduce, "cuda.reduce", supports_reduce, run_reduce});
  out.push_back({OpKind::kSoftmax, "cuda.softmax", supports_softmax, run_softmax<false>});
  out.push_back({OpKind::kLogSoftmax, "cuda.log_softmax", supports_softmax, run_softmax<true>});
  out.push_back({OpKind::kCumsum, "cuda.cumsum", supports_cumsum, run_cumsum});
}

}  // namespace kiln::cuda
