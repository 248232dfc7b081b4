#include <vector>

#include "ir/op_def.h"

namespace kiln {
namespace {

Status no_definition(InferContext& ctx) {
  return internal_error("op kind '", op_kind_name(ctx.op.kind), "' has no definition");
}

std::vector<OpDef> build_table() {
  std::vector<OpDef> defs;
  register_elementwise_ops(defs);
  register_reduction_ops(defs);
  register_linalg_ops(defs);
  register_indexing_ops(defs);
  register_shape_ops(defs);
  register_pointwise_ops(defs);
  // Indexed by kind; a kind nobody registered keeps infer == nullptr (a test catches it).
  std::vector<OpDef> table;
  for (size_t k = 0; k < static_cast<size_t>(OpKind::kNumOps); ++k) {
    table.push_back(OpDef{static_cast<OpKind>(k), 0, -1, nullptr, nullptr});
  }
  for (const OpDef& d : defs) {
    if (static_cast<size_t>(d.kind) < table.size()) table[static_cast<size_t>(d.kind)] = d;
  }
  return table;
}

}  // namespace

const OpDef& op_def(OpKind kind) {
  static const std::vector<OpDef> table = build_table();
  static const OpDef invalid{OpKind::kNumOps, 0, -1, nullptr, nullptr};
  size_t k = static_cast<size_t>(kind);
  return k < table.size() ? table[k] : invalid;
}

Status infer_op(const Op& op, std::span<const TensorInfo* const> inputs, Attrs& attrs,
                std::span<const SymbolInfo> symbols, std::vector<InferContext::Out>& outputs) {
  const OpDef& def = op_def(op.kind);
  InferContext ctx{op, std::vector<const TensorInfo*>(inputs.begin(), inputs.end()), attrs,
                   symbols, {}};
  if (!def.infer) {
    if (static_cast<size_t>(op.kind) >= static_cast<size_t>(OpKind::kNumOps)) {
      return invalid_argument("op '", op.name, "' has an invalid kind ",
                              static_cast<int>(op.kind));
    }
    return no_definition(ctx);
  }
  int n = static_cast<int>(inputs.size());
  if (n < def.min_inputs || (def.max_inputs >= 0 && n > def.max_inputs)) {
    std::string expected = def.max_inputs < 0 ? "at least " + std::to_string(def.min_inputs)
                           : def.min_inputs == def.max_inputs
                               ? std::to_string(def.min_inputs)
                               : std::to_string(def.min_inputs) + " to " +
                                     std::to_string(def.max_inputs);
    return ctx.error("takes ", expected, " inputs, got ", n);
  }
  KILN_RETURN_IF_ERROR(def.infer(ctx));
  if (ctx.outputs.empty()) return internal_error(op_kind_name(op.kind), " '", op.name,
                                                 "': inference produced no outputs");
  outputs = std::move(ctx.outputs);
  return Status::Ok();
}

}  // namespace kiln
