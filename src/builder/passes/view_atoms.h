#pragma once

// Following a chain of views (reshape, squeeze, unsqueeze, permute) dim by dim: the "atoms" of
// the chain's input are the pieces of its dims that every op of the chain keeps whole. A reshape
// groups consecutive atoms (splitting a constant atom where a dim ends inside it); a permute
// reorders the groups. Used by view-chain folding and by linear-over-views (view_chains.cpp,
// linear_permute.cpp).

#include <optional>
#include <vector>

#include "kiln/network.h"

namespace kiln::builder {

bool is_view_chain_op(OpKind kind);

// Whether `perm` leaves every dim where it is.
bool is_identity_perm(const std::vector<int64_t>& perm);

// Whether the plan lays `t` out contiguously: made by an op that is not a view.
bool made_contiguous(const Network& net, Tensor t);

class AtomTracker {
 public:
  explicit AtomTracker(const Shape& input);

  // A reshape (or squeeze/unsqueeze) to `shape`; false when it does not group whole atoms.
  bool reshape(const Shape& shape);
  bool permute(const std::vector<int64_t>& perm);
  // Applies `op` (a view-chain op) given its output shape.
  bool apply(const Op& op, const Shape& out_shape);

  // The current dims, each a list of atoms (empty for a size-1 dim).
  const std::vector<std::vector<int>>& groups() const { return groups_; }
  // Every atom, in the input's (row-major) order.
  const std::vector<int>& order() const { return order_; }
  const SymExpr& size(int atom) const { return sizes_[static_cast<size_t>(atom)]; }
  // The input dim an atom is (a piece of).
  int inputDim(int atom) const { return dim_[static_cast<size_t>(atom)]; }
  // Position of `atom` in order().
  int64_t position(int atom) const;

 private:
  int newAtom(const SymExpr& size, int dim);
  std::pair<int, int> split(int atom, int64_t outer, int64_t inner);

  std::vector<SymExpr> sizes_;
  std::vector<int> dim_;
  std::vector<int> order_;
  std::vector<std::vector<int>> groups_;
};

// The view-chain ops that end at `t` (walking back through producers while they are chain ops,
// at most `max_ops`), in order; empty when `t` is not made by one. Intermediates may have other
// readers: callers that drop the chain check that themselves.
std::vector<const Op*> view_chain_ending_at(const Network& net, Tensor t, size_t max_ops = 8);

}  // namespace kiln::builder
