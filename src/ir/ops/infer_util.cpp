#include "ir/ops/infer_util.h"

#include <algorithm>
#include <limits>

namespace kiln {
namespace {

const char* type_name(const AttrValue& v) {
  static const char* const kNames[] = {"int",    "float",  "bool",  "string", "ints",
                                       "floats", "symexpr", "shape", "dtype"};
  return kNames[v.index()];
}

const AttrValue* find_attr(const InferContext& ctx, const std::string& name) {
  auto it = ctx.attrs.values().find(name);
  return it == ctx.attrs.values().end() ? nullptr : &it->second;
}

Status missing(const InferContext& ctx, const std::string& name) {
  return ctx.error("missing attribute '", name, "'");
}

Status wrong_type(const InferContext& ctx, const std::string& name, const AttrValue& v,
                  const char* expected) {
  return ctx.error("attribute '", name, "' must be ", expected, ", got ", type_name(v));
}

}  // namespace

const char* kind_name(const InferContext& ctx) { return op_kind_name(ctx.op.kind); }

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

Result<int64_t> attr_int(InferContext& ctx, const std::string& name,
                         std::optional<int64_t> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  int64_t out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* i = std::get_if<int64_t>(v)) {
    out = *i;
  } else if (auto* b = std::get_if<bool>(v)) {
    out = *b ? 1 : 0;
  } else if (auto* s = std::get_if<SymExpr>(v); s && s->isConstant()) {
    out = s->constant();
  } else {
    return wrong_type(ctx, name, *v, "an int");
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<double> attr_double(InferContext& ctx, const std::string& name,
                           std::optional<double> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  double out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* d = std::get_if<double>(v)) {
    out = *d;
  } else if (auto* i = std::get_if<int64_t>(v)) {
    out = static_cast<double>(*i);
  } else {
    return wrong_type(ctx, name, *v, "a float");
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<bool> attr_bool(InferContext& ctx, const std::string& name, std::optional<bool> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  bool out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* b = std::get_if<bool>(v)) {
    out = *b;
  } else if (auto* i = std::get_if<int64_t>(v); i && (*i == 0 || *i == 1)) {
    out = *i == 1;
  } else {
    return wrong_type(ctx, name, *v, "a bool");
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<std::string> attr_string(InferContext& ctx, const std::string& name,
                                std::optional<std::string> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  std::string out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* s = std::get_if<std::string>(v)) {
    out = *s;
  } else {
    return wrong_type(ctx, name, *v, "a string");
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<std::vector<int64_t>> attr_ints(InferContext& ctx, const std::string& name,
                                       std::optional<std::vector<int64_t>> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  std::vector<int64_t> out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* l = std::get_if<std::vector<int64_t>>(v)) {
    out = *l;
  } else if (auto* i = std::get_if<int64_t>(v)) {
    out = {*i};
  } else if (auto* s = std::get_if<Shape>(v)) {
    for (const SymExpr& e : *s) {
      if (!e.isConstant()) return ctx.error("attribute '", name, "' must be constant ints, got ",
                                            shape_str(*s));
      out.push_back(e.constant());
    }
  } else {
    return wrong_type(ctx, name, *v, "ints");
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<SymExpr> attr_sym(InferContext& ctx, const std::string& name,
                         std::optional<SymExpr> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  SymExpr out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* s = std::get_if<SymExpr>(v)) {
    out = *s;
  } else if (auto* i = std::get_if<int64_t>(v)) {
    out = SymExpr(*i);
  } else {
    return wrong_type(ctx, name, *v, "an int or a symexpr");
  }
  KILN_RETURN_IF_ERROR(expect_declared_symbols(ctx, out, "attribute '" + name + "'"));
  ctx.attrs.set(name, out);
  return out;
}

Result<Shape> attr_shape(InferContext& ctx, const std::string& name, std::optional<Shape> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  Shape out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* s = std::get_if<Shape>(v)) {
    out = *s;
  } else if (auto* l = std::get_if<std::vector<int64_t>>(v)) {
    out = shape_of(*l);
  } else {
    return wrong_type(ctx, name, *v, "a shape");
  }
  for (const SymExpr& e : out) {
    KILN_RETURN_IF_ERROR(expect_declared_symbols(ctx, e, "attribute '" + name + "'"));
  }
  ctx.attrs.set(name, out);
  return out;
}

Result<DType> attr_dtype(InferContext& ctx, const std::string& name,
                         std::optional<DType> fallback) {
  const AttrValue* v = find_attr(ctx, name);
  DType out;
  if (!v) {
    if (!fallback) return missing(ctx, name);
    out = *fallback;
  } else if (auto* d = std::get_if<DType>(v)) {
    if (static_cast<int>(*d) >= kNumDTypes) {
      return ctx.error("attribute '", name, "' is not a valid dtype (", static_cast<int>(*d), ")");
    }
    out = *d;
  } else if (auto* s = std::get_if<std::string>(v)) {
    auto parsed = parse_dtype(*s);
    if (!parsed.ok()) return ctx.error("attribute '", name, "': ", parsed.status().message());
    out = *parsed;
  } else {
    return wrong_type(ctx, name, *v, "a dtype");
  }
  ctx.attrs.set(name, out);
  return out;
}

Status expect_rank(const InferContext& ctx, size_t i, size_t min_rank, size_t max_rank) {
  size_t r = ctx.inputs[i]->rank();
  if (r >= min_rank && r <= max_rank) return Status::Ok();
  std::string expected = min_rank == max_rank ? std::to_string(min_rank)
                         : max_rank == SIZE_MAX
                             ? "at least " + std::to_string(min_rank)
                             : std::to_string(min_rank) + " to " + std::to_string(max_rank);
  return ctx.error("'", ctx.inputName(i), "' has ", r, " dims ", shape_str(ctx.inputs[i]->shape),
                   ", expected ", expected);
}

Status expect_float(const InferContext& ctx, size_t i) {
  if (is_floating(ctx.inputs[i]->dtype)) return Status::Ok();
  return ctx.error("'", ctx.inputName(i), "' is ", dtype_name(ctx.inputs[i]->dtype),
                   ", expected a floating dtype");
}

Status expect_not_bool(const InferContext& ctx, size_t i) {
  if (ctx.inputs[i]->dtype != DType::kBool) return Status::Ok();
  return ctx.error("'", ctx.inputName(i), "' is bool, expected a numeric dtype");
}

Status expect_index_dtype(const InferContext& ctx, size_t i) {
  DType d = ctx.inputs[i]->dtype;
  if (d == DType::kInt32 || d == DType::kInt64) return Status::Ok();
  return ctx.error("index '", ctx.inputName(i), "' is ", dtype_name(d), ", expected int32 or int64");
}

Status expect_same_dtype(const InferContext& ctx, size_t i, size_t j) {
  DType a = ctx.inputs[i]->dtype, b = ctx.inputs[j]->dtype;
  if (a == b) return Status::Ok();
  return ctx.error("'", ctx.inputName(i), "' is ", dtype_name(a), " but '", ctx.inputName(j),
                   "' is ", dtype_name(b), " (insert a cast)");
}

Status expect_dims_match(const InferContext& ctx, const SymExpr& a, const SymExpr& b,
                         const std::string& what) {
  if (a.isConstant() && b.isConstant() && a.constant() != b.constant()) {
    return ctx.error(what, ": ", a.constant(), " vs ", b.constant());
  }
  return Status::Ok();
}

Status expect_declared_symbols(const InferContext& ctx, const SymExpr& e, const std::string& what) {
  std::vector<int32_t> ids;
  e.collectSymbols(ids);
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= ctx.symbols.size()) {
      return ctx.error(what, " uses symbol s", id, ", which the network does not declare");
    }
  }
  return Status::Ok();
}

std::optional<std::pair<int64_t, int64_t>> declared_bounds(const InferContext& ctx,
                                                           const SymExpr& e) {
  std::vector<int64_t> lo, hi;
  for (const SymbolInfo& s : ctx.symbols) {
    lo.push_back(s.min);
    hi.push_back(s.max);
  }
  auto b = e.bounds(lo, hi);
  if (!b.ok()) return std::nullopt;
  return *b;
}

Status expect_dim_at_least(const InferContext& ctx, const SymExpr& e, int64_t min,
                           const std::string& what) {
  if (e.isConstant()) {
    if (e.constant() >= min) return Status::Ok();
    return ctx.error(what, " would be ", e.constant(), ", must be at least ", min);
  }
  auto b = declared_bounds(ctx, e);
  if (b && b->second < min) {
    return ctx.error(what, " = ", e.str(), " is at most ", b->second,
                     " over the declared symbol ranges, must be at least ", min);
  }
  return Status::Ok();
}

SymExpr max0(const SymExpr& e) {
  std::vector<int32_t> ids;
  e.collectSymbols(ids);
  int32_t n = 0;
  for (int32_t id : ids) n = std::max(n, id + 1);
  std::vector<int64_t> lo(static_cast<size_t>(n), 0);
  std::vector<int64_t> hi(static_cast<size_t>(n), std::numeric_limits<int64_t>::max());
  auto b = e.bounds(lo, hi);
  if (b.ok() && b->first >= 0) return e;
  return sym_max(e, SymExpr(0));
}

Result<int64_t> normalize_dim(const InferContext& ctx, int64_t dim, int64_t rank) {
  if (dim >= -rank && dim < rank) return dim < 0 ? dim + rank : dim;
  return ctx.error("dim ", dim, " is out of range for rank ", rank, " (expected ", -rank, " to ",
                   rank - 1, ")");
}

Result<std::vector<int64_t>> normalize_dims(const InferContext& ctx, std::vector<int64_t> dims,
                                            int64_t rank) {
  for (int64_t& d : dims) {
    KILN_ASSIGN_OR_RETURN(d, normalize_dim(ctx, d, rank));
  }
  std::sort(dims.begin(), dims.end());
  if (std::adjacent_find(dims.begin(), dims.end()) != dims.end()) {
    return ctx.error("dims ", ints_str(dims), " name a dim twice");
  }
  return dims;
}

namespace {

// One broadcast position: constants win over symbols (a symbol there is 1 or equal), equal
// dims merge, two symbolic dims are assumed equal. Fails on two different constants != 1.
bool broadcast_dim(const SymExpr& a, const SymExpr& b, SymExpr& out) {
  if (a.equals(b)) {
    out = a;
  } else if (a.isConstant() && a.constant() == 1) {
    out = b;
  } else if (b.isConstant() && b.constant() == 1) {
    out = a;
  } else if (a.isConstant() && b.isConstant()) {
    return false;
  } else {
    out = a.isConstant() ? a : b.isConstant() ? b : a;
  }
  return true;
}

}  // namespace

Result<Shape> broadcast_shapes(const InferContext& ctx, std::span<const Shape* const> shapes) {
  size_t rank = 0;
  for (const Shape* s : shapes) rank = std::max(rank, s->size());
  Shape out(rank, SymExpr(1));
  for (const Shape* s : shapes) {
    size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      SymExpr merged;
      if (!broadcast_dim(out[off + i], (*s)[i], merged)) {
        std::string all;
        for (const Shape* t : shapes) all += (all.empty() ? "" : " and ") + shape_str(*t);
        return ctx.error("shapes ", all, " do not broadcast");
      }
      out[off + i] = merged;
    }
  }
  return out;
}

Result<Shape> broadcast_inputs(const InferContext& ctx, const std::vector<size_t>& idx) {
  Shape acc;
  for (size_t n = 0; n < idx.size(); ++n) {
    const Shape& s = ctx.inputs[idx[n]]->shape;
    const Shape* pair[2] = {&acc, &s};
    auto r = broadcast_shapes(ctx, pair);
    if (!r.ok()) {
      // Name the earlier input whose dims clash with this one.
      for (size_t m = 0; m < n; ++m) {
        const Shape* two[2] = {&ctx.inputs[idx[m]]->shape, &s};
        if (!broadcast_shapes(ctx, two).ok()) {
          return ctx.error("'", ctx.inputName(idx[m]), "' ", shape_str(*two[0]), " and '",
                           ctx.inputName(idx[n]), "' ", shape_str(s), " do not broadcast");
        }
      }
      return ctx.error("'", ctx.inputName(idx[n]), "' ", shape_str(s),
                       " does not broadcast with the other inputs ", shape_str(acc));
    }
    acc = std::move(r).value();
  }
  return acc;
}

}  // namespace kiln
