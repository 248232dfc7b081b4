// Sibling linears (horizontal GEMM fusion): linears that read the same tensor with constant
// weights, the same epilogue and no residual become one linear over their weights stacked along
// N, and a split of its output along the last dim gives each its own result (a view, row-strided).
// BERT's separate query, key and value projections then run as one [3 * 768, 768] GEMM, as
// GPT-2's c_attn does: one launch instead of three, one read of the input, and at batch 1 one
// stream of weights instead of three short ones. LLaMA's gate and up projections merge the same
// way (their silu and product then read the two halves).
//
// Left alone: a linear whose output is a network output (its result as a view would cost a copy
// at output isolation), one with a residual (its own C operand), a non-constant weight or bias,
// and one whose N elements are not a multiple of 16 bytes (its part would start misaligned).
// A member without a bias gets zeros when another has one. Runs after gemm epilogue fusion, so
// biases and activations are already folded and the members' epilogues can be compared.

#include <cstring>
#include <map>
#include <span>

#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// Whether `op` can join a group: a linear with a constant [N, K] weight, a constant [N] bias or
// none, no residual, and a result that is not a network output.
bool can_merge(const Network& net, const Op& op, const std::vector<bool>& is_output) {
  if (op.kind != OpKind::kLinear || op.inputs.size() < 2 || op.inputs.size() > 3) return false;
  if (op.attrs.getBool("residual", false)) return false;
  if (is_output[static_cast<size_t>(op.outputs[0].id)]) return false;
  const TensorInfo& w = net.tensor(op.inputs[1]);
  if (!w.isConstant() || w.shape.size() != 2 || !w.shape[0].isConstant()) return false;
  // Each part of the merged result starts on a 16-byte boundary of its row, as vectorized
  // kernels reading it want.
  if ((w.shape[0].constant() * static_cast<int64_t>(dtype_size(w.dtype))) % 16 != 0) return false;
  if (op.inputs.size() == 3) {
    const TensorInfo& b = net.tensor(op.inputs[2]);
    if (!b.isConstant() || b.shape.size() != 1 || b.dtype != w.dtype) return false;
  }
  return true;
}

// Whether two mergeable linears can share one GEMM: the same weight dtype and epilogue.
bool same_gemm(const Network& net, const Op& a, const Op& b) {
  return net.tensor(a.inputs[1]).dtype == net.tensor(b.inputs[1]).dtype &&
         a.attrs.getString("activation", "none") == b.attrs.getString("activation", "none");
}

}  // namespace

Result<Network> merge_sibling_linears(const Network& network, std::vector<std::string>& log) {
  const std::vector<Op>& ops = network.ops();
  const std::vector<bool> is_output = output_flags(network);

  // Groups in op order: each mergeable linear joins the first group reading the same input whose
  // members it can share a GEMM with. Only groups of two or more are rewritten.
  std::vector<std::vector<size_t>> groups;
  std::map<int32_t, std::vector<size_t>> by_input;  // input tensor id -> its groups
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!can_merge(network, ops[i], is_output)) continue;
    std::vector<size_t>& candidates = by_input[ops[i].inputs[0].id];
    bool placed = false;
    for (size_t g : candidates) {
      if (!same_gemm(network, ops[groups[g].front()], ops[i])) continue;
      groups[g].push_back(i);
      placed = true;
      break;
    }
    if (!placed) {
      candidates.push_back(groups.size());
      groups.push_back({i});
    }
  }
  std::vector<int64_t> group_of(ops.size(), -1);
  int64_t merged_groups = 0, merged_linears = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].size() < 2) continue;
    for (size_t i : groups[g]) group_of[i] = static_cast<int64_t>(g);
    ++merged_groups;
    merged_linears += static_cast<int64_t>(groups[g].size());
  }

  Rewriter rw(network);
  Network& t = rw.target();
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (group_of[i] < 0) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const std::vector<size_t>& members = groups[static_cast<size_t>(group_of[i])];
    if (members.front() != i) continue;  // emitted with the group's first member
    // The weights stacked along N (row-major [N, K] each: their bytes one after another), the
    // biases likewise, with zeros for a member that has none.
    const TensorInfo& w0 = network.tensor(op.inputs[1]);
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> w0_dims, constant_dims(w0.shape, w0.name));
    const int64_t k = w0_dims[1];
    const size_t elem = dtype_size(w0.dtype);
    int64_t n_total = 0;
    bool any_bias = false;
    std::vector<int64_t> sizes;
    for (size_t m : members) {
      sizes.push_back(network.tensor(ops[m].inputs[1]).shape[0].constant());
      n_total += sizes.back();
      any_bias = any_bias || ops[m].inputs.size() == 3;
    }
    std::vector<std::byte> weight(static_cast<size_t>(n_total * k) * elem);
    std::vector<std::byte> bias(any_bias ? static_cast<size_t>(n_total) * elem : 0);
    size_t w_at = 0, b_at = 0;
    for (size_t j = 0; j < members.size(); ++j) {
      const Op& m = ops[members[j]];
      const std::vector<std::byte>& wb = *network.tensor(m.inputs[1]).constant;
      std::memcpy(weight.data() + w_at, wb.data(), wb.size());
      w_at += wb.size();
      const size_t b_bytes = static_cast<size_t>(sizes[j]) * elem;
      if (m.inputs.size() == 3)
        std::memcpy(bias.data() + b_at, network.tensor(m.inputs[2]).constant->data(), b_bytes);
      b_at += b_bytes;  // zeros (value-initialized) for a member without a bias
    }
    const std::string name = op.name + ".siblings";
    KILN_ASSIGN_OR_RETURN(Tensor x, rw.map(op.inputs[0]));
    KILN_ASSIGN_OR_RETURN(
        Tensor w, t.addConstant(name + ".weight", w0.dtype, std::vector<int64_t>{n_total, k},
                                std::span<const std::byte>(weight)));
    std::vector<Tensor> inputs{x, w};
    if (any_bias) {
      KILN_ASSIGN_OR_RETURN(Tensor b,
                            t.addConstant(name + ".bias", w0.dtype, std::vector<int64_t>{n_total},
                                          std::span<const std::byte>(bias)));
      inputs.push_back(b);
    }
    Attrs attrs;
    attrs.set("activation", op.attrs.getString("activation", "none"));
    KILN_ASSIGN_OR_RETURN(Tensor y,
                          t.add(OpKind::kLinear, std::move(inputs), std::move(attrs), name));
    const int64_t last_dim = static_cast<int64_t>(t.tensor(y).shape.size()) - 1;
    KILN_ASSIGN_OR_RETURN(
        std::vector<Tensor> parts,
        t.addOp(OpKind::kSplit, {y}, {{"dim", last_dim}, {"sizes", sizes}}, name + ".split"));
    for (size_t j = 0; j < members.size(); ++j) {
      const Tensor old = ops[members[j]].outputs[0];
      t.renameTensor(parts[j], network.tensor(old).name);
      rw.setMapping(old, parts[j]);
    }
  }
  log.push_back(str("sibling linears: ", merged_linears, " linear", merged_linears == 1 ? "" : "s",
                    " reading a shared input merged into ", merged_groups, " GEMM",
                    merged_groups == 1 ? "" : "s"));
  return rw.finish();
}

}  // namespace kiln::builder
