// Elementwise kernels: unary, where, cast, clamp (binary is in binary.cpp). Each runs a tight loop
// when its input is contiguous, and a strided loop otherwise. fp16/bf16 compute in float32.

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include "backends/cpu/elementwise_loops.h"

namespace kiln::cpu {
namespace {

// ---- unary ----------------------------------------------------------------------------------

enum class UFn {
  kNeg,
  kAbs,
  kExp,
  kLog,
  kSqrt,
  kRsqrt,
  kSin,
  kCos,
  kTanh,
  kSigmoid,
  kRelu,
  kGelu,
  kGeluTanh,
  kSilu,
  kErf,
  kReciprocal,
  kFloor,
  kCeil,
  kRound,
  kSign,
  kLog1p,
  kExpm1,
  kHardswish,
  kHardsigmoid,
  kLeakyRelu,
  kElu,
  kSoftplus,
  kLogicalNot,
  kBitwiseNot,
  kIsnan,
  kCount
};
constexpr const char* kUnaryNames[] = {
    "neg",        "abs",  "exp",      "log",         "sqrt",        "rsqrt",
    "sin",        "cos",  "tanh",     "sigmoid",     "relu",        "gelu",
    "gelu_tanh",  "silu", "erf",      "reciprocal",  "floor",       "ceil",
    "round",      "sign", "log1p",    "expm1",       "hardswish",   "hardsigmoid",
    "leaky_relu", "elu",  "softplus", "logical_not", "bitwise_not", "isnan"};
static_assert(std::size(kUnaryNames) == static_cast<size_t>(UFn::kCount));

UFn parse_unary(const std::string& name) {
  for (size_t i = 0; i < std::size(kUnaryNames); ++i)
    if (name == kUnaryNames[i]) return static_cast<UFn>(i);
  return UFn::kCount;
}

// Fns defined on integers (besides the bool-valued logical_not / isnan).
bool unary_int_ok(UFn f) {
  switch (f) {
    case UFn::kNeg:
    case UFn::kAbs:
    case UFn::kRelu:
    case UFn::kSign:
    case UFn::kFloor:
    case UFn::kCeil:
    case UFn::kRound:
    case UFn::kBitwiseNot:
    case UFn::kLogicalNot:
    case UFn::kIsnan:
      return true;
    default:
      return false;
  }
}

// Calls f(op) with op: float -> float for the float fns. Returns false for the others.
template <typename F>
bool with_float_unary(UFn fn, float alpha, F&& f) {
  constexpr float kSqrt1_2 = 0.70710678118654752f;
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  switch (fn) {
    case UFn::kNeg:
      f([](float x) { return -x; });
      return true;
    case UFn::kAbs:
      f([](float x) { return std::fabs(x); });
      return true;
    case UFn::kExp:
      f([](float x) { return std::exp(x); });
      return true;
    case UFn::kLog:
      f([](float x) { return std::log(x); });
      return true;
    case UFn::kSqrt:
      f([](float x) { return std::sqrt(x); });
      return true;
    case UFn::kRsqrt:
      f([](float x) { return 1.0f / std::sqrt(x); });
      return true;
    case UFn::kSin:
      f([](float x) { return std::sin(x); });
      return true;
    case UFn::kCos:
      f([](float x) { return std::cos(x); });
      return true;
    case UFn::kTanh:
      f([](float x) { return std::tanh(x); });
      return true;
    case UFn::kSigmoid:
      f([](float x) { return 1.0f / (1.0f + std::exp(-x)); });
      return true;
    case UFn::kRelu:
      f([](float x) { return x > 0.0f ? x : (x == x ? 0.0f : x); });
      return true;
    case UFn::kGelu:
      f([=](float x) { return 0.5f * x * (1.0f + std::erf(x * kSqrt1_2)); });
      return true;
    case UFn::kGeluTanh:
      f([=](float x) {
        return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
      });
      return true;
    case UFn::kSilu:
      f([](float x) { return x / (1.0f + std::exp(-x)); });
      return true;
    case UFn::kErf:
      f([](float x) { return std::erf(x); });
      return true;
    case UFn::kReciprocal:
      f([](float x) { return 1.0f / x; });
      return true;
    case UFn::kFloor:
      f([](float x) { return std::floor(x); });
      return true;
    case UFn::kCeil:
      f([](float x) { return std::ceil(x); });
      return true;
    case UFn::kRound:
      f([](float x) { return std::nearbyint(x); });
      return true;  // half to even
    case UFn::kSign:
      f([](float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); });  // keeps 0 and NaN
      return true;
    case UFn::kLog1p:
      f([](float x) { return std::log1p(x); });
      return true;
    case UFn::kExpm1:
      f([](float x) { return std::expm1(x); });
      return true;
    case UFn::kHardswish:
      f([](float x) { return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; });
      return true;
    case UFn::kHardsigmoid:
      f([](float x) { return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f; });
      return true;
    case UFn::kLeakyRelu:
      f([=](float x) { return x > 0.0f ? x : alpha * x; });
      return true;
    case UFn::kElu:
      f([=](float x) { return x > 0.0f ? x : alpha * std::expm1(x); });
      return true;
    case UFn::kSoftplus:  // PyTorch's default beta=1, threshold=20
      f([](float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); });
      return true;
    default:
      return false;
  }
}

// Calls f(op) with op: T -> T for the integer fns (T a signed or unsigned int, or bool).
template <typename T, typename F>
bool with_int_unary(UFn fn, F&& f) {
  if constexpr (std::is_same_v<T, bool>) {
    if (fn != UFn::kBitwiseNot) return false;
    f([](bool x) { return !x; });
    return true;
  } else {
    switch (fn) {
      case UFn::kNeg:
        f([](T x) { return wrap_sub<T>(T{0}, x); });
        return true;
      case UFn::kAbs:
        f([](T x) { return x < T{0} ? wrap_sub<T>(T{0}, x) : x; });
        return true;
      case UFn::kRelu:
        f([](T x) { return x > T{0} ? x : T{0}; });
        return true;
      case UFn::kSign:
        f([](T x) { return static_cast<T>((x > T{0}) - (x < T{0})); });
        return true;
      case UFn::kFloor:
      case UFn::kCeil:
      case UFn::kRound:
        f([](T x) { return x; });
        return true;
      case UFn::kBitwiseNot:
        f([](T x) { return static_cast<T>(~x); });
        return true;
      default:
        return false;
    }
  }
}

Status supports_unary(const Op& op, std::span<const DType> dtypes) {
  std::string name = op.attrs.getString("fn", "");
  UFn fn = parse_unary(name);
  if (fn == UFn::kCount) return unsupported("unary: unknown fn '", name, "'");
  if (dtypes.size() != 1) return invalid_argument("unary: expected 1 input, got ", dtypes.size());
  DType d = dtypes[0];
  if (fn == UFn::kLogicalNot || fn == UFn::kIsnan) return Status::Ok();
  if (d == DType::kBool) {
    if (fn != UFn::kBitwiseNot) return unsupported("unary: ", name, " on bool is not supported");
  } else if (is_integer(d)) {
    if (!unary_int_ok(fn))
      return unsupported("unary: ", name, " needs a float dtype, got ", dtype_name(d));
  } else if (fn == UFn::kBitwiseNot) {
    return unsupported("unary: bitwise_not needs an integer or bool dtype, got ", dtype_name(d));
  }
  return Status::Ok();
}

Status run_unary(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  std::string name = args.attrs.getString("fn", "");
  UFn fn = parse_unary(name);
  if (fn == UFn::kCount) return kernel_unsupported(args, "unknown unary fn '", name, "'");
  if (!same_shape(in, out)) return kernel_error(args, "output shape differs from the input's");

  if (fn == UFn::kLogicalNot || fn == UFn::kIsnan) {
    if (out.dtype != DType::kBool) return kernel_error(args, name, " must produce bool");
    dispatch_all(in.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (fn == UFn::kIsnan) {
        map_unary<T, bool>(in, out, [](auto x) {
          if constexpr (std::is_floating_point_v<decltype(x)>)
            return x != x;
          else
            return false;
        });
      } else {
        map_unary<T, bool>(in, out, [](auto x) { return !(x != decltype(x){0}); });
      }
    });
    return Status::Ok();
  }
  if (out.dtype != in.dtype) return kernel_error(args, "output dtype differs from the input's");
  const float alpha =
      static_cast<float>(args.attrs.getDouble("alpha", fn == UFn::kElu ? 1.0 : 0.01));
  bool served = dispatch_all(in.dtype, [&](auto tag) -> bool {
    using T = typename decltype(tag)::type;
    if constexpr (kIsFloatLike<T>) {
      return with_float_unary(fn, alpha, [&](auto op) { map_unary<T, T>(in, out, op); });
    } else {
      return with_int_unary<T>(fn, [&](auto op) { map_unary<T, T>(in, out, op); });
    }
  });
  if (!served)
    return kernel_unsupported(args, name, " is not supported for ", dtype_name(in.dtype));
  return Status::Ok();
}

// ---- where ----------------------------------------------------------------------------------

Status supports_where(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 3) return invalid_argument("where: expected 3 inputs, got ", dtypes.size());
  if (dtypes[0] != DType::kBool)
    return unsupported("where: condition must be bool, got ", dtype_name(dtypes[0]));
  if (dtypes[1] != dtypes[2])
    return invalid_argument("where: value dtypes differ (", dtype_name(dtypes[1]), " vs ",
                            dtype_name(dtypes[2]), ")");
  return Status::Ok();
}

template <typename U>
void where_loop(const TensorView& c, const TensorView& a, const TensorView& b,
                const TensorView& out) {
  TensorView bc, ba, bb;
  broadcast_view(c, out, bc);
  broadcast_view(a, out, ba);
  broadcast_view(b, out, bb);
  const bool* pc = c.as<const bool>();
  const U* pa = a.as<const U>();
  const U* pb = b.as<const U>();
  U* y = out.as<U>();
  int64_t i = 0;
  for_each_offset<3>(
      out.shape, out.rank, {bc.strides, ba.strides, bb.strides},
      [&](const std::array<int64_t, 3>& o) { y[i++] = pc[o[0]] ? pa[o[1]] : pb[o[2]]; });
}

Status run_where(const KernelArgs& args) {
  const TensorView& c = args.inputs[0];
  const TensorView& a = args.inputs[1];
  const TensorView& b = args.inputs[2];
  const TensorView& out = args.outputs[0];
  if (c.dtype != DType::kBool) return kernel_error(args, "condition must be bool");
  if (a.dtype != out.dtype || b.dtype != out.dtype) return kernel_error(args, "dtypes differ");
  if (!broadcasts_to(c, out) || !broadcasts_to(a, out) || !broadcasts_to(b, out))
    return kernel_error(args, "inputs do not broadcast to the output shape");
  // Bit copies: the element size is all that matters.
  switch (dtype_size(out.dtype)) {
    case 1:
      where_loop<uint8_t>(c, a, b, out);
      break;
    case 2:
      where_loop<uint16_t>(c, a, b, out);
      break;
    case 4:
      where_loop<uint32_t>(c, a, b, out);
      break;
    default:
      where_loop<uint64_t>(c, a, b, out);
      break;
  }
  return Status::Ok();
}

// ---- cast -----------------------------------------------------------------------------------

// One element T -> U per the cast rules (float->int truncates, ->bool is != 0, floats round to
// nearest even).
template <typename U, typename T>
inline U convert(T v) {
  if constexpr (std::is_same_v<U, T>) {
    return v;
  } else if constexpr (std::is_same_v<U, bool>) {
    return to_float(v) != 0.0f;
  } else if constexpr (kIsFloatLike<T>) {
    return from_float<U>(to_float(v));
  } else if constexpr (kIsFloatLike<U>) {
    return from_float<U>(static_cast<float>(v));
  } else {
    return static_cast<U>(v);  // int -> int wraps (modular since C++20), bool -> 0/1
  }
}

Status run_cast(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out)) return kernel_error(args, "output shape differs from the input's");
  dispatch_all(in.dtype, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    dispatch_all(out.dtype, [&](auto out_tag) {
      using U = typename decltype(out_tag)::type;
      const T* x = in.as<const T>();
      U* y = out.as<U>();
      if (in.isContiguous()) {
        for (int64_t i = 0, n = out.numel(); i < n; ++i) y[i] = convert<U>(x[i]);
      } else {
        int64_t i = 0;
        for_each_offset(in, [&](int64_t o) { y[i++] = convert<U>(x[o]); });
      }
    });
  });
  return Status::Ok();
}

// ---- clamp ----------------------------------------------------------------------------------

Status supports_clamp(const Op& op, std::span<const DType> dtypes) {
  if (dtypes.size() != 1) return invalid_argument("clamp: expected 1 input, got ", dtypes.size());
  if (dtypes[0] == DType::kBool) return unsupported("clamp: bool is not supported");
  return Status::Ok();
}

Status run_clamp(const KernelArgs& args) {
  const TensorView& in = args.inputs[0];
  const TensorView& out = args.outputs[0];
  if (!same_shape(in, out) || in.dtype != out.dtype)
    return kernel_error(args, "output shape or dtype differs from the input's");
  const bool has_lo = args.attrs.has("min"), has_hi = args.attrs.has("max");
  const double lo = args.attrs.getDouble("min", 0.0), hi = args.attrs.getDouble("max", 0.0);
  bool served = dispatch_all(in.dtype, [&](auto tag) -> bool {
    using T = typename decltype(tag)::type;
    if constexpr (kIsFloatLike<T>) {
      const float l = has_lo ? static_cast<float>(lo) : -INFINITY;
      const float h = has_hi ? static_cast<float>(hi) : INFINITY;
      // NaN inputs stay NaN (comparisons are false); max is applied last, as torch.clamp.
      map_unary<T, T>(in, out, [=](float x) {
        x = x < l ? l : x;
        return x > h ? h : x;
      });
      return true;
    } else if constexpr (kIsIntLike<T>) {
      // Integer bounds: the smallest int >= min and the largest int <= max, saturated.
      const T l = has_lo ? from_double<T>(std::ceil(lo)) : std::numeric_limits<T>::min();
      const T h = has_hi ? from_double<T>(std::floor(hi)) : std::numeric_limits<T>::max();
      map_unary<T, T>(in, out, [=](T x) { return x < l ? l : (x > h ? h : x); });
      return true;
    } else {
      return false;
    }
  });
  if (!served) return kernel_unsupported(args, "clamp on ", dtype_name(in.dtype));
  return Status::Ok();
}

}  // namespace

void register_elementwise_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kUnary, "cpu.unary", supports_unary, checked_kernel<run_unary, 1>});
  register_binary_kernels(out);
  out.push_back({OpKind::kWhere, "cpu.where", supports_where, checked_kernel<run_where, 3>});
  out.push_back({OpKind::kCast, "cpu.cast", nullptr, checked_kernel<run_cast, 1>});
  out.push_back({OpKind::kClamp, "cpu.clamp", supports_clamp, checked_kernel<run_clamp, 1>});
}

}  // namespace kiln::cpu
