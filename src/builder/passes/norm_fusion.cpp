// Residual + layer norm: `s = binary add(a, b)` feeding `layer_norm(s, weight?, bias?)` becomes
// one layer_norm(a, weight?, bias?, b) with residual=true (op_list.inc). When something else
// also reads s (another op, or a network output), the fused op returns s as a second output
// (sum_output=true).

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// The add that feeds layer_norm `ln` and can be folded into it, or -1.
int residual_add(const Network& net, const Op& ln) {
  if (ln.kind != OpKind::kLayerNorm || ln.attrs.getBool("residual", false)) return -1;
  const TensorInfo& s = net.tensor(ln.inputs[0]);
  if (s.producer < 0) return -1;
  const Op& add = net.ops()[static_cast<size_t>(s.producer)];
  if (add.kind != OpKind::kBinary || add.attrs.getString("fn", "") != "add") return -1;
  if (!is_floating(s.dtype)) return -1;
  for (Tensor t : add.inputs)  // no broadcasting: both operands have the sum's shape
    if (!shapes_equal(net.tensor(t).shape, s.shape)) return -1;
  // The fused op runs where the add was: the norm's weight and bias must exist by then.
  for (size_t k = 1; k < ln.inputs.size(); ++k)
    if (net.tensor(ln.inputs[k]).producer >= s.producer) return -1;
  // One layer_norm per add.
  for (const Op& other : net.ops())
    if (&other != &ln && other.kind == OpKind::kLayerNorm && other.inputs[0] == ln.inputs[0]) return -1;
  return s.producer;
}

}  // namespace

Result<Network> fuse_residual_norm(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  const std::vector<int> uses = use_counts(network);
  std::vector<int> norm_of_add(ops.size(), -1);
  std::vector<bool> fused_norm(ops.size(), false);
  for (size_t i = 0; i < ops.size(); ++i) {
    int add = residual_add(network, ops[i]);
    if (add < 0) continue;
    norm_of_add[static_cast<size_t>(add)] = static_cast<int>(i);
    fused_norm[i] = true;
  }
  Rewriter rw(network);
  int fused = 0, with_sum = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (fused_norm[i]) continue;  // made at its add
    if (norm_of_add[i] < 0) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const Op& ln = ops[static_cast<size_t>(norm_of_add[i])];
    const bool keep_sum = uses[static_cast<size_t>(op.outputs[0].id)] > 1;
    std::vector<Tensor> inputs = {op.inputs[0]};
    inputs.insert(inputs.end(), ln.inputs.begin() + 1, ln.inputs.end());
    inputs.push_back(op.inputs[1]);
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> mapped, rw.mapAll(inputs));
    Attrs attrs = ln.attrs;
    attrs.set("residual", true);
    attrs.set("sum_output", keep_sum);
    auto outs = rw.target().addOp(OpKind::kLayerNorm, std::move(mapped), attrs, ln.name);
    if (!outs.ok()) return outs.status().withContext("residual norm fusion of '" + ln.name + "' (builder bug)");
    rw.setMapping(ln.outputs[0], (*outs)[0]);
    rw.target().renameTensor((*outs)[0], network.tensor(ln.outputs[0]).name);
    if (keep_sum) {
      rw.setMapping(op.outputs[0], (*outs)[1]);
      rw.target().renameTensor((*outs)[1], network.tensor(op.outputs[0]).name);
      ++with_sum;
    }
    ++fused;
  }
  log.push_back(fused == 0 ? std::string("residual norm fusion: nothing to fuse")
                           : str("residual norm fusion: ", fused, " add + layer_norm pairs (", with_sum,
                                 " also return the sum)"));
  return rw.finish();
}

}  // namespace kiln::builder
