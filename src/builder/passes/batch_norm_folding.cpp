#include <cmath>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "builder/rewrite.h"

namespace kiln::builder {
namespace {

// The conv feeding batch_norm `bn`, when the pair can be folded: conv not transposed, weight
// (and bias) constant, its output used by this batch_norm alone, statistics constant.
const Op* foldable_conv(const Network& net, const Op& bn, const std::vector<int>& uses) {
  const TensorInfo& x = net.tensor(bn.inputs[0]);
  if (x.producer < 0) return nullptr;
  const Op& conv = net.ops()[static_cast<size_t>(x.producer)];
  if (conv.kind != OpKind::kConv || conv.attrs.getBool("transposed", false)) return nullptr;
  if (uses[static_cast<size_t>(bn.inputs[0].id)] != 1) return nullptr;
  for (size_t i = 1; i < conv.inputs.size(); ++i)
    if (!net.tensor(conv.inputs[i]).isConstant()) return nullptr;
  for (size_t i = 1; i < bn.inputs.size(); ++i)
    if (!net.tensor(bn.inputs[i]).isConstant()) return nullptr;
  return &conv;
}

}  // namespace

Result<Network> fold_batch_norm(const Network& network, std::vector<std::string>& log) {
  const auto& ops = network.ops();
  std::vector<int> uses = use_counts(network);
  // conv index -> the batch_norm folded into it.
  std::vector<const Op*> folded_into(ops.size(), nullptr);
  for (const Op& op : ops) {
    if (op.kind != OpKind::kBatchNorm) continue;
    if (foldable_conv(network, op, uses))
      folded_into[static_cast<size_t>(network.tensor(op.inputs[0]).producer)] = &op;
  }

  Rewriter rw(network);
  int folded = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    if (op.kind == OpKind::kBatchNorm && network.tensor(op.inputs[0]).producer >= 0 &&
        folded_into[static_cast<size_t>(network.tensor(op.inputs[0]).producer)] == &op) {
      continue;  // mapped when its conv was rewritten
    }
    const Op* bn = folded_into[i];
    if (!bn) {
      KILN_RETURN_IF_ERROR(rw.keep(op));
      continue;
    }
    const TensorInfo& w = network.tensor(op.inputs[1]);
    std::vector<double> weight = constant_to_doubles(w);
    std::vector<double> mean = constant_to_doubles(network.tensor(bn->inputs[1]));
    std::vector<double> var = constant_to_doubles(network.tensor(bn->inputs[2]));
    size_t channels = mean.size();
    std::vector<double> gamma = bn->inputs.size() > 3 ? constant_to_doubles(network.tensor(bn->inputs[3]))
                                                       : std::vector<double>(channels, 1.0);
    std::vector<double> beta = bn->inputs.size() > 4 ? constant_to_doubles(network.tensor(bn->inputs[4]))
                                                      : std::vector<double>(channels, 0.0);
    std::vector<double> bias = op.inputs.size() > 2 ? constant_to_doubles(network.tensor(op.inputs[2]))
                                                     : std::vector<double>(channels, 0.0);
    double eps = bn->attrs.getDouble("eps", 1e-5);
    if (channels == 0 || weight.size() % channels != 0 || bias.size() != channels) {
      KILN_RETURN_IF_ERROR(rw.keep(op));  // shapes the fold does not expect: leave both ops
      KILN_RETURN_IF_ERROR(rw.keep(*bn));
      continue;
    }
    size_t per_channel = weight.size() / channels;  // weight is [O, C/g, *k]
    for (size_t o = 0; o < channels; ++o) {
      double scale = gamma[o] / std::sqrt(var[o] + eps);
      for (size_t j = 0; j < per_channel; ++j) weight[o * per_channel + j] *= scale;
      bias[o] = (bias[o] - mean[o]) * scale + beta[o];
    }
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> wdims, constant_dims(w.shape, w.name));
    KILN_ASSIGN_OR_RETURN(Tensor new_w, rw.target().addConstant(w.name + ".bn_folded", w.dtype, wdims,
                                                                doubles_to_constant(weight, w.dtype)));
    std::vector<int64_t> bdims{static_cast<int64_t>(channels)};
    KILN_ASSIGN_OR_RETURN(Tensor new_b, rw.target().addConstant(op.name + ".bn_bias", w.dtype, bdims,
                                                                doubles_to_constant(bias, w.dtype)));
    KILN_ASSIGN_OR_RETURN(Tensor x, rw.map(op.inputs[0]));
    KILN_ASSIGN_OR_RETURN(Tensor y, rw.target().add(OpKind::kConv, {x, new_w, new_b}, op.attrs, op.name));
    rw.target().renameTensor(y, network.tensor(bn->outputs[0]).name);
    rw.setMapping(bn->outputs[0], y);
    ++folded;
  }
  log.push_back(str("batch-norm folding: folded ", folded, " batch_norm ops into convolutions"));
  return rw.finish();
}

}  // namespace kiln::builder
