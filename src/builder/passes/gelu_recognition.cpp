// GELU recognition: the tanh GELU written out op by op, as GPT-2 and other Hugging Face models
// do (NewGELUActivation, "gelu_new"),
//
//   0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))
//
// becomes one unary gelu_tanh, which gemm epilogue fusion then folds into the linear before it
// (cuBLASLt's GELU epilogue is this formula). Matched: binary mul/add/pow with scalar constants on
// either side (mul and add commute), the 0.5 applied to x or to the (1 + tanh) factor, and every
// tensor of one float dtype. Every intermediate must have exactly one use and not be a network
// output, so nothing anyone else reads disappears. The result is computed in float32 and rounded
// once, where the written-out chain rounded after every op: it differs by a rounding at most.

#include <cmath>
#include <optional>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

bool is_binary(const Op& op, const char* fn) {
  return op.kind == OpKind::kBinary && op.inputs.size() == 2 && op.attrs.getString("fn", "") == fn;
}

// Whether `t` is a one-element float constant within a relative 1e-3 of `value` (a half
// precision model stores sqrt(2 / pi) rounded to fp16).
bool is_scalar(const Network& net, Tensor t, double value) {
  const TensorInfo& info = net.tensor(t);
  if (!info.isConstant() || !is_floating(info.dtype)) return false;
  std::vector<double> v = constant_to_doubles(info);
  return v.size() == 1 && std::fabs(v[0] - value) <= 1e-3 * std::fabs(value);
}

// For a binary op with a scalar constant `value` on one side: the other operand.
std::optional<Tensor> other_than_scalar(const Network& net, const Op& op, double value) {
  if (is_scalar(net, op.inputs[1], value)) return op.inputs[0];
  if (is_scalar(net, op.inputs[0], value)) return op.inputs[1];
  return std::nullopt;
}

struct Match {
  Tensor x;
  std::vector<size_t> ops;  // every op of the chain; the last one produces the result
  Tensor result;
};

// The chain whose tanh is op `t`, or nothing.
std::optional<Match> match_at(const Network& net, const Consumers& uses, size_t t) {
  const Op& tanh_op = net.ops()[t];
  if (tanh_op.kind != OpKind::kUnary || tanh_op.attrs.getString("fn", "") != "tanh") return std::nullopt;
  Match m;
  // Backwards: tanh(u), u = c1 * s, s = x + q, q = c2 * p, p = pow(x, 3).
  auto u_op = uses.soleProducer(tanh_op.inputs[0]);
  if (!u_op || !is_binary(net.ops()[*u_op], "mul")) return std::nullopt;
  auto s = other_than_scalar(net, net.ops()[*u_op], std::sqrt(2.0 / M_PI));
  if (!s) return std::nullopt;
  auto s_op = uses.soleProducer(*s);
  if (!s_op || !is_binary(net.ops()[*s_op], "add")) return std::nullopt;
  const Op& add = net.ops()[*s_op];
  for (int side = 0; side < 2 && m.ops.empty(); ++side) {
    const Tensor x = add.inputs[static_cast<size_t>(side)], q = add.inputs[static_cast<size_t>(1 - side)];
    auto q_op = uses.soleProducer(q);
    if (!q_op || !is_binary(net.ops()[*q_op], "mul")) continue;
    auto p = other_than_scalar(net, net.ops()[*q_op], 0.044715);
    if (!p) continue;
    auto p_op = uses.soleProducer(*p);
    if (!p_op || !is_binary(net.ops()[*p_op], "pow")) continue;
    const Op& pow = net.ops()[*p_op];
    if (pow.inputs[0] != x || !is_scalar(net, pow.inputs[1], 3.0)) continue;
    m.x = x;
    m.ops = {*p_op, *q_op, *s_op, *u_op, t};
  }
  if (m.ops.empty()) return std::nullopt;
  // Forwards: v = tanh + 1, then y = (0.5 * x) * v, or y = x * (0.5 * v) / (x * v) * 0.5.
  auto v_op = uses.sole(tanh_op.outputs[0]);
  if (!v_op || !is_binary(net.ops()[*v_op], "add") ||
      other_than_scalar(net, net.ops()[*v_op], 1.0) != tanh_op.outputs[0])
    return std::nullopt;
  m.ops.push_back(*v_op);
  Tensor v = net.ops()[*v_op].outputs[0];
  auto y_op = uses.sole(v);
  if (!y_op) return std::nullopt;
  const Op* y = &net.ops()[*y_op];
  if (is_binary(*y, "mul") && other_than_scalar(net, *y, 0.5) == v) {  // 0.5 * v, then * x
    m.ops.push_back(*y_op);
    v = y->outputs[0];
    y_op = uses.sole(v);
    if (!y_op) return std::nullopt;
    y = &net.ops()[*y_op];
    if (!is_binary(*y, "mul")) return std::nullopt;
    const Tensor other = y->inputs[0] == v ? y->inputs[1] : y->inputs[0];
    if (other != m.x) return std::nullopt;
    m.ops.push_back(*y_op);
  } else if (is_binary(*y, "mul")) {
    const Tensor other = y->inputs[0] == v ? y->inputs[1] : y->inputs[0];
    if (other == m.x) {  // x * v, then * 0.5
      m.ops.push_back(*y_op);
      auto half_op = uses.sole(y->outputs[0]);
      if (!half_op || !is_binary(net.ops()[*half_op], "mul") ||
          other_than_scalar(net, net.ops()[*half_op], 0.5) != y->outputs[0])
        return std::nullopt;
      m.ops.push_back(*half_op);
    } else {  // (0.5 * x) * v
      auto h_op = uses.soleProducer(other);
      if (!h_op || !is_binary(net.ops()[*h_op], "mul") || other_than_scalar(net, net.ops()[*h_op], 0.5) != m.x)
        return std::nullopt;
      m.ops.push_back(*h_op);
      m.ops.push_back(*y_op);
    }
  } else {
    return std::nullopt;
  }
  m.result = net.ops()[m.ops.back()].outputs[0];
  // One float dtype and x's shape throughout (no broadcast by the constants).
  const TensorInfo& xi = net.tensor(m.x);
  if (!is_floating(xi.dtype)) return std::nullopt;
  for (size_t i : m.ops) {
    const TensorInfo& o = net.tensor(net.ops()[i].outputs[0]);
    if (o.dtype != xi.dtype || !shapes_equal(o.shape, xi.shape)) return std::nullopt;
  }
  // The result is made last: every other op of the chain comes before it.
  for (size_t i : m.ops)
    if (i > m.ops.back()) return std::nullopt;
  return m;
}

}  // namespace

Result<Network> recognize_gelu(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  Consumers uses(network);
  // role[i]: -1 kept; -2 absorbed into a chain; >= 0 the last op of chain role[i].
  std::vector<int> role(ops.size(), -1);
  std::vector<Match> matches;
  for (size_t i = 0; i < ops.size(); ++i) {
    std::optional<Match> m = match_at(network, uses, i);
    if (!m) continue;
    bool free = true;
    for (size_t k : m->ops) free = free && role[k] == -1;
    if (!free) continue;
    for (size_t k : m->ops) role[k] = -2;
    role[m->ops.back()] = static_cast<int>(matches.size());
    matches.push_back(*m);
  }
  Rewriter rw(network);
  for (size_t i = 0; i < ops.size(); ++i) {
    if (role[i] == -1) {
      KILN_RETURN_IF_ERROR(rw.keep(ops[i]));
      continue;
    }
    if (role[i] < 0) continue;
    const Match& m = matches[static_cast<size_t>(role[i])];
    KILN_ASSIGN_OR_RETURN(Tensor x, rw.map(m.x));
    KILN_ASSIGN_OR_RETURN(Tensor y, rw.target().add(OpKind::kUnary, {x}, {{"fn", std::string("gelu_tanh")}},
                                                    ops[i].name + ".gelu_tanh"));
    rw.target().renameTensor(y, network.tensor(m.result).name);
    rw.setMapping(m.result, y);
  }
  log.push_back(str("gelu recognition: ", matches.size(), " tanh GELUs written out op by op became gelu_tanh"));
  return rw.finish();
}

}  // namespace kiln::builder
