// Shape and data movement: reshape, permute, expand, slice, select, concat, split, squeeze,
// unsqueeze, pad, flip, arange, fill, copy. Their view functions are in views.cpp.
#include <algorithm>
#include <limits>

#include "ir/ops/infer_util.h"

namespace kiln {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

size_t usize(int64_t v) { return static_cast<size_t>(v); }
int64_t rank_of(const InferContext& ctx, size_t i) {
  return static_cast<int64_t>(ctx.inputs[i]->rank());
}

Status infer_reshape(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape shape, attr_shape(ctx, "shape"));
  const Shape& x = ctx.inputs[0]->shape;
  int infer_at = -1;
  SymExpr known(1);
  for (size_t i = 0; i < shape.size(); ++i) {
    const SymExpr& d = shape[i];
    if (d.isConstant() && d.constant() == -1) {
      if (infer_at >= 0) return ctx.error("shape ", shape_str(shape), " has more than one -1");
      infer_at = static_cast<int>(i);
      continue;
    }
    if (d.isConstant() && d.constant() < 0) {
      return ctx.error("shape ", shape_str(shape), " has a negative dim ", d.constant());
    }
    known = known * d;
  }
  SymExpr numel = shape_numel(x);
  if (infer_at >= 0) {
    if (known.isConstant() && known.constant() == 0) {
      return ctx.error("cannot infer the -1 in ", shape_str(shape), ": the other dims are 0");
    }
    if (numel.isConstant() && known.isConstant() && numel.constant() % known.constant() != 0) {
      return ctx.error("'", ctx.inputName(0), "' ", shape_str(x), " (", numel.constant(),
                       " elements) cannot be viewed as ", shape_str(shape));
    }
    shape[usize(infer_at)] = floordiv(numel, known);
  } else if (numel.isConstant() && known.isConstant() && numel.constant() != known.constant()) {
    return ctx.error("'", ctx.inputName(0), "' ", shape_str(x), " has ", numel.constant(),
                     " elements, shape ", shape_str(shape), " has ", known.constant());
  }
  ctx.attrs.set("shape", shape);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(shape)});
  return Status::Ok();
}

Status infer_permute(InferContext& ctx) {
  int64_t rank = rank_of(ctx, 0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, attr_ints(ctx, "perm"));
  if (static_cast<int64_t>(perm.size()) != rank) {
    return ctx.error("perm ", ints_str(perm), " has ", perm.size(), " entries, '",
                     ctx.inputName(0), "' has ", rank, " dims");
  }
  std::vector<bool> seen(usize(rank));
  Shape out;
  for (int64_t& p : perm) {
    KILN_ASSIGN_OR_RETURN(p, normalize_dim(ctx, p, rank));
    if (seen[usize(p)]) return ctx.error("perm ", ints_str(perm), " repeats dim ", p);
    seen[usize(p)] = true;
    out.push_back(ctx.inputs[0]->shape[usize(p)]);
  }
  ctx.attrs.set("perm", perm);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_expand(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape shape, attr_shape(ctx, "shape"));
  const Shape& x = ctx.inputs[0]->shape;
  if (shape.size() < x.size()) {
    return ctx.error("shape ", shape_str(shape), " has fewer dims than '", ctx.inputName(0), "' ",
                     shape_str(x));
  }
  size_t lead = shape.size() - x.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    SymExpr& d = shape[i];
    bool keep = d.isConstant() && d.constant() == -1;
    if (keep && i < lead) return ctx.error("shape ", shape_str(shape), ": -1 in a new leading dim");
    if (!keep && d.isConstant() && d.constant() < 0) {
      return ctx.error("shape ", shape_str(shape), " has a negative dim ", d.constant());
    }
    if (i < lead) continue;
    const SymExpr& in = x[i - lead];
    if (keep) {
      d = in;
    } else if (!(in.isConstant() && in.constant() == 1) && in.isConstant() && d.isConstant() &&
               in.constant() != d.constant()) {
      return ctx.error("cannot expand '", ctx.inputName(0), "' ", shape_str(x), " to ",
                       shape_str(shape), ": dim ", i, " is ", in.constant(), ", not 1");
    }
  }
  ctx.attrs.set("shape", shape);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(shape)});
  return Status::Ok();
}

// Whether e <= d for every size the symbols can take (symbols >= 0). Recognizes the forms
// clamp_position itself produces, so normalizing twice changes nothing.
bool provably_le(const SymExpr& e, const SymExpr& d) {
  SymExpr slack = d - e;
  if (slack.isConstant()) return slack.constant() >= 0;
  if (max0(slack).equals(slack)) return true;
  if (e.kind() == SymExpr::Kind::kMin) return e.lhs().equals(d) || e.rhs().equals(d);
  if (e.kind() == SymExpr::Kind::kMax) return provably_le(e.lhs(), d) && provably_le(e.rhs(), d);
  return false;
}

// A slice/select position normalized into [0, d] (negative counts from the end).
Result<SymExpr> clamp_position(const InferContext& ctx, const SymExpr& e, const SymExpr& d,
                               const char* name) {
  bool nonneg;
  if (e.isConstant()) {
    if (e.constant() == kInt64Max) return d;
    nonneg = e.constant() >= 0;
  } else {
    auto b = declared_bounds(ctx, e);
    if (!b || (b->first < 0 && b->second >= 0)) {
      return ctx.error(name, " ", e.str(), " may be negative or not over the symbol ranges, so it "
                       "cannot be normalized");
    }
    nonneg = b->first >= 0;
  }
  if (!nonneg) return max0(d + e);
  return provably_le(e, d) ? e : sym_min(e, d);
}

Status infer_slice(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank_of(ctx, 0)));
  ctx.attrs.set("dim", dim);
  KILN_ASSIGN_OR_RETURN(int64_t step, attr_int(ctx, "step", 1));
  if (step <= 0) return ctx.error("step is ", step, ", must be > 0");
  KILN_ASSIGN_OR_RETURN(SymExpr start, attr_sym(ctx, "start", SymExpr(0)));
  KILN_ASSIGN_OR_RETURN(SymExpr end, attr_sym(ctx, "end", SymExpr(kInt64Max)));
  Shape out = ctx.inputs[0]->shape;
  const SymExpr d = out[usize(dim)];
  KILN_ASSIGN_OR_RETURN(start, clamp_position(ctx, start, d, "start"));
  KILN_ASSIGN_OR_RETURN(end, clamp_position(ctx, end, d, "end"));
  ctx.attrs.set("start", start);
  ctx.attrs.set("end", end);
  out[usize(dim)] = max0(floordiv(end - start + (step - 1), SymExpr(step)));
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_select(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank_of(ctx, 0)));
  ctx.attrs.set("dim", dim);
  KILN_ASSIGN_OR_RETURN(SymExpr index, attr_sym(ctx, "index"));
  Shape out = ctx.inputs[0]->shape;
  const SymExpr d = out[usize(dim)];
  bool negative;
  SymExpr from_end = d - index;
  if (index.isConstant()) {
    negative = index.constant() < 0;
  } else if (from_end.isConstant() && from_end.constant() >= 1) {
    negative = false;  // already normalized: d - k
  } else {
    auto b = declared_bounds(ctx, index);
    if (!b || (b->first < 0 && b->second >= 0)) {
      return ctx.error("index ", index.str(), " may be negative or not over the symbol ranges");
    }
    negative = b->second < 0;
  }
  if (negative) index = d + index;
  if (index.isConstant() && d.isConstant() &&
      (index.constant() < 0 || index.constant() >= d.constant())) {
    return ctx.error("index ", ctx.attrs.getSym("index", 0).str(), " is out of range for dim ",
                     dim, " of size ", d.constant(), " of '", ctx.inputName(0), "'");
  }
  ctx.attrs.set("index", index);
  out.erase(out.begin() + dim);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_concat(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  int64_t rank = rank_of(ctx, 0);
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank));
  ctx.attrs.set("dim", dim);
  Shape out = ctx.inputs[0]->shape;
  for (size_t i = 1; i < ctx.inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(expect_same_dtype(ctx, 0, i));
    const Shape& s = ctx.inputs[i]->shape;
    std::string what = str("'", ctx.inputName(i), "' ", shape_str(s), " does not match '",
                           ctx.inputName(0), "' ", shape_str(out));
    if (static_cast<int64_t>(s.size()) != rank) return ctx.error(what, " in rank");
    for (int64_t d = 0; d < rank; ++d) {
      if (d != dim) KILN_RETURN_IF_ERROR(expect_dims_match(ctx, s[usize(d)], out[usize(d)], what));
    }
    out[usize(dim)] = out[usize(dim)] + s[usize(dim)];
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_split(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expect_rank(ctx, 0, 1, SIZE_MAX));
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank_of(ctx, 0)));
  ctx.attrs.set("dim", dim);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, attr_ints(ctx, "sizes"));
  if (sizes.empty()) return ctx.error("sizes is empty");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) return ctx.error("sizes ", ints_str(sizes), " has a negative size");
    total += s;
  }
  const SymExpr& d = ctx.inputs[0]->shape[usize(dim)];
  KILN_RETURN_IF_ERROR(expect_dims_match(
      ctx, SymExpr(total), d,
      str("sizes ", ints_str(sizes), " do not add up to dim ", dim, " of '", ctx.inputName(0),
          "' ", shape_str(ctx.inputs[0]->shape))));
  for (int64_t s : sizes) {
    Shape out = ctx.inputs[0]->shape;
    out[usize(dim)] = SymExpr(s);
    ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  }
  return Status::Ok();
}

Status infer_squeeze(InferContext& ctx) {
  const Shape& x = ctx.inputs[0]->shape;
  int64_t rank = rank_of(ctx, 0);
  auto is_one = [](const SymExpr& e) { return e.isConstant() && e.constant() == 1; };
  std::vector<int64_t> dims;
  if (ctx.attrs.has("dims")) {
    KILN_ASSIGN_OR_RETURN(dims, attr_ints(ctx, "dims"));
    KILN_ASSIGN_OR_RETURN(dims, normalize_dims(ctx, std::move(dims), rank));
  } else {
    for (int64_t i = 0; i < rank; ++i) {
      if (is_one(x[usize(i)])) dims.push_back(i);
    }
  }
  for (int64_t d : dims) {
    if (!is_one(x[usize(d)])) {
      return ctx.error("dim ", d, " of '", ctx.inputName(0), "' ", shape_str(x), " is ",
                       x[usize(d)].str(), ", not 1");
    }
  }
  ctx.attrs.set("dims", dims);
  Shape out;
  for (int64_t i = 0; i < rank; ++i) {
    if (!std::binary_search(dims.begin(), dims.end(), i)) out.push_back(x[usize(i)]);
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_unsqueeze(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(int64_t dim, attr_int(ctx, "dim"));
  KILN_ASSIGN_OR_RETURN(dim, normalize_dim(ctx, dim, rank_of(ctx, 0) + 1));
  ctx.attrs.set("dim", dim);
  Shape out = ctx.inputs[0]->shape;
  out.insert(out.begin() + dim, SymExpr(1));
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_pad(InferContext& ctx) {
  const Shape& x = ctx.inputs[0]->shape;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, attr_ints(ctx, "pads"));
  KILN_ASSIGN_OR_RETURN(std::string mode, attr_string(ctx, "mode", "constant"));
  KILN_RETURN_IF_ERROR(attr_double(ctx, "value", 0.0).status());
  if (mode != "constant" && mode != "reflect" && mode != "replicate") {
    return ctx.error("unknown mode '", mode, "' (constant reflect replicate)");
  }
  if (pads.size() % 2 != 0 || pads.size() > 2 * x.size()) {
    return ctx.error("pads ", ints_str(pads), " must be (before, after) pairs for at most the ",
                     x.size(), " dims of '", ctx.inputName(0), "'");
  }
  Shape out = x;
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    size_t d = x.size() - 1 - i;
    int64_t before = pads[2 * i], after = pads[2 * i + 1];
    if (mode != "constant") {
      if (before < 0 || after < 0) return ctx.error(mode, " pads ", ints_str(pads), " can't crop");
      const SymExpr& n = x[d];
      int64_t limit = mode == "reflect" ? 1 : 0;  // reflect pads must be < the dim size
      if (n.isConstant() && (before > 0 || after > 0) &&
          (n.constant() == 0 || std::max(before, after) > n.constant() - limit)) {
        return ctx.error(mode, " pads ", ints_str(pads), " are too large for dim ", d, " of '",
                         ctx.inputName(0), "' ", shape_str(x));
      }
    }
    out[d] = x[d] + (before + after);
    KILN_RETURN_IF_ERROR(expect_dim_at_least(
        ctx, out[d], 0, str("dim ", d, " of '", ctx.inputName(0), "' after pads ", ints_str(pads))));
  }
  ctx.outputs.push_back({ctx.inputs[0]->dtype, std::move(out)});
  return Status::Ok();
}

Status infer_flip(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, attr_ints(ctx, "dims"));
  KILN_ASSIGN_OR_RETURN(dims, normalize_dims(ctx, std::move(dims), rank_of(ctx, 0)));
  ctx.attrs.set("dims", dims);
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

Status infer_arange(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(SymExpr start, attr_sym(ctx, "start", SymExpr(0)));
  KILN_ASSIGN_OR_RETURN(SymExpr end, attr_sym(ctx, "end"));
  KILN_ASSIGN_OR_RETURN(int64_t step, attr_int(ctx, "step", 1));
  KILN_ASSIGN_OR_RETURN(DType dtype, attr_dtype(ctx, "dtype", DType::kInt64));
  if (step == 0) return ctx.error("step is 0");
  if (dtype == DType::kBool) return ctx.error("dtype bool is not supported");
  SymExpr span = end - start;
  if (span.isConstant() && span.constant() != 0 && (span.constant() > 0) != (step > 0)) {
    return ctx.error("range [", start.str(), ", ", end.str(), ") is inconsistent with step ", step);
  }
  SymExpr length = step > 0 ? floordiv(end - start + (step - 1), SymExpr(step))
                            : floordiv(start - end + (-step - 1), SymExpr(-step));
  ctx.outputs.push_back({dtype, Shape{length}});
  return Status::Ok();
}

Status infer_fill(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape shape, attr_shape(ctx, "shape"));
  for (const SymExpr& d : shape) {
    if (d.isConstant() && d.constant() < 0) {
      return ctx.error("shape ", shape_str(shape), " has a negative dim");
    }
  }
  KILN_RETURN_IF_ERROR(attr_double(ctx, "value", 0.0).status());
  KILN_ASSIGN_OR_RETURN(DType dtype, attr_dtype(ctx, "dtype", DType::kFloat32));
  ctx.outputs.push_back({dtype, std::move(shape)});
  return Status::Ok();
}

Status infer_copy(InferContext& ctx) {
  ctx.outputs.push_back({ctx.inputs[0]->dtype, ctx.inputs[0]->shape});
  return Status::Ok();
}

}  // namespace

void register_shape_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kReshape, 1, 1, infer_reshape, reshape_view});
  table.push_back({OpKind::kPermute, 1, 1, infer_permute, permute_view});
  table.push_back({OpKind::kExpand, 1, 1, infer_expand, expand_view});
  table.push_back({OpKind::kSlice, 1, 1, infer_slice, slice_view});
  table.push_back({OpKind::kSelect, 1, 1, infer_select, select_view});
  table.push_back({OpKind::kConcat, 1, -1, infer_concat});
  table.push_back({OpKind::kSplit, 1, 1, infer_split, split_view});
  table.push_back({OpKind::kSqueeze, 1, 1, infer_squeeze, squeeze_view});
  table.push_back({OpKind::kUnsqueeze, 1, 1, infer_unsqueeze, unsqueeze_view});
  table.push_back({OpKind::kPad, 1, 1, infer_pad});
  table.push_back({OpKind::kFlip, 1, 1, infer_flip});
  table.push_back({OpKind::kArange, 0, 0, infer_arange});
  table.push_back({OpKind::kFill, 0, 0, infer_fill});
  table.push_back({OpKind::kCopy, 1, 1, infer_copy});
}

}  // namespace kiln
