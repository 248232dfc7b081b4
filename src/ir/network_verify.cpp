// Network::verify and Network::toString: the checker and the printer.
#include <set>

#include "ir/op_def.h"
#include "kiln/network.h"

namespace kiln {
namespace {

Status fail(const std::string& network, const std::string& what) {
  return internal_error("verify network '", network, "': ", what);
}

}  // namespace

Status Network::verify() const {
  const std::vector<std::string> names = symbolNames();
  for (const SymbolInfo& s : symbols_) {
    if (!(s.min >= 0 && s.min <= s.opt && s.opt <= s.max)) {
      return fail(name_, str("symbol '", s.name, "' has an invalid range [", s.min, ", ", s.max,
                             "] opt ", s.opt));
    }
  }
  auto valid = [&](Tensor t) { return t.valid() && static_cast<size_t>(t.id) < tensors_.size(); };

  std::set<std::string> input_names;
  for (Tensor t : inputs_) {
    if (!valid(t)) return fail(name_, str("input id ", t.id, " is not a tensor"));
    const TensorInfo& info = tensor(t);
    if (!info.is_input || info.producer != -1) {
      return fail(name_, str("input '", info.name, "' is not marked as an input"));
    }
    if (!input_names.insert(info.name).second) {
      return fail(name_, str("two inputs are named '", info.name, "'"));
    }
  }

  for (size_t i = 0; i < tensors_.size(); ++i) {
    const TensorInfo& t = tensors_[i];
    if (t.producer >= 0) {
      if (static_cast<size_t>(t.producer) >= ops_.size()) {
        return fail(name_, str("tensor '", t.name, "' names a missing producer op ", t.producer));
      }
      const Op& op = ops_[static_cast<size_t>(t.producer)];
      if (t.output_index < 0 || static_cast<size_t>(t.output_index) >= op.outputs.size() ||
          op.outputs[static_cast<size_t>(t.output_index)].id != static_cast<int32_t>(i)) {
        return fail(name_, str("tensor '", t.name, "' claims to be output ", t.output_index,
                               " of ", op_kind_name(op.kind), " '", op.name, "', which it is not"));
      }
    } else if (t.isConstant()) {
      auto n = shape_numel(t.shape);
      if (!n.isConstant() ||
          t.constant->size() != static_cast<size_t>(n.constant()) * dtype_size(t.dtype)) {
        return fail(name_, str("constant '", t.name, "' holds ", t.constant->size(),
                               " bytes for ", dtype_name(t.dtype), shape_str(t.shape)));
      }
    } else if (!t.is_input) {
      return fail(name_, str("tensor '", t.name, "' has no producer and is no input or constant"));
    }
  }

  for (size_t i = 0; i < ops_.size(); ++i) {
    const Op& op = ops_[i];
    std::string where = str(op_kind_name(op.kind), " '", op.name, "'");
    std::vector<const TensorInfo*> infos;
    for (size_t j = 0; j < op.inputs.size(); ++j) {
      if (!valid(op.inputs[j])) {
        return fail(name_, str(where, ": input ", j, " (id ", op.inputs[j].id,
                               ") is not a tensor"));
      }
      const TensorInfo& in = tensor(op.inputs[j]);
      if (in.producer >= static_cast<int32_t>(i)) {
        return fail(name_, str(where, ": input '", in.name, "' is produced by a later op (",
                               in.producer, " >= ", i, "): ops are not in topological order"));
      }
      infos.push_back(&in);
    }
    for (size_t j = 0; j < op.outputs.size(); ++j) {
      if (!valid(op.outputs[j]) || tensor(op.outputs[j]).producer != static_cast<int32_t>(i)) {
        return fail(name_, str(where, ": output ", j, " is not a tensor it produces"));
      }
    }
    Attrs attrs = op.attrs;
    std::vector<InferContext::Out> outs;
    Status s = infer_op(op, infos, attrs, symbols_, outs);
    if (!s.ok()) return fail(name_, s.message());
    if (outs.size() != op.outputs.size()) {
      return fail(name_, str(where, ": has ", op.outputs.size(), " outputs, inference gives ",
                             outs.size()));
    }
    for (size_t j = 0; j < outs.size(); ++j) {
      const TensorInfo& out = tensor(op.outputs[j]);
      if (out.dtype != outs[j].dtype) {
        return fail(name_, str(where, ": output '", out.name, "' is ", dtype_name(out.dtype),
                               ", inference gives ", dtype_name(outs[j].dtype)));
      }
      if (!shapes_equal(out.shape, outs[j].shape)) {
        return fail(name_, str(where, ": output '", out.name, "' has shape ",
                               shape_str(out.shape, names), ", inference gives ",
                               shape_str(outs[j].shape, names)));
      }
    }
  }

  std::set<std::string> output_names;
  for (const Output& o : outputs_) {
    if (!valid(o.tensor)) return fail(name_, str("output '", o.name, "' is not a tensor"));
    if (!output_names.insert(o.name).second) {
      return fail(name_, str("two outputs are named '", o.name, "'"));
    }
  }
  return Status::Ok();
}

namespace {

// An op output keeps its number ("%3") while it has the name addOp gave it; inputs, constants
// and renamed tensors print by name ("%x").
std::string ref(const Network& net, Tensor t) {
  if (!t.valid() || static_cast<size_t>(t.id) >= net.tensors().size()) return "%<invalid>";
  const TensorInfo& info = net.tensor(t);
  if (info.producer >= 0 && static_cast<size_t>(info.producer) < net.ops().size()) {
    const Op& op = net.ops()[static_cast<size_t>(info.producer)];
    std::string auto_name =
        op.outputs.size() == 1 ? op.name : str(op.name, ":", info.output_index);
    if (info.name == auto_name) return "%" + std::to_string(t.id);
  }
  return "%" + info.name;
}

std::string typed(const Network& net, Tensor t, std::span<const std::string> names) {
  const TensorInfo& info = net.tensor(t);
  return ref(net, t) + ":" + dtype_name(info.dtype) + shape_str(info.shape, names);
}

}  // namespace

std::string Network::toString() const {
  const std::vector<std::string> names = symbolNames();
  std::string s = "network '" + name_ + "' {\n";
  for (const SymbolInfo& sym : symbols_) {
    s += str("  symbol ", sym.name, " in [", sym.min, ", ", sym.max, "] opt ", sym.opt, "\n");
  }
  for (Tensor t : inputs_) s += "  input " + typed(*this, t, names) + "\n";
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].isConstant()) {
      s += "  constant " + typed(*this, Tensor{static_cast<int32_t>(i)}, names) + "\n";
    }
  }
  for (const Op& op : ops_) {
    s += "  ";
    for (size_t j = 0; j < op.outputs.size(); ++j) {
      s += (j ? ", " : "") + typed(*this, op.outputs[j], names);
    }
    s += str(" = ", op_kind_name(op.kind), "(");
    for (size_t j = 0; j < op.inputs.size(); ++j) s += (j ? ", " : "") + ref(*this, op.inputs[j]);
    s += ")";
    std::string a = op.attrs.str(names);
    if (!a.empty()) s += " {" + a + "}";
    s += " '" + op.name + "'\n";
  }
  for (const Output& o : outputs_) s += "  output '" + o.name + "' = " + ref(*this, o.tensor) + "\n";
  return s + "}\n";
}

}  // namespace kiln
