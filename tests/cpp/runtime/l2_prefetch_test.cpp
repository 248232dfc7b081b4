// plan_l2_prefetch: when a CUDA graph gets its weight-prefetch branch, where each launch forks
// from, and which bytes it fetches (the capture itself is tested on the GPU, in
// cuda_runtime/cuda_graphs_test.cpp).

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "runtime/l2_prefetch.h"

namespace kiln {
namespace {

constexpr size_t kMB = 1000 * 1000;
constexpr size_t kL2 = 50 * kMB;

// A GPT-2-like chain at 128 tokens: per layer QKV, out-projection, fc1, fc2 (plan steps 1, 3, 5,
// 6 of 7), each with its weight and bias in one arena of constants laid out in step order.
std::vector<WeightedStep> chain(int layers, size_t tokens, std::vector<std::byte>& arena) {
  const size_t hidden = 768;
  const size_t shapes[4][2] = {
      {3 * hidden, hidden}, {hidden, hidden}, {4 * hidden, hidden}, {hidden, 4 * hidden}};
  const size_t step_of[4] = {1, 3, 5, 6};
  size_t total = 0;
  for (const auto& s : shapes) total += (s[0] * s[1] + s[0]) * 2;
  arena.assign(total * static_cast<size_t>(layers), std::byte{0});
  std::vector<WeightedStep> out;
  size_t at = 0;
  for (int l = 0; l < layers; ++l)
    for (int g = 0; g < 4; ++g) {
      WeightedStep w;
      w.step = static_cast<size_t>(l) * 7 + step_of[g];
      const size_t weight = shapes[g][0] * shapes[g][1] * 2, bias = shapes[g][0] * 2;
      w.weights = {{arena.data() + at, weight}, {arena.data() + at + weight, bias}};
      at += weight + bias;
      w.activation_bytes = tokens * (shapes[g][0] + shapes[g][1]) * 2;
      out.push_back(std::move(w));
    }
  return out;
}

L2PrefetchOptions options(L2PrefetchOptions::Mode mode = L2PrefetchOptions::Mode::kAuto,
                          int per_node = 2) {
  L2PrefetchOptions o;
  o.mode = mode;
  o.l2_bytes = kL2;
  o.steps_per_node = per_node;
  return o;
}

TEST(L2PrefetchPlan, WeightBoundChainPrefetchesTwoStepsAhead) {
  std::vector<std::byte> arena;
  const std::vector<WeightedStep> steps = chain(12, 128, arena);
  const L2PrefetchPlan plan = plan_l2_prefetch(steps, options(L2PrefetchOptions::Mode::kAuto, 1));
  ASSERT_EQ(plan.nodes.size(), steps.size()) << plan.reason;
  EXPECT_EQ(plan.reason.rfind("on: ", 0), 0u) << plan.reason;
  size_t fetched = 0;
  for (size_t j = 0; j < steps.size(); ++j) {
    const PrefetchNode& n = plan.nodes[j];
    EXPECT_EQ(n.after_step, j < 2 ? PrefetchNode::kAtStart : steps[j - 2].step) << j;
    // A weight and its bias are adjacent: one range.
    ASSERT_EQ(n.ranges.size(), 1u) << j;
    EXPECT_EQ(n.ranges[0].first, steps[j].weights[0].first) << j;
    EXPECT_EQ(n.ranges[0].second, steps[j].weights[0].second + steps[j].weights[1].second) << j;
    fetched += n.bytes;
  }
  EXPECT_EQ(fetched, plan.weight_bytes);
  EXPECT_EQ(fetched, arena.size());
}

TEST(L2PrefetchPlan, StepsShareALaunchForkedWhereTheFirstWouldBe) {
  std::vector<std::byte> arena;
  const std::vector<WeightedStep> steps = chain(2, 128, arena);  // 8 weighted steps
  const L2PrefetchPlan plan = plan_l2_prefetch(steps, options(L2PrefetchOptions::Mode::kOn, 3));
  ASSERT_EQ(plan.nodes.size(), 3u);  // steps 0-2, 3-5, 6-7
  EXPECT_EQ(plan.nodes[0].after_step, PrefetchNode::kAtStart);
  EXPECT_EQ(plan.nodes[1].after_step, steps[1].step);
  EXPECT_EQ(plan.nodes[2].after_step, steps[4].step);
  // Consecutive constants merge into one range per launch.
  for (const PrefetchNode& n : plan.nodes) EXPECT_EQ(n.ranges.size(), 1u);
  EXPECT_EQ(plan.nodes[2].ranges[0].first + plan.nodes[2].ranges[0].second,
            arena.data() + arena.size());
}

TEST(L2PrefetchPlan, AutoIsOffWhereActivationsDominateOrWeightsFitInL2) {
  std::vector<std::byte> arena;
  // 4096 tokens: activations outweigh the weights.
  L2PrefetchPlan big = plan_l2_prefetch(chain(12, 4096, arena), options());
  EXPECT_TRUE(big.nodes.empty());
  EXPECT_NE(big.reason.find("activations dominate"), std::string::npos) << big.reason;
  // One layer at 128 tokens: 14 MB of weights stay in a 50 MB L2 from call to call.
  L2PrefetchPlan small = plan_l2_prefetch(chain(1, 128, arena), options());
  EXPECT_TRUE(small.nodes.empty());
  EXPECT_NE(small.reason.find("fit in half of L2"), std::string::npos) << small.reason;
  // Forced on, both get their branch; forced off, neither does.
  EXPECT_FALSE(plan_l2_prefetch(chain(12, 4096, arena), options(L2PrefetchOptions::Mode::kOn))
                   .nodes.empty());
  EXPECT_FALSE(
      plan_l2_prefetch(chain(1, 128, arena), options(L2PrefetchOptions::Mode::kOn)).nodes.empty());
  L2PrefetchPlan off =
      plan_l2_prefetch(chain(12, 128, arena), options(L2PrefetchOptions::Mode::kOff));
  EXPECT_TRUE(off.nodes.empty());
  EXPECT_NE(off.reason.find("KILN_L2_PREFETCH=0"), std::string::npos) << off.reason;
}

// Without an L2 size (before sm_90) auto stays off; forced on, the branch is made anyway. The
// builder applies the same rule to the network's totals (l2_prefetch_off_reason).
TEST(L2PrefetchPlan, AutoNeedsTheDevicesL2) {
  std::vector<std::byte> arena;
  L2PrefetchOptions none = options();
  none.l2_bytes = 0;
  const L2PrefetchPlan plan = plan_l2_prefetch(chain(12, 128, arena), none);
  EXPECT_TRUE(plan.nodes.empty());
  EXPECT_NE(plan.reason.find("sm_90"), std::string::npos) << plan.reason;
  none.mode = L2PrefetchOptions::Mode::kOn;
  EXPECT_FALSE(plan_l2_prefetch(chain(12, 128, arena), none).nodes.empty());
  EXPECT_EQ(l2_prefetch_off_reason(170 * kMB, 42 * kMB, 48, options()), "");
  EXPECT_NE(l2_prefetch_off_reason(170 * kMB, 60 * kMB, 48, options()), "");
}

TEST(L2PrefetchPlan, OverlappingAndEmptyRangesMerge) {
  std::vector<std::byte> buf(1000);
  WeightedStep a, b;
  a.step = 4;
  a.weights = {
      {buf.data() + 100, 200}, {buf.data() + 50, 100}, {nullptr, 10}, {buf.data() + 900, 0}};
  b.step = 9;
  b.weights = {{buf.data() + 600, 100}, {buf.data() + 250, 100}};
  const L2PrefetchPlan plan = plan_l2_prefetch({a, b}, options(L2PrefetchOptions::Mode::kOn, 2));
  ASSERT_EQ(plan.nodes.size(), 1u);
  const std::vector<ByteRange> want = {{buf.data() + 50, 300}, {buf.data() + 600, 100}};
  EXPECT_EQ(plan.nodes[0].ranges, want);
  EXPECT_EQ(plan.nodes[0].bytes, 400u);
}

TEST(L2PrefetchPlan, FewerThanTwoWeightedStepsHaveNothingAhead) {
  std::vector<std::byte> buf(64);
  WeightedStep only;
  only.weights = {{buf.data(), 64}};
  EXPECT_TRUE(plan_l2_prefetch({only}, options(L2PrefetchOptions::Mode::kOn)).nodes.empty());
  EXPECT_TRUE(plan_l2_prefetch({}, options(L2PrefetchOptions::Mode::kOn)).nodes.empty());
}

}  // namespace
}  // namespace kiln
