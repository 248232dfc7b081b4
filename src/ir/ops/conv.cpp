// conv, pool, adaptive_avg_pool (registered through register_linalg_ops).
//
// layout "nhwc" (2-D only, set by the builder's layout pass): the activation tensors of the op
// (x, residual, output) are [N, H, W, C] and a conv's weight is [O, kh, kw, C/groups] (KRSC).
// Shapes are checked by mapping them to the NCHW forms and back. `layout` and `activation` are
// only validated, never written back when absent, so plain ops print as before.
#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

// An optional string attribute that must be one of `allowed` (the first is its default).
Result<std::string> optional_choice(InferContext& ctx, const std::string& name,
                                    std::initializer_list<const char*> allowed) {
  if (!ctx.attrs.has(name)) return std::string(*allowed.begin());
  KILN_ASSIGN_OR_RETURN(std::string v, attr_string(ctx, name));
  std::string names;
  for (const char* a : allowed) {
    if (v == a) return v;
    names += str(names.empty() ? "" : " or ", a);
  }
  return ctx.error(name, " '", v, "' is not supported (expected ", names, ")");
}

// layout "nhwc" -> true. Only for rank-4 tensors.
Result<bool> read_nhwc(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::string layout, optional_choice(ctx, "layout", {"nchw", "nhwc"}));
  if (layout != "nhwc") return false;
  if (ctx.inputs[0]->shape.size() != 4) {
    return ctx.error("layout nhwc needs a 2-D op (rank-4 input), '", ctx.inputName(0), "' is ",
                     shape_str(ctx.inputs[0]->shape));
  }
  return true;
}

// [N, H, W, C] <-> [N, C, H, W] (also [O, kh, kw, Cg] <-> [O, Cg, kh, kw]).
Shape nhwc_to_nchw(const Shape& s) { return {s[0], s[3], s[1], s[2]}; }
Shape nchw_to_nhwc(const Shape& s) { return {s[0], s[2], s[3], s[1]}; }

// A per-spatial-dim attribute: n values, a single value meaning "all dims", or the default.
Result<std::vector<int64_t>> spatial_attr(InferContext& ctx, const std::string& name, size_t n,
                                          std::optional<std::vector<int64_t>> fallback,
                                          int64_t min) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, attr_ints(ctx, name, std::move(fallback)));
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  if (v.size() != n) {
    return ctx.error(name, " has ", v.size(), " values ", ints_str(v), ", expected ", n,
                     " (one per spatial dim)");
  }
  for (int64_t x : v) {
    if (x < min) return ctx.error(name, " ", ints_str(v), " has ", x, ", must be >= ", min);
  }
  ctx.attrs.set(name, v);
  return v;
}

Status infer_conv(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 3, 5));
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  for (size_t i = 1; i < ctx.inputs.size(); ++i) KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, i));
  KILN_ASSIGN_OR_RETURN(bool nhwc, read_nhwc(ctx));
  KILN_RETURN_IF_ERROR(optional_choice(ctx, "activation", {"none", "relu"}).status());
  if (nhwc && ctx.inputs[1]->shape.size() != 4) {
    return ctx.error("layout nhwc needs a 4-D weight, '", ctx.inputName(1), "' is ",
                     shape_str(ctx.inputs[1]->shape));
  }
  const Shape x = nhwc ? nhwc_to_nchw(ctx.inputs[0]->shape) : ctx.inputs[0]->shape;
  const Shape w = nhwc ? nhwc_to_nchw(ctx.inputs[1]->shape) : ctx.inputs[1]->shape;
  if (w.size() != x.size()) {
    return ctx.error("weight '", ctx.inputName(1), "' has ", w.size(), " dims ", shape_str(w),
                     ", expected ", x.size(), " like '", ctx.inputName(0), "' ", shape_str(x));
  }
  size_t n = x.size() - 2;
  KILN_ASSIGN_OR_RETURN(auto stride, spatial_attr(ctx, "stride", n, std::vector<int64_t>{1}, 1));
  KILN_ASSIGN_OR_RETURN(auto padding, spatial_attr(ctx, "padding", n, std::vector<int64_t>{0}, 0));
  KILN_ASSIGN_OR_RETURN(auto dilation, spatial_attr(ctx, "dilation", n, std::vector<int64_t>{1}, 1));
  KILN_ASSIGN_OR_RETURN(auto out_pad, spatial_attr(ctx, "output_padding", n, std::vector<int64_t>{0}, 0));
  KILN_ASSIGN_OR_RETURN(int64_t groups, attr_int(ctx, "groups", 1));
  KILN_ASSIGN_OR_RETURN(bool transposed, attr_bool(ctx, "transposed", false));
  if (groups < 1) return ctx.error("groups is ", groups, ", must be >= 1");
  if (nhwc && transposed) return ctx.error("layout nhwc is not supported for transposed conv");

  const SymExpr& c = x[1];
  if (c.isConstant() && c.constant() % groups != 0) {
    return ctx.error("groups ", groups, " does not divide the ", c.constant(), " channels of '",
                     ctx.inputName(0), "' ", shape_str(x));
  }
  SymExpr o;
  if (!transposed) {
    // w is [O, C/groups, *k].
    SymExpr expected_c = w[1] * groups;
    if (c.isConstant() && expected_c.isConstant() && c.constant() != expected_c.constant()) {
      return ctx.error("'", ctx.inputName(0), "' has ", c.constant(), " channels but weight '",
                       ctx.inputName(1), "' ", shape_str(w), " expects ", expected_c.constant(),
                       " (", w[1].constant(), " per group x ", groups, " groups)");
    }
    o = w[0];
    if (o.isConstant() && o.constant() % groups != 0) {
      return ctx.error("groups ", groups, " does not divide the ", o.constant(),
                       " output channels of weight '", ctx.inputName(1), "'");
    }
    for (int64_t p : out_pad) {
      if (p != 0) return ctx.error("output_padding ", ints_str(out_pad), " needs transposed=true");
    }
  } else {
    // w is [C, O/groups, *k].
    KILN_RETURN_IF_ERROR(expect_dims_match(
        ctx, c, w[0],
        str("'", ctx.inputName(0), "' channels do not match weight '", ctx.inputName(1), "' ",
            shape_str(w), " dim 0")));
    o = w[1] * groups;
    for (size_t i = 0; i < n; ++i) {
      if (out_pad[i] >= std::max(stride[i], dilation[i])) {
        return ctx.error("output_padding ", ints_str(out_pad),
                         " must be smaller than stride or dilation");
      }
    }
  }
  if (ctx.inputs.size() > 2) {
    const Shape& b = ctx.inputs[2]->shape;
    if (b.size() != 1) {
      return ctx.error("bias '", ctx.inputName(2), "' has shape ", shape_str(b), ", expected [",
                       o.str(), "]");
    }
    KILN_RETURN_IF_ERROR(expect_dims_match(
        ctx, b[0], o, str("bias '", ctx.inputName(2), "' does not match the output channels")));
  }

  Shape out = {x[0], o};
  for (size_t i = 0; i < n; ++i) {
    const SymExpr& in = x[2 + i];
    SymExpr eff = SymExpr(dilation[i]) * (w[2 + i] - 1);  // dilated kernel extent - 1
    SymExpr size;
    if (!transposed) {
      size = floordiv(in + 2 * padding[i] - eff - 1, SymExpr(stride[i])) + 1;
    } else {
      size = (in - 1) * stride[i] - 2 * padding[i] + eff + out_pad[i] + 1;
    }
    KILN_RETURN_IF_ERROR(expect_dim_at_least(
        ctx, size, 1, str("output spatial dim ", i, " of '", ctx.inputName(0), "' ", shape_str(x))));
    out.push_back(size);
  }
  if (nhwc) out = nchw_to_nhwc(out);
  if (ctx.inputs.size() > 3) {
    // The fused residual z of y = act(conv(x, w) + b + z): exactly the output's shape.
    const Shape& z = ctx.inputs[3]->shape;
    bool same = z.size() == out.size();
    for (size_t i = 0; same && i < z.size(); ++i) {
      same = z[i].equals(out[i]) ||
             (z[i].isConstant() && out[i].isConstant() && z[i].constant() == out[i].constant());
    }
    if (!same) {
      return ctx.error("residual '", ctx.inputName(3), "' has shape ", shape_str(z),
                       ", expected the output's ", shape_str(out));
    }
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_pool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 3, 5));
  KILN_ASSIGN_OR_RETURN(std::string kind, attr_string(ctx, "kind"));
  if (kind != "max" && kind != "avg") return ctx.error("unknown kind '", kind, "' (max or avg)");
  KILN_RETURN_IF_ERROR(kind == "avg" ? expect_float(ctx, 0) : expect_not_bool(ctx, 0));
  KILN_ASSIGN_OR_RETURN(bool nhwc, read_nhwc(ctx));
  const Shape x = nhwc ? nhwc_to_nchw(ctx.inputs[0]->shape) : ctx.inputs[0]->shape;
  size_t n = x.size() - 2;
  KILN_ASSIGN_OR_RETURN(auto kernel, spatial_attr(ctx, "kernel", n, std::nullopt, 1));
  // An empty stride means "same as kernel" (aten spells it that way).
  if (auto* s = ctx.attrs.find<std::vector<int64_t>>("stride"); s && s->empty()) {
    ctx.attrs.erase("stride");
  }
  KILN_ASSIGN_OR_RETURN(auto stride, spatial_attr(ctx, "stride", n, kernel, 1));
  KILN_ASSIGN_OR_RETURN(auto padding, spatial_attr(ctx, "padding", n, std::vector<int64_t>{0}, 0));
  KILN_ASSIGN_OR_RETURN(auto dilation, spatial_attr(ctx, "dilation", n, std::vector<int64_t>{1}, 1));
  KILN_ASSIGN_OR_RETURN(bool ceil_mode, attr_bool(ctx, "ceil_mode", false));
  KILN_RETURN_IF_ERROR(attr_bool(ctx, "count_include_pad", true).status());
  Shape out = {x[0], x[1]};
  for (size_t i = 0; i < n; ++i) {
    if (kind == "avg" && dilation[i] != 1) {
      return ctx.error("dilation ", ints_str(dilation), " is only supported by max pooling");
    }
    int64_t extent = dilation[i] * (kernel[i] - 1) + 1;
    if (padding[i] > extent / 2) {
      return ctx.error("padding ", ints_str(padding), " must be at most half the kernel extent ",
                       extent);
    }
    const SymExpr& in = x[2 + i];
    SymExpr num = in + (2 * padding[i] - extent);
    SymExpr size = floordiv(num + (ceil_mode ? stride[i] - 1 : 0), SymExpr(stride[i])) + 1;
    if (ceil_mode) {
      // PyTorch drops a last window that would start in the right padding.
      size = sym_min(size, floordiv(in + (padding[i] - 1), SymExpr(stride[i])) + 1);
    }
    KILN_RETURN_IF_ERROR(expect_dim_at_least(
        ctx, size, 1, str("output spatial dim ", i, " of '", ctx.inputName(0), "' ", shape_str(x))));
    out.push_back(size);
  }
  if (nhwc) out = nchw_to_nhwc(out);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_adaptive_avg_pool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 3, 5));
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  KILN_ASSIGN_OR_RETURN(bool nhwc, read_nhwc(ctx));
  const Shape x = nhwc ? nhwc_to_nchw(ctx.inputs[0]->shape) : ctx.inputs[0]->shape;
  KILN_ASSIGN_OR_RETURN(auto size, spatial_attr(ctx, "output_size", x.size() - 2, std::nullopt, 1));
  Shape out = {x[0], x[1]};
  for (int64_t s : size) out.push_back(SymExpr(s));
  if (nhwc) out = nchw_to_nhwc(out);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

}  // namespace

void register_conv_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kConv, 2, 4, infer_conv});
  table.push_back({OpKind::kPool, 1, 1, infer_pool});
  table.push_back({OpKind::kAdaptiveAvgPool, 1, 1, infer_adaptive_avg_pool});
}

}  // namespace kiln
