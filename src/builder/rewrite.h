#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "kiln/network.h"

namespace kiln::builder {

// Passes rebuild the network rather than mutating it: every op is re-added to a fresh Network,
// so inference re-checks each one and the result is valid by construction. A pass decides per
// op: keep it (re-add as is), replace its outputs by tensors it made in the new network, or
// drop it (its outputs must then be unused or mapped).
class Rewriter {
 public:
  explicit Rewriter(const Network& source);

  const Network& source() const { return source_; }
  Network& target() { return target_; }

  // The new tensor for an old one. Constants and inputs are carried over on first use.
  Result<Tensor> map(Tensor old);
  Result<std::vector<Tensor>> mapAll(const std::vector<Tensor>& old);
  void setMapping(Tensor old, Tensor replacement) { map_[static_cast<size_t>(old.id)] = replacement; }
  bool isMapped(Tensor old) const { return map_[static_cast<size_t>(old.id)].valid(); }

  // Re-adds `op` with mapped inputs and maps its outputs.
  Status keep(const Op& op);

  // Marks the source's outputs on the target and returns it. Also carries over inputs that no
  // op uses (a binding must exist even if unused).
  Result<Network> finish();

 private:
  const Network& source_;
  Network target_;
  std::vector<Tensor> map_;
};

// How many ops use each tensor, plus one per network output that names it.
std::vector<int> use_counts(const Network& network);

// Per tensor: whether it is a network output.
std::vector<bool> output_flags(const Network& network);

// The other operand of `add` when it is a binary add of y and a tensor of y's shape and dtype (no
// broadcast, not y itself): a residual an epilogue can take (conv and gemm fusion).
std::optional<Tensor> residual_operand(const Network& network, const Op& add, Tensor y);

// Who reads each tensor, for fusion passes that grow chains only through tensors nobody else
// reads (so no intermediate anyone else needs disappears).
class Consumers {
 public:
  explicit Consumers(const Network& network);
  // The one op reading `t`: exactly one use, and not a network output (an output counts as a use).
  std::optional<size_t> sole(Tensor t) const;
  // The op making `t` when t is such an intermediate (its sole() exists); nullopt for inputs and
  // constants.
  std::optional<size_t> soleProducer(Tensor t) const;

 private:
  const Network& network_;
  std::vector<int> uses_;
  std::vector<int32_t> consumer_;
};

}  // namespace kiln::builder
