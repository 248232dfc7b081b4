// Linear on permuted rows (DESIGN.md 3): linear(permute(x, perm), w[, b]) whose perm keeps the
// last dim in place becomes permute(linear(x, w[, b]), perm).
//
// A linear maps each row (the last dim) on its own, so it commutes with any reordering of the
// other dims. On the permuted view the GEMM can only run as strided batches over one leading dim:
// ViT's attention in-projection reads nn.MultiheadAttention's batch_first transpose [S, B, E],
// which at batch 32 ran as 197 batches of 32 rows (84 us on an H100). On x itself it is one GEMM
// over all B*S rows, and the permute after it is a view that the ops after it read as before.

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// The permute feeding `op`'s first input when `op` is a linear it can be moved behind: a rank
// >= 3 permute that keeps the last dim where it is and is not the identity.
const Op* movable_permute(const Network& net, const Op& op) {
  if (op.kind != OpKind::kLinear || op.inputs.empty()) return nullptr;
  const int32_t p = net.tensor(op.inputs[0]).producer;
  if (p < 0) return nullptr;
  const Op& perm_op = net.ops()[static_cast<size_t>(p)];
  if (perm_op.kind != OpKind::kPermute) return nullptr;
  const std::vector<int64_t> perm = perm_op.attrs.getInts("perm", {});
  const int64_t rank = static_cast<int64_t>(perm.size());
  if (rank < 3 || perm.back() != rank - 1) return nullptr;
  for (int64_t d = 0; d < rank; ++d)
    if (perm[static_cast<size_t>(d)] != d) return &perm_op;
  return nullptr;
}

}  // namespace

Result<Network> move_permutes_after_linear(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int64_t moved = 0;
  for (const Op& op : network.ops()) {
    const Op* perm_op = movable_permute(network, op);
    if (!perm_op) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, rw.mapAll(op.inputs));
    KILN_ASSIGN_OR_RETURN(inputs[0], rw.map(perm_op->inputs[0]));  // x, not its permuted view
    Network& t = rw.target();
    KILN_ASSIGN_OR_RETURN(Tensor rows, t.add(OpKind::kLinear, std::move(inputs), op.attrs, op.name + ".rows"));
    KILN_ASSIGN_OR_RETURN(Tensor out, t.add(OpKind::kPermute, {rows}, perm_op->attrs, op.name + ".permute"));
    t.renameTensor(out, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], out);
    ++moved;
  }
  log.push_back(str("linear permutes: ", moved, " linear", moved == 1 ? "" : "s",
                    " now read the unpermuted rows (the permute follows)"));
  return rw.finish();
}

}  // namespace kiln::builder
