#include "kiln/network.h"

#include <algorithm>
#include <cstring>

#include "ir/op_def.h"

namespace kiln {
namespace {

constexpr const char* kOpNames[] = {
#define KILN_OP(id, name) name,
#include "kiln/op_list.inc"
#undef KILN_OP
};

bool valid_range(int64_t min, int64_t opt, int64_t max) {
  return min >= 0 && min <= opt && opt <= max;
}

}  // namespace

const char* op_kind_name(OpKind kind) {
  size_t k = static_cast<size_t>(kind);
  return k < static_cast<size_t>(OpKind::kNumOps) ? kOpNames[k] : "invalid_op";
}

Result<OpKind> parse_op_kind(std::string_view name) {
  for (size_t k = 0; k < static_cast<size_t>(OpKind::kNumOps); ++k) {
    if (name == kOpNames[k]) return static_cast<OpKind>(k);
  }
  return invalid_argument("unknown op '", name, "'");
}

Network::Network(std::string name) : name_(std::move(name)) {}

std::vector<std::string> Network::symbolNames() const {
  std::vector<std::string> names;
  names.reserve(symbols_.size());
  for (const SymbolInfo& s : symbols_) names.push_back(s.name);
  return names;
}

Result<SymExpr> Network::addSymbol(const std::string& name, int64_t min, int64_t opt,
                                   int64_t max) {
  if (name.empty()) return invalid_argument("network '", name_, "': a symbol needs a name");
  for (const SymbolInfo& s : symbols_) {
    if (s.name == name) return invalid_argument("symbol '", name, "' is already declared");
  }
  if (!valid_range(min, opt, max)) {
    return invalid_argument("symbol '", name, "': range needs 0 <= min <= opt <= max, got min=",
                            min, " opt=", opt, " max=", max);
  }
  symbols_.push_back({name, min, opt, max});
  return SymExpr::symbol(static_cast<int32_t>(symbols_.size() - 1));
}

Tensor Network::newTensor(TensorInfo info) {
  tensors_.push_back(std::move(info));
  return Tensor{static_cast<int32_t>(tensors_.size() - 1)};
}

std::string Network::uniqueName(const std::string& base) {
  auto taken = [&](const std::string& n) {
    for (const TensorInfo& t : tensors_) {
      if (t.name == n) return true;
    }
    for (const Op& op : ops_) {
      if (op.name == n) return true;
    }
    return false;
  };
  if (!taken(base)) return base;
  for (int i = 1;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (!taken(candidate)) return candidate;
  }
}

Result<Tensor> Network::addInput(const std::string& name, DType dtype, const Shape& shape) {
  if (name.empty()) return invalid_argument("network '", name_, "': an input needs a name");
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) return invalid_argument("input '", name, "': the name is already taken");
  }
  if (static_cast<int>(dtype) >= kNumDTypes) {
    return invalid_argument("input '", name, "': invalid dtype ", static_cast<int>(dtype));
  }
  std::vector<std::string> names = symbolNames();
  for (size_t i = 0; i < shape.size(); ++i) {
    const SymExpr& d = shape[i];
    if (d.isConstant() && d.constant() < 0) {
      return invalid_argument("input '", name, "': dim ", i, " is ", d.constant(),
                              ", must be >= 0");
    }
    std::vector<int32_t> ids;
    d.collectSymbols(ids);
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= symbols_.size()) {
        return invalid_argument("input '", name, "': dim ", i, " (", d.str(names),
                                ") uses symbol s", id, ", which is not declared (addSymbol)");
      }
    }
  }
  TensorInfo info;
  info.name = name;
  info.dtype = dtype;
  info.shape = shape;
  info.is_input = true;
  Tensor t = newTensor(std::move(info));
  inputs_.push_back(t);
  return t;
}

Result<Tensor> Network::addConstant(const std::string& name, DType dtype,
                                    std::span<const int64_t> dims,
                                    std::span<const std::byte> bytes) {
  return addConstant(name, dtype, dims,
                     std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end()));
}

Result<Tensor> Network::addConstant(const std::string& name, DType dtype,
                                    std::span<const int64_t> dims, ConstantBytes bytes) {
  std::string base = name.empty() ? "constant" : name;
  if (static_cast<int>(dtype) >= kNumDTypes) {
    return invalid_argument("constant '", base, "': invalid dtype ", static_cast<int>(dtype));
  }
  size_t numel = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      return invalid_argument("constant '", base, "': dim ", i, " is ", dims[i], ", must be >= 0");
    }
    numel *= static_cast<size_t>(dims[i]);
  }
  size_t expected = numel * dtype_size(dtype);
  size_t got = bytes ? bytes->size() : 0;
  if (got != expected) {
    return invalid_argument("constant '", base, "': ", dtype_name(dtype),
                            shape_str(shape_of(dims)), " needs ", expected, " bytes, got ", got);
  }
  if (!bytes) bytes = std::make_shared<const std::vector<std::byte>>();
  TensorInfo info;
  info.name = uniqueName(base);
  info.dtype = dtype;
  info.shape = shape_of(dims);
  info.constant = std::move(bytes);
  return newTensor(std::move(info));
}

Result<std::vector<Tensor>> Network::addOp(OpKind kind, std::vector<Tensor> inputs, Attrs attrs,
                                           std::string name) {
  if (static_cast<size_t>(kind) >= static_cast<size_t>(OpKind::kNumOps)) {
    return invalid_argument("network '", name_, "': invalid op kind ", static_cast<int>(kind));
  }
  Op op;
  op.kind = kind;
  op.name = name.empty() ? str(op_kind_name(kind), "_", ops_.size()) : name;
  op.name = uniqueName(op.name);
  std::vector<const TensorInfo*> infos;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].valid() || static_cast<size_t>(inputs[i].id) >= tensors_.size()) {
      return invalid_argument(op_kind_name(kind), " '", op.name, "': input ", i, " (id ",
                              inputs[i].id, ") is not a tensor of network '", name_, "'");
    }
    infos.push_back(&tensors_[static_cast<size_t>(inputs[i].id)]);
  }
  op.inputs = std::move(inputs);
  std::vector<InferContext::Out> outs;
  KILN_RETURN_IF_ERROR(infer_op(op, infos, attrs, symbols_, outs));
  op.attrs = std::move(attrs);
  // A multi-output op's tensors are "<op>:<i>"; make sure none of them is taken either.
  if (outs.size() > 1) {
    for (bool clash = true; clash;) {
      clash = false;
      for (size_t i = 0; i < outs.size() && !clash; ++i) {
        std::string n = str(op.name, ":", i);
        clash = std::any_of(tensors_.begin(), tensors_.end(),
                            [&](const TensorInfo& t) { return t.name == n; });
      }
      if (clash) op.name = uniqueName(op.name + "_");
    }
  }
  int32_t op_index = static_cast<int32_t>(ops_.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    TensorInfo info;
    info.name = outs.size() == 1 ? op.name : str(op.name, ":", i);
    info.dtype = outs[i].dtype;
    info.shape = std::move(outs[i].shape);
    info.producer = op_index;
    info.output_index = static_cast<int32_t>(i);
    op.outputs.push_back(newTensor(std::move(info)));
  }
  ops_.push_back(std::move(op));
  return ops_.back().outputs;
}

Result<Tensor> Network::add(OpKind kind, std::vector<Tensor> inputs, Attrs attrs,
                            std::string name) {
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs,
                        addOp(kind, std::move(inputs), std::move(attrs), std::move(name)));
  if (outs.size() != 1) {
    // Undo the op (it and its outputs were appended last) so a failed call changes nothing.
    std::string op_name = ops_.back().name;
    tensors_.resize(tensors_.size() - outs.size());
    ops_.pop_back();
    return invalid_argument(op_kind_name(kind), " '", op_name, "' has ", outs.size(),
                            " outputs; use addOp");
  }
  return outs[0];
}

Status Network::markOutput(Tensor tensor, const std::string& name) {
  if (name.empty()) return invalid_argument("network '", name_, "': an output needs a name");
  if (!tensor.valid() || static_cast<size_t>(tensor.id) >= tensors_.size()) {
    return invalid_argument("output '", name, "': tensor id ", tensor.id,
                            " is not a tensor of network '", name_, "'");
  }
  for (const Output& o : outputs_) {
    if (o.name == name) return invalid_argument("output '", name, "' is already marked");
  }
  outputs_.push_back({name, tensor});
  return Status::Ok();
}

Result<Tensor> Network::findTensor(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].name == name) return Tensor{static_cast<int32_t>(i)};
  }
  return not_found("network '", name_, "' has no tensor '", name, "'");
}

void Network::renameTensor(Tensor t, const std::string& name) {
  if (t.valid() && static_cast<size_t>(t.id) < tensors_.size()) {
    tensors_[static_cast<size_t>(t.id)].name = name;
  }
}

Status Network::setSymbolRange(int32_t id, int64_t min, int64_t opt, int64_t max) {
  if (id < 0 || static_cast<size_t>(id) >= symbols_.size()) {
    return invalid_argument("network '", name_, "' has no symbol s", id);
  }
  SymbolInfo& s = symbols_[static_cast<size_t>(id)];
  if (!valid_range(min, opt, max)) {
    return invalid_argument("symbol '", s.name, "': range needs 0 <= min <= opt <= max, got min=",
                            min, " opt=", opt, " max=", max);
  }
  s.min = min;
  s.opt = opt;
  s.max = max;
  return Status::Ok();
}

}  // namespace kiln
