// View-chain folding (DESIGN.md 3): a chain of reshapes, squeezes, unsqueezes and permutes
// becomes at most three ops: a reshape that only splits dims (a view of any layout), one permute,
// and a reshape that only inserts size-1 dims.
//
// Each op of the chain is a view on its own, except a reshape that merges dims its input laid out
// apart, which the plan runs as a copy. nn.MultiheadAttention's head split is such a chain:
// q [L, N, E] -> view [L, N*H, D] -> transpose -> view [N, H, L, D] merges N with H only to split
// them again, and the merge alone costs a copy of q, k and v in every layer (ViT at batch 32:
// 36 copies). Followed dim by dim, the chain is a split of E into H, D and one permute: no copy.
//
// The pass follows the chain's "atoms" (view_atoms.h). The chain is rewritten only when the
// result has fewer ops and leaves no merge that would copy: every dim at its end is one atom, or
// adjacent constant atoms of a contiguous input.

#include <algorithm>
#include <optional>

#include "builder/passes/passes.h"
#include "builder/passes/view_atoms.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

struct Canonical {
  std::optional<Shape> split;                  // reshape of the input into its atoms
  std::optional<std::vector<int64_t>> perm;    // then this permute
  std::optional<Shape> ones;                   // then a reshape that inserts size-1 dims
  int ops() const { return split.has_value() + perm.has_value() + ones.has_value(); }
};

// The split/permute/unsqueeze form of `chain` (ops of `net`, in order), or nullopt when the chain
// does not keep atoms whole or ends in a merge that needs a copy. A dim at the end may merge
// atoms only when they are constant and adjacent, in order, in a contiguous input: the first
// reshape then merges them too, and stays a view (HF attention's [N, L, H, D] -> [N, L, H*D]).
std::optional<Canonical> canonical_form(const Network& net, const std::vector<const Op*>& chain) {
  const Tensor input = chain.front()->inputs[0];
  const Shape& in_shape = net.tensor(input).shape;
  AtomTracker atoms(in_shape);
  for (const Op* op : chain)
    if (!atoms.apply(*op, net.tensor(op->outputs[0]).shape)) return std::nullopt;
  const std::vector<int>& order = atoms.order();
  // run_of[i]: the run (a dim of the reshaped input) that the i-th atom of the input belongs to.
  std::vector<int64_t> run_of(order.size());
  for (size_t i = 0; i < order.size(); ++i) run_of[i] = static_cast<int64_t>(i);
  const Shape& out_shape = net.tensor(chain.back()->outputs[0]).shape;
  for (size_t d = 0; d < out_shape.size(); ++d) {
    const std::vector<int>& g = atoms.groups()[d];
    if (g.size() == 1 && !atoms.size(g[0]).equals(out_shape[d])) return std::nullopt;
    if (g.size() <= 1) continue;
    if (!made_contiguous(net, input)) return std::nullopt;
    for (size_t j = 0; j < g.size(); ++j) {
      if (!atoms.size(g[j]).isConstant()) return std::nullopt;
      if (j > 0 && atoms.position(g[j]) != atoms.position(g[j - 1]) + 1) return std::nullopt;
      run_of[static_cast<size_t>(atoms.position(g[j]))] = atoms.position(g[0]);
    }
  }
  // The reshaped input: one dim per run. Then the permute that orders the runs as the output
  // dims do, and a reshape for the output's size-1 dims.
  std::vector<int64_t> run_dim(order.size(), -1);
  Shape split_shape;
  for (size_t i = 0; i < order.size(); ++i) {
    if (run_of[i] != static_cast<int64_t>(i)) {  // merged into the run before it
      split_shape.back() = split_shape.back() * atoms.size(order[i]);
      continue;
    }
    run_dim[i] = static_cast<int64_t>(split_shape.size());
    split_shape.push_back(atoms.size(order[i]));
  }
  Canonical c;
  if (!shapes_equal(split_shape, in_shape)) c.split = split_shape;
  std::vector<int64_t> perm;
  Shape permuted;
  for (size_t d = 0; d < out_shape.size(); ++d) {
    const std::vector<int>& g = atoms.groups()[d];
    if (g.empty()) continue;
    perm.push_back(run_dim[static_cast<size_t>(atoms.position(g[0]))]);
    permuted.push_back(split_shape[static_cast<size_t>(perm.back())]);
  }
  if (!is_identity_perm(perm)) c.perm = perm;
  if (!shapes_equal(permuted, out_shape)) c.ones = out_shape;
  return c;
}

}  // namespace

Result<Network> fold_view_chains(const Network& network, std::vector<std::string>& log) {
  const Consumers consumers(network);
  const auto& ops = network.ops();
  // The op that continues the chain `ops[i]` is in, if any: a chain op reading its sole output.
  auto next_in_chain = [&](size_t i) -> std::optional<size_t> {
    std::optional<size_t> c = consumers.sole(ops[i].outputs[0]);
    if (c && is_view_chain_op(ops[*c].kind)) return c;
    return std::nullopt;
  };
  std::vector<bool> dropped(ops.size(), false);
  std::vector<std::optional<Canonical>> rewrite_at(ops.size());
  std::vector<std::vector<const Op*>> chain_at(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    // Chains start at a chain op whose input is not the sole output of another chain op.
    if (!is_view_chain_op(ops[i].kind)) continue;
    const int32_t p = network.tensor(ops[i].inputs[0]).producer;
    if (p >= 0 && is_view_chain_op(ops[static_cast<size_t>(p)].kind) && next_in_chain(static_cast<size_t>(p)) == i)
      continue;
    std::vector<const Op*> chain{&ops[i]};
    std::vector<size_t> ids{i};
    for (auto n = next_in_chain(i); n; n = next_in_chain(*n)) {
      chain.push_back(&ops[*n]);
      ids.push_back(*n);
    }
    if (chain.size() < 2) continue;
    std::optional<Canonical> c = canonical_form(network, chain);
    if (!c || c->ops() >= static_cast<int>(chain.size())) continue;
    for (size_t k = 0; k + 1 < ids.size(); ++k) dropped[ids[k]] = true;
    rewrite_at[ids.back()] = std::move(c);
    chain_at[ids.back()] = std::move(chain);
  }

  Rewriter rw(network);
  int64_t folded = 0, removed = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (dropped[i]) continue;
    if (!rewrite_at[i]) {
      KILN_RETURN_IF_ERROR(rw.keep(ops[i]));
      continue;
    }
    const Canonical& c = *rewrite_at[i];
    const std::vector<const Op*>& chain = chain_at[i];
    const std::string& name = ops[i].name;
    Network& t = rw.target();
    KILN_ASSIGN_OR_RETURN(Tensor x, rw.map(chain.front()->inputs[0]));
    if (c.split) {
      KILN_ASSIGN_OR_RETURN(x, t.add(OpKind::kReshape, {x}, {{"shape", *c.split}}, name + ".split"));
    }
    if (c.perm) {
      KILN_ASSIGN_OR_RETURN(x, t.add(OpKind::kPermute, {x}, {{"perm", *c.perm}}, name + ".permute"));
    }
    if (c.ones) {
      KILN_ASSIGN_OR_RETURN(x, t.add(OpKind::kReshape, {x}, {{"shape", *c.ones}}, name + ".unsqueeze"));
    }
    // An identity chain leaves its input standing for its output; otherwise the last op made
    // here takes the output's name.
    if (c.ops() > 0) t.renameTensor(x, network.tensor(ops[i].outputs[0]).name);
    rw.setMapping(ops[i].outputs[0], x);
    ++folded;
    removed += static_cast<int64_t>(chain.size()) - c.ops();
  }
  log.push_back(str("view chains: ", folded, " chain", folded == 1 ? "" : "s", " of views folded into split + permute (",
                    removed, " op", removed == 1 ? "" : "s", " fewer)"));
  return rw.finish();
}

}  // namespace kiln::builder
