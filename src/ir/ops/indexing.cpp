// embedding, gather, index_select.
#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

Status infer_embedding(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 2, 2));
  KILN_RETURN_IF_ERROR(expect_index_dtype(ctx, 1));
  Shape out = ctx.inputs[1]->shape;
  out.push_back(ctx.inputs[0]->shape[1]);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_gather(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_index_dtype(ctx, 1));
  const Shape& x = ctx.inputs[0]->shape;
  const Shape& index = ctx.inputs[1]->shape;
  if (index.size() != x.size()) {
    return ctx.error("index '", ctx.inputName(1), "' has ", index.size(), " dims ",
                     shape_str(index), ", expected ", x.size(), " like '", ctx.inputName(0),
                     "' ", shape_str(x));
  }
  int64_t rank = static_cast<int64_t>(x.size());
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank));
  ctx.attrs.set("dim", dim);
  for (int64_t d = 0; d < rank; ++d) {
    const SymExpr& a = index[static_cast<size_t>(d)];
    const SymExpr& b = x[static_cast<size_t>(d)];
    if (d != dim && a.isConstant() && b.isConstant() && a.constant() > b.constant()) {
      return ctx.error("index '", ctx.inputName(1), "' ", shape_str(index), " is larger than '",
                       ctx.inputName(0), "' ", shape_str(x), " in dim ", d);
    }
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, index});
  return Status::Ok();
}

Status infer_index_select(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_index_dtype(ctx, 1));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 1, 0, 1));
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  Shape out = ctx.inputs[0]->shape;
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, static_cast<int64_t>(out.size())));
  ctx.attrs.set("dim", dim);
  const Shape& index = ctx.inputs[1]->shape;
  out[static_cast<size_t>(dim)] = index.empty() ? SymExpr(1) : index[0];
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

}  // namespace

void register_indexing_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kEmbedding, 2, 2, infer_embedding});
  table.push_back({OpKind::kGather, 2, 2, infer_gather});
  table.push_back({OpKind::kIndexSelect, 2, 2, infer_index_select});
}

}  // namespace kiln
