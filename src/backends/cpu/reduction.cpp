// Reductions (sum mean amax amin prod var), softmax / log_softmax and cumsum. Reductions of float
// dtypes accumulate in double (fp16/bf16 load through float32); integer sum/prod accumulate in
// wrapping int64.

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/common/cumsum_check.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {
namespace {

enum class RFn { kSum, kMean, kAmax, kAmin, kProd, kVar, kCount };
constexpr const char* kReduceNames[] = {"sum", "mean", "amax", "amin", "prod", "var"};

RFn parse_reduce(const std::string& name) {
  for (size_t i = 0; i < std::size(kReduceNames); ++i)
    if (name == kReduceNames[i]) return static_cast<RFn>(i);
  return RFn::kCount;
}

Status supports_reduce(const Op& op, std::span<const DType> dtypes) {
  std::string name = op.attrs.getString("fn", "");
  RFn fn = parse_reduce(name);
  if (fn == RFn::kCount) return unsupported("reduce: unknown fn '", name, "'");
  if (dtypes.size() != 1) return invalid_argument("reduce: expected 1 input, got ", dtypes.size());
  DType d = dtypes[0];
  if ((fn == RFn::kMean || fn == RFn::kVar) && !is_floating(d))
    return unsupported("reduce: ", name, " needs a float dtype, got ", dtype_name(d));
  if (d == DType::kBool && (fn == RFn::kSum || fn == RFn::kProd))
    return unsupported("reduce: ", name, " on bool is not supported (cast first)");
  return Status::Ok();
}

// Splits x into the kept dims (outer, in order) and the reduced dims (inner).
struct ReduceSplit {
  TensorView kept;
  TensorView reduced;
};

Result<ReduceSplit> split_dims(const KernelArgs& args, const TensorView& x,
                               const std::vector<int64_t>& dims) {
  bool is_reduced[kMaxRank] = {};
  for (int64_t d : dims) {
    if (d < 0 || d >= x.rank) return kernel_error(args, "reduce dim ", d, " out of range");
    is_reduced[d] = true;
  }
  if (dims.empty())  // an empty list reduces every dim (inference spells them out anyway)
    for (int i = 0; i < x.rank; ++i) is_reduced[i] = true;
  ReduceSplit s{x, x};
  s.kept.rank = s.reduced.rank = 0;
  for (int i = 0; i < x.rank; ++i) {
    TensorView& v = is_reduced[i] ? s.reduced : s.kept;
    v.shape[v.rank] = x.shape[i];
    v.strides[v.rank] = x.strides[i];
    ++v.rank;
  }
  return s;
}

// Reduces the elements at `base + offsets of red` of x.
template <typename T>
double reduce_float(RFn fn, const T* x, const TensorView& red, int64_t count, int64_t correction) {
  double acc = 0.0;
  switch (fn) {
    case RFn::kSum:
    case RFn::kMean:
      for_each_offset(red, [&](int64_t o) { acc += to_double(x[o]); });
      return fn == RFn::kMean ? acc / static_cast<double>(count) : acc;
    case RFn::kProd:
      acc = 1.0;
      for_each_offset(red, [&](int64_t o) { acc *= to_double(x[o]); });
      return acc;
    case RFn::kAmax:
    case RFn::kAmin: {
      const bool is_max = fn == RFn::kAmax;
      acc = is_max ? -INFINITY : INFINITY;
      bool nan = false;
      for_each_offset(red, [&](int64_t o) {
        double v = to_double(x[o]);
        nan |= v != v;
        acc = is_max ? (v > acc ? v : acc) : (v < acc ? v : acc);
      });
      return nan ? std::numeric_limits<double>::quiet_NaN() : acc;
    }
    case RFn::kVar: {  // two passes: the mean, then squared deviations
      for_each_offset(red, [&](int64_t o) { acc += to_double(x[o]); });
      const double mean = acc / static_cast<double>(count);
      double m2 = 0.0;
      for_each_offset(red, [&](int64_t o) {
        double d = to_double(x[o]) - mean;
        m2 += d * d;
      });
      double denom = static_cast<double>(count - correction);
      return m2 / (denom > 0.0 ? denom : 0.0);  // N <= correction: inf or nan, as torch
    }
    default:
      return 0.0;
  }
}

template <typename T>
T reduce_int(RFn fn, const T* x, const TensorView& red) {
  if constexpr (std::is_same_v<T, bool>) {
    bool acc = fn == RFn::kAmin;
    for_each_offset(red,
                    [&](int64_t o) { acc = fn == RFn::kAmax ? (acc || x[o]) : (acc && x[o]); });
    return acc;
  } else {
    uint64_t acc = fn == RFn::kProd ? 1 : 0;  // wrapping int64 accumulation
    T best = fn == RFn::kAmax ? std::numeric_limits<T>::min() : std::numeric_limits<T>::max();
    for_each_offset(red, [&](int64_t o) {
      T v = x[o];
      switch (fn) {
        case RFn::kSum:
          acc += static_cast<uint64_t>(static_cast<int64_t>(v));
          break;
        case RFn::kProd:
          acc *= static_cast<uint64_t>(static_cast<int64_t>(v));
          break;
        case RFn::kAmax:
          best = v > best ? v : best;
          break;
        default:
          best = v < best ? v : best;
          break;
      }
    });
    if (fn == RFn::kSum || fn == RFn::kProd) return static_cast<T>(static_cast<int64_t>(acc));
    return best;
  }
}

Status run_reduce(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  std::string name = args.attrs.getString("fn", "");
  RFn fn = parse_reduce(name);
  if (fn == RFn::kCount) return kernel_unsupported(args, "unknown reduce fn '", name, "'");
  if (out.dtype != x.dtype) return kernel_error(args, "output dtype differs from the input's");
  KILN_ASSIGN_OR_RETURN(ReduceSplit split, split_dims(args, x, args.attrs.getInts("dims", {})));
  if (split.kept.numel() != out.numel())
    return kernel_error(args, "output has ", out.numel(), " elements, expected ",
                        split.kept.numel());
  const int64_t count = split.reduced.numel();
  if (count == 0 && (fn == RFn::kAmax || fn == RFn::kAmin) && out.numel() > 0)
    return kernel_error(args, name, " of an empty dim has no identity");
  const int64_t correction = args.attrs.getInt("correction", 1);

  bool served = dispatch_all(x.dtype, [&](auto tag) -> bool {
    using T = typename decltype(tag)::type;
    const T* px = x.as<const T>();
    T* y = out.as<T>();
    int64_t i = 0;
    if constexpr (kIsFloatLike<T>) {
      for_each_offset(split.kept, [&](int64_t base) {
        y[i++] = from_double<T>(reduce_float(fn, px + base, split.reduced, count, correction));
      });
      return true;
    } else {
      if (fn == RFn::kMean || fn == RFn::kVar) return false;
      if (std::is_same_v<T, bool> && (fn == RFn::kSum || fn == RFn::kProd)) return false;
      for_each_offset(split.kept,
                      [&](int64_t base) { y[i++] = reduce_int(fn, px + base, split.reduced); });
      return true;
    }
  });
  if (!served) return kernel_unsupported(args, name, " on ", dtype_name(x.dtype));
  return Status::Ok();
}

// ---- softmax / log_softmax ------------------------------------------------------------------

Status supports_softmax(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 1)
    return invalid_argument(op_kind_name(op.kind), ": expected 1 input, got ", dtypes.size());
  if (!is_floating(dtypes[0]))
    return unsupported(op_kind_name(op.kind), ": needs a float dtype, got ", dtype_name(dtypes[0]));
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
  // Outer positions: every dim but `dim`, for the input and the (contiguous) output.
  TensorView outer_x = x;
  int64_t out_strides[kMaxRank];
  int64_t outer_out_strides[kMaxRank];
  contiguous_strides(out.shape, out.rank, out_strides);
  outer_x.rank = 0;
  for (int i = 0; i < x.rank; ++i) {
    if (i == dim) continue;
    outer_out_strides[outer_x.rank] = out_strides[i];
    outer_x.shape[outer_x.rank] = x.shape[i];
    outer_x.strides[outer_x.rank] = x.strides[i];
    ++outer_x.rank;
  }
  const int64_t n = x.shape[dim];
  const int64_t xs = x.strides[dim], ys = out_strides[dim];
  std::vector<float> buf(static_cast<size_t>(n));
  bool served = dispatch_floating(x.dtype, false, [&](auto tag) -> bool {
    using T = typename decltype(tag)::type;
    const T* px = x.as<const T>();
    T* py = out.as<T>();
    for_each_offset<2>(outer_x.shape, outer_x.rank, {outer_x.strides, outer_out_strides},
                       [&](const std::array<int64_t, 2>& o) {
                         const T* xr = px + o[0];
                         T* yr = py + o[1];
                         float mx = -INFINITY;
                         for (int64_t j = 0; j < n; ++j) {
                           buf[j] = to_float(xr[j * xs]);
                           mx = buf[j] > mx ? buf[j] : mx;
                         }
                         if (mx == -INFINITY) mx = 0.0f;  // all -inf: avoid inf - inf
                         double sum = 0.0;
                         for (int64_t j = 0; j < n; ++j) sum += std::exp(buf[j] - mx);
                         if constexpr (kLog) {
                           const float lse = static_cast<float>(std::log(sum));
                           for (int64_t j = 0; j < n; ++j)
                             yr[j * ys] = from_float<T>(buf[j] - mx - lse);
                         } else {
                           const float inv = static_cast<float>(1.0 / sum);
                           for (int64_t j = 0; j < n; ++j)
                             yr[j * ys] = from_float<T>(std::exp(buf[j] - mx) * inv);
                         }
                       });
    return true;
  });
  if (!served) return kernel_unsupported(args, "needs a float dtype, got ", dtype_name(x.dtype));
  return Status::Ok();
}

// ---- cumsum ---------------------------------------------------------------------------------
// torch.cumsum(x, dim, dtype): each element converted to the output dtype U, summed in U's
// accumulation type (as torch on the CPU: float32 in double, fp16/bf16 in float, integers in
// wrapping int64) and rounded to U at every position.


template <typename U>
using CumAccT = std::conditional_t<std::is_same_v<U, float>, double,
                                   std::conditional_t<kIsHalfLike<U>, float, uint64_t>>;

// Element of storage type T as the output type U, then as U's accumulation type.
template <typename U, typename T>
CumAccT<U> cumsum_load(T v) {
  if constexpr (kIsFloatLike<U>) {
    U u;
    if constexpr (kIsFloatLike<T>) {
      u = from_float<U>(to_float(v));
    } else {
      u = from_double<U>(static_cast<double>(v));
    }
    return static_cast<CumAccT<U>>(to_float(u));
  } else {
    int64_t i;
    if constexpr (kIsFloatLike<T>) {
      i = static_cast<int64_t>(from_float<U>(to_float(v)));
    } else {
      i = static_cast<int64_t>(static_cast<U>(v));  // int64 -> int32 wraps (C++20)
    }
    return static_cast<uint64_t>(i);
  }
}
template <typename U>
U cumsum_store(CumAccT<U> acc) {
  if constexpr (kIsFloatLike<U>) {
    return from_double<U>(static_cast<double>(acc));
  } else {
    return static_cast<U>(static_cast<int64_t>(acc));
  }
}

Status run_cumsum(const KernelArgs& args) {
  KILN_RETURN_IF_ERROR(check_cumsum_args(args));
  const TensorView& x = args.inputs[0];
  const TensorView& out = args.outputs[0];
  const int64_t dim = args.attrs.getInt("dim", -1);
  if (out.numel() == 0) return Status::Ok();
  // One line per position of the other dims; the output is contiguous.
  int64_t out_strides[kMaxRank];
  contiguous_strides(out.shape, out.rank, out_strides);
  int64_t line_shape[kMaxRank] = {}, line_xs[kMaxRank] = {}, line_ys[kMaxRank] = {};
  int r = 0;
  for (int i = 0; i < x.rank; ++i) {
    if (i == dim) continue;
    line_shape[r] = x.shape[i];
    line_xs[r] = x.strides[i];
    line_ys[r] = out_strides[i];
    ++r;
  }
  const int64_t n = x.shape[dim], xs = x.strides[dim], ys = out_strides[dim];
  dispatch_all(x.dtype, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    const T* px = x.as<const T>();
    dispatch_all(out.dtype, [&](auto out_tag) {
      using U = typename decltype(out_tag)::type;
      if constexpr (std::is_same_v<U, int8_t> || std::is_same_v<U, uint8_t> ||
                    std::is_same_v<U, bool>) {
        return;  // rejected above
      } else {
        U* py = out.as<U>();
        for_each_offset<2>(line_shape, r, {line_xs, line_ys}, [&](const std::array<int64_t, 2>& o) {
          CumAccT<U> acc{};
          for (int64_t j = 0; j < n; ++j) {
            acc += cumsum_load<U>(px[o[0] + j * xs]);
            py[o[1] + j * ys] = cumsum_store<U>(acc);
          }
        });
      }
    });
  });
  return Status::Ok();
}

}  // namespace

void register_reduction_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kReduce, "cpu.reduce", supports_reduce, checked_kernel<run_reduce, 1>});
  out.push_back(
      {OpKind::kSoftmax, "cpu.softmax", supports_softmax, checked_kernel<run_softmax<false>, 1>});
  out.push_back({OpKind::kLogSoftmax, "cpu.log_softmax", supports_softmax,
                 checked_kernel<run_softmax<true>, 1>});
  out.push_back({OpKind::kCumsum, "cpu.cumsum", supports_cumsum, checked_kernel<run_cumsum, 1>});
}

}  // namespace kiln::cpu
