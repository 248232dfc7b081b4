#pragma once

// The program of a fused `pointwise` op (op_list.inc): a straight-line list of elementwise
// instructions over registers. Registers 0..num_inputs-1 hold the op's inputs (broadcast to the
// output shape); instruction i writes register num_inputs + i. Shared by the IR (verification),
// the fusion pass (encoding), the CPU interpreter and the CUDA code generator.
//
// Attributes:
//   code:     str    space-separated instructions: "unary.<fn>", "binary.<fn>", "where",
//                    "cast.<dtype name>", "clamp".
//   operands: ints   3 register indices per instruction (-1 where the instruction takes fewer).
//   params:   floats 2 per instruction: unary alpha (then 0); clamp min, max (+-inf = absent).
//   outputs:  ints   the register each op output takes (distinct, 1..kMaxPointwiseOutputs).
//
// Numerics: every register has the dtype the unfused op would have produced (computed here by
// running that op's own inference), so fusing changes no dtype rule. Values are computed in
// float32 and rounded to the register's dtype after every instruction, exactly where the unfused
// network stored a float16/bfloat16 tensor; bool registers hold 0 or 1. Only float32, float16,
// bfloat16 and bool registers are allowed (integer chains are not fused).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/attrs.h"
#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln {

inline constexpr int kMaxPointwiseInputs = 16;
inline constexpr int kMaxPointwiseOutputs = 4;
inline constexpr int kMaxPointwiseInstructions = 256;

enum class PwOpcode : uint8_t { kUnary, kBinary, kWhere, kCast, kClamp };

// Fn names in the order of PointwiseInstr::fn (the same sets as the unary/binary ops).
inline constexpr std::array<std::string_view, 30> kPwUnaryFns = {
    "neg",   "abs",      "exp",       "log",        "sqrt",       "rsqrt",       "sin",
    "cos",   "tanh",     "sigmoid",   "relu",       "gelu",       "gelu_tanh",   "silu",
    "erf",   "reciprocal", "floor",   "ceil",       "round",      "sign",        "log1p",
    "expm1", "hardswish", "hardsigmoid", "leaky_relu", "elu",     "softplus",    "logical_not",
    "bitwise_not", "isnan"};
inline constexpr std::array<std::string_view, 21> kPwBinaryFns = {
    "add",  "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder", "eq",
    "ne",   "lt",  "le",  "gt",  "ge",  "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor"};

struct PointwiseInstr {
  PwOpcode opcode = PwOpcode::kUnary;
  int fn = 0;  // index into kPwUnaryFns / kPwBinaryFns (unary, binary)
  std::array<int32_t, 3> operands = {-1, -1, -1};
  std::array<double, 2> params = {0.0, 0.0};
  DType dtype = DType::kFloat32;  // the result's dtype (cast: the target dtype)
};

struct PointwiseProgram {
  int num_inputs = 0;
  std::vector<PointwiseInstr> code;
  std::vector<int32_t> outputs;
  std::vector<DType> reg_dtypes;  // num_inputs + code.size(), filled by decode

  int numRegisters() const { return num_inputs + static_cast<int>(code.size()); }
  // "unary.gelu", "cast.float16", ...
  static std::string token(const PointwiseInstr& instr);
};

// Register dtypes a program may use.
bool pointwise_dtype_ok(DType dtype);

// Decodes and checks the attributes against the inputs' dtypes: unknown instruction or fn, wrong
// operand count, register index out of range or not yet written, dtype rules of the underlying
// op, bad outputs. Messages name the instruction ("instruction 3 (binary.add): ..."); the caller
// prefixes the op.
Result<PointwiseProgram> decode_pointwise(const Attrs& attrs, std::span<const DType> input_dtypes);

// Writes `program`'s code, operands, params and outputs into `attrs`.
void encode_pointwise(const PointwiseProgram& program, Attrs& attrs);

}  // namespace kiln
