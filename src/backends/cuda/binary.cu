// Binary elementwise kernels (numpy broadcasting through strides) and where. The fn is a
// run-time switch; one kernel per dtype for arithmetic and one for comparisons (bool out).
// Integer division by zero and negative integer powers write 0 and set the device error word
// (the CPU backend returns an error; a GPU kernel cannot without a synchronization).
// Contiguous operands, and a contiguous operand with a bias-like row (or one element) broadcast
// over it, take the vectorized paths of elementwise_vec.cuh when aligned.

#include <string>

#include "backends/common/float_pow.h"
#include "backends/cuda/device_util.cuh"
#include "backends/cuda/elementwise_vec.cuh"

namespace kiln::cuda {
namespace {

enum BFn : int {
  kAdd, kSub, kMul, kDiv, kPow, kMaximum, kMinimum, kFloorDivide, kRemainder, kEq, kNe, kLt, kLe,
  kGt, kGe, kLogicalAnd, kLogicalOr, kLogicalXor, kBitwiseAnd, kBitwiseOr, kBitwiseXor, kBFnCount
};
constexpr const char* kBinaryNames[] = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder", "eq",
    "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "bitwise_and",
    "bitwise_or", "bitwise_xor"};
static_assert(sizeof(kBinaryNames) / sizeof(kBinaryNames[0]) == kBFnCount);

int parse_binary(const std::string& name) {
  for (int i = 0; i < kBFnCount; ++i)
    if (name == kBinaryNames[i]) return i;
  return kBFnCount;
}
bool gives_bool(int f) { return f >= kEq && f <= kLogicalXor; }
bool is_bitwise(int f) { return f >= kBitwiseAnd; }

// Which arithmetic fns each dtype class serves (predicates serve every dtype).
bool float_fn_ok(int f) { return f <= kRemainder; }
bool int_fn_ok(int f) { return f != kDiv && (f <= kRemainder || is_bitwise(f)); }
bool bool_fn_ok(int f) {
  return f == kAdd || f == kMul || f == kMaximum || f == kMinimum || is_bitwise(f);
}

// Python floor division / modulo on floats (PyTorch's div_floor / remainder).
__device__ __forceinline__ float float_floor_divide(float a, float b) {
  if (b == 0.0f) return a / b;
  const float m = fmodf(a, b);
  float div = (a - m) / b;
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return copysignf(0.0f, a / b);
  float fl = floorf(div);
  if (div - fl > 0.5f) fl += 1.0f;
  return fl;
}
__device__ __forceinline__ float float_remainder(float a, float b) {
  float m = fmodf(a, b);
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) m += b;
  return m;
}

__device__ __forceinline__ float float_binary(int fn, float a, float b) {
  switch (fn) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    case kDiv: return a / b;
    case kPow: return float_pow(a, b);
    case kMaximum: return (a != a || a > b) ? a : b;  // NaN propagates
    case kMinimum: return (a != a || a < b) ? a : b;
    case kFloorDivide: return float_floor_divide(a, b);
    case kRemainder: return float_remainder(a, b);
    default: return 0.0f;
  }
}

template <typename T>
__device__ __forceinline__ T wrap_mul(T a, T b) {
  using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
  return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
}

template <typename T>
__device__ __forceinline__ T int_binary(int fn, T a, T b, uint32_t* err) {
  using U = std::make_unsigned_t<T>;
  switch (fn) {
    case kAdd: return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
    case kSub: return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
    case kMul: return wrap_mul(a, b);
    case kMaximum: return a > b ? a : b;
    case kMinimum: return a < b ? a : b;
    case kBitwiseAnd: return static_cast<T>(a & b);
    case kBitwiseOr: return static_cast<T>(a | b);
    case kBitwiseXor: return static_cast<T>(a ^ b);
    case kPow: {
      if constexpr (std::is_signed_v<T>) {
        if (b < T{0}) {
          raise_device_error(err, kDeviceErrorNegativePower);
          return T{0};
        }
      }
      T r{1};
      for (uint64_t e = static_cast<uint64_t>(b); e; e >>= 1) {
        if (e & 1) r = wrap_mul(r, a);
        a = wrap_mul(a, a);
      }
      return r;
    }
    case kFloorDivide:
    case kRemainder: {
      if (b == T{0}) {
        raise_device_error(err, kDeviceErrorIntDivByZero);
        return T{0};
      }
      if constexpr (std::is_signed_v<T>) {
        if (b == T{-1})  // avoids INT_MIN / -1
          return fn == kFloorDivide ? static_cast<T>(static_cast<U>(U{0} - static_cast<U>(a)))
                                    : T{0};
        if (fn == kFloorDivide) {
          T q = static_cast<T>(a / b);
          if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
          return q;
        }
        T r = static_cast<T>(a % b);
        if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
        return r;
      } else {
        return fn == kFloorDivide ? static_cast<T>(a / b) : static_cast<T>(a % b);
      }
    }
    default: return T{0};
  }
}

__device__ __forceinline__ bool bool_binary(int fn, bool a, bool b) {
  switch (fn) {
    case kAdd: case kMaximum: case kBitwiseOr: return a || b;
    case kMul: case kMinimum: case kBitwiseAnd: return a && b;
    case kBitwiseXor: return a != b;
    default: return false;
  }
}

template <typename C>
__device__ __forceinline__ bool predicate(int fn, C a, C b) {
  switch (fn) {
    case kEq: return a == b;
    case kNe: return a != b;
    case kLt: return a < b;
    case kLe: return a <= b;
    case kGt: return a > b;
    case kGe: return a >= b;
    case kLogicalAnd: return a != C{0} && b != C{0};
    case kLogicalOr: return a != C{0} || b != C{0};
    case kLogicalXor: return (a != C{0}) != (b != C{0});
    default: return false;
  }
}

template <typename T>
__global__ void binary_kernel(StridedIndex<2> ix, const T* a, const T* b, T* y, int64_t n, int fn,
                              uint32_t* err) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    if constexpr (kIsFloatLike<T>) {
      y[i] = store<T>(float_binary(fn, load(a[o[0]]), load(b[o[1]])));
    } else if constexpr (std::is_same_v<T, bool>) {
      y[i] = bool_binary(fn, a[o[0]], b[o[1]]);
    } else {
      y[i] = int_binary<T>(fn, a[o[0]], b[o[1]], err);
    }
  }
}

template <typename T>
__global__ void predicate_kernel(StridedIndex<2> ix, const T* a, const T* b, bool* y, int64_t n,
                                 int fn) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[2];
    ix.offsets(i, o);
    y[i] = predicate(fn, load(a[o[0]]), load(b[o[1]]));
  }
}

// The per-element fns of the kernels above, for the vectorized paths.
template <typename T>
struct BinaryOp {
  int fn;
  uint32_t* err;
  __device__ __forceinline__ T operator()(T a, T b) const {
    if constexpr (kIsFloatLike<T>) {
      return store<T>(float_binary(fn, load(a), load(b)));
    } else if constexpr (std::is_same_v<T, bool>) {
      return bool_binary(fn, a, b);
    } else {
      return int_binary<T>(fn, a, b, err);
    }
  }
};
template <typename T>
struct PredicateOp {
  int fn;
  __device__ __forceinline__ bool operator()(T a, T b) const {
    return predicate(fn, load(a), load(b));
  }
};

// Launches a vectorized kernel when one serves this walk: both operands contiguous, or one
// contiguous and the other a row of its trailing dim broadcast over the rest (float dtypes),
// with every pointer aligned to its vector. False: the caller runs the strided kernel.
template <typename T, typename Out, typename F>
bool try_binary_vec(const StridedIndex<2>& ix, const T* a, const T* b, Out* y, int64_t n, F f,
                    cudaStream_t stream) {
  constexpr int V = kVecWidth<T, Out>;
  const size_t in_bytes = V * sizeof(T);
  if (!aligned_to(y, V * sizeof(Out))) return false;
  if (is_flat(ix)) {
    if (!aligned_to(a, in_bytes) || !aligned_to(b, in_bytes)) return false;
    zip_vec_kernel<T, Out><<<vec_grid(n / V), kBlock, 0, stream>>>(a, b, y, n, f);
    return true;
  }
  if constexpr (kIsFloatLike<T>) {
    int full = -1;  // the contiguous operand
    int64_t row_len = 0;
    for (int k = 0; k < 2 && full < 0; ++k) {
      const int64_t* sf = ix.strides[k];
      const int64_t* sr = ix.strides[1 - k];
      if (ix.rank == 1 && sf[0] == 1 && sr[0] == 0) {
        full = k;
        row_len = 1;
      } else if (ix.rank == 2 && sf[0] == ix.shape[1] && sf[1] == 1 && sr[0] == 0 && sr[1] == 1) {
        full = k;
        row_len = ix.shape[1];
      }
    }
    if (full < 0) return false;
    const T* fp = full == 0 ? a : b;
    const T* rp = full == 0 ? b : a;
    if (!aligned_to(fp, in_bytes)) return false;
    if (row_len > 1 && (row_len % V != 0 || !aligned_to(rp, in_bytes))) return false;
    if (n <= static_cast<int64_t>(UINT32_MAX)) {
      row_broadcast_vec_kernel<T, Out, uint32_t><<<vec_grid(n / V), kBlock, 0, stream>>>(
          fp, rp, y, n, row_len, full == 0, f);
    } else {
      row_broadcast_vec_kernel<T, Out, int64_t><<<vec_grid(n / V), kBlock, 0, stream>>>(
          fp, rp, y, n, row_len, full == 0, f);
    }
    return true;
  }
  return false;
}

Status supports_binary(const Op& op, std::span<const DType> dtypes) {
  const std::string name = op.attrs.getString("fn", "");
  const int fn = parse_binary(name);
  if (fn == kBFnCount) return unsupported("binary: unknown fn '", name, "'");
  if (dtypes.size() != 2) return invalid_argument("binary: expected 2 inputs, got ", dtypes.size());
  if (dtypes[0] != dtypes[1])
    return invalid_argument("binary: input dtypes differ (", dtype_name(dtypes[0]), " vs ",
                            dtype_name(dtypes[1]), ")");
  const DType d = dtypes[0];
  if (gives_bool(fn)) return Status::Ok();
  if (is_floating(d) && is_bitwise(fn))
    return unsupported("binary: ", name, " needs an integer or bool dtype, got ", dtype_name(d));
  if (!is_floating(d) && fn == kDiv)
    return unsupported("binary: div is true division and needs a float dtype, got ",
                       dtype_name(d));
  if (d == DType::kBool && !bool_fn_ok(fn))
    return unsupported("binary: ", name, " on bool is not supported");
  return Status::Ok();
}

Status run_binary(const KernelArgs& args) {
  const TensorView& a = args.inputs[0];
  const TensorView& b = args.inputs[1];
  const TensorView& out = args.outputs[0];
  const std::string name = args.attrs.getString("fn", "");
  const int fn = parse_binary(name);
  if (fn == kBFnCount) return kernel_unsupported(args, "unknown binary fn '", name, "'");
  if (a.dtype != b.dtype) return kernel_error(args, "input dtypes differ");
  TensorView ba, bb;
  if (!broadcast_view(a, out, ba) || !broadcast_view(b, out, bb))
    return kernel_error(args, "inputs do not broadcast to the output shape");
  const bool pred = gives_bool(fn);
  if (out.dtype != (pred ? DType::kBool : a.dtype))
    return kernel_error(args, "unexpected output dtype ", dtype_name(out.dtype));
  const DType d = a.dtype;
  const bool ok = pred || (d == DType::kBool ? bool_fn_ok(fn)
                           : is_floating(d)  ? float_fn_ok(fn)
                                             : int_fn_ok(fn));
  if (!ok) return kernel_unsupported(args, name, " is not supported for ", dtype_name(d));
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const int64_t* strides[2] = {ba.strides, bb.strides};
  const StridedIndex<2> ix = make_index<2>(out.shape, out.rank, strides);
  cudaStream_t stream = stream_of(args);
  uint32_t* err = error_word(args);
  dispatch_all(d, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (pred) {
      if (try_binary_vec<T, bool>(ix, a.as<const T>(), b.as<const T>(), out.as<bool>(), n,
                                  PredicateOp<T>{fn}, stream))
        return;
      predicate_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(ix, a.as<const T>(),
                                                              b.as<const T>(), out.as<bool>(), n,
                                                              fn);
    } else {
      if (try_binary_vec<T, T>(ix, a.as<const T>(), b.as<const T>(), out.as<T>(), n,
                               BinaryOp<T>{fn, err}, stream))
        return;
      binary_kernel<T><<<grid_for(n), kBlock, 0, stream>>>(ix, a.as<const T>(), b.as<const T>(),
                                                           out.as<T>(), n, fn, err);
    }
  });
  return check_launch(args, "binary kernel");
}

// ---- where ------------------------------------------------------------------------------------

template <typename U>
__global__ void where_kernel(StridedIndex<3> ix, const bool* c, const U* a, const U* b, U* y,
                             int64_t n) {
  KILN_GRID_STRIDE(i, n) {
    int64_t o[3];
    ix.offsets(i, o);
    y[i] = c[o[0]] ? a[o[1]] : b[o[2]];
  }
}

Status supports_where(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 3) return invalid_argument("where: expected 3 inputs, got ", dtypes.size());
  if (dtypes[0] != DType::kBool)
    return unsupported("where: condition must be bool, got ", dtype_name(dtypes[0]));
  if (dtypes[1] != dtypes[2])
    return invalid_argument("where: value dtypes differ (", dtype_name(dtypes[1]), " vs ",
                            dtype_name(dtypes[2]), ")");
  return Status::Ok();
}

Status run_where(const KernelArgs& args) {
  const TensorView& c = args.inputs[0];
  const TensorView& a = args.inputs[1];
  const TensorView& b = args.inputs[2];
  const TensorView& out = args.outputs[0];
  if (c.dtype != DType::kBool) return kernel_error(args, "condition must be bool");
  if (a.dtype != out.dtype || b.dtype != out.dtype) return kernel_error(args, "dtypes differ");
  TensorView bc, ba, bb;
  if (!broadcast_view(c, out, bc) || !broadcast_view(a, out, ba) || !broadcast_view(b, out, bb))
    return kernel_error(args, "inputs do not broadcast to the output shape");
  const int64_t n = out.numel();
  if (n == 0) return Status::Ok();
  const int64_t* strides[3] = {bc.strides, ba.strides, bb.strides};
  const StridedIndex<3> ix = make_index<3>(out.shape, out.rank, strides);
  cudaStream_t stream = stream_of(args);
  dispatch_by_size(dtype_size(out.dtype), [&](auto tag) {  // bit copies
    using U = typename decltype(tag)::type;
    where_kernel<U><<<grid_for(n), kBlock, 0, stream>>>(ix, c.as<const bool>(), a.as<const U>(),
                                                        b.as<const U>(), out.as<U>(), n);
  });
  return check_launch(args, "where kernel");
}

}  // namespace

void register_binary_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kBinary, "cuda.binary", supports_binary, run_binary});
  out.push_back({OpKind::kWhere, "cuda.where", supports_where, run_where});
}

}  // namespace kiln::cuda
