#include "runtime/l2_prefetch.h"

#include <algorithm>

#include "kiln/status.h"

namespace kiln {
namespace {

// Sorts and merges ranges that overlap or touch.
std::vector<ByteRange> merged(std::vector<ByteRange> ranges) {
  std::erase_if(ranges, [](const ByteRange& r) { return !r.first || r.second == 0; });
  std::sort(ranges.begin(), ranges.end());
  std::vector<ByteRange> out;
  for (const ByteRange& r : ranges) {
    if (!out.empty() && r.first <= out.back().first + out.back().second) {
      const std::byte* end = std::max(out.back().first + out.back().second, r.first + r.second);
      out.back().second = static_cast<size_t>(end - out.back().first);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace

L2PrefetchPlan plan_l2_prefetch(const std::vector<WeightedStep>& steps,
                                const L2PrefetchOptions& options) {
  L2PrefetchPlan plan;
  for (const WeightedStep& s : steps) {
    for (const ByteRange& r : s.weights) plan.weight_bytes += r.second;
    plan.activation_bytes += s.activation_bytes;
  }
  plan.reason =
      l2_prefetch_off_reason(plan.weight_bytes, plan.activation_bytes, steps.size(), options);
  if (!plan.reason.empty()) return plan;
  const size_t per_node = static_cast<size_t>(std::max(options.steps_per_node, 1));
  for (size_t j = 0; j < steps.size(); j += per_node) {
    PrefetchNode node;
    node.after_step = j >= 2 ? steps[j - 2].step : PrefetchNode::kAtStart;
    std::vector<ByteRange> ranges;
    for (size_t k = j; k < std::min(steps.size(), j + per_node); ++k)
      ranges.insert(ranges.end(), steps[k].weights.begin(), steps[k].weights.end());
    node.ranges = merged(std::move(ranges));
    for (const ByteRange& r : node.ranges) node.bytes += r.second;
    if (node.bytes > 0) plan.nodes.push_back(std::move(node));
  }
  using Mode = L2PrefetchOptions::Mode;
  plan.reason = str(options.mode == Mode::kOn ? "on (KILN_L2_PREFETCH=1): " : "on: ",
                    l2_prefetch_figures(plan.weight_bytes, plan.activation_bytes, steps.size()),
                    "; ", plan.nodes.size(), " prefetch launches");
  return plan;
}

}  // namespace kiln
