#include "builder/rewrite.h"

namespace kiln::builder {

Rewriter::Rewriter(const Network& source)
    : source_(source), target_(source.name()), map_(source.tensors().size()) {
  for (const SymbolInfo& s : source.symbols()) {
    // Symbols keep their ids: shapes in the new network use the same SymExprs.
    (void)target_.addSymbol(s.name, s.min, s.opt, s.max);
  }
  for (Tensor in : source.inputs()) {
    const TensorInfo& info = source.tensor(in);
    auto t = target_.addInput(info.name, info.dtype, info.shape);
    if (t.ok()) map_[static_cast<size_t>(in.id)] = *t;
  }
}

Result<Tensor> Rewriter::map(Tensor old) {
  if (!old.valid() || static_cast<size_t>(old.id) >= map_.size())
    return internal_error("rewrite: tensor id ", old.id, " out of range");
  Tensor& slot = map_[static_cast<size_t>(old.id)];
  if (slot.valid()) return slot;
  const TensorInfo& info = source_.tensor(old);
  if (info.isConstant()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
    KILN_ASSIGN_OR_RETURN(slot, target_.addConstant(info.name, info.dtype, dims, info.constant));
    return slot;
  }
  return internal_error("rewrite: tensor '", info.name, "' used before it was produced");
}

Result<std::vector<Tensor>> Rewriter::mapAll(const std::vector<Tensor>& old) {
  std::vector<Tensor> out;
  out.reserve(old.size());
  for (Tensor t : old) {
    KILN_ASSIGN_OR_RETURN(Tensor m, map(t));
    out.push_back(m);
  }
  return out;
}

Status Rewriter::keep(const Op& op) {
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, mapAll(op.inputs));
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outputs,
                        target_.addOp(op.kind, std::move(inputs), op.attrs, op.name));
  if (outputs.size() != op.outputs.size())
    return internal_error("rewrite: op '", op.name, "' changed its number of outputs");
  for (size_t i = 0; i < outputs.size(); ++i) {
    map_[static_cast<size_t>(op.outputs[i].id)] = outputs[i];
    target_.renameTensor(outputs[i], source_.tensor(op.outputs[i]).name);
  }
  return Status::Ok();
}

Result<Network> Rewriter::finish() {
  for (const Network::Output& out : source_.outputs()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, map(out.tensor));
    KILN_RETURN_IF_ERROR(target_.markOutput(t, out.name));
  }
  return std::move(target_);
}

Consumers::Consumers(const Network& network)
    : network_(network), uses_(use_counts(network)), consumer_(network.tensors().size(), -1) {
  for (size_t i = 0; i < network.ops().size(); ++i)
    for (Tensor t : network.ops()[i].inputs) consumer_[static_cast<size_t>(t.id)] = static_cast<int32_t>(i);
}

std::optional<size_t> Consumers::sole(Tensor t) const {
  const size_t i = static_cast<size_t>(t.id);
  if (uses_[i] != 1 || consumer_[i] < 0) return std::nullopt;
  return static_cast<size_t>(consumer_[i]);
}

std::optional<size_t> Consumers::soleProducer(Tensor t) const {
  const int32_t producer = network_.tensor(t).producer;
  if (producer < 0 || !sole(t)) return std::nullopt;
  return static_cast<size_t>(producer);
}

std::optional<Tensor> residual_operand(const Network& network, const Op& add, Tensor y) {
  if (add.kind != OpKind::kBinary || add.attrs.getString("fn", "") != "add" || add.inputs.size() != 2)
    return std::nullopt;
  const Tensor z = add.inputs[0] == y ? add.inputs[1] : add.inputs[0];
  if (z == y) return std::nullopt;  // y + y
  const TensorInfo& yi = network.tensor(y);
  const TensorInfo& zi = network.tensor(z);
  if (zi.dtype != yi.dtype || !shapes_equal(zi.shape, yi.shape) ||
      !shapes_equal(network.tensor(add.outputs[0]).shape, yi.shape))
    return std::nullopt;
  return z;
}

std::vector<int> use_counts(const Network& network) {
  std::vector<int> uses(network.tensors().size(), 0);
  for (const Op& op : network.ops())
    for (Tensor t : op.inputs) ++uses[static_cast<size_t>(t.id)];
  for (const Network::Output& out : network.outputs()) ++uses[static_cast<size_t>(out.tensor.id)];
  return uses;
}

std::vector<bool> output_flags(const Network& network) {
  std::vector<bool> is_output(network.tensors().size(), false);
  for (const Network::Output& out : network.outputs()) is_output[static_cast<size_t>(out.tensor.id)] = true;
  return is_output;
}

}  // namespace kiln::builder
