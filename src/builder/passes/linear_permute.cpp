// Linear over views (DESIGN.md 3): linear(V(x)), where V is a chain of reshapes and permutes
// that moves rows around but keeps each row (the last dim) made of x's last dims in order,
// becomes V'(linear(x)): the linear runs over x's own rows and the views follow its output.
//
// A linear maps each row on its own, so it commutes with any reordering of the rows. On the
// permuted view the GEMM can only run as strided batches over one leading dim, or needs a copy:
// ViT's attention in-projection reads nn.MultiheadAttention's batch_first transpose [S, B, E],
// which at batch 32 ran as 197 batches of 32 rows (84 us on an H100); its out-projection reads
// the attention output permuted to [S, B, H, D] and merged to [S*B, E], a copy per layer. On x
// itself it is one GEMM over all rows, and the views after it fold with the ones that follow
// (the view chains pass runs next: ViT's out-projection view back to [B, S, E] cancels).

#include "builder/passes/passes.h"
#include "builder/passes/view_atoms.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// How to run `op` (a linear) over the rows of the tensor its input is a view of.
struct RowsPlan {
  Tensor x;                       // the input of the view chain
  std::optional<Shape> x_rows;    // x with the dims that make a row merged into one (a view)
  Shape lead;                     // the atoms of x before the row, in x's order
  std::vector<int64_t> perm;      // the output's dims over lead + the row (index lead.size())
  bool merges = false;            // some output dim merges atoms (the last reshape copies)
};

std::optional<RowsPlan> plan_rows(const Network& net, const Op& op) {
  if (op.kind != OpKind::kLinear || op.inputs.size() < 2) return std::nullopt;
  if (op.attrs.getBool("residual", false)) return std::nullopt;  // its output keeps x's rows
  const std::vector<const Op*> chain = view_chain_ending_at(net, op.inputs[0]);
  bool moves_rows = false;
  for (const Op* c : chain) moves_rows = moves_rows || c->kind == OpKind::kPermute;
  if (!moves_rows) return std::nullopt;
  RowsPlan plan;
  plan.x = chain.front()->inputs[0];
  const Shape& x_shape = net.tensor(plan.x).shape;
  AtomTracker atoms(x_shape);
  for (const Op* c : chain)
    if (!atoms.apply(*c, net.tensor(c->outputs[0]).shape)) return std::nullopt;

  // The row: the last atoms of x, in order, starting where one of x's dims starts.
  const std::vector<int>& order = atoms.order();
  const std::vector<int>& row = atoms.groups().back();
  if (row.empty() || row.size() > order.size()) return std::nullopt;
  const size_t lead_atoms = order.size() - row.size();
  for (size_t j = 0; j < row.size(); ++j)
    if (row[j] != order[lead_atoms + j]) return std::nullopt;
  const int first_dim = atoms.inputDim(row[0]);
  if (lead_atoms > 0 && atoms.inputDim(order[lead_atoms - 1]) == first_dim) return std::nullopt;
  const int rank = static_cast<int>(x_shape.size());
  if (first_dim < rank - 1) {  // the row spans several dims of x: merge them, as a view
    if (!made_contiguous(net, plan.x)) return std::nullopt;
    Shape rows(x_shape.begin(), x_shape.begin() + first_dim);
    SymExpr width = 1;
    for (int d = first_dim; d < rank; ++d) {
      if (!x_shape[static_cast<size_t>(d)].isConstant()) return std::nullopt;
      width = width * x_shape[static_cast<size_t>(d)];
    }
    rows.push_back(width);
    plan.x_rows = rows;
  }
  for (size_t i = 0; i < lead_atoms; ++i) plan.lead.push_back(atoms.size(order[i]));
  const auto& groups = atoms.groups();
  for (size_t d = 0; d + 1 < groups.size(); ++d) {
    if (groups[d].empty()) continue;
    plan.merges = plan.merges || groups[d].size() > 1;
    for (int a : groups[d]) plan.perm.push_back(atoms.position(a));
  }
  plan.perm.push_back(static_cast<int64_t>(lead_atoms));
  // A merge left after the linear copies its output instead of its input: only when the output
  // rows are no wider than the input's.
  if (plan.merges) {
    const SymExpr& in_width = net.tensor(op.inputs[0]).shape.back();
    const SymExpr& out_width = net.tensor(op.outputs[0]).shape.back();
    if (!in_width.isConstant() || !out_width.isConstant() || out_width.constant() > in_width.constant())
      return std::nullopt;
  }
  return plan;
}

}  // namespace

Result<Network> move_permutes_after_linear(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int64_t moved = 0;
  for (const Op& op : network.ops()) {
    const std::optional<RowsPlan> plan = plan_rows(network, op);
    if (!plan) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    // The chain itself stays for any other reader; dead code elimination drops it otherwise.
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, rw.mapAll(op.inputs));
    Network& t = rw.target();
    KILN_ASSIGN_OR_RETURN(inputs[0], rw.map(plan->x));
    if (plan->x_rows) {
      KILN_ASSIGN_OR_RETURN(inputs[0], t.add(OpKind::kReshape, {inputs[0]}, {{"shape", *plan->x_rows}},
                                             op.name + ".row_view"));
    }
    KILN_ASSIGN_OR_RETURN(Tensor y, t.add(OpKind::kLinear, std::move(inputs), op.attrs, op.name + ".rows"));
    const Shape& out_shape = network.tensor(op.outputs[0]).shape;
    Shape atoms = plan->lead;
    atoms.push_back(out_shape.back());
    if (!shapes_equal(t.tensor(y).shape, atoms)) {
      KILN_ASSIGN_OR_RETURN(y, t.add(OpKind::kReshape, {y}, {{"shape", atoms}}, op.name + ".split"));
    }
    if (!is_identity_perm(plan->perm)) {
      KILN_ASSIGN_OR_RETURN(y, t.add(OpKind::kPermute, {y}, {{"perm", plan->perm}}, op.name + ".permute"));
    }
    if (!shapes_equal(t.tensor(y).shape, out_shape)) {
      KILN_ASSIGN_OR_RETURN(y, t.add(OpKind::kReshape, {y}, {{"shape", out_shape}}, op.name + ".view"));
    }
    t.renameTensor(y, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], y);
    ++moved;
  }
  log.push_back(str("linear permutes: ", moved, " linear", moved == 1 ? "" : "s",
                    " now read the unpermuted rows (the views follow)"));
  return rw.finish();
}

}  // namespace kiln::builder
