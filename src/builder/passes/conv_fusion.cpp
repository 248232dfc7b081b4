// Conv epilogue fusion (DESIGN.md 3): conv (+ bias) -> optional residual `binary add` with a
// tensor of the conv output's shape -> optional `unary relu` becomes one conv carrying
// activation ("none"/"relu") and the residual as its 4th input: y = act(conv(x, w) + b + z).
// Backends run that as one call (cuDNN's conv-bias-activation) or conv + one epilogue.
//
// A step joins only when the tensor between it and the previous one has no other use and is no
// network output. The fused conv is emitted at the position of the last op it absorbs, where
// the residual is already computed. A conv without bias gets a zero bias (the residual input is
// 4th, after the bias).

#include <optional>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

struct ConvFusion {
  size_t conv = 0;
  std::optional<size_t> add, relu;  // absorbed op indices
  Tensor residual;                  // the add's other operand (invalid without add)
  size_t last() const { return relu ? *relu : *add; }
};

bool is_unary(const Op& op, const char* fn) {
  return op.kind == OpKind::kUnary && op.attrs.getString("fn", "") == fn;
}

bool fusable_conv(const Network& net, const Op& op) {
  if (op.kind != OpKind::kConv || op.inputs.size() > 3) return false;
  if (op.attrs.getBool("transposed", false)) return false;
  if (op.attrs.getString("activation", "none") != "none") return false;
  if (op.inputs.size() == 3) return true;
  // A zero bias must be made: the output channel count must be known.
  const Shape& w = net.tensor(op.inputs[1]).shape;
  return !w.empty() && w[0].isConstant();
}

std::optional<ConvFusion> match(const Network& net, size_t i, const Consumers& consumers,
                                const std::vector<bool>& claimed) {
  const Op& conv = net.ops()[i];
  if (!fusable_conv(net, conv)) return std::nullopt;
  ConvFusion f;
  f.conv = i;
  const Tensor y = conv.outputs[0];
  Tensor cur = y;
  std::optional<size_t> next = consumers.sole(cur);
  if (next && !claimed[*next]) {
    const Op& add = net.ops()[*next];
    if (std::optional<Tensor> z = residual_operand(net, add, y)) {
      f.add = *next;
      f.residual = *z;
      cur = add.outputs[0];
      next = consumers.sole(cur);
    }
  }
  if (next && !claimed[*next] && is_unary(net.ops()[*next], "relu")) f.relu = *next;
  if (!f.add && !f.relu) return std::nullopt;
  return f;
}

}  // namespace

Result<Network> fuse_conv_epilogues(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  Consumers consumers(network);
  std::vector<bool> claimed(ops.size(), false);
  // Indexed by the last absorbed op: the fusion emitted there.
  std::vector<std::optional<ConvFusion>> emit_at(ops.size());
  int fused = 0, residuals = 0, relus = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (claimed[i]) continue;
    std::optional<ConvFusion> f = match(network, i, consumers, claimed);
    if (!f) continue;
    claimed[f->conv] = true;
    if (f->add) claimed[*f->add] = true;
    if (f->relu) claimed[*f->relu] = true;
    emit_at[f->last()] = f;
    ++fused;
    residuals += f->add.has_value();
    relus += f->relu.has_value();
  }

  Rewriter rw(network);
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!claimed[i]) {
      KILN_RETURN_IF_ERROR(rw.keep(ops[i]));
      continue;
    }
    if (!emit_at[i]) continue;  // absorbed into a fusion emitted at its last op
    const ConvFusion& f = *emit_at[i];
    const Op& conv = ops[f.conv];
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, rw.mapAll(conv.inputs));
    if (inputs.size() == 2) {
      const TensorInfo& w = network.tensor(conv.inputs[1]);
      const std::vector<double> zeros(static_cast<size_t>(w.shape[0].constant()), 0.0);
      const std::vector<int64_t> dims{w.shape[0].constant()};
      KILN_ASSIGN_OR_RETURN(Tensor b, rw.target().addConstant(conv.name + ".zero_bias", w.dtype,
                                                              dims, doubles_to_constant(zeros, w.dtype)));
      inputs.push_back(b);
    }
    if (f.add) {
      KILN_ASSIGN_OR_RETURN(Tensor z, rw.map(f.residual));
      inputs.push_back(z);
    }
    Attrs attrs = conv.attrs;
    attrs.set("activation", std::string(f.relu ? "relu" : "none"));
    KILN_ASSIGN_OR_RETURN(Tensor y, rw.target().add(OpKind::kConv, std::move(inputs), attrs, conv.name));
    const Tensor old = ops[f.last()].outputs[0];
    rw.target().renameTensor(y, network.tensor(old).name);
    rw.setMapping(old, y);
  }
  log.push_back(str("conv fusion: fused ", fused, " convs (", residuals, " residual adds, ", relus,
                    " relus)"));
  return rw.finish();
}

}  // namespace kiln::builder
