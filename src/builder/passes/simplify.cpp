#include "builder/passes/passes.h"
#include "builder/passes/view_atoms.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

bool is_output(const Network& net, Tensor t) {
  for (const Network::Output& out : net.outputs())
    if (out.tensor == t) return true;
  return false;
}

// True when `op` returns its first input unchanged.
bool is_identity(const Network& net, const Op& op) {
  const TensorInfo& in = net.tensor(op.inputs[0]);
  const TensorInfo& out = net.tensor(op.outputs[0]);
  switch (op.kind) {
    case OpKind::kCast:
      return in.dtype == out.dtype;
    case OpKind::kReshape:
    case OpKind::kExpand:
      return shapes_equal(in.shape, out.shape);
    case OpKind::kPermute:
      return is_identity_perm(op.attrs.getInts("perm", {}));
    case OpKind::kSlice:
      return op.attrs.getInt("step", 1) == 1 && shapes_equal(in.shape, out.shape);
    case OpKind::kCopy:
      // Copies that make an output are what isolate_outputs wants; the others are no-ops.
      return !is_output(net, op.outputs[0]);
    default:
      return false;
  }
}

}  // namespace

Result<Network> simplify(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int removed = 0;
  for (const Op& op : network.ops()) {
    if (op.outputs.size() == 1 && !op.inputs.empty() && is_identity(network, op)) {
      KILN_ASSIGN_OR_RETURN(Tensor in, rw.map(op.inputs[0]));
      rw.setMapping(op.outputs[0], in);
      ++removed;
      continue;
    }
    KILN_RETURN_IF_ERROR(rw.keep(op));
  }
  log.push_back(str("simplification: removed ", removed, " no-op ops"));
  return rw.finish();
}

}  // namespace kiln::builder
