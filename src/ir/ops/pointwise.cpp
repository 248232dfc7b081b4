// pointwise: a fused chain of elementwise ops (see ir/pointwise_program.h for the program).
#include <cmath>
#include <sstream>

#include "ir/ops/infer_util.h"
#include "ir/pointwise_program.h"

namespace kiln {
namespace {

template <typename Table>
int find_fn(const Table& table, std::string_view name) {
  for (size_t i = 0; i < table.size(); ++i)
    if (table[i] == name) return static_cast<int>(i);
  return -1;
}

int arity(PwOpcode op) {
  switch (op) {
    case PwOpcode::kBinary: return 2;
    case PwOpcode::kWhere: return 3;
    default: return 1;
  }
}

// The result dtype of one instruction, by the underlying op's own inference (so the dtype rules
// and the fn checks are exactly the unfused op's).
Result<DType> instruction_dtype(const PointwiseInstr& in, std::span<const DType> regs) {
  Op op;
  Attrs attrs;
  switch (in.opcode) {
    case PwOpcode::kUnary:
      op.kind = OpKind::kUnary;
      attrs.set("fn", std::string(kPwUnaryFns[static_cast<size_t>(in.fn)]));
      attrs.set("alpha", in.params[0]);
      break;
    case PwOpcode::kBinary:
      op.kind = OpKind::kBinary;
      attrs.set("fn", std::string(kPwBinaryFns[static_cast<size_t>(in.fn)]));
      break;
    case PwOpcode::kWhere:
      op.kind = OpKind::kWhere;
      break;
    case PwOpcode::kCast:
      op.kind = OpKind::kCast;
      attrs.set("dtype", in.dtype);
      break;
    case PwOpcode::kClamp:
      op.kind = OpKind::kClamp;
      attrs.set("min", in.params[0]);
      attrs.set("max", in.params[1]);
      break;
  }
  op.name = "instruction";
  std::vector<TensorInfo> infos;
  for (int k = 0; k < arity(in.opcode); ++k) {
    TensorInfo t;
    t.name = "r" + std::to_string(in.operands[static_cast<size_t>(k)]);
    t.dtype = regs[static_cast<size_t>(in.operands[static_cast<size_t>(k)])];
    infos.push_back(std::move(t));
  }
  std::vector<const TensorInfo*> ptrs;
  for (const TensorInfo& t : infos) ptrs.push_back(&t);
  std::vector<InferContext::Out> outs;
  Status s = infer_op(op, ptrs, attrs, {}, outs);
  if (!s.ok()) {
    // Drop the "<kind> 'instruction': " prefix: the caller names the instruction.
    std::string msg = s.message();
    auto pos = msg.find("'instruction': ");
    return invalid_argument(pos == std::string::npos ? msg : msg.substr(pos + 15));
  }
  return outs[0].dtype;
}

Result<PointwiseInstr> parse_token(const std::string& tok) {
  PointwiseInstr in;
  auto dot = tok.find('.');
  std::string head = tok.substr(0, dot), tail = dot == std::string::npos ? "" : tok.substr(dot + 1);
  if (head == "unary" || head == "binary") {
    bool unary = head == "unary";
    in.opcode = unary ? PwOpcode::kUnary : PwOpcode::kBinary;
    in.fn = unary ? find_fn(kPwUnaryFns, tail) : find_fn(kPwBinaryFns, tail);
    if (in.fn < 0) return invalid_argument("unknown ", head, " fn '", tail, "'");
  } else if (head == "cast") {
    in.opcode = PwOpcode::kCast;
    auto d = parse_dtype(tail);
    if (!d.ok()) return invalid_argument("cast to unknown dtype '", tail, "'");
    in.dtype = *d;
  } else if (tok == "where") {
    in.opcode = PwOpcode::kWhere;
  } else if (tok == "clamp") {
    in.opcode = PwOpcode::kClamp;
  } else {
    return invalid_argument("unknown instruction '", tok,
                            "' (expected unary.<fn>, binary.<fn>, where, cast.<dtype>, clamp)");
  }
  return in;
}

Status infer_pointwise(InferContext& ctx) {
  std::vector<DType> dtypes;
  for (const TensorInfo* t : ctx.inputs) dtypes.push_back(t->dtype);
  auto program = decode_pointwise(ctx.attrs, dtypes);
  if (!program.ok()) return ctx.error(program.status().message());
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (!pointwise_dtype_ok(dtypes[i]))
      return ctx.error("input '", ctx.inputName(i), "' is ", dtype_name(dtypes[i]),
                       "; pointwise takes float32, float16, bfloat16 or bool");
  }
  std::vector<size_t> all(ctx.inputs.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  KILN_ASSIGN_OR_RETURN(Shape shape, broadcast_inputs(ctx, all));
  for (int32_t r : program->outputs)
    ctx.outputs.push_back({program->reg_dtypes[static_cast<size_t>(r)], shape});
  return Status::Ok();
}

}  // namespace

bool pointwise_dtype_ok(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kBool;
}

std::string PointwiseProgram::token(const PointwiseInstr& in) {
  switch (in.opcode) {
    case PwOpcode::kUnary: return "unary." + std::string(kPwUnaryFns[static_cast<size_t>(in.fn)]);
    case PwOpcode::kBinary:
      return "binary." + std::string(kPwBinaryFns[static_cast<size_t>(in.fn)]);
    case PwOpcode::kWhere: return "where";
    case PwOpcode::kCast: return std::string("cast.") + dtype_name(in.dtype);
    case PwOpcode::kClamp: return "clamp";
  }
  return "?";
}

Result<PointwiseProgram> decode_pointwise(const Attrs& attrs, std::span<const DType> inputs) {
  PointwiseProgram p;
  p.num_inputs = static_cast<int>(inputs.size());
  if (p.num_inputs < 1 || p.num_inputs > kMaxPointwiseInputs)
    return invalid_argument("takes 1 to ", kMaxPointwiseInputs, " inputs, got ", p.num_inputs);
  const auto* code = attrs.find<std::string>("code");
  const auto* operands = attrs.find<std::vector<int64_t>>("operands");
  const auto* params = attrs.find<std::vector<double>>("params");
  const auto* outputs = attrs.find<std::vector<int64_t>>("outputs");
  if (!code || !operands || !params || !outputs)
    return invalid_argument("needs attributes code:str, operands:ints, params:floats and outputs:ints");
  std::istringstream tokens(*code);
  std::string tok;
  while (tokens >> tok) {
    if (p.code.size() >= static_cast<size_t>(kMaxPointwiseInstructions))
      return invalid_argument("more than ", kMaxPointwiseInstructions, " instructions");
    auto in = parse_token(tok);
    if (!in.ok()) return invalid_argument("instruction ", p.code.size(), ": ", in.status().message());
    p.code.push_back(*in);
  }
  if (p.code.empty()) return invalid_argument("has an empty program");
  if (operands->size() != 3 * p.code.size() || params->size() != 2 * p.code.size())
    return invalid_argument("has ", p.code.size(), " instructions but ", operands->size(),
                            " operands (expected 3 each) and ", params->size(),
                            " params (expected 2 each)");
  p.reg_dtypes.assign(inputs.begin(), inputs.end());
  for (size_t i = 0; i < p.code.size(); ++i) {
    PointwiseInstr& in = p.code[i];
    const std::string what = str("instruction ", i, " (", PointwiseProgram::token(in), ")");
    const int64_t next = p.num_inputs + static_cast<int64_t>(i);
    for (int k = 0; k < 3; ++k) {
      int64_t r = (*operands)[3 * i + static_cast<size_t>(k)];
      if (k < arity(in.opcode) ? (r < 0 || r >= next) : r != -1)
        return invalid_argument(what, ": operand ", k, " is register ", r,
                                k < arity(in.opcode)
                                    ? str(", expected one of r0..r", next - 1, " (inputs and earlier results)")
                                    : std::string(", expected -1 (unused)"));
      in.operands[static_cast<size_t>(k)] = static_cast<int32_t>(r);
    }
    in.params = {(*params)[2 * i], (*params)[2 * i + 1]};
    if (in.opcode == PwOpcode::kClamp && in.params[0] > in.params[1])
      return invalid_argument(what, ": min ", in.params[0], " is above max ", in.params[1]);
    for (int k = 0; k < arity(in.opcode); ++k) {
      DType d = p.reg_dtypes[static_cast<size_t>(in.operands[static_cast<size_t>(k)])];
      if (!pointwise_dtype_ok(d))
        return invalid_argument(what, ": register r", in.operands[static_cast<size_t>(k)], " is ",
                                dtype_name(d), "; pointwise registers are float32, float16, bfloat16 or bool");
    }
    auto dtype = instruction_dtype(in, p.reg_dtypes);
    if (!dtype.ok()) return invalid_argument(what, ": ", dtype.status().message());
    if (!pointwise_dtype_ok(*dtype))
      return invalid_argument(what, ": gives ", dtype_name(*dtype),
                              "; pointwise registers are float32, float16, bfloat16 or bool");
    in.dtype = *dtype;
    p.reg_dtypes.push_back(*dtype);
  }
  if (outputs->empty() || outputs->size() > static_cast<size_t>(kMaxPointwiseOutputs))
    return invalid_argument("has ", outputs->size(), " outputs, expected 1 to ", kMaxPointwiseOutputs);
  for (size_t o = 0; o < outputs->size(); ++o) {
    int64_t r = (*outputs)[o];
    if (r < p.num_inputs || r >= p.numRegisters())
      return invalid_argument("output ", o, " is register ", r, ", expected an instruction result r",
                              p.num_inputs, "..r", p.numRegisters() - 1);
    for (size_t q = 0; q < o; ++q)
      if ((*outputs)[q] == r) return invalid_argument("outputs ", q, " and ", o, " are both register ", r);
    p.outputs.push_back(static_cast<int32_t>(r));
  }
  return p;
}

void encode_pointwise(const PointwiseProgram& p, Attrs& attrs) {
  std::string code;
  std::vector<int64_t> operands, outputs(p.outputs.begin(), p.outputs.end());
  std::vector<double> params;
  for (const PointwiseInstr& in : p.code) {
    code += (code.empty() ? "" : " ") + PointwiseProgram::token(in);
    for (int32_t r : in.operands) operands.push_back(r);
    params.push_back(in.params[0]);
    params.push_back(in.params[1]);
  }
  attrs.set("code", code);
  attrs.set("operands", operands);
  attrs.set("params", params);
  attrs.set("outputs", outputs);
}

void register_pointwise_ops(std::vector<OpDef>& table) {
  table.push_back({OpKind::kPointwise, 1, kMaxPointwiseInputs, infer_pointwise});
}

}  // namespace kiln
