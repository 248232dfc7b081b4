// reduce, softmax, log_softmax, cumsum and the normalizations.
#include <string_view>

#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

Status infer_reduce(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string fn, attr_string(ctx, "fn"));
  static constexpr std::string_view kFns[] = {"sum", "mean", "amax", "amin", "prod", "var"};
  bool known = false;
  for (std::string_view f : kFns) known |= f == fn;
  if (!known) return ctx.error("unknown fn '", fn, "' (expected sum mean amax amin prod var)");
  DType d = ctx.inputs[0]->dtype;
  if ((fn == "mean" || fn == "var") && !is_floating(d)) {
    return ctx.error(fn, " needs a floating dtype, but '", ctx.inputName(0), "' is ",
                     dtype_name(d));
  }
  if ((fn == "sum" || fn == "prod") && d == DType::kBool) {
    return ctx.error(fn, " of bool '", ctx.inputName(0), "' is not supported (cast first)");
  }
  int64_t rank = static_cast<int64_t>(ctx.inputs[0]->rank());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, attr_ints(ctx, "dims", std::vector<int64_t>{}));
  if (dims.empty()) {
    for (int64_t i = 0; i < rank; ++i) dims.push_back(i);
  }
  KILN_ASSIGN_OR_RETURN(dims, normalize_dims(ctx, std::move(dims), rank));
  ctx.attrs.set("dims", dims);
  KILN_ASSIGN_OR_RETURN(bool keepdim, attr_bool(ctx, "keepdim", false));
  KILN_ASSIGN_OR_RETURN(int64_t correction, attr_int(ctx, "correction", 1));
  if (correction < 0) return ctx.error("correction is ", correction, ", must be >= 0");
  Shape out;
  const Shape& in = ctx.inputs[0]->shape;
  for (int64_t i = 0, j = 0; i < rank; ++i) {
    bool reduced = j < static_cast<int64_t>(dims.size()) && dims[static_cast<size_t>(j)] == i;
    if (reduced) {
      ++j;
      if (keepdim) out.push_back(SymExpr(1));
    } else {
      out.push_back(in[static_cast<size_t>(i)]);
    }
  }
  ctx.outputs.push_back({d, std::move(out)});
  return Status::Ok();
}

Status infer_softmax(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, static_cast<int64_t>(ctx.inputs[0]->rank())));
  ctx.attrs.set("dim", dim);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

// cumsum: torch.cumsum(x, dim, dtype). Without dtype, bool/integer x sums into int64.
Status infer_cumsum(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, static_cast<int64_t>(ctx.inputs[0]->rank())));
  ctx.attrs.set("dim", dim);
  const DType in = ctx.inputs[0]->dtype;
  KILN_ASSIGN_OR_RETURN(DType out, attr_dtype(ctx, "dtype", is_floating(in) ? in : DType::kInt64));
  if (out != DType::kFloat32 && out != DType::kFloat16 && out != DType::kBFloat16 &&
      out != DType::kInt32 && out != DType::kInt64) {
    return ctx.error("dtype ", dtype_name(out),
                     " is not supported (expected float32 float16 bfloat16 int32 int64)");
  }
  ctx.outputs.push_back({out, ctx.inputs[0]->shape});
  return Status::Ok();
}

// A per-channel (or per-feature) parameter: same dtype as x, and exactly `shape`.
Status expect_param(const InferContext& ctx, size_t i, const Shape& shape, const char* role) {
  KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, i));
  const Shape& p = ctx.inputs[i]->shape;
  if (p.size() != shape.size()) {
    return ctx.error(role, " '", ctx.inputName(i), "' has shape ", shape_str(p), ", expected ",
                     shape_str(shape));
  }
  for (size_t d = 0; d < p.size(); ++d) {
    KILN_RETURN_IF_ERROR(expect_dims_match(
        ctx, p[d], shape[d],
        str(role, " '", ctx.inputName(i), "' ", shape_str(p), " does not match ", shape_str(shape))));
  }
  return Status::Ok();
}

Status infer_batch_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 2, SIZE_MAX));
  Shape c = {ctx.inputs[0]->shape[1]};
  static const char* const kRoles[] = {"", "mean", "var", "weight", "bias"};
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(expect_param(ctx, i, c, kRoles[i]));
  }
  KILN_ASSIGN_OR_RETURN(double eps, attr_double(ctx, "eps", 1e-5));
  if (!(eps >= 0)) return ctx.error("eps is ", eps, ", must be >= 0");
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

// layer_norm and rms_norm: normalize over the trailing normalized_ndim dims. layer_norm with
// residual=true takes the residual as its last input (x, weight?, bias?, residual), normalizes
// x + residual, and with sum_output=true also returns that sum as a second output.
Status infer_trailing_norm(InferContext& ctx, double default_eps) {
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  const Shape& x = ctx.inputs[0]->shape;
  bool residual = false, sum_output = false;
  if (ctx.op.kind == OpKind::kLayerNorm) {
    KILN_ASSIGN_OR_RETURN(residual, attr_bool(ctx, "residual", false));
    KILN_ASSIGN_OR_RETURN(sum_output, attr_bool(ctx, "sum_output", false));
    if (sum_output && !residual) return ctx.error("sum_output needs residual=true");
    if (residual) {
      if (ctx.inputs.size() < 2) return ctx.error("residual=true needs a residual input");
      size_t r = ctx.inputs.size() - 1;
      KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, r));
      const Shape& rs = ctx.inputs[r]->shape;
      if (!shapes_equal(rs, x))
        return ctx.error("residual '", ctx.inputName(r), "' has shape ", shape_str(rs),
                         ", expected the shape of '", ctx.inputName(0), "' ", shape_str(x));
      ctx.inputs.pop_back();  // weight and bias checks below see (x, weight?, bias?)
    }
  }
  std::optional<int64_t> fallback;
  if (ctx.inputs.size() > 1) fallback = static_cast<int64_t>(ctx.inputs[1]->rank());
  KILN_ASSIGN_OR_RETURN(int64_t n, attr_int(ctx, "normalized_ndim", fallback));
  if (n < 1 || n > static_cast<int64_t>(x.size())) {
    return ctx.error("normalized_ndim is ", n, ", must be in [1, ", x.size(), "] for '",
                     ctx.inputName(0), "' ", shape_str(x));
  }
  Shape trailing(x.end() - n, x.end());
  static const char* const kRoles[] = {"", "weight", "bias"};
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(expect_param(ctx, i, trailing, kRoles[i]));
  }
  KILN_ASSIGN_OR_RETURN(double eps, attr_double(ctx, "eps", default_eps));
  if (!(eps >= 0)) return ctx.error("eps is ", eps, ", must be >= 0");
  ctx.outputs.push_back({ctx.inputs[0]->dtype, x});
  if (sum_output) ctx.outputs.push_back({ctx.inputs[0]->dtype, x});
  return Status::Ok();
}

Status infer_layer_norm(InferContext& ctx) { return infer_trailing_norm(ctx, 1e-5); }

Status infer_rms_norm(InferContext& ctx) {
  // torch.rms_norm's default eps is the dtype's machine epsilon.
  double eps = 1.1920928955078125e-07;
  if (ctx.inputs[0]->dtype == DType::kFloat16) eps = 0.0009765625;
  if (ctx.inputs[0]->dtype == DType::kBFloat16) eps = 0.0078125;
  return infer_trailing_norm(ctx, eps);
}

Status infer_group_norm(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 2, SIZE_MAX));
  const SymExpr& c = ctx.inputs[0]->shape[1];
  KILN_ASSIGN_OR_RETURN(int64_t groups, attr_int(ctx, "groups"));
  if (groups < 1) return ctx.error("groups is ", groups, ", must be >= 1");
  if (c.isConstant() && c.constant() % groups != 0) {
    return ctx.error("groups ", groups, " does not divide the ", c.constant(), " channels of '",
                     ctx.inputName(0), "'");
  }
  static const char* const kRoles[] = {"", "weight", "bias"};
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(expect_param(ctx, i, Shape{c}, kRoles[i]));
  }
  KILN_ASSIGN_OR_RETURN(double eps, attr_double(ctx, "eps", 1e-5));
  if (!(eps >= 0)) return ctx.error("eps is ", eps, ", must be >= 0");
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

}  // namespace

void register_reduction_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kReduce, 1, 1, infer_reduce});
  table.push_back({OpKind::kSoftmax, 1, 1, infer_softmax});
  table.push_back({OpKind::kLogSoftmax, 1, 1, infer_softmax});
  table.push_back({OpKind::kBatchNorm, 3, 5, infer_batch_norm});
  table.push_back({OpKind::kLayerNorm, 1, 4, infer_layer_norm});
  table.push_back({OpKind::kGroupNorm, 1, 3, infer_group_norm});
  table.push_back({OpKind::kRmsNorm, 1, 2, infer_rms_norm});
  table.push_back({OpKind::kCumsum, 1, 1, infer_cumsum});
}

}  // namespace kiln
