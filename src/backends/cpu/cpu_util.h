#pragma once

// Shared helpers for CPU kernels: dtype dispatch, element load/store of any dtype, strided
// iteration with broadcasting, and contiguous staging of strided inputs. Header-only so that
// kernels inline the hot parts. All functions are reentrant (no global state).

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/common/tensor_view.h"
#include "ir/half.h"
#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln::cpu {

// Storage types of the two 16-bit float dtypes (raw bits; convert with to_float/from_float).
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// C++ storage type -> DType.
template <typename T>
inline constexpr DType kDTypeOf = DType::kFloat32;
template <> inline constexpr DType kDTypeOf<Half> = DType::kFloat16;
template <> inline constexpr DType kDTypeOf<BFloat16> = DType::kBFloat16;
template <> inline constexpr DType kDTypeOf<int64_t> = DType::kInt64;
template <> inline constexpr DType kDTypeOf<int32_t> = DType::kInt32;
template <> inline constexpr DType kDTypeOf<int8_t> = DType::kInt8;
template <> inline constexpr DType kDTypeOf<uint8_t> = DType::kUInt8;
template <> inline constexpr DType kDTypeOf<bool> = DType::kBool;

template <typename T>
inline constexpr bool kIsHalfLike = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
template <typename T>
inline constexpr bool kIsFloatLike = std::is_same_v<T, float> || kIsHalfLike<T>;
// Signed/unsigned integer storage (not bool).
template <typename T>
inline constexpr bool kIsIntLike = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The type kernels compute in: float for float/fp16/bf16, the type itself otherwise.
template <typename T>
using ComputeT = std::conditional_t<kIsHalfLike<T>, float, T>;

// ---- element conversion -------------------------------------------------------------------

// Any storage type -> float / double.
template <typename T>
inline float to_float(T v) {
  if constexpr (std::is_same_v<T, Half>) {
    return half_to_float(v.bits);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return bf16_to_float(v.bits);
  } else {
    return static_cast<float>(v);
  }
}
template <typename T>
inline double to_double(T v) {
  if constexpr (kIsHalfLike<T>) {
    return static_cast<double>(to_float(v));
  } else {
    return static_cast<double>(v);
  }
}

// float/double -> storage type T. Floats round to nearest even; ints truncate toward zero
// (saturating at the type's range and mapping NaN to 0, so that no cast is undefined); bool is
// v != 0.
template <typename T, typename S>
inline T from_floating(S v) {
  static_assert(std::is_floating_point_v<S>);
  if constexpr (std::is_same_v<T, Half>) {
    return Half{float_to_half(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return BFloat16{float_to_bf16(static_cast<float>(v))};
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T{0};
    if (v <= static_cast<S>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= static_cast<S>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}
template <typename T>
inline T from_float(float v) {
  return from_floating<T>(v);
}
template <typename T>
inline T from_double(double v) {
  return from_floating<T>(v);
}

// Storage -> compute type, and back (identity for everything but fp16/bf16).
template <typename T>
inline ComputeT<T> load(T v) {
  if constexpr (kIsHalfLike<T>) {
    return to_float(v);
  } else {
    return v;
  }
}
template <typename T>
inline T store(ComputeT<T> v) {
  if constexpr (kIsHalfLike<T>) {
    return from_float<T>(v);
  } else {
    return v;
  }
}

// Python floor division / modulo on floats (PyTorch's div_floor / remainder): the binary and
// the pointwise kernels.
inline float float_floor_divide(float a, float b) {
  if (b == 0.0f) return a / b;
  float m = std::fmod(a, b);
  float div = (a - m) / b;
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return std::copysign(0.0f, a / b);
  float fl = std::floor(div);
  if (div - fl > 0.5f) fl += 1.0f;
  return fl;
}
inline float float_remainder(float a, float b) {
  float m = std::fmod(a, b);
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) m += b;
  return m;
}

// ---- dtype dispatch -----------------------------------------------------------------------

// Calls f(std::type_identity<T>{}) with T the storage type of `dtype`:
//   return dispatch_all(v.dtype, [&](auto tag) { using T = typename decltype(tag)::type; ... });
// Every branch must return the same type.
template <typename F>
inline decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat16: return f(std::type_identity<Half>{});
    case DType::kBFloat16: return f(std::type_identity<BFloat16>{});
    case DType::kInt64: return f(std::type_identity<int64_t>{});
    case DType::kInt32: return f(std::type_identity<int32_t>{});
    case DType::kInt8: return f(std::type_identity<int8_t>{});
    case DType::kUInt8: return f(std::type_identity<uint8_t>{});
    case DType::kBool: return f(std::type_identity<bool>{});
    case DType::kFloat32:
    default: return f(std::type_identity<float>{});
  }
}

// As dispatch_all for float32/float16/bfloat16; other dtypes return `unsupported_result`.
template <typename R, typename F>
inline R dispatch_floating(DType dtype, R unsupported_result, F&& f) {
  switch (dtype) {
    case DType::kFloat32: return f(std::type_identity<float>{});
    case DType::kFloat16: return f(std::type_identity<Half>{});
    case DType::kBFloat16: return f(std::type_identity<BFloat16>{});
    default: return unsupported_result;
  }
}

// As dispatch_all for int64/int32 (index tensors); other dtypes return `unsupported_result`.
template <typename R, typename F>
inline R dispatch_index(DType dtype, R unsupported_result, F&& f) {
  switch (dtype) {
    case DType::kInt64: return f(std::type_identity<int64_t>{});
    case DType::kInt32: return f(std::type_identity<int32_t>{});
    default: return unsupported_result;
  }
}

// Calls f(std::type_identity<U>{}) with U an unsigned integer of `bytes` size (1, 2, 4 or 8):
// for kernels that only move elements (copies, gathers), whatever their dtype.
template <typename F>
inline decltype(auto) dispatch_by_size(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: return f(std::type_identity<uint8_t>{});
    case 2: return f(std::type_identity<uint16_t>{});
    case 4: return f(std::type_identity<uint32_t>{});
    default: return f(std::type_identity<uint64_t>{});
  }
}

// ---- runtime-dtype element access (slow path: one switch per element) ---------------------

// Element `offset` (in elements from v.data) of any dtype as double.
inline double load_double(const TensorView& v, int64_t offset) {
  return dispatch_all(v.dtype, [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return to_double(v.as<const T>()[offset]);
  });
}
// Stores `value` (converted per from_double) at element `offset` of v.
inline void store_double(const TensorView& v, int64_t offset, double value) {
  dispatch_all(v.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    v.as<T>()[offset] = from_double<T>(value);
  });
}
// Element `offset` of an int32/int64 (or any integer) view as int64.
inline int64_t load_index(const TensorView& v, int64_t offset) {
  switch (v.dtype) {
    case DType::kInt64: return v.as<const int64_t>()[offset];
    case DType::kInt32: return v.as<const int32_t>()[offset];
    case DType::kInt8: return v.as<const int8_t>()[offset];
    case DType::kUInt8: return v.as<const uint8_t>()[offset];
    case DType::kBool: return v.as<const bool>()[offset] ? 1 : 0;
    default: return static_cast<int64_t>(load_double(v, offset));
  }
}

// ---- shapes and broadcasting --------------------------------------------------------------

inline bool same_shape(const TensorView& a, const TensorView& b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; ++i)
    if (a.shape[i] != b.shape[i]) return false;
  return true;
}

// `in` viewed with the output's shape (numpy broadcasting): missing leading dims and size-1 dims
// get stride 0. The caller has checked that the shapes broadcast; returns false if they don't.
inline bool broadcast_view(const TensorView& in, const int64_t* shape, int rank,
                           TensorView& out) {
  if (in.rank > rank) return false;
  out = in;
  out.rank = rank;
  int lead = rank - in.rank;
  for (int i = 0; i < rank; ++i) {
    out.shape[i] = shape[i];
    if (i < lead) {
      out.strides[i] = 0;
      continue;
    }
    int64_t d = in.shape[i - lead];
    if (d == shape[i]) {
      out.strides[i] = in.strides[i - lead];
    } else if (d == 1) {
      out.strides[i] = 0;
    } else {
      return false;
    }
  }
  return true;
}
inline bool broadcast_view(const TensorView& in, const TensorView& like, TensorView& out) {
  return broadcast_view(in, like.shape, like.rank, out);
}

// Calls f(offsets) for every index of `shape` in row-major order, where offsets[k] is the element
// offset of that index in operand k (sum of index * strides[k]). N operands, any strides
// (including 0 and negative). The innermost dim runs as a plain loop.
template <size_t N, typename F>
inline void for_each_offset(const int64_t* shape, int rank,
                            const std::array<const int64_t*, N>& strides, F&& f) {
  for (int i = 0; i < rank; ++i)
    if (shape[i] == 0) return;
  std::array<int64_t, N> off{};
  if (rank == 0) {
    f(off);
    return;
  }
  int64_t idx[kMaxRank] = {};
  const int last = rank - 1;
  const int64_t inner = shape[last];
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][last];
  while (true) {
    std::array<int64_t, N> o = off;
    for (int64_t j = 0; j < inner; ++j) {
      f(o);
      for (size_t k = 0; k < N; ++k) o[k] += inner_stride[k];
    }
    // Advance the outer index (odometer), updating offsets incrementally.
    int d = last - 1;
    for (; d >= 0; --d) {
      ++idx[d];
      for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// Convenience: one operand.
template <typename F>
inline void for_each_offset(const TensorView& v, F&& f) {
  for_each_offset<1>(v.shape, v.rank, {v.strides}, [&](const std::array<int64_t, 1>& o) {
    f(o[0]);
  });
}

// Row-major strides of a shape.
inline void contiguous_strides(const int64_t* shape, int rank, int64_t* strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
}

// ---- copies and staging ---------------------------------------------------------------------

// Copies the elements of strided `in` in row-major logical order into contiguous `out` (same
// dtype, numel() elements). Bit-exact: works on any dtype by element size.
inline void copy_to_contiguous(const TensorView& in, void* out) {
  const size_t es = dtype_size(in.dtype);
  if (in.isContiguous()) {
    std::memcpy(out, in.data, static_cast<size_t>(in.numel()) * es);
    return;
  }
  auto run = [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* src = static_cast<const U*>(in.data);
    U* dst = static_cast<U*>(out);
    int64_t i = 0;
    for_each_offset(in, [&](int64_t o) { dst[i++] = src[o]; });
  };
  switch (es) {
    case 1: run(std::type_identity<uint8_t>{}); break;
    case 2: run(std::type_identity<uint16_t>{}); break;
    case 4: run(std::type_identity<uint32_t>{}); break;
    default: run(std::type_identity<uint64_t>{}); break;
  }
}

// Copies strided `src` into strided `dst` element by element (same dtype and shape; any strides,
// including negative ones). Bit-exact.
inline void copy_view(const TensorView& src, const TensorView& dst) {
  dispatch_by_size(dtype_size(src.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    const U* s = static_cast<const U*>(src.data);
    U* d = static_cast<U*>(dst.data);
    for_each_offset<2>(src.shape, src.rank, {src.strides, dst.strides},
                       [&](const std::array<int64_t, 2>& o) { d[o[1]] = s[o[0]]; });
  });
}

// `in` as a contiguous view: `in` itself when already contiguous, otherwise a copy kept in
// `storage` (which must outlive the returned view).
inline TensorView contiguous_or_copy(const TensorView& in, std::vector<std::byte>& storage) {
  if (in.isContiguous()) {
    TensorView v = in;
    set_contiguous_strides(v);
    return v;
  }
  storage.resize(static_cast<size_t>(in.numel()) * dtype_size(in.dtype));
  copy_to_contiguous(in, storage.data());
  TensorView v = in;
  v.data = storage.data();
  set_contiguous_strides(v);
  return v;
}

// Kept scratch: kernels whose temporaries grow with the tensors (conv's im2col columns and
// float copies, the norms' float rows) keep them in thread_local vectors, so a call reuses the
// capacity the last one on its thread left instead of allocating (and page-faulting) megabytes
// again. The memory stays with the thread, the largest size it has needed, until it exits. A
// kernel may not call itself (none does), and each vector belongs to one kernel function.

// Loads any-dtype strided `in` into a contiguous row-major float buffer (resized to numel).
inline void load_as_float(const TensorView& in, std::vector<float>& out) {
  out.resize(static_cast<size_t>(in.numel()));
  dispatch_all(in.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* src = in.as<const T>();
    float* dst = out.data();
    if (in.isContiguous()) {
      for (int64_t i = 0, n = in.numel(); i < n; ++i) dst[i] = to_float(src[i]);
    } else {
      int64_t i = 0;
      for_each_offset(in, [&](int64_t o) { dst[i++] = to_float(src[o]); });
    }
  });
}

// Stores n = out.numel() floats (in row-major logical order) into `out` of any dtype and
// strides (rounding per from_float).
inline void store_from_float(const float* src, const TensorView& out) {
  dispatch_all(out.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* dst = out.as<T>();
    if (out.isContiguous()) {
      for (int64_t i = 0, n = out.numel(); i < n; ++i) dst[i] = from_float<T>(src[i]);
    } else {
      int64_t i = 0;
      for_each_offset(out, [&](int64_t o) { dst[o] = from_float<T>(src[i++]); });
    }
  });
}

// ---- errors ---------------------------------------------------------------------------------

// "reduce: <message>" with the op name a kernel received.
template <typename... Args>
inline Status kernel_error(const KernelArgs& args, const Args&... parts) {
  return invalid_argument(args.op_name ? args.op_name : "kernel", ": ", parts...);
}
template <typename... Args>
inline Status kernel_unsupported(const KernelArgs& args, const Args&... parts) {
  return unsupported(args.op_name ? args.op_name : "kernel", ": ", parts...);
}
// The standard index error: "<op>: index 7 is out of range for dim 0 of size 5".
inline Status index_out_of_range(const KernelArgs& args, int64_t index, int64_t dim,
                                 int64_t size) {
  return out_of_range(args.op_name ? args.op_name : "kernel", ": index ", index,
                      " is out of range for dim ", dim, " of size ", size);
}

// A kernel behind a check of its argument counts, so that a malformed call returns a Status
// instead of indexing past the spans: register `checked_kernel<run_x, 1, 3>` for 1 to 3 inputs.
// kMaxInputs < 0: any number; kOutputs < 0: at least one.
template <KernelFn kFn, int kMinInputs, int kMaxInputs = kMinInputs, int kOutputs = 1>
Status checked_kernel(const KernelArgs& args) {
  const int n_in = static_cast<int>(args.inputs.size());
  const int n_out = static_cast<int>(args.outputs.size());
  if (n_in < kMinInputs || (kMaxInputs >= 0 && n_in > kMaxInputs))
    return kernel_error(args, "got ", n_in, " inputs, expected ", kMinInputs,
                        kMaxInputs < 0 ? std::string(" or more")
                                       : kMaxInputs == kMinInputs ? std::string()
                                                                  : str(" to ", kMaxInputs));
  if (kOutputs >= 0 ? n_out != kOutputs : n_out < 1)
    return kernel_error(args, "got ", n_out, " outputs");
  for (const TensorView& v : args.inputs)
    if (v.rank < 0 || v.rank > kMaxRank) return kernel_error(args, "input rank ", v.rank);
  for (const TensorView& v : args.outputs)
    if (v.rank < 0 || v.rank > kMaxRank) return kernel_error(args, "output rank ", v.rank);
  return kFn(args);
}

}  // namespace kiln::cpu

// ---- float32 staging and GEMM (appended by the linalg/conv/attention kernels) ---------------

namespace kiln::cpu {

// `in` (float32/float16/bfloat16) as a float32 view: `in` itself (strides kept) for float32,
// otherwise a contiguous float32 copy held in `storage` (which must outlive the view).
inline TensorView float_view(const TensorView& in, std::vector<float>& storage) {
  if (in.dtype == DType::kFloat32) return in;
  load_as_float(in, storage);
  TensorView v = in;
  v.dtype = DType::kFloat32;
  v.data = storage.data();
  set_contiguous_strides(v);
  return v;
}

// C[M,N] = alpha * A[M,K] * B[K,N] + beta * C through OpenBLAS sgemm (defined in linalg.cpp).
// A and B are strided matrices (element (i,j) of A at a[i*a_rs + j*a_cs]); a plain transpose is
// passed to BLAS as such, any other layout (stride 0, gaps in both dims) is packed first. C is
// row-major with leading dimension ldc. K == 0 gives beta * C (zeros for beta == 0).
void sgemm_strided(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_rs,
                   int64_t a_cs, const float* b, int64_t b_rs, int64_t b_cs, float beta, float* c,
                   int64_t ldc);

}  // namespace kiln::cpu
