// Attention masks to additive form (CUDA targets): a bool mask read by attention ops becomes
// where(mask, 0, -inf) in the query's dtype, made once per mask tensor and shared by every
// attention that read it.
//
// cuDNN's attention takes only additive masks, so each attention with a bool mask used to convert
// it in its own workspace: GPT-2 converts one mask twelve times per forward. Made once here, the
// conversion is an ordinary pointwise op, which pointwise fusion then merges into the kernel that
// computes the mask. When the mask is an expand of a smaller bool tensor (BERT's [B,1,1,S] padding
// mask expanded to [B,1,S,S]), the where applies to the small tensor and the expand is redone on
// its result, so the attention still reads a broadcast (stride-0) mask.
//
// Same results: torch's SDPA treats a bool mask as 0 where true and -inf where false, and a row
// whose keys are all masked gives zeros either way (the kernels follow torch 2.11's safe softmax
// for both kinds of mask).

#include <limits>
#include <map>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/passes/view_atoms.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// Whether `mask`, read by an attention as its mask, masks nothing: a constant, or views
// (is_view_chain_op) and expands of one, whose every element keeps (bool true) or adds
// nothing (float +0 or -0). NaN and -inf are not nothing.
bool mask_is_noop(const Network& network, Tensor mask) {
  const auto& ops = network.ops();
  for (int depth = 0; depth < 8; ++depth) {
    const TensorInfo& info = network.tensor(mask);
    if (info.isConstant()) {
      if (info.dtype == DType::kBool) {
        for (std::byte b : *info.constant)
          if (b == std::byte{0}) return false;
        return true;
      }
      for (double x : constant_to_doubles(info))
        if (x != 0.0) return false;
      return true;
    }
    if (info.producer < 0) return false;
    const Op& op = ops[static_cast<size_t>(info.producer)];
    // Views and expands move or repeat elements: every one still masks nothing.
    if ((op.kind != OpKind::kExpand && !is_view_chain_op(op.kind)) || op.inputs.empty()) return false;
    mask = op.inputs[0];
  }
  return false;
}

// Whether the mask's batch dims broadcast into the query's without widening them (dropping the
// mask then keeps the output's shape).
bool mask_within_query(const Network& network, const Op& attention) {
  const Shape& q = network.tensor(attention.inputs[0]).shape;
  const Shape& m = network.tensor(attention.inputs[3]).shape;
  if (m.size() > q.size() || m.size() < 2) return false;
  const size_t skip = q.size() - m.size();
  for (size_t d = 0; d + 2 < m.size(); ++d)
    if (!m[d].equals(SymExpr(1)) && !m[d].equals(q[skip + d])) return false;
  return true;
}

}  // namespace

Result<Network> drop_noop_attention_masks(const Network& network, std::vector<std::string>& log) {
  Rewriter rw(network);
  int64_t dropped = 0;
  std::map<int32_t, bool> noop;  // per mask tensor: the layers of a model share one mask
  auto is_noop = [&](Tensor mask) {
    auto [it, fresh] = noop.try_emplace(mask.id, false);
    if (fresh) it->second = mask_is_noop(network, mask);
    return it->second;
  };
  for (const Op& op : network.ops()) {
    if (op.kind != OpKind::kAttention || op.inputs.size() != 4 || !mask_within_query(network, op) ||
        !is_noop(op.inputs[3])) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> qkv, rw.mapAll({op.inputs[0], op.inputs[1], op.inputs[2]}));
    KILN_ASSIGN_OR_RETURN(Tensor out, rw.target().add(OpKind::kAttention, qkv, op.attrs, op.name));
    rw.target().renameTensor(out, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], out);
    ++dropped;
  }
  if (dropped > 0)
    log.push_back(str("attention masks: ", dropped, " constant mask", dropped == 1 ? "" : "s",
                      " that mask nothing dropped (all true, or all zero)"));
  return rw.finish();
}

Result<Network> attention_masks_to_bias(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  Rewriter rw(network);
  // (mask tensor id, dtype) -> the additive mask made for it in the target network.
  std::map<std::pair<int32_t, DType>, Tensor> made;
  int64_t converted = 0;
  for (const Op& op : ops) {
    const bool bool_mask = op.kind == OpKind::kAttention && op.inputs.size() == 4 &&
                           network.tensor(op.inputs[3]).dtype == DType::kBool;
    if (!bool_mask) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const Tensor mask = op.inputs[3];
    const DType dtype = network.tensor(op.inputs[0]).dtype;
    auto [it, fresh] = made.try_emplace({mask.id, dtype}, Tensor{});
    if (fresh) {
      // Look through one expand of a bool tensor: convert the small tensor, expand the result.
      Tensor source = mask;
      const Op* expand = nullptr;
      if (int32_t p = network.tensor(mask).producer; p >= 0 && ops[static_cast<size_t>(p)].kind == OpKind::kExpand) {
        expand = &ops[static_cast<size_t>(p)];
        source = expand->inputs[0];
      }
      const std::string name = network.tensor(mask).name;
      KILN_ASSIGN_OR_RETURN(Tensor cond, rw.map(source));
      KILN_ASSIGN_OR_RETURN(Tensor zero, rw.target().addConstant(name + ".bias_zero", dtype, {},
                                                                 doubles_to_constant({0.0}, dtype)));
      KILN_ASSIGN_OR_RETURN(
          Tensor minus_inf,
          rw.target().addConstant(name + ".bias_minus_inf", dtype, {},
                                  doubles_to_constant({-std::numeric_limits<double>::infinity()}, dtype)));
      KILN_ASSIGN_OR_RETURN(Tensor bias,
                            rw.target().add(OpKind::kWhere, {cond, zero, minus_inf}, {}, name + ".bias"));
      if (expand) {
        KILN_ASSIGN_OR_RETURN(bias, rw.target().add(OpKind::kExpand, {bias}, expand->attrs, name + ".bias_expand"));
      }
      it->second = bias;
      ++converted;
    }
    KILN_ASSIGN_OR_RETURN(Tensor q, rw.map(op.inputs[0]));
    KILN_ASSIGN_OR_RETURN(Tensor k, rw.map(op.inputs[1]));
    KILN_ASSIGN_OR_RETURN(Tensor v, rw.map(op.inputs[2]));
    KILN_ASSIGN_OR_RETURN(Tensor out, rw.target().add(OpKind::kAttention, {q, k, v, it->second}, op.attrs, op.name));
    rw.target().renameTensor(out, network.tensor(op.outputs[0]).name);
    rw.setMapping(op.outputs[0], out);
  }
  log.push_back(str("attention masks: ", converted, " bool mask", converted == 1 ? "" : "s",
                    " made additive once for the attentions that read ", converted == 1 ? "it" : "them"));
  return rw.finish();
}

Result<Network> keep_bool_attention_masks(const Network& network, std::vector<std::string>& log) {
  log.push_back("attention masks: bool masks kept (the CPU kernels read them directly)");
  return network;
}

}  // namespace kiln::builder
