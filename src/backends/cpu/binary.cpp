// The binary elementwise kernel: arithmetic, comparisons, logical and bitwise fns with numpy
// broadcasting. fp16/bf16 compute in float32; integer arithmetic wraps like PyTorch's, and
// floor_divide / remainder follow Python (round toward -inf).

#include <algorithm>
#include <cmath>
#include <string>

#include "backends/common/float_pow.h"
#include "backends/cpu/elementwise_loops.h"

namespace kiln::cpu {
namespace {

// ---- binary ---------------------------------------------------------------------------------

enum class BFn {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMaximum,
  kMinimum,
  kFloorDivide,
  kRemainder,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kLogicalAnd,
  kLogicalOr,
  kLogicalXor,
  kBitwiseAnd,
  kBitwiseOr,
  kBitwiseXor,
  kCount
};
constexpr const char* kBinaryNames[] = {
    "add",         "sub",          "mul",        "div",         "pow",        "maximum",
    "minimum",     "floor_divide", "remainder",  "eq",          "ne",         "lt",
    "le",          "gt",           "ge",         "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or",   "bitwise_xor"};
static_assert(std::size(kBinaryNames) == static_cast<size_t>(BFn::kCount));

BFn parse_binary(const std::string& name) {
  for (size_t i = 0; i < std::size(kBinaryNames); ++i)
    if (name == kBinaryNames[i]) return static_cast<BFn>(i);
  return BFn::kCount;
}
bool binary_gives_bool(BFn f) { return f >= BFn::kEq && f <= BFn::kLogicalXor; }
bool is_bitwise(BFn f) { return f >= BFn::kBitwiseAnd; }


// The comparison / logical fns, shared by every dtype (their compute type C).
template <typename C, typename F>
bool with_predicate(BFn fn, F&& f) {
  switch (fn) {
    case BFn::kEq:
      f([](C a, C b) { return a == b; });
      return true;
    case BFn::kNe:
      f([](C a, C b) { return a != b; });
      return true;
    case BFn::kLt:
      f([](C a, C b) { return a < b; });
      return true;
    case BFn::kLe:
      f([](C a, C b) { return a <= b; });
      return true;
    case BFn::kGt:
      f([](C a, C b) { return a > b; });
      return true;
    case BFn::kGe:
      f([](C a, C b) { return a >= b; });
      return true;
    case BFn::kLogicalAnd:
      f([](C a, C b) { return a != C{0} && b != C{0}; });
      return true;
    case BFn::kLogicalOr:
      f([](C a, C b) { return a != C{0} || b != C{0}; });
      return true;
    case BFn::kLogicalXor:
      f([](C a, C b) { return (a != C{0}) != (b != C{0}); });
      return true;
    default:
      return false;
  }
}

template <typename F>
bool with_float_binary(BFn fn, F&& f) {
  switch (fn) {
    case BFn::kAdd:
      f([](float a, float b) { return a + b; });
      return true;
    case BFn::kSub:
      f([](float a, float b) { return a - b; });
      return true;
    case BFn::kMul:
      f([](float a, float b) { return a * b; });
      return true;
    case BFn::kDiv:
      f([](float a, float b) { return a / b; });
      return true;
    case BFn::kPow:
      f([](float a, float b) { return float_pow(a, b); });
      return true;
    case BFn::kMaximum:  // NaN propagates, as torch.maximum
      f([](float a, float b) { return (a != a || a > b) ? a : b; });
      return true;
    case BFn::kMinimum:
      f([](float a, float b) { return (a != a || a < b) ? a : b; });
      return true;
    case BFn::kFloorDivide:
      f(float_floor_divide);
      return true;
    case BFn::kRemainder:
      f(float_remainder);
      return true;
    default:
      return false;
  }
}

// Integer arithmetic; division by zero or a negative power sets `bad` (checked after the loop).
template <typename T, typename F>
bool with_int_binary(BFn fn, bool& bad, F&& f) {
  switch (fn) {
    case BFn::kAdd:
      f([](T a, T b) { return wrap_add(a, b); });
      return true;
    case BFn::kSub:
      f([](T a, T b) { return wrap_sub(a, b); });
      return true;
    case BFn::kMul:
      f([](T a, T b) { return wrap_mul(a, b); });
      return true;
    case BFn::kMaximum:
      f([](T a, T b) { return std::max(a, b); });
      return true;
    case BFn::kMinimum:
      f([](T a, T b) { return std::min(a, b); });
      return true;
    case BFn::kBitwiseAnd:
      f([](T a, T b) { return static_cast<T>(a & b); });
      return true;
    case BFn::kBitwiseOr:
      f([](T a, T b) { return static_cast<T>(a | b); });
      return true;
    case BFn::kBitwiseXor:
      f([](T a, T b) { return static_cast<T>(a ^ b); });
      return true;
    case BFn::kPow:
      f([&bad](T a, T b) {
        if (b < T{0}) {
          bad = true;
          return T{0};
        }
        T r{1};
        for (uint64_t e = static_cast<uint64_t>(b); e; e >>= 1) {
          if (e & 1) r = wrap_mul(r, a);
          a = wrap_mul(a, a);
        }
        return r;
      });
      return true;
    case BFn::kFloorDivide:
      f([&bad](T a, T b) {
        if (b == T{0}) {
          bad = true;
          return T{0};
        }
        if constexpr (std::is_signed_v<T>) {
          if (b == T{-1}) return wrap_sub(T{0}, a);  // avoids INT_MIN / -1
          T q = static_cast<T>(a / b);
          if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
          return q;
        } else {
          return static_cast<T>(a / b);
        }
      });
      return true;
    case BFn::kRemainder:
      f([&bad](T a, T b) {
        if (b == T{0}) {
          bad = true;
          return T{0};
        }
        if constexpr (std::is_signed_v<T>) {
          if (b == T{-1}) return T{0};
          T r = static_cast<T>(a % b);
          if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
          return r;
        } else {
          return static_cast<T>(a % b);
        }
      });
      return true;
    default:
      return false;
  }
}

template <typename F>
bool with_bool_binary(BFn fn, F&& f) {
  switch (fn) {
    case BFn::kAdd:
    case BFn::kMaximum:
    case BFn::kBitwiseOr:
      f([](bool a, bool b) { return a || b; });
      return true;
    case BFn::kMul:
    case BFn::kMinimum:
    case BFn::kBitwiseAnd:
      f([](bool a, bool b) { return a && b; });
      return true;
    case BFn::kBitwiseXor:
      f([](bool a, bool b) { return a != b; });
      return true;
    default:
      return false;
  }
}

Status supports_binary(const Op& op, std::span<const DType> dtypes) {
  std::string name = op.attrs.getString("fn", "");
  BFn fn = parse_binary(name);
  if (fn == BFn::kCount) return unsupported("binary: unknown fn '", name, "'");
  if (dtypes.size() != 2) return invalid_argument("binary: expected 2 inputs, got ", dtypes.size());
  if (dtypes[0] != dtypes[1])
    return invalid_argument("binary: input dtypes differ (", dtype_name(dtypes[0]), " vs ",
                            dtype_name(dtypes[1]), ")");
  DType d = dtypes[0];
  if (binary_gives_bool(fn)) return Status::Ok();
  if (is_floating(d) && is_bitwise(fn))
    return unsupported("binary: ", name, " needs an integer or bool dtype, got ", dtype_name(d));
  if (!is_floating(d) && fn == BFn::kDiv)
    return unsupported("binary: div is true division and needs a float dtype, got ", dtype_name(d));
  if (d == DType::kBool &&
      (fn == BFn::kSub || fn == BFn::kPow || fn == BFn::kFloorDivide || fn == BFn::kRemainder))
    return unsupported("binary: ", name, " on bool is not supported");
  return Status::Ok();
}

Status run_binary(const KernelArgs& args) {
  const TensorView& a = args.inputs[0];
  const TensorView& b = args.inputs[1];
  const TensorView& out = args.outputs[0];
  std::string name = args.attrs.getString("fn", "");
  BFn fn = parse_binary(name);
  if (fn == BFn::kCount) return kernel_unsupported(args, "unknown binary fn '", name, "'");
  if (a.dtype != b.dtype) return kernel_error(args, "input dtypes differ");
  if (!broadcasts_to(a, out) || !broadcasts_to(b, out))
    return kernel_error(args, "inputs do not broadcast to the output shape");
  const bool gives_bool = binary_gives_bool(fn);
  if (out.dtype != (gives_bool ? DType::kBool : a.dtype))
    return kernel_error(args, "unexpected output dtype ", dtype_name(out.dtype));

  bool bad = false;
  bool served = dispatch_all(a.dtype, [&](auto tag) -> bool {
    using T = typename decltype(tag)::type;
    using C = ComputeT<T>;
    if (gives_bool)
      return with_predicate<C>(fn, [&](auto op) { map_binary<T, bool>(a, b, out, op); });
    if constexpr (kIsFloatLike<T>) {
      return with_float_binary(fn, [&](auto op) { map_binary<T, T>(a, b, out, op); });
    } else if constexpr (std::is_same_v<T, bool>) {
      return with_bool_binary(fn, [&](auto op) { map_binary<T, T>(a, b, out, op); });
    } else {
      return with_int_binary<T>(fn, bad, [&](auto op) { map_binary<T, T>(a, b, out, op); });
    }
  });
  if (!served) return kernel_unsupported(args, name, " is not supported for ", dtype_name(a.dtype));
  if (bad) {
    if (fn == BFn::kPow) return kernel_error(args, "integers to negative powers are not allowed");
    return kernel_error(args, name, ": integer division by zero");
  }
  return Status::Ok();
}

}  // namespace

void register_binary_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kBinary, "cpu.binary", supports_binary, checked_kernel<run_binary, 2>});
}

}  // namespace kiln::cpu
