// Residual + layer norm: `s = binary add(a, b)` feeding `layer_norm(s, weight?, bias?)` becomes
// one layer_norm(a, weight?, bias?, b) with residual=true (op_list.inc). When something else
// also reads s (another op, or a network output), the fused op returns s as a second output
// (sum_output=true).
//
// One operand may broadcast to s (a position embedding added to every batch entry: GPT-2's and
// ViT's first layer norm). It becomes the residual through an expand view to s's shape, so the
// kernels read it with zero strides; the other operand, of s's shape, is the norm's input.
// Float addition is commutative, so which operand comes first does not change the sum.

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// Whether `r` broadcasts to `s` (numpy rules, r's dims aligned to s's trailing ones).
bool broadcasts_to(const Shape& r, const Shape& s) {
  if (r.size() > s.size()) return false;
  const size_t lead = s.size() - r.size();
  for (size_t i = 0; i < r.size(); ++i) {
    const SymExpr& d = r[i];
    if (!(d.isConstant() && d.constant() == 1) && !d.equals(s[lead + i])) return false;
  }
  return true;
}

// The add that feeds layer_norm `ln` and can be folded into it, or -1.
int residual_add(const Network& net, const Op& ln) {
  if (ln.kind != OpKind::kLayerNorm || ln.attrs.getBool("residual", false)) return -1;
  const TensorInfo& s = net.tensor(ln.inputs[0]);
  if (s.producer < 0) return -1;
  const Op& add = net.ops()[static_cast<size_t>(s.producer)];
  if (add.kind != OpKind::kBinary || add.attrs.getString("fn", "") != "add") return -1;
  if (!is_floating(s.dtype)) return -1;
  // Both operands of the sum's dtype; one of its shape, the other of it or broadcasting to it.
  int full = 0;
  for (Tensor t : add.inputs) {
    const TensorInfo& o = net.tensor(t);
    if (o.dtype != s.dtype || !broadcasts_to(o.shape, s.shape)) return -1;
    full += shapes_equal(o.shape, s.shape) ? 1 : 0;
  }
  if (add.inputs.size() != 2 || full == 0) return -1;
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
  int fused = 0, with_sum = 0, broadcast = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (fused_norm[i]) continue;  // made at its add
    if (norm_of_add[i] < 0) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const Op& ln = ops[static_cast<size_t>(norm_of_add[i])];
    const bool keep_sum = uses[static_cast<size_t>(op.outputs[0].id)] > 1;
    const Shape& sum_shape = network.tensor(op.outputs[0]).shape;
    // The operand of the sum's shape is the norm's input; the other, the residual.
    const bool swap = !shapes_equal(network.tensor(op.inputs[0]).shape, sum_shape);
    const Tensor a = op.inputs[swap ? 1 : 0], b = op.inputs[swap ? 0 : 1];
    std::vector<Tensor> inputs = {a};
    inputs.insert(inputs.end(), ln.inputs.begin() + 1, ln.inputs.end());
    inputs.push_back(b);
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> mapped, rw.mapAll(inputs));
    if (!shapes_equal(network.tensor(b).shape, sum_shape)) {
      auto expanded = rw.target().add(OpKind::kExpand, {mapped.back()}, {{"shape", sum_shape}},
                                      op.name + ".residual_expand");
      if (!expanded.ok())
        return expanded.status().withContext("residual norm fusion of '" + ln.name +
                                             "' (builder bug)");
      mapped.back() = *expanded;
      ++broadcast;
    }
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
  log.push_back(fused == 0
                    ? std::string("residual norm fusion: nothing to fuse")
                    : str("residual norm fusion: ", fused, " add + layer_norm pairs (", with_sum,
                          " also return the sum, ", broadcast, " with a broadcast residual)"));
  return rw.finish();
}

}  // namespace kiln::builder
