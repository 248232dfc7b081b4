// fb::Engine (verified) -> EnginePlan. The FlatBuffers verifier has bounds-checked every offset,
// so this file reads fields freely; what it checks is what the verifier cannot know: indices
// into the SymExpr pool, union types, and constants' places in the blob.

#include <cstring>

#include "format/plan_decoder.h"
#include "format/sym_expr_codec.h"

namespace kiln::format {
namespace {

namespace fbs = flatbuffers;

Status corrupt(const std::string& message) { return Status(StatusCode::kCorruptFile, message); }

std::string text(const fbs::String* s) { return s == nullptr ? std::string() : s->str(); }

// The verifier checks a vector's length prefix for 4-byte alignment but not its elements, so
// 8-byte elements may sit misaligned in a hostile file: copy them out bytewise.
template <typename T>
std::vector<T> values(const fbs::Vector<T>* v) {
  std::vector<T> out;
  if (v == nullptr) return out;
  out.resize(v->size());
  if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
fbs::uoffset_t count(const fbs::Vector<T>* v) {
  return v == nullptr ? 0 : v->size();
}

Result<Shape> decode_shape(const fbs::Vector<int32_t>* nodes, const std::vector<SymExpr>& pool,
                           const std::string& field) {
  Shape shape;
  for (fbs::uoffset_t i = 0; i < count(nodes); ++i) {
    KILN_ASSIGN_OR_RETURN(SymExpr dim, sym_at(pool, nodes->Get(i), str(field, "[", i, "]")));
    shape.push_back(std::move(dim));
  }
  return shape;
}

Result<AttrValue> decode_attr_value(const fb::Attr& attr, const std::vector<SymExpr>& pool,
                                    const std::string& field) {
  // Unknown union types and a type without its table pass the verifier unread.
  if (attr.value() == nullptr) return corrupt(str(field, ": no value"));
  switch (attr.value_type()) {
    case fb::AttrValue::IntAttr:
      return AttrValue(attr.value_as_IntAttr()->value());
    case fb::AttrValue::DoubleAttr:
      return AttrValue(attr.value_as_DoubleAttr()->value());
    case fb::AttrValue::BoolAttr:
      return AttrValue(attr.value_as_BoolAttr()->value());
    case fb::AttrValue::StringAttr:
      return AttrValue(text(attr.value_as_StringAttr()->value()));
    case fb::AttrValue::IntsAttr:
      return AttrValue(values(attr.value_as_IntsAttr()->values()));
    case fb::AttrValue::DoublesAttr:
      return AttrValue(values(attr.value_as_DoublesAttr()->values()));
    case fb::AttrValue::SymAttr: {
      KILN_ASSIGN_OR_RETURN(SymExpr e, sym_at(pool, attr.value_as_SymAttr()->node(), field));
      return AttrValue(std::move(e));
    }
    case fb::AttrValue::ShapeAttr: {
      KILN_ASSIGN_OR_RETURN(Shape s, decode_shape(attr.value_as_ShapeAttr()->nodes(), pool, field));
      return AttrValue(std::move(s));
    }
    case fb::AttrValue::DTypeAttr: {
      uint8_t dtype = attr.value_as_DTypeAttr()->value();
      if (dtype >= kNumDTypes) return corrupt(str(field, ": dtype ", int{dtype}, " out of range"));
      return AttrValue(static_cast<DType>(dtype));
    }
    default:
      return corrupt(str(field, ": attribute type ", static_cast<int>(attr.value_type()),
                         " out of range (1..9)"));
  }
}

Result<Attrs> decode_attrs(const fbs::Vector<fbs::Offset<fb::Attr>>* attrs,
                           const std::vector<SymExpr>& pool, const std::string& step) {
  Attrs out;
  for (fbs::uoffset_t i = 0; i < count(attrs); ++i) {
    const fb::Attr& attr = *attrs->Get(i);
    if (attr.name() == nullptr) return corrupt(str(step, ".attrs[", i, "]: no name"));
    const std::string name = attr.name()->str();
    const std::string field = str(step, " attribute '", name, "'");
    if (out.has(name)) return corrupt(str(field, " appears twice"));
    KILN_ASSIGN_OR_RETURN(AttrValue value, decode_attr_value(attr, pool, field));
    out.set(name, std::move(value));
  }
  return out;
}

Result<PlanStep> decode_step(const fb::Step& s, size_t index, const std::vector<SymExpr>& pool) {
  PlanStep step;
  step.kind = static_cast<OpKind>(s.kind());
  step.name = text(s.name());
  KILN_ASSIGN_OR_RETURN(step.attrs,
                        decode_attrs(s.attrs(), pool, str("steps[", index, "] '", step.name, "'")));
  step.inputs = values(s.inputs());
  step.outputs = values(s.outputs());
  step.is_view = s.is_view();
  step.tactic = text(s.tactic());
  step.tactic_data = values(s.tactic_data());
  return step;
}

Result<PlanTensor> decode_tensor(const fb::Tensor& t, size_t index,
                                 const std::vector<SymExpr>& pool) {
  PlanTensor tensor;
  tensor.name = text(t.name());
  tensor.dtype = static_cast<DType>(t.dtype());
  KILN_ASSIGN_OR_RETURN(
      tensor.shape,
      decode_shape(t.shape(), pool, str("tensors[", index, "] '", tensor.name, "'.shape")));
  tensor.role = static_cast<TensorRole>(t.role());
  tensor.binding = t.binding();
  tensor.constant = t.constant();
  tensor.view_of = t.view_of();
  tensor.arena_offset = t.arena_offset();
  tensor.max_bytes = t.max_bytes();
  return tensor;
}

std::vector<Binding> decode_bindings(const fbs::Vector<fbs::Offset<fb::Binding>>* v) {
  std::vector<Binding> out;
  for (fbs::uoffset_t i = 0; i < count(v); ++i) {
    out.push_back(Binding{text(v->Get(i)->name()), v->Get(i)->tensor()});
  }
  return out;
}

Result<std::vector<Constant>> decode_constants(const fb::Engine& e,
                                               std::span<const std::byte> file) {
  std::vector<Constant> out;
  const auto* blob = e.constant_blob();
  const uint64_t blob_size = count(blob);
  if (blob != nullptr) {
    const auto* start = reinterpret_cast<const uint8_t*>(file.data());
    if (static_cast<size_t>(blob->data() - start) % kConstantAlignment != 0) {
      return corrupt(str("constant_blob: not ", kConstantAlignment,
                         "-byte aligned from the start of the file"));
    }
  }
  for (fbs::uoffset_t i = 0; i < count(e.constants()); ++i) {
    const fb::Constant& c = *e.constants()->Get(i);
    Constant constant;
    constant.name = text(c.name());
    constant.dtype = static_cast<DType>(c.dtype());
    constant.dims = values(c.dims());
    const std::string field = str("constants[", i, "] '", constant.name, "'");
    if (c.offset() % kConstantAlignment != 0) {
      return corrupt(
          str(field, ": offset ", c.offset(), " not a multiple of ", kConstantAlignment));
    }
    if (c.offset() > blob_size || c.size() > blob_size - c.offset()) {
      return corrupt(str(field, ": bytes [", c.offset(), ", +", c.size(),
                         ") outside the constant blob of ", blob_size, " bytes"));
    }
    if (c.size() > 0) {
      const auto* bytes = reinterpret_cast<const std::byte*>(blob->data()) + c.offset();
      constant.bytes = std::span<const std::byte>(bytes, static_cast<size_t>(c.size()));
    }
    out.push_back(std::move(constant));
  }
  return out;
}

}  // namespace

Result<EnginePlan> decode_plan(const fb::Engine& e, std::span<const std::byte> file) {
  EnginePlan plan;
  plan.format_version = e.format_version();
  plan.name = text(e.name());
  plan.kiln_version = text(e.kiln_version());
  plan.build_options = text(e.build_options());
  if (const fb::Target* t = e.target()) {
    plan.target.kind = static_cast<DeviceKind>(t->kind());
    plan.target.sm_major = t->sm_major();
    plan.target.sm_minor = t->sm_minor();
    plan.target.device_name = text(t->device_name());
    plan.target.platform = text(t->platform());
    plan.target.hardware_compatible = t->hardware_compatible();
  }
  for (fbs::uoffset_t i = 0; i < count(e.symbols()); ++i) {
    const fb::Symbol& s = *e.symbols()->Get(i);
    plan.symbols.push_back(SymbolInfo{text(s.name()), s.min(), s.opt(), s.max()});
  }
  KILN_ASSIGN_OR_RETURN(std::vector<SymExpr> pool,
                        decode_sym_pool(e.sym_nodes(), plan.symbols.size()));
  plan.inputs = decode_bindings(e.inputs());
  plan.outputs = decode_bindings(e.outputs());
  for (fbs::uoffset_t i = 0; i < count(e.tensors()); ++i) {
    KILN_ASSIGN_OR_RETURN(PlanTensor t, decode_tensor(*e.tensors()->Get(i), i, pool));
    plan.tensors.push_back(std::move(t));
  }
  for (fbs::uoffset_t i = 0; i < count(e.steps()); ++i) {
    KILN_ASSIGN_OR_RETURN(PlanStep s, decode_step(*e.steps()->Get(i), i, pool));
    plan.steps.push_back(std::move(s));
  }
  KILN_ASSIGN_OR_RETURN(plan.constants, decode_constants(e, file));
  plan.arena_bytes = e.arena_bytes();
  for (fbs::uoffset_t i = 0; i < count(e.kernels()); ++i) {
    const fb::Kernel& k = *e.kernels()->Get(i);
    plan.kernels.push_back(GeneratedKernel{text(k.name()), text(k.source()), values(k.cubin())});
  }
  return plan;
}

}  // namespace kiln::format
