#include "builder/passes/view_atoms.h"

#include <algorithm>

#include "ir/op_def.h"

namespace kiln::builder {
namespace {

bool is_one(const SymExpr& e) { return e.isConstant() && e.constant() == 1; }

// dim / product when that is the same integer for every value of the symbols (shapes are
// products of symbols and constants: checked at two sets of distinct symbol values).
std::optional<int64_t> constant_ratio(const SymExpr& dim, const SymExpr& product) {
  std::vector<int32_t> ids;
  dim.collectSymbols(ids);
  product.collectSymbols(ids);
  const int32_t n = ids.empty() ? 0 : *std::max_element(ids.begin(), ids.end()) + 1;
  std::optional<int64_t> ratio;
  for (int64_t base : {7, 101}) {
    std::vector<int64_t> values(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = base + 6 * i;
    Result<int64_t> d = dim.evaluate(values), p = product.evaluate(values);
    if (!d.ok() || !p.ok() || *p <= 0 || *d % *p != 0) return std::nullopt;
    if (ratio && *ratio != *d / *p) return std::nullopt;
    ratio = *d / *p;
  }
  return ratio;
}

}  // namespace

bool is_view_chain_op(OpKind kind) {
  return kind == OpKind::kReshape || kind == OpKind::kSqueeze || kind == OpKind::kUnsqueeze ||
         kind == OpKind::kPermute;
}

bool is_identity_perm(const std::vector<int64_t>& perm) {
  for (size_t d = 0; d < perm.size(); ++d)
    if (perm[d] != static_cast<int64_t>(d)) return false;
  return true;
}

bool made_contiguous(const Network& net, Tensor t) {
  const int32_t p = net.tensor(t).producer;
  return p >= 0 && op_def(net.ops()[static_cast<size_t>(p)].kind).view == nullptr;
}

AtomTracker::AtomTracker(const Shape& input) {
  for (size_t d = 0; d < input.size(); ++d) {
    groups_.emplace_back();
    if (is_one(input[d])) continue;
    groups_.back().push_back(newAtom(input[d], static_cast<int>(d)));
    order_.push_back(groups_.back().back());
  }
}

int AtomTracker::newAtom(const SymExpr& size, int dim) {
  sizes_.push_back(size);
  dim_.push_back(dim);
  return static_cast<int>(sizes_.size()) - 1;
}

// Replaces `atom` by (outer, inner) in the input order; the caller fixes the current dims.
std::pair<int, int> AtomTracker::split(int atom, int64_t outer, int64_t inner) {
  const int dim = inputDim(atom);
  const int o = newAtom(outer, dim), in = newAtom(inner, dim);
  auto it = std::find(order_.begin(), order_.end(), atom);
  *it = in;
  order_.insert(it, o);
  return {o, in};
}

int64_t AtomTracker::position(int atom) const {
  return std::find(order_.begin(), order_.end(), atom) - order_.begin();
}

bool AtomTracker::apply(const Op& op, const Shape& out_shape) {
  return op.kind == OpKind::kPermute ? permute(op.attrs.getInts("perm", {})) : reshape(out_shape);
}

bool AtomTracker::reshape(const Shape& shape) {
  std::vector<int> flat;
  for (const auto& g : groups_) flat.insert(flat.end(), g.begin(), g.end());
  std::vector<std::vector<int>> next;
  size_t i = 0;
  for (const SymExpr& dim : shape) {
    next.emplace_back();
    if (is_one(dim)) continue;
    SymExpr product = 1;  // of the atoms taken so far
    while (true) {
      const std::optional<int64_t> rest = constant_ratio(dim, product);
      if (rest == 1) break;  // the atoms taken make the dim
      if (i == flat.size() || next.back().size() > 8) return false;
      const int atom = flat[i];
      const SymExpr& size = sizes_[static_cast<size_t>(atom)];
      if (rest) {
        // What is left of the dim is a constant: constant atoms fill it, the last one maybe
        // split where the dim ends inside it.
        if (!size.isConstant()) return false;
        const int64_t s = size.constant(), r = *rest;
        if (r <= 0) return false;
        if (s == r || (s < r && r % s == 0)) {
          next.back().push_back(atom);
          ++i;
          product = product * size;
          continue;
        }
        if (s % r != 0) return false;
        auto [outer, inner] = split(atom, r, s / r);
        flat[i] = inner;
        next.back().push_back(outer);
        break;
      }
      next.back().push_back(atom);  // a symbolic part of the dim: take the atom whole
      ++i;
      product = product * size;
    }
  }
  if (i != flat.size()) return false;
  groups_ = std::move(next);
  return true;
}

bool AtomTracker::permute(const std::vector<int64_t>& perm) {
  if (perm.size() != groups_.size()) return false;
  std::vector<std::vector<int>> next;
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(groups_.size())) return false;
    next.push_back(groups_[static_cast<size_t>(p)]);
  }
  groups_ = std::move(next);
  return true;
}

std::vector<const Op*> view_chain_ending_at(const Network& net, Tensor t, size_t max_ops) {
  std::vector<const Op*> chain;
  for (int32_t p = net.tensor(t).producer; p >= 0 && chain.size() < max_ops;) {
    const Op& op = net.ops()[static_cast<size_t>(p)];
    if (!is_view_chain_op(op.kind)) break;
    chain.insert(chain.begin(), &op);
    p = net.tensor(op.inputs[0]).producer;
  }
  return chain;
}

}  // namespace kiln::builder
