// matmul, linear, attention (conv and pooling live in conv.cpp).
#include <cmath>
#include <utility>

#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

Shape prefix(const Shape& s, size_t drop) { return Shape(s.begin(), s.end() - drop); }

// Broadcasts the batch dims (all but the last two) of inputs i and j, naming them on failure.
Result<Shape> broadcast_batch(const InferContext& ctx, size_t i, size_t j) {
  Shape a = prefix(ctx.inputs[i]->shape, 2), b = prefix(ctx.inputs[j]->shape, 2);
  const Shape* two[2] = {&a, &b};
  auto r = broadcast_shapes(ctx, two);
  if (!r.ok()) {
    return ctx.error("batch dims of '", ctx.inputName(i), "' ", shape_str(ctx.inputs[i]->shape),
                     " and '", ctx.inputName(j), "' ", shape_str(ctx.inputs[j]->shape),
                     " do not broadcast");
  }
  return r;
}

// The optional epilogue activation of matmul/linear. Checked only when present, so networks
// without it print and serialize as before.
Status check_activation(InferContext& ctx) {
  if (!ctx.attrs.has("activation")) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(std::string act, attr_string(ctx, "activation"));
  if (act != "none" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    return ctx.error("activation '", act, "' is not one of none, relu, gelu, gelu_tanh");
  return Status::Ok();
}

Status infer_matmul(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_activation(ctx));
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 2, SIZE_MAX));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 1, 2, SIZE_MAX));
  const Shape& a = ctx.inputs[0]->shape;
  const Shape& b = ctx.inputs[1]->shape;
  KILN_RETURN_IF_ERROR(expect_dims_match(
      ctx, a[a.size() - 1], b[b.size() - 2],
      str("K mismatch: '", ctx.inputName(0), "' ", shape_str(a), " times '", ctx.inputName(1),
          "' ", shape_str(b))));
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_batch(ctx, 0, 1));
  out.push_back(a[a.size() - 2]);
  out.push_back(b[b.size() - 1]);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_linear(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(check_activation(ctx));
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  for (size_t i = 1; i < ctx.inputs.size(); ++i) KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, i));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 1, 2, 2));
  const Shape& x = ctx.inputs[0]->shape;
  const Shape& w = ctx.inputs[1]->shape;
  KILN_RETURN_IF_ERROR(expect_dims_match(
      ctx, x.back(), w[1],
      str("K mismatch: '", ctx.inputName(0), "' ", shape_str(x), " and weight '",
          ctx.inputName(1), "' ", shape_str(w), " (weight is [N, K])")));
  KILN_ASSIGN_OR_RETURN(bool residual, attr_bool(ctx, "residual", false));
  const size_t operands = ctx.inputs.size() - (residual ? 1 : 0);  // x, w and the bias if any
  if (residual && operands < 2) return ctx.error("residual=true needs a residual input after x and w");
  if (operands > 2) {
    const Shape& b = ctx.inputs[2]->shape;
    if (b.size() != 1) {
      return ctx.error("bias '", ctx.inputName(2), "' has shape ", shape_str(b), ", expected [",
                       w[0].str(), "]");
    }
    KILN_RETURN_IF_ERROR(expect_dims_match(
        ctx, b[0], w[0], str("bias '", ctx.inputName(2), "' does not match weight '",
                             ctx.inputName(1), "' ", shape_str(w))));
  }
  Shape out = prefix(x, 1);
  out.push_back(w[0]);
  if (residual) {
    const size_t r = ctx.inputs.size() - 1;
    const Shape& z = ctx.inputs[r]->shape;
    bool same = z.size() == out.size();
    for (size_t d = 0; same && d < z.size(); ++d) same = z[d].equals(out[d]);
    if (!same) {
      return ctx.error("residual '", ctx.inputName(r), "' has shape ", shape_str(z),
                       ", expected the output's ", shape_str(out));
    }
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

// q's batch dims against k/v's: equal, broadcast from 1, or (grouped-query attention) a
// multiple of k/v's head count.
Result<Shape> attention_batch(const InferContext& ctx, const Shape& q, const Shape& kv) {
  size_t rank = std::max(q.size(), kv.size());
  Shape out(rank, SymExpr(1));
  for (size_t i = 0; i < rank; ++i) {
    SymExpr qd = i + q.size() >= rank ? q[i + q.size() - rank] : SymExpr(1);
    SymExpr kd = i + kv.size() >= rank ? kv[i + kv.size() - rank] : SymExpr(1);
    if (qd.equals(kd) || (kd.isConstant() && kd.constant() == 1)) {
      out[i] = qd;
    } else if (qd.isConstant() && qd.constant() == 1) {
      out[i] = kd;
    } else if (qd.isConstant() && kd.isConstant()) {
      if (kd.constant() == 0 || qd.constant() % kd.constant() != 0) {
        return ctx.error("batch dims of '", ctx.inputName(0), "' ", shape_str(q),
                         " and of the keys/values ", shape_str(kv),
                         " neither broadcast nor group (query heads a multiple of kv heads)");
      }
      out[i] = qd;
    } else {
      out[i] = qd.isConstant() ? qd : kd.isConstant() ? kd : qd;
    }
  }
  return out;
}

Status infer_attention(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(expect_rank(ctx, i, 2, SIZE_MAX));
    if (i) KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, i));
  }
  KILN_RETURN_IF_ERROR(expect_float(ctx, 0));
  const Shape& q = ctx.inputs[0]->shape;
  const Shape& k = ctx.inputs[1]->shape;
  const Shape& v = ctx.inputs[2]->shape;
  const SymExpr& e = q.back();
  KILN_RETURN_IF_ERROR(expect_dims_match(
      ctx, e, k.back(),
      str("head dim of query '", ctx.inputName(0), "' ", shape_str(q), " and key '",
          ctx.inputName(1), "' ", shape_str(k), " differ")));
  KILN_RETURN_IF_ERROR(expect_dims_match(
      ctx, k[k.size() - 2], v[v.size() - 2],
      str("sequence length of key '", ctx.inputName(1), "' ", shape_str(k), " and value '",
          ctx.inputName(2), "' ", shape_str(v), " differ")));
  KILN_ASSIGN_OR_RETURN(Shape kv_batch, broadcast_batch(ctx, 1, 2));
  KILN_ASSIGN_OR_RETURN(Shape batch, attention_batch(ctx, prefix(q, 2), kv_batch));
  KILN_ASSIGN_OR_RETURN(bool causal, attr_bool(ctx, "causal", false));
  if (ctx.inputs.size() > 3) {
    if (causal) return ctx.error("takes a mask or causal=true, not both");
    DType md = ctx.inputs[3]->dtype;
    if (md != DType::kBool && md != ctx.inputs[0]->dtype) {
      return ctx.error("mask '", ctx.inputName(3), "' is ", dtype_name(md), ", expected bool or ",
                       dtype_name(ctx.inputs[0]->dtype));
    }
    Shape target = batch;
    target.push_back(q[q.size() - 2]);
    target.push_back(k[k.size() - 2]);
    const Shape& m = ctx.inputs[3]->shape;
    bool ok = m.size() <= target.size();
    for (size_t i = 0; ok && i < m.size(); ++i) {
      const SymExpr& md_i = m[m.size() - 1 - i];
      const SymExpr& t_i = target[target.size() - 1 - i];
      ok = !(md_i.isConstant() && t_i.isConstant() && md_i.constant() != 1 &&
             md_i.constant() != t_i.constant());
    }
    if (!ok) {
      return ctx.error("mask '", ctx.inputName(3), "' ", shape_str(m), " does not broadcast to ",
                       shape_str(target));
    }
  }
  if (ctx.attrs.has("scale")) {
    KILN_RETURN_IF_ERROR(attr_double(ctx, "scale").status());
  } else if (e.isConstant() && e.constant() > 0) {
    ctx.attrs.set("scale", 1.0 / std::sqrt(static_cast<double>(e.constant())));
  }
  Shape out = batch;
  out.push_back(q[q.size() - 2]);
  out.push_back(v.back());
  // Sequence-major output: [..., L, H, Ev] in memory, so that the heads' merge after it
  // (transpose(1, 2).reshape) is a view. Read only when present, so that networks without it
  // print and serialize as before.
  bool seq_major = false;
  if (ctx.attrs.has("seq_major_out")) {
    KILN_ASSIGN_OR_RETURN(seq_major, attr_bool(ctx, "seq_major_out", false));
  }
  if (seq_major) {
    if (out.size() < 3) {
      return ctx.error("seq_major_out needs an output of rank >= 3 (a heads dim), got ",
                       shape_str(out));
    }
    std::swap(out[out.size() - 3], out[out.size() - 2]);
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

}  // namespace

void register_linalg_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kMatmul, 2, 2, infer_matmul});
  table.push_back({OpKind::kLinear, 2, 4, infer_linear});
  table.push_back({OpKind::kAttention, 3, 4, infer_attention});
  register_conv_ops(table);
}

}  // namespace kiln
