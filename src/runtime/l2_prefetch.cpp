#include "runtime/l2_prefetch.h"

#include <algorithm>
#include <cstdlib>

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

std::string mb(size_t bytes) { return str(static_cast<double>(bytes) / 1e6, " MB"); }

}  // namespace

L2PrefetchPlan plan_l2_prefetch(const std::vector<WeightedStep>& steps,
                                const L2PrefetchOptions& options) {
  L2PrefetchPlan plan;
  for (const WeightedStep& s : steps) {
    for (const ByteRange& r : s.weights) plan.weight_bytes += r.second;
    plan.activation_bytes += s.activation_bytes;
  }
  const double ratio = static_cast<double>(plan.weight_bytes) /
                       static_cast<double>(std::max<size_t>(plan.activation_bytes, 1));
  const std::string figures = str(mb(plan.weight_bytes), " of weights, ", mb(plan.activation_bytes),
                                  " of activations in ", steps.size(), " steps");
  using Mode = L2PrefetchOptions::Mode;
  if (options.mode == Mode::kOff) {
    plan.reason = "off (KILN_L2_PREFETCH=0)";
    return plan;
  }
  if (steps.size() < 2) {
    plan.reason = str("off: ", figures, " (nothing ahead to prefetch)");
    return plan;
  }
  if (options.mode == Mode::kAuto) {
    if (plan.weight_bytes * 2 <= options.l2_bytes) {
      plan.reason =
          str("off: ", figures, "; the weights fit in half of L2 (", mb(options.l2_bytes), ")");
      return plan;
    }
    if (ratio < options.min_weight_ratio) {
      plan.reason = str("off: ", figures, "; activations dominate (", ratio,
                        " weight bytes per byte, ", options.min_weight_ratio, " wanted)");
      return plan;
    }
  }
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
  plan.reason = str(options.mode == Mode::kOn ? "on (KILN_L2_PREFETCH=1): " : "on: ", figures, "; ",
                    plan.nodes.size(), " prefetch launches");
  return plan;
}

L2PrefetchOptions l2_prefetch_options_from_environment(size_t l2_bytes) {
  L2PrefetchOptions o;
  o.l2_bytes = l2_bytes;
  if (const char* v = std::getenv("KILN_L2_PREFETCH"); v && v[0] && !v[1]) {
    if (v[0] == '0') o.mode = L2PrefetchOptions::Mode::kOff;
    if (v[0] == '1') o.mode = L2PrefetchOptions::Mode::kOn;
  }
  if (const char* v = std::getenv("KILN_L2_PREFETCH_STEPS"))
    o.steps_per_node = std::max(1, std::atoi(v));
  return o;
}

}  // namespace kiln
