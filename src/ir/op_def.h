#pragma once

#include <span>
#include <string>
#include <vector>

#include "kiln/network.h"

namespace kiln {

// What an op's inference sees: its inputs' dtypes and shapes and its attributes (which it may
// normalize in place: negative dims made positive, defaults filled in). It fills `outputs`.
struct InferContext {
  const Op& op;                              // kind, name, input handles
  std::vector<const TensorInfo*> inputs;     // one per op.inputs
  Attrs& attrs;                              // normalized in place
  std::span<const SymbolInfo> symbols;       // for range checks on symbolic dims
  struct Out {
    DType dtype;
    Shape shape;
  };
  std::vector<Out> outputs;

  // An invalid-argument Status prefixed with the op: "conv 'layer1.conv1': <message>".
  template <typename... Args>
  Status error(const Args&... args) const {
    return invalid_argument(op_kind_name(op.kind), " '", op.name, "': ", args...);
  }
  // The name of input i, for messages.
  const std::string& inputName(size_t i) const { return inputs[i]->name; }
};

// A strided view of concrete dims, in elements.
struct ViewLayout {
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};

// Computes the output layout of a view op from its input's layout. Returns false when the
// input's layout cannot be viewed that way (reshape of a non-contiguous tensor): the op then
// runs as a kernel into its own buffer. `bindings` are the symbol values of this execution.
// `out_index` selects the output for multi-output views (split).
using ViewFn = bool (*)(const ViewLayout& in, const Attrs& attrs,
                        std::span<const int64_t> bindings, int out_index, ViewLayout& out);

struct OpDef {
  OpKind kind;
  int min_inputs;
  int max_inputs;  // -1: any number (concat)
  Status (*infer)(InferContext& ctx);
  ViewFn view = nullptr;  // set for ops that can alias their input
};

// The definition of `kind` (every OpKind has one; checked at startup by a test).
const OpDef& op_def(OpKind kind);

// Runs the definition's arity check and inference. Used by Network::addOp and verify().
Status infer_op(const Op& op, std::span<const TensorInfo* const> inputs, Attrs& attrs,
                std::span<const SymbolInfo> symbols, std::vector<InferContext::Out>& outputs);

// Registration: each family file defines one of these; op_table.cpp calls them all.
void register_elementwise_ops(std::vector<OpDef>& table);
void register_reduction_ops(std::vector<OpDef>& table);
void register_linalg_ops(std::vector<OpDef>& table);
void register_indexing_ops(std::vector<OpDef>& table);
void register_shape_ops(std::vector<OpDef>& table);
void register_pointwise_ops(std::vector<OpDef>& table);

// Shared inference helpers (src/ir/ops/infer_util.cpp).
// Normalizes dim in [-rank, rank) to [0, rank) or fails naming the op.
Result<int64_t> normalize_dim(const InferContext& ctx, int64_t dim, int64_t rank);
// Numpy broadcasting over symbolic shapes. Two dims broadcast when equal (structurally), or one
// is the constant 1; two different symbolic dims are assumed equal (the runtime checks).
Result<Shape> broadcast_shapes(const InferContext& ctx, std::span<const Shape* const> shapes);

}  // namespace kiln
