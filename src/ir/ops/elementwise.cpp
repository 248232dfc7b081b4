// unary, binary, where, cast, clamp.
#include <algorithm>
#include <array>
#include <string_view>

#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

// Which input dtypes a unary fn accepts and what it gives.
enum class Accepts { kFloat, kNumeric, kIntOrBool, kAny };

struct UnaryFn {
  std::string_view name;
  Accepts accepts;
  bool gives_bool = false;
};

constexpr std::array<UnaryFn, 30> kUnaryFns = {{
    {"neg", Accepts::kNumeric},        {"abs", Accepts::kNumeric},
    {"exp", Accepts::kFloat},          {"log", Accepts::kFloat},
    {"sqrt", Accepts::kFloat},         {"rsqrt", Accepts::kFloat},
    {"sin", Accepts::kFloat},          {"cos", Accepts::kFloat},
    {"tanh", Accepts::kFloat},         {"sigmoid", Accepts::kFloat},
    {"relu", Accepts::kNumeric},       {"gelu", Accepts::kFloat},
    {"gelu_tanh", Accepts::kFloat},    {"silu", Accepts::kFloat},
    {"erf", Accepts::kFloat},          {"reciprocal", Accepts::kFloat},
    {"floor", Accepts::kNumeric},      {"ceil", Accepts::kNumeric},
    {"round", Accepts::kNumeric},      {"sign", Accepts::kNumeric},
    {"log1p", Accepts::kFloat},        {"expm1", Accepts::kFloat},
    {"hardswish", Accepts::kFloat},    {"hardsigmoid", Accepts::kFloat},
    {"leaky_relu", Accepts::kFloat},   {"elu", Accepts::kFloat},
    {"softplus", Accepts::kFloat},     {"logical_not", Accepts::kAny, true},
    {"bitwise_not", Accepts::kIntOrBool}, {"isnan", Accepts::kAny, true},
}};

struct BinaryFn {
  std::string_view name;
  Accepts accepts;
  bool gives_bool = false;
};

constexpr std::array<BinaryFn, 21> kBinaryFns = {{
    {"add", Accepts::kNumeric},          {"sub", Accepts::kNumeric},
    {"mul", Accepts::kNumeric},          {"div", Accepts::kFloat},
    {"pow", Accepts::kNumeric},          {"maximum", Accepts::kAny},
    {"minimum", Accepts::kAny},          {"floor_divide", Accepts::kNumeric},
    {"remainder", Accepts::kNumeric},    {"eq", Accepts::kAny, true},
    {"ne", Accepts::kAny, true},         {"lt", Accepts::kAny, true},
    {"le", Accepts::kAny, true},         {"gt", Accepts::kAny, true},
    {"ge", Accepts::kAny, true},         {"logical_and", Accepts::kAny, true},
    {"logical_or", Accepts::kAny, true}, {"logical_xor", Accepts::kAny, true},
    {"bitwise_and", Accepts::kIntOrBool}, {"bitwise_or", Accepts::kIntOrBool},
    {"bitwise_xor", Accepts::kIntOrBool},
}};

template <typename Table>
std::string fn_list(const Table& table) {
  std::string s;
  for (const auto& f : table) {
    if (!f.name.empty()) s += (s.empty() ? "" : " ") + std::string(f.name);
  }
  return s;
}

Status check_accepts(const InferContext& ctx, size_t i, const std::string& fn, Accepts a) {
  DType d = ctx.inputs[i]->dtype;
  bool ok = true;
  const char* expected = "";
  switch (a) {
    case Accepts::kFloat: ok = is_floating(d); expected = "a floating dtype"; break;
    case Accepts::kNumeric: ok = d != DType::kBool; expected = "a numeric (non-bool) dtype"; break;
    case Accepts::kIntOrBool: ok = !is_floating(d); expected = "an integer or bool dtype"; break;
    case Accepts::kAny: break;
  }
  if (ok) return Status::Ok();
  return ctx.error(fn, " needs ", expected, ", but '", ctx.inputName(i), "' is ", dtype_name(d));
}

Status infer_unary(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string fn, attr_string(ctx, "fn"));
  auto it = std::find_if(kUnaryFns.begin(), kUnaryFns.end(),
                         [&](const UnaryFn& f) { return f.name == fn; });
  if (it == kUnaryFns.end()) {
    return ctx.error("unknown fn '", fn, "' (expected one of: ", fn_list(kUnaryFns), ")");
  }
  KILN_RETURN_IF_ERROR(check_accepts(ctx, 0, fn, it->accepts));
  KILN_RETURN_IF_ERROR(attr_double(ctx, "alpha", fn == "leaky_relu" ? 0.01 : 1.0).status());
  ctx.outputs.push_back({it->gives_bool ? DType::kBool : ctx.inputs[0]->dtype,
                         ctx.inputs[0]->shape});
  return Status::Ok();
}

Status infer_binary(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string fn, attr_string(ctx, "fn"));
  auto it = std::find_if(kBinaryFns.begin(), kBinaryFns.end(),
                         [&](const BinaryFn& f) { return f.name == fn; });
  if (it == kBinaryFns.end()) {
    return ctx.error("unknown fn '", fn, "' (expected one of: ", fn_list(kBinaryFns), ")");
  }
  KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(check_accepts(ctx, 0, fn, it->accepts));
  KILN_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, {0, 1}));
  ctx.outputs.push_back({it->gives_bool ? DType::kBool : ctx.inputs[0]->dtype, std::move(shape)});
  return Status::Ok();
}

Status infer_where(InferContext& ctx) {
  if (ctx.inputs[0]->dtype != DType::kBool) {
    return ctx.error("condition '", ctx.inputName(0), "' is ", dtype_name(ctx.inputs[0]->dtype),
                     ", expected bool");
  }
  KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 1, 2));
  KILN_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, {0, 1, 2}));
  ctx.outputs.push_back({ctx.inputs[1]->dtype, std::move(shape)});
  return Status::Ok();
}

Status infer_cast(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DType dtype, attr_dtype(ctx, "dtype"));
  ctx.outputs.push_back({dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

Status infer_clamp(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_not_bool(ctx, 0));
  bool has_min = ctx.attrs.has("min"), has_max = ctx.attrs.has("max");
  if (!has_min && !has_max) return ctx.error("needs min, max or both");
  if (has_min) KILN_RETURN_IF_ERROR(attr_double(ctx, "min").status());
  if (has_max) KILN_RETURN_IF_ERROR(attr_double(ctx, "max").status());
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

}  // namespace

void register_elementwise_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kUnary, 1, 1, infer_unary});
  table.push_back({OpKind::kBinary, 2, 2, infer_binary});
  table.push_back({OpKind::kWhere, 3, 3, infer_where});
  table.push_back({OpKind::kCast, 1, 1, infer_cast});
  table.push_back({OpKind::kClamp, 1, 1, infer_clamp});
}

}  // namespace kiln
