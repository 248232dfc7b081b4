// Pointwise fusion: maximal groups of elementwise ops (unary, binary, where, cast, clamp) joined
// through intermediates that nothing else reads become one `pointwise` op whose program replays
// them (ir/pointwise_program.h). Runs last among the fusions, so conv/gemm epilogue passes take
// their activations first.

#include <cmath>
#include <map>
#include <optional>
#include <numeric>

#include "builder/passes/passes.h"
#include "builder/rewrite.h"
#include "ir/pointwise_program.h"

namespace kiln::builder {
namespace {

// One elementwise op as a one-instruction program over registers 0..n-1 = its inputs.
std::optional<PointwiseInstr> as_instruction(const Network& net, const Op& op) {
  if (op.outputs.size() != 1) return std::nullopt;
  PointwiseInstr in;
  const auto find = [](const auto& table, const std::string& name) {
    for (size_t i = 0; i < table.size(); ++i)
      if (table[i] == name) return static_cast<int>(i);
    return -1;
  };
  switch (op.kind) {
    case OpKind::kUnary:
      in.opcode = PwOpcode::kUnary;
      in.fn = find(kPwUnaryFns, op.attrs.getString("fn", ""));
      in.params[0] = op.attrs.getDouble("alpha", 0.0);
      break;
    case OpKind::kBinary:
      in.opcode = PwOpcode::kBinary;
      in.fn = find(kPwBinaryFns, op.attrs.getString("fn", ""));
      break;
    case OpKind::kWhere:
      in.opcode = PwOpcode::kWhere;
      break;
    case OpKind::kCast:
      in.opcode = PwOpcode::kCast;
      in.dtype = op.attrs.getDType("dtype", DType::kFloat32);
      break;
    case OpKind::kClamp:
      in.opcode = PwOpcode::kClamp;
      in.params[0] = op.attrs.getDouble("min", -INFINITY);
      in.params[1] = op.attrs.getDouble("max", INFINITY);
      break;
    default:
      return std::nullopt;
  }
  if (in.fn < 0) return std::nullopt;
  for (Tensor t : op.inputs)
    if (!pointwise_dtype_ok(net.tensor(t).dtype)) return std::nullopt;
  if (!pointwise_dtype_ok(net.tensor(op.outputs[0]).dtype)) return std::nullopt;
  for (size_t k = 0; k < op.inputs.size(); ++k) in.operands[k] = static_cast<int32_t>(k);
  return in;
}

int find_root(std::vector<int>& parent, int i) {
  while (parent[static_cast<size_t>(i)] != i) i = parent[static_cast<size_t>(i)] = parent[static_cast<size_t>(parent[static_cast<size_t>(i)])];
  return i;
}

}  // namespace

Result<Network> fuse_pointwise(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  std::vector<std::optional<PointwiseInstr>> instr(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) instr[i] = as_instruction(network, ops[i]);

  // Walking backwards, an op joins the group of its consumers when every reader of its output is
  // in that one group (and no network output names it). So only a group's first-visited op (its
  // sink, last in network order) is read outside: the group is convex and has one output.
  std::vector<std::vector<int>> consumers(network.tensors().size());
  for (size_t i = 0; i < ops.size(); ++i)
    for (Tensor t : ops[i].inputs) consumers[static_cast<size_t>(t.id)].push_back(static_cast<int>(i));
  const std::vector<bool> is_output = output_flags(network);
  std::vector<int> parent(ops.size());
  std::iota(parent.begin(), parent.end(), 0);
  for (size_t i = ops.size(); i-- > 0;) {
    if (!instr[i]) continue;
    const size_t t = static_cast<size_t>(ops[i].outputs[0].id);
    if (is_output[t] || consumers[t].empty()) continue;
    int group = -1;
    for (int c : consumers[t]) {
      const int r = instr[static_cast<size_t>(c)] ? find_root(parent, c) : -2;
      group = (group == -1 || group == r) ? r : -2;
    }
    if (group >= 0) parent[i] = group;
  }
  // Members of each group in network (topological) order; the last one is the sink.
  std::map<int, std::vector<size_t>> groups;
  for (size_t i = 0; i < ops.size(); ++i)
    if (instr[i]) groups[find_root(parent, static_cast<int>(i))].push_back(i);

  struct Fused {
    std::vector<Tensor> inputs;  // source tensors
    Attrs attrs;
  };
  std::map<size_t, Fused> fused_at;  // sink op index -> fused op
  std::vector<bool> absorbed(ops.size(), false);
  int fused_ops = 0;
  std::string names;
  for (auto& [root, members] : groups) {
    if (members.size() < 2) continue;
    PointwiseProgram p;
    Fused f;
    std::map<int32_t, int32_t> reg_of;  // source tensor id -> register
    // External inputs first (registers 0..n-1), in order of first use.
    for (size_t m : members)
      for (Tensor t : ops[m].inputs) {
        const TensorInfo& info = network.tensor(t);
        bool inside = info.producer >= 0 && find_root(parent, info.producer) == root;
        if (!inside && !reg_of.count(t.id)) {
          reg_of[t.id] = static_cast<int32_t>(f.inputs.size());
          f.inputs.push_back(t);
        }
      }
    if (f.inputs.size() > static_cast<size_t>(kMaxPointwiseInputs)) continue;
    p.num_inputs = static_cast<int>(f.inputs.size());
    for (size_t m : members) {
      PointwiseInstr in = *instr[m];
      for (size_t k = 0; k < ops[m].inputs.size(); ++k) in.operands[k] = reg_of.at(ops[m].inputs[k].id);
      reg_of[ops[m].outputs[0].id] = p.num_inputs + static_cast<int32_t>(p.code.size());
      p.code.push_back(in);
    }
    const Op& sink = ops[members.back()];
    p.outputs = {reg_of.at(sink.outputs[0].id)};
    encode_pointwise(p, f.attrs);
    // The fused op must give the sink's exact output (shape and dtype); otherwise leave it.
    std::vector<DType> dtypes;
    for (Tensor t : f.inputs) dtypes.push_back(network.tensor(t).dtype);
    if (!decode_pointwise(f.attrs, dtypes).ok()) continue;
    for (size_t m : members) absorbed[m] = true;
    fused_at[members.back()] = std::move(f);
    ++fused_ops;
    names += str(names.empty() ? "" : ", ", sink.name, " (", members.size(), " ops)");
  }

  Rewriter rw(network);
  int absorbed_count = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    auto it = fused_at.find(i);
    if (it != fused_at.end()) {
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> inputs, rw.mapAll(it->second.inputs));
      auto outs = rw.target().addOp(OpKind::kPointwise, std::move(inputs), it->second.attrs, op.name);
      if (!outs.ok()) return outs.status().withContext("pointwise fusion of '" + op.name + "' (builder bug)");
      const TensorInfo& src = network.tensor(op.outputs[0]);
      const TensorInfo& dst = rw.target().tensor((*outs)[0]);
      if (dst.dtype != src.dtype || !shapes_equal(dst.shape, src.shape))
        return internal_error("pointwise fusion of '", op.name, "' changed its output from ",
                              shape_str(src.shape), " to ", shape_str(dst.shape));
      rw.setMapping(op.outputs[0], (*outs)[0]);
      rw.target().renameTensor((*outs)[0], src.name);
      continue;
    }
    if (absorbed[i]) {
      ++absorbed_count;
      continue;
    }
    KILN_RETURN_IF_ERROR(rw.keep(op));
  }
  log.push_back(fused_ops == 0 ? std::string("pointwise fusion: nothing to fuse")
                               : str("pointwise fusion: ", absorbed_count + fused_ops, " ops into ", fused_ops,
                                     " pointwise ops: ", names));
  return rw.finish();
}

}  // namespace kiln::builder
