#pragma once

// Weight prefetch into L2 for CUDA graphs (the plan; cuda_context.cpp captures it).
//
// At batch 1 a transformer's GEMMs stream their weights from device memory (GPT-2: 170 MB
// against the H100's 50 MB of L2) and wait on it: the same 48-GEMM chain ran 289 us with each
// layer's own weights and 255 us with one set shared (so cached), on the H100
// (tools/l2_prefetch_probe.cu). A second branch of the captured graph can fetch the next GEMMs'
// weights into L2 while the chain works on the ones before (cp.async.bulk.prefetch.L2): 265 us
// there. Where the activations outweigh the weights (batch 32: 4096 tokens) the branch only
// costs (1263 against 1290-1360 us), so the plan is made only for weight-bound engines.

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backends/common/l2_prefetch_rule.h"  // L2PrefetchOptions, when the plan is made

namespace kiln {

using ByteRange = std::pair<const std::byte*, size_t>;  // start, bytes

// One step that reads constants (a linear's weight and bias, a convolution's filter), in launch
// order: the constant ranges it reads and the activation bytes it reads and writes.
struct WeightedStep {
  size_t step = 0;  // index into the plan's steps
  std::vector<ByteRange> weights;
  size_t activation_bytes = 0;
};

// A prefetch launch on the graph's side branch: it starts once step `after_step` (a weighted
// step) has finished, or at the graph's start (kAtStart), and fetches `ranges`.
struct PrefetchNode {
  static constexpr size_t kAtStart = SIZE_MAX;
  size_t after_step = kAtStart;
  std::vector<ByteRange> ranges;  // sorted by address, disjoint, merged where they touch
  size_t bytes = 0;
};

struct L2PrefetchPlan {
  std::vector<PrefetchNode> nodes;                // empty: no prefetch
  size_t weight_bytes = 0, activation_bytes = 0;  // over the weighted steps
  std::string reason;  // why prefetching is on or off (for the context's report)
};

// Weighted step j's weights are fetched after weighted step j - 2 has finished, so the fetch
// overlaps step j - 1 and whatever runs between (a layer norm, an attention); the first two at
// the start. steps_per_node consecutive weighted steps share one launch, forked where the first
// of them would be. No nodes where l2_prefetch_off_reason says off.
L2PrefetchPlan plan_l2_prefetch(const std::vector<WeightedStep>& steps,
                                const L2PrefetchOptions& options);

}  // namespace kiln
