// Unary elementwise kernels and clamp. One strided kernel per dtype; the fn is a run-time switch
// (uniform across the grid, so it costs no divergence) instead of one instantiation per fn.
// Contiguous, 16-byte aligned operands take the vectorized path (elementwise_vec.cuh), where the
// fns whose math costs as much as the memory traffic (gelu, silu...) get their own instantiation.
// fp16/bf16 compute in float32; integer fns wrap like PyTorch's.

#include <cmath>
#include <string>

#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

enum UFn : int {
  kNeg, kAbs, kExp, kLog, kSqrt, kRsqrt, kSin, kCos, kTanh, kSigmoid, kRelu, kGelu, kGeluTanh,
  kSilu, kErf, kReciprocal, kFloor, kCeil, kRound, kSign, kLog1p, kExpm1, kHardswish,
  kHardsigmoid, kLeakyRelu, kElu, kSoftplus, kLogicalNot, kBitwiseNot, kIsnan, kUFnCount
};
constexpr const char* kUnaryNames[] = {
    "neg",   "abs",   "exp",   "log",  "sqrt",  "rsqrt",     "sin",         "cos",
    "tanh",  "sigmoid", "relu", "gelu", "gelu_tanh", "silu", "erf",        "reciprocal",
    "floor", "ceil",  "round", "sign", "log1p", "expm1",     "hardswish",   "hardsigmoid",
    "leaky_relu", "elu", "softplus", "logical_not", "bitwise_not", "isnan"};
static_assert(sizeof(kUnaryNames) / sizeof(kUnaryNames[0]) == kUFnCount);

int parse_unary(const std::string& name) {
  for (int i = 0; i < kUFnCount; ++i)
    if (name == kUnaryNames[i]) return i;
  return kUFnCount;
}

bool unary_int_ok(int f) {
  switch (f) {
    case kNeg: case kAbs: case kRelu: case kSign: case kFloor: case kCeil: case kRound:
    case kBitwiseNot: case kLogicalNot: case kIsnan: return true;
    default: return false;
  }
}
bool unary_float_ok(int f) { return f != kBitwiseNot && f != kLogicalNot && f != kIsnan; }

__device__ __forceinline__ float unary_float(int fn, float x, float alpha) {
  constexpr float kSqrt1_2 = 0.70710678118654752f;
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  switch (fn) {
    case kNeg: return -x;
    case kAbs: return fabsf(x);
    case kExp: return expf(x);
    case kLog: return logf(x);
    case kSqrt: return sqrtf(x);
    case kRsqrt: return 1.0f / sqrtf(x);
    case kSin: return sinf(x);
    case kCos: return cosf(x);
    case kTanh: return tanhf(x);
    case kSigmoid: return 1.0f / (1.0f + expf(-x));
    case kRelu: return x > 0.0f ? x : (x == x ? 0.0f : x);
    case kGelu: return 0.5f * x * (1.0f + erff(x * kSqrt1_2));
    case kGeluTanh: return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    case kSilu: return x / (1.0f + expf(-x));
    case kErf: return erff(x);
    case kReciprocal: return 1.0f / x;
    case kFloor: return floorf(x);
    case kCeil: return ceilf(x);
    case kRound: return rintf(x);  // half to even
    case kSign: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case kLog1p: return log1pf(x);
    case kExpm1: return expm1f(x);
    case kHardswish: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case kHardsigmoid: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case kLeakyRelu: return x > 0.0f ? x : alpha * x;
    case kElu: return x > 0.0f ? x : alpha * expm1f(x);
    case kSoftplus: return x > 20.0f ? x : log1pf(expf(x));  // beta=1, threshold=20
    default: return x;
  }
}

// Integer fns; arithmetic through the unsigned type so overflow wraps.
template <typename T>
__device__ __forceinline__ T unary_int(int fn, T x) {
  if constexpr (std::is_same_v<T, bool>) {
    return !x;  // bitwise_not is the only bool fn
  } else {
    using U = std::make_unsigned_t<T>;
    switch (fn) {
      case kNeg: return static_cast<T>(static_cast<U>(U{0} - static_cast<U>(x)));
      case kAbs:
        if constexpr (std::is_signed_v<T>)
          return x < T{0} ? static_cast<T>(static_cast<U>(U{0} - static_cast<U>(x))) : x;
        return x;
      case kRelu: return x > T{0} ? x : T{0};
      case kSign:
        if constexpr (std::is_signed_v<T>) return static_cast<T>((x > T{0}) - (x < T{0}));
        return static_cast<T>(x > T{0});
      case kBitwiseNot: return static_cast<T>(~x);
      default: return x;  // floor, ceil, round
    }
  }
}

template <typename T>
__global__ void unary_kernel(StridedIndex<1> ix, const T* x, T* y, int64_t n, int fn,
                             float alpha) {
  KILN_GRID_STRIDE(i, n) {
    const T v = x[ix.offset(i)];
    if constexpr (kIsFloatLike<T>) {
      y[i] = store<T>(unary_float(fn, load(v), alpha));
    } else {
      y[i] = unary_int<T>(fn, v);
    }
  }
}

// The fn on one element for the vectorized path; kFn >= 0 fixes the fn at compile time.
template <typename T, int kFn>
struct UnaryOp {
  int fn;
  float alpha;
  __device__ __forceinline__ T operator()(T v) const {
    if constexpr (kIsFloatLike<T>) {
      return store<T>(unary_float(kFn >= 0 ? kFn : fn, load(v), alpha));
    } else {
      return unary_int<T>(fn, v);
    }
  }
};

template <typename T, int kFn>
void launch_unary_vec(const T* x, T* y, int64_t n, int fn, float alpha, cudaStream_t stream) {
  map_vec_kernel<T, T><<<vec_grid(n / kVecWidth<T>), kBlock, 0, stream>>>(
      x, y, n, UnaryOp<T, kFn>{fn, alpha});
}

template <typename T>
void launch_unary_vec(const T* x, T* y, int64_t n, int fn, float alpha, cudaStream_t stream) {
  if constexpr (kIsFloatLike<T>) {
    switch (fn) {
      case kGelu: return launch_unary_vec<T, kGelu>(x, y, n, fn, alpha, stream);
      case kGeluTanh: return launch_unary_vec<T, kGeluTanh>(x, y, n, fn, alpha, stream);
      case kSilu: return launch_unary_vec<T, kSilu>(x, y, n, fn, alpha, stream);
      case kSigmoid: return launch_unary_vec<T, kSigmoid>(x, y, n, fn, alpha, stream);
      case kTanh: return launch_unary_vec<T, kTanh>(x, y, n, fn, alpha, stream);
      case kRelu: return launch_unary_vec<T, kRelu>(x, y, n, fn, alpha, stream);
      default: break;
    }
  }
  launch_unary_vec<T, -1>(x, y, n, fn, alpha, stream);
}

// logical_not and isnan: any dtype in, bool out.
template <typename T>
__global__ void unary_pred_kernel(StridedIndex<1> ix, const T* x, bool* y, int64_t n,
                                  bool isnan) {
  KILN_GRID_STRIDE(i, n) {
    const auto v = load(x[ix.offset(i)]);
    if (isnan) {
      if constexpr (kIsFloatLike<T>) {
        y[i] = v != v;
      } else {
        y[i] = false;
      }
    } else {
      y[i] = !(v != decltype(v){0});
    }
  }
}

template <typename T>
struct ClampOp {
  ComputeT<T> lo, hi;
  __device__ __forceinline__ T operator()(T x) const {
    ComputeT<T> v = load(x);
    v = v < lo ? lo : v;
    return store<T>(v > hi ? hi : v);
  }
};

template <typename T>
__global__ void clamp_kernel(StridedIndex<1> ix, const T* x, T* y, int64_t n, ComputeT<T> lo,
                             ComputeT<T> hi) {
  KILN_GRID_STRIDE(i, n) {
    ComputeT<T> v = load(x[ix.offset(i)]);
    v = v < lo ? lo : v;  // NaN stays NaN (comparisons are false); max applies last
    y[i] = store<T>(v > hi ? hi : v);
  }
}

Status supports_unary(const Op& op, std::span<const DType> dtypes) {
  const std::string name = op.attrs.getString("fn", "");
  const int fn = parse_unary(name);
  if (fn == kUFnCount) return unsupported("unary: unknown fn '", name, "'");
  if (dtypes.size() != 1) return invalid_argument("unary: expected 1 input, got ", dtypes.size());
  const DType d = dtypes[0];
  if (fn == kLogicalNot || fn == kIsnan) return Status::Ok();
  if (d == DType::kBool) {
    if (fn != kBitwiseNot) return unsupported("unary: ", name, " on bool is not supported");
  } else if (is_integer(d)) {
    if (!unary_int_ok(fn))
      return unsupported("unary: ", name, " needs a float dtype, got ", dtype_name(d));
  } else if (!unary_float_ok(fn)) {
    return unsupported("unary: ", name, " needs an integer or bool dtype, got ", dtype_name(d));
  }
  return Status::Ok();
}

Status run_unary(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const std::string name = args.attrs.getString("fn", "");
  const int fn = parse_unary(name);
  if (fn == kUFnCount) return kernel_unsupported(args, "unknown unary fn '", name, "'");
  if (!same_shape(in, out)) return kernel_error(args, "output shape differs from the input's");
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const StridedIndex<1> ix = make_index(in);
  cudaStream_t stream = stream_of(args);

  if (fn == kLogicalNot || fn == kIsnan) {
    if (out.dtype != DType::kBool) return kernel_error(args, name, " must produce bool");
    dispatch_all(in.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      unary_pred_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(ix, in.as<const T>(),
                                                               out.as<bool>(), n, fn == kIsnan);
    });
    return check_launch(args, "unary kernel");
  }
  if (out.dtype != in.dtype) return kernel_error(args, "output dtype differs from the input's");
  const bool ok = in.dtype == DType::kBool ? fn == kBitwiseNot
                  : is_integer(in.dtype)   ? unary_int_ok(fn)
                                           : unary_float_ok(fn);
  if (!ok) return kernel_unsupported(args, name, " is not supported for ", dtype_name(in.dtype));
  const float alpha = static_cast<float>(args.attrs.getDouble("alpha", fn == kElu ? 1.0 : 0.01));
  const bool flat = is_flat(ix) && aligned_to(in.data, 16) && aligned_to(out.data, 16);
  dispatch_all(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (flat) {
      launch_unary_vec<T>(in.as<const T>(), out.as<T>(), n, fn, alpha, stream);
    } else {
      unary_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(ix, in.as<const T>(), out.as<T>(), n,
                                                          fn, alpha);
    }
  });
  return check_launch(args, "unary kernel");
}

Status supports_clamp(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 1) return invalid_argument("clamp: expected 1 input, got ", dtypes.size());
  if (dtypes[0] == DType::kBool) return unsupported("clamp: bool is not supported");
  return Status::Ok();
}

// Integer clamp bounds: the smallest int >= lo / the largest int <= hi, saturated to T.
template <typename T>
T int_bound(double v) {
  const double lo = static_cast<double>(std::numeric_limits<T>::min());
  const double hi = static_cast<double>(std::numeric_limits<T>::max());
  if (v <= lo) return std::numeric_limits<T>::min();
  if (v >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

Status run_clamp(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out) || in.dtype != out.dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  if (in.dtype == DType::kBool) return kernel_unsupported(args, "clamp on bool");
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const bool has_lo = args.attrs.has("min"), has_hi = args.attrs.has("max");
  const double lo = args.attrs.getDouble("min", 0.0), hi = args.attrs.getDouble("max", 0.0);
  const StridedIndex<1> ix = make_index(in);
  const bool flat = is_flat(ix) && aligned_to(in.data, 16) && aligned_to(out.data, 16);
  cudaStream_t stream = stream_of(args);
  auto launch = [&](auto* x, auto* y, auto l, auto h) {
    using T = std::remove_pointer_t<decltype(y)>;
    if (flat) {
      map_vec_kernel<T, T><<<vec_grid(n / kVecWidth<T>), kBlock, 0, stream>>>(
          x, y, n, ClampOp<T>{l, h});
    } else {
      clamp_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(ix, x, y, n, l, h);
    }
  };
  dispatch_all(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (kIsFloatLike<T>) {
      const float l = has_lo ? static_cast<float>(lo) : -INFINITY;
      const float h = has_hi ? static_cast<float>(hi) : INFINITY;
      launch(in.as<const T>(), out.as<T>(), l, h);
    } else if constexpr (kIsIntLike<T>) {
      const T l = has_lo ? int_bound<T>(std::ceil(lo)) : std::numeric_limits<T>::min();
      const T h = has_hi ? int_bound<T>(std::floor(hi)) : std::numeric_limits<T>::max();
      launch(in.as<const T>(), out.as<T>(), l, h);
    }
  });
  return check_launch(args, "clamp kernel");
}

}  // namespace

void register_unary_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kUnary, "cuda.unary", supports_unary, run_unary});
  out.push_back({OpKind::kClamp, "cuda.clamp", supports_clamp, run_clamp});
}

}  // namespace kiln::cuda
