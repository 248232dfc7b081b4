#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/attrs.h"
#include "kiln/dtype.h"
#include "kiln/export.h"
#include "kiln/status.h"
#include "kiln/sym_expr.h"

namespace kiln {

enum class OpKind : uint16_t {
#define KILN_OP(id, name) id,
#include "kiln/op_list.inc"
#undef KILN_OP
  kNumOps
};

KILN_API const char* op_kind_name(OpKind kind);  // "conv"
KILN_API Result<OpKind> parse_op_kind(std::string_view name);

// A handle to a tensor of one Network (an index into its tensor table).
struct Tensor {
  int32_t id = -1;
  bool valid() const { return id >= 0; }
  bool operator==(const Tensor&) const = default;
};

// Constant bytes, shared between a network and the networks passes derive from it.
using ConstantBytes = std::shared_ptr<const std::vector<std::byte>>;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  int32_t producer = -1;  // index of the op that makes it; -1 for inputs and constants
  int32_t output_index = 0;  // which output of the producer
  bool is_input = false;
  ConstantBytes constant;  // set for constants: contiguous, row-major, dtype_size * numel bytes
  bool isConstant() const { return constant != nullptr; }
  size_t rank() const { return shape.size(); }
};

struct Op {
  OpKind kind = OpKind::kNumOps;
  std::string name;
  std::vector<Tensor> inputs;
  std::vector<Tensor> outputs;
  Attrs attrs;
};

// A DAG of ops over typed tensors with symbolic shapes (TensorRT's INetworkDefinition in
// spirit). Ops are appended in a topological order. Adding an op runs its dtype and shape
// inference and fails with a message naming the op and the tensor at fault.
class KILN_API Network {
 public:
  explicit Network(std::string name = "network");

  const std::string& name() const { return name_; }

  // Declares an input symbol (a dynamic dimension) with its range.
  Result<SymExpr> addSymbol(const std::string& name, int64_t min, int64_t opt, int64_t max);
  Result<Tensor> addInput(const std::string& name, DType dtype, const Shape& shape);
  // Copies `bytes` (row-major, contiguous); their size must match dtype and dims.
  Result<Tensor> addConstant(const std::string& name, DType dtype, std::span<const int64_t> dims,
                             std::span<const std::byte> bytes);
  Result<Tensor> addConstant(const std::string& name, DType dtype, std::span<const int64_t> dims,
                             ConstantBytes bytes);
  // Adds one op; returns its outputs. `name` defaults to "<op>_<index>".
  Result<std::vector<Tensor>> addOp(OpKind kind, std::vector<Tensor> inputs, Attrs attrs = {},
                                    std::string name = "");
  // addOp for the ops with one output.
  Result<Tensor> add(OpKind kind, std::vector<Tensor> inputs, Attrs attrs = {},
                     std::string name = "");
  Status markOutput(Tensor tensor, const std::string& name);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& tensor(Tensor t) const { return tensors_.at(static_cast<size_t>(t.id)); }
  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<SymbolInfo>& symbols() const { return symbols_; }
  std::vector<std::string> symbolNames() const;
  const std::vector<Tensor>& inputs() const { return inputs_; }
  struct Output {
    std::string name;
    Tensor tensor;
  };
  const std::vector<Output>& outputs() const { return outputs_; }
  Result<Tensor> findTensor(const std::string& name) const;

  // Re-checks every op's inference, the topological order and the bindings. A network that
  // fails this after a pass is a builder bug; the message names the op and tensor.
  Status verify() const;
  // A readable listing: symbols, inputs, one line per op, outputs.
  std::string toString() const;

  // Renames a tensor (passes keep user-facing names on the tensors they rebuild).
  void renameTensor(Tensor t, const std::string& name);
  // Narrows or widens a symbol's range (optimization profiles do this).
  Status setSymbolRange(int32_t id, int64_t min, int64_t opt, int64_t max);

 private:
  Tensor newTensor(TensorInfo info);
  std::string uniqueName(const std::string& base);

  std::string name_;
  std::vector<SymbolInfo> symbols_;
  std::vector<TensorInfo> tensors_;
  std::vector<Op> ops_;
  std::vector<Tensor> inputs_;
  std::vector<Output> outputs_;
};

}  // namespace kiln
