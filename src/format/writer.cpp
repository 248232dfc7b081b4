// write_engine: EnginePlan -> size-prefixed FlatBuffer "KILN" with its checksum patched in.
//
// The writer encodes what it is given: index fields are written as they are and checked by the
// reader, so a builder bug shows up as a file the reader refuses with the field's name. It
// refuses only what the format cannot hold (a constant whose bytes do not match its dtype and
// dims, expressions past the SymExpr limits, a file past FlatBuffers' 2 GiB).

#include <cstring>

#include "format/checksum.h"
#include "format/engine_generated.h"
#include "format/engine_plan.h"
#include "format/sym_expr_codec.h"

namespace kiln::format {
namespace {

namespace fbs = flatbuffers;
using Builder = fbs::FlatBufferBuilder;

// Room for everything but the large payloads (constants, kernels, tactic data), which are
// counted exactly.
constexpr uint64_t kMetadataHeadroom = uint64_t{256} << 20;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

Result<uint64_t> constant_bytes_expected(const Constant& c) {
  if (static_cast<int>(c.dtype) >= kNumDTypes) {
    return invalid_argument("constant '", c.name, "': dtype ", static_cast<int>(c.dtype),
                            " out of range");
  }
  uint64_t n = dtype_size(c.dtype);
  for (int64_t d : c.dims) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      return invalid_argument("constant '", c.name, "': bad dims (dim ", d, ")");
    }
  }
  return n;
}

struct BlobLayout {
  std::vector<uint64_t> offsets;
  uint64_t size = 0;
};

Result<BlobLayout> layout_constants(const EnginePlan& plan) {
  BlobLayout layout;
  for (const Constant& c : plan.constants) {
    KILN_ASSIGN_OR_RETURN(uint64_t expected, constant_bytes_expected(c));
    if (expected != c.bytes.size()) {
      return invalid_argument("constant '", c.name, "': ", c.bytes.size(), " bytes, expected ",
                              expected, " for ", dtype_name(c.dtype), " with ", c.dims.size(),
                              " dims");
    }
    layout.size = align_up(layout.size, kConstantAlignment);
    layout.offsets.push_back(layout.size);
    layout.size += c.bytes.size();
  }
  return layout;
}

Status check_size(const EnginePlan& plan, uint64_t blob_size) {
  uint64_t payload = blob_size;
  for (const GeneratedKernel& k : plan.kernels) payload += k.source.size() + k.cubin.size();
  for (const PlanStep& s : plan.steps) payload += s.tactic_data.size();
  if (payload + kMetadataHeadroom >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return unsupported("engine '", plan.name, "' holds ", payload,
                       " bytes of constants and kernels; an engine file holds at most 2 GiB");
  }
  return Status::Ok();
}

fbs::Offset<fb::Target> write_target(Builder& b, const Target& t) {
  return fb::CreateTarget(b, static_cast<uint8_t>(t.kind), t.sm_major, t.sm_minor,
                          b.CreateString(t.device_name), b.CreateString(t.platform),
                          t.hardware_compatible);
}

Result<fbs::Offset<fb::Attr>> write_attr(Builder& b, SymPoolWriter& pool, const std::string& name,
                                         const AttrValue& value) {
  fb::AttrValue type = static_cast<fb::AttrValue>(value.index() + 1);
  fbs::Offset<void> table;
  switch (value.index()) {
    case 0:
      table = fb::CreateIntAttr(b, std::get<0>(value)).Union();
      break;
    case 1:
      table = fb::CreateDoubleAttr(b, std::get<1>(value)).Union();
      break;
    case 2:
      table = fb::CreateBoolAttr(b, std::get<2>(value)).Union();
      break;
    case 3:
      table = fb::CreateStringAttr(b, b.CreateString(std::get<3>(value))).Union();
      break;
    case 4:
      table = fb::CreateIntsAttr(b, b.CreateVector(std::get<4>(value))).Union();
      break;
    case 5:
      table = fb::CreateDoublesAttr(b, b.CreateVector(std::get<5>(value))).Union();
      break;
    case 6: {
      KILN_ASSIGN_OR_RETURN(int32_t node, pool.add(std::get<6>(value)));
      table = fb::CreateSymAttr(b, node).Union();
      break;
    }
    case 7: {
      KILN_ASSIGN_OR_RETURN(std::vector<int32_t> nodes, pool.add(std::get<7>(value)));
      table = fb::CreateShapeAttr(b, b.CreateVector(nodes)).Union();
      break;
    }
    case 8:
      table = fb::CreateDTypeAttr(b, static_cast<uint8_t>(std::get<8>(value))).Union();
      break;
    default:
      return internal_error("attribute '", name, "': unknown AttrValue alternative");
  }
  return fb::CreateAttr(b, b.CreateString(name), type, table);
}

Result<fbs::Offset<fb::Step>> write_step(Builder& b, SymPoolWriter& pool, const PlanStep& s) {
  std::vector<fbs::Offset<fb::Attr>> attrs;
  for (const auto& [name, value] : s.attrs.values()) {
    auto attr = write_attr(b, pool, name, value);
    if (!attr.ok()) return attr.status().withContext(str("step '", s.name, "'"));
    attrs.push_back(*attr);
  }
  return fb::CreateStep(b, static_cast<uint16_t>(s.kind), b.CreateString(s.name),
                        b.CreateVector(attrs), b.CreateVector(s.inputs), b.CreateVector(s.outputs),
                        s.is_view, b.CreateString(s.tactic), b.CreateVector(s.tactic_data));
}

Result<fbs::Offset<fb::Tensor>> write_tensor(Builder& b, SymPoolWriter& pool, const PlanTensor& t) {
  auto shape = pool.add(t.shape);
  if (!shape.ok()) return shape.status().withContext(str("tensor '", t.name, "'"));
  return fb::CreateTensor(b, b.CreateString(t.name), static_cast<uint8_t>(t.dtype),
                          b.CreateVector(*shape), static_cast<uint8_t>(t.role), t.binding,
                          t.constant, t.view_of, t.arena_offset, t.max_bytes);
}

fbs::Offset<fbs::Vector<fbs::Offset<fb::Binding>>> write_bindings(
    Builder& b, const std::vector<Binding>& bindings) {
  std::vector<fbs::Offset<fb::Binding>> out;
  for (const Binding& x : bindings)
    out.push_back(fb::CreateBinding(b, b.CreateString(x.name), x.tensor));
  return b.CreateVector(out);
}

// The blob goes in first and alone: PreAlign pads so that it starts at a multiple of 256 from
// the end of the buffer, and Finish pads the whole buffer to a multiple of the largest
// alignment used, so it also starts at a multiple of 256 from the front. (PreAlign is what
// ForceVectorAlignment does, minus its debug assert that caps alignment at
// FLATBUFFERS_MAX_ALIGNMENT = 32.)
fbs::Offset<fbs::Vector<uint8_t>> write_blob(Builder& b, const EnginePlan& plan,
                                             const BlobLayout& layout) {
  if (plan.constants.empty()) return 0;
  b.PreAlign(layout.size, kConstantAlignment);
  uint8_t* data = nullptr;
  auto blob = b.CreateUninitializedVector(layout.size, 1, &data);
  std::memset(data, 0, layout.size);
  for (size_t i = 0; i < plan.constants.size(); ++i) {
    const auto& bytes = plan.constants[i].bytes;
    if (!bytes.empty()) std::memcpy(data + layout.offsets[i], bytes.data(), bytes.size());
  }
  return blob;
}

}  // namespace

Result<std::vector<std::byte>> write_engine(const EnginePlan& plan) {
  KILN_ASSIGN_OR_RETURN(BlobLayout layout, layout_constants(plan));
  KILN_RETURN_IF_ERROR(check_size(plan, layout.size));

  Builder b(layout.size + (size_t{64} << 10));
  auto blob = write_blob(b, plan, layout);
  SymPoolWriter pool;

  std::vector<fbs::Offset<fb::Symbol>> symbols;
  for (const SymbolInfo& s : plan.symbols) {
    symbols.push_back(fb::CreateSymbol(b, b.CreateString(s.name), s.min, s.opt, s.max));
  }
  std::vector<fbs::Offset<fb::Tensor>> tensors;
  for (const PlanTensor& t : plan.tensors) {
    KILN_ASSIGN_OR_RETURN(auto tensor, write_tensor(b, pool, t));
    tensors.push_back(tensor);
  }
  std::vector<fbs::Offset<fb::Step>> steps;
  for (const PlanStep& s : plan.steps) {
    KILN_ASSIGN_OR_RETURN(auto step, write_step(b, pool, s));
    steps.push_back(step);
  }
  std::vector<fbs::Offset<fb::Constant>> constants;
  for (size_t i = 0; i < plan.constants.size(); ++i) {
    const Constant& c = plan.constants[i];
    constants.push_back(fb::CreateConstant(b, b.CreateString(c.name), static_cast<uint8_t>(c.dtype),
                                           b.CreateVector(c.dims), layout.offsets[i],
                                           c.bytes.size()));
  }
  std::vector<fbs::Offset<fb::Kernel>> kernels;
  for (const GeneratedKernel& k : plan.kernels) {
    kernels.push_back(fb::CreateKernel(b, b.CreateString(k.name), b.CreateString(k.source),
                                       b.CreateVector(k.cubin)));
  }

  const auto& nodes = pool.nodes();
  auto sym_nodes = b.CreateVectorOfStructs(nodes.data(), nodes.size());
  auto name = b.CreateString(plan.name);
  auto kiln_version = b.CreateString(plan.kiln_version);
  auto build_options = b.CreateString(plan.build_options);
  auto target = write_target(b, plan.target);
  auto inputs = write_bindings(b, plan.inputs);
  auto outputs = write_bindings(b, plan.outputs);

  // A non-default placeholder, so the checksum field is present and can be patched in place.
  constexpr uint64_t kPlaceholder = ~uint64_t{0};
  auto root =
      fb::CreateEngine(b, plan.format_version, kPlaceholder, name, kiln_version, build_options,
                       target, b.CreateVector(symbols), sym_nodes, inputs, outputs,
                       b.CreateVector(tensors), b.CreateVector(steps), b.CreateVector(constants),
                       plan.arena_bytes, b.CreateVector(kernels), blob);
  fb::FinishSizePrefixedEngineBuffer(b, root);

  std::vector<std::byte> file(b.GetSize());
  std::memcpy(file.data(), b.GetBufferPointer(), file.size());
  Status sealed = seal_engine(file);
  if (!sealed.ok()) return internal_error("write_engine: ", sealed.message());
  return file;
}

}  // namespace kiln::format
