// Gemm epilogue fusion (DESIGN.md 3): linear / matmul, then a bias add along the last dim, then
// an add of a residual of the same shape, then relu / gelu / gelu_tanh (a reshape may stand
// before the residual add or the activation; it then follows the fused op), become one linear or
// matmul with the bias as linear's bias input, the residual as its last input (attr `residual`)
// and attr `activation`. The CUDA backend runs that as one cuBLASLt call with an epilogue (the
// residual as the GEMM's C): a transformer's `x + out_proj(attention)` then writes the sum once
// instead of the GEMM's result, and the layer norm after it reads one tensor instead of two.
//
// A chain grows only through tensors that have exactly one use and are not network outputs, so
// no intermediate anyone else reads disappears. The fused op is emitted where the chain's last
// op stood: every input it needs (a bias computed by other ops, say) exists by then.

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

struct Chain {
  size_t gemm = 0;                 // op index of the matmul/linear
  std::optional<size_t> add;       // op index of the bias add
  Tensor bias;                     // the add's other operand
  std::optional<size_t> reshape;   // op index of a reshape between the gemm (+ bias) and the
                                   // residual add or act
  std::optional<size_t> residual_add;  // op index of the residual add
  Tensor residual;                 // its other operand (the reshape's output shape)
  std::optional<size_t> act;       // op index of the activation
  std::string activation = "none";
  size_t last = 0;                 // where the fused op is emitted
  Tensor result;                   // the chain's final tensor (the old network's)
};

bool is_constant_dim(const SymExpr& e, int64_t value) {
  return e.isConstant() && e.constant() == value;
}

// Whether `bias` adds along the last dim of `y` ([..., N]) without changing y's shape: [N], or
// a constant [1, ..., 1, N] no longer than y.
bool is_last_dim_bias(const Network& net, Tensor bias, Tensor y, Tensor sum) {
  const TensorInfo& b = net.tensor(bias);
  const TensorInfo& yi = net.tensor(y);
  if (b.dtype != yi.dtype || b.shape.empty() || b.shape.size() > yi.shape.size()) return false;
  if (!b.shape.back().equals(yi.shape.back())) return false;
  if (!shapes_equal(net.tensor(sum).shape, yi.shape)) return false;
  if (b.shape.size() == 1) return true;
  if (!b.isConstant()) return false;
  for (size_t d = 0; d + 1 < b.shape.size(); ++d)
    if (!is_constant_dim(b.shape[d], 1)) return false;
  return true;
}

bool is_fusable_activation(const Op& op) {
  if (op.kind != OpKind::kUnary) return false;
  std::string fn = op.attrs.getString("fn", "");
  return fn == "relu" || fn == "gelu" || fn == "gelu_tanh";
}

// Whether a bias can be folded into this gemm: linear without a bias; linear with a constant
// bias and a constant add operand (they are summed); matmul whose b is a constant [K, N] (it
// becomes linear with b transposed).
bool can_take_bias(const Network& net, const Op& gemm, Tensor bias) {
  if (gemm.kind == OpKind::kLinear) {
    if (gemm.inputs.size() < 3) return true;
    return net.tensor(gemm.inputs[2]).isConstant() && net.tensor(bias).isConstant();
  }
  const TensorInfo& b = net.tensor(gemm.inputs[1]);
  return b.isConstant() && b.shape.size() == 2;
}

// Whether this gemm can take a residual: a linear, or a matmul that becomes one (a constant
// [K, N] b, transposed at build time).
bool can_take_residual(const Network& net, const Op& gemm) {
  if (gemm.kind == OpKind::kLinear) return !gemm.attrs.getBool("residual", false);
  const TensorInfo& b = net.tensor(gemm.inputs[1]);
  return b.isConstant() && b.shape.size() == 2;
}

std::optional<Chain> find_chain(const Network& net, const Consumers& consumers, size_t i) {
  const Op& gemm = net.ops()[i];
  if (gemm.kind != OpKind::kMatmul && gemm.kind != OpKind::kLinear) return std::nullopt;
  if (gemm.attrs.getString("activation", "none") != "none") return std::nullopt;
  if (!is_floating(net.tensor(gemm.outputs[0]).dtype)) return std::nullopt;
  Chain c;
  c.gemm = i;
  c.last = i;
  c.result = gemm.outputs[0];
  if (auto next = consumers.sole(c.result)) {
    const Op& add = net.ops()[*next];
    if (add.kind == OpKind::kBinary && add.attrs.getString("fn", "") == "add" && add.inputs.size() == 2) {
      Tensor other = add.inputs[0] == c.result ? add.inputs[1] : add.inputs[0];
      if (other != c.result && is_last_dim_bias(net, other, c.result, add.outputs[0]) &&
          can_take_bias(net, gemm, other)) {
        c.add = *next;
        c.bias = other;
        c.last = *next;
        c.result = add.outputs[0];
      }
    }
  }
  if (auto next = consumers.sole(c.result)) {
    // A residual add or an activation after a reshape (linear on [M, K] rows viewed back as
    // [B, S, N]) is applied before it: elementwise ops of same-shaped operands commute with
    // reshapes (the residual is reshaped to the gemm's output instead).
    std::optional<size_t> reshape;
    if (net.ops()[*next].kind == OpKind::kReshape) {
      reshape = *next;
      next = consumers.sole(net.ops()[*next].outputs[0]);
    }
    if (next && can_take_residual(net, gemm)) {
      const Tensor y = reshape ? net.ops()[*reshape].outputs[0] : c.result;
      if (std::optional<Tensor> z = residual_operand(net, net.ops()[*next], y)) {
        c.reshape = reshape;
        c.residual_add = *next;
        c.residual = *z;
        c.last = *next;
        c.result = net.ops()[*next].outputs[0];
        reshape.reset();  // the activation, if any, follows the residual add directly
        next = consumers.sole(c.result);
      }
    }
    const Op* act = next ? &net.ops()[*next] : nullptr;
    if (act && is_fusable_activation(*act) && net.tensor(act->outputs[0]).dtype == net.tensor(c.result).dtype) {
      if (reshape) c.reshape = reshape;
      c.act = *next;
      c.activation = act->attrs.getString("fn", "");
      c.last = *next;
      c.result = act->outputs[0];
    }
  }
  if (!c.add && !c.act && !c.residual_add) return std::nullopt;
  return c;
}

// The constant `t` reshaped to [N] (it is [1, ..., 1, N]).
Result<Tensor> bias_as_vector(Rewriter& rw, Tensor t) {
  const TensorInfo& info = rw.source().tensor(t);
  if (info.shape.size() == 1) return rw.map(t);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
  std::vector<int64_t> vec{dims.back()};
  return rw.target().addConstant(info.name + ".bias", info.dtype, vec, info.constant);
}

// A constant [K, N] as its transpose [N, K] (any dtype: elements are moved as bytes).
Result<Tensor> transposed_constant(Rewriter& rw, Tensor t) {
  const TensorInfo& info = rw.source().tensor(t);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, constant_dims(info.shape, info.name));
  const int64_t K = dims[0], N = dims[1];
  const size_t es = dtype_size(info.dtype);
  auto bytes = std::make_shared<std::vector<std::byte>>(info.constant->size());
  if (bytes->size() != static_cast<size_t>(K * N) * es)
    return internal_error("gemm fusion: constant '", info.name, "' has ", bytes->size(), " bytes");
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      std::copy_n(info.constant->data() + static_cast<size_t>(k * N + n) * es, es,
                  bytes->data() + static_cast<size_t>(n * K + k) * es);
  std::vector<int64_t> tdims{N, K};
  return rw.target().addConstant(info.name + ".t", info.dtype, tdims, ConstantBytes(std::move(bytes)));
}

Status emit_fused(Rewriter& rw, const Chain& c, std::map<int32_t, Tensor>& transposed) {
  const Network& net = rw.source();
  const Op& gemm = net.ops()[c.gemm];
  Attrs attrs = gemm.attrs;
  attrs.set("activation", c.activation);
  OpKind kind = gemm.kind;
  std::vector<Tensor> inputs;
  KILN_ASSIGN_OR_RETURN(Tensor a, rw.map(gemm.inputs[0]));
  inputs.push_back(a);
  if (gemm.kind == OpKind::kMatmul && (c.add || c.residual_add)) {
    kind = OpKind::kLinear;  // a[..., M, K] @ b[K, N] + bias == linear(a, b^T, bias)
    auto it = transposed.find(gemm.inputs[1].id);
    if (it == transposed.end()) {
      KILN_ASSIGN_OR_RETURN(Tensor wt, transposed_constant(rw, gemm.inputs[1]));
      it = transposed.emplace(gemm.inputs[1].id, wt).first;
    }
    inputs.push_back(it->second);
  } else {
    KILN_ASSIGN_OR_RETURN(Tensor w, rw.map(gemm.inputs[1]));
    inputs.push_back(w);
  }
  if (c.add && gemm.kind == OpKind::kLinear && gemm.inputs.size() > 2) {
    // Both biases are constants: one summed bias (in double, rounded once to the dtype).
    const TensorInfo& b0 = net.tensor(gemm.inputs[2]);
    std::vector<double> sum = constant_to_doubles(b0);
    std::vector<double> more = constant_to_doubles(net.tensor(c.bias));
    if (sum.size() != more.size())
      return internal_error("gemm fusion: biases of '", gemm.name, "' differ in size");
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += more[i];
    std::vector<int64_t> dims{static_cast<int64_t>(sum.size())};
    KILN_ASSIGN_OR_RETURN(Tensor b, rw.target().addConstant(gemm.name + ".fused_bias", b0.dtype, dims,
                                                            doubles_to_constant(sum, b0.dtype)));
    inputs.push_back(b);
  } else if (c.add) {
    KILN_ASSIGN_OR_RETURN(Tensor b, bias_as_vector(rw, c.bias));
    inputs.push_back(b);
  } else if (gemm.inputs.size() > 2) {
    KILN_ASSIGN_OR_RETURN(Tensor b, rw.map(gemm.inputs[2]));
    inputs.push_back(b);
  }
  if (c.residual_add) {
    KILN_ASSIGN_OR_RETURN(Tensor z, rw.map(c.residual));
    if (c.reshape) {  // the residual has the reshape's output shape: back to the gemm's
      const TensorInfo& gi = net.tensor(gemm.outputs[0]);
      KILN_ASSIGN_OR_RETURN(z, rw.target().add(OpKind::kReshape, {z}, {{"shape", gi.shape}},
                                               net.tensor(c.residual).name + ".rows"));
    }
    inputs.push_back(z);
    attrs.set("residual", true);
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, rw.target().add(kind, std::move(inputs), std::move(attrs), gemm.name));
  if (c.reshape) {
    const Op& reshape = net.ops()[*c.reshape];
    KILN_ASSIGN_OR_RETURN(y, rw.target().add(OpKind::kReshape, {y}, reshape.attrs, reshape.name));
  }
  rw.target().renameTensor(y, net.tensor(c.result).name);
  rw.setMapping(c.result, y);
  return Status::Ok();
}

}  // namespace

Result<Network> fuse_gemm_epilogues(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  Consumers consumers(network);
  // role[i]: -1 an op kept as is; otherwise the chain (index into chains) op i belongs to.
  std::vector<int> role(ops.size(), -1);
  std::vector<Chain> chains;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (role[i] >= 0) continue;
    std::optional<Chain> c = find_chain(network, consumers, i);
    if (!c) continue;
    // An op already in an earlier chain stays there: add(linear_a(x), linear_b(y)) is a residual
    // add for either linear, and only the first takes it.
    bool claimed = false;
    for (std::optional<size_t> op : {c->add, c->reshape, c->residual_add, c->act})
      claimed = claimed || (op && role[*op] >= 0);
    if (claimed) continue;
    const int id = static_cast<int>(chains.size());
    role[c->gemm] = id;
    if (c->add) role[*c->add] = id;
    if (c->reshape) role[*c->reshape] = id;
    if (c->residual_add) role[*c->residual_add] = id;
    if (c->act) role[*c->act] = id;
    chains.push_back(*c);
  }

  Rewriter rw(network);
  std::map<int32_t, Tensor> transposed;
  int with_bias = 0, with_act = 0, with_residual = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (role[i] < 0) {
      KILN_RETURN_IF_ERROR(rw.keep(ops[i]));
      continue;
    }
    const Chain& c = chains[static_cast<size_t>(role[i])];
    if (i != c.last) continue;  // absorbed; the chain is emitted at its last op
    KILN_RETURN_IF_ERROR(emit_fused(rw, c, transposed)
                             .withContext(str("fusing the epilogue of ", op_kind_name(ops[c.gemm].kind),
                                              " '", ops[c.gemm].name, "'")));
    with_bias += c.add ? 1 : 0;
    with_act += c.act ? 1 : 0;
    with_residual += c.residual_add ? 1 : 0;
  }
  log.push_back(str("gemm epilogue fusion: fused ", chains.size(), " matmul/linear epilogues (",
                    with_bias, " with a bias add, ", with_residual, " with a residual add, ",
                    with_act, " with an activation)"));
  return rw.finish();
}

}  // namespace kiln::builder
