// plan_memory: buffers live at the same time never share bytes; buffers that don't may; offsets
// are aligned.

#include <gtest/gtest.h>

#include "builder/memory_plan.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::builder::BufferRequest;
using kiln::builder::MemoryPlan;
using kiln::builder::plan_memory;

int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// Checks the invariants of a plan and returns a description of the first violation.
std::string check_plan(const std::vector<BufferRequest>& reqs, const MemoryPlan& plan,
                       int64_t alignment) {
  if (plan.offsets.size() != reqs.size()) return "wrong number of offsets";
  int64_t naive = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    int64_t size_i = align_up(std::max<int64_t>(reqs[i].bytes, 1), alignment);
    naive += size_i;
    if (plan.offsets[i] < 0 || plan.offsets[i] % alignment != 0)
      return kiln::str("buffer ", i, " at misaligned offset ", plan.offsets[i]);
    if (plan.offsets[i] + reqs[i].bytes > plan.arena_bytes)
      return kiln::str("buffer ", i, " ends past the arena (", plan.arena_bytes, ")");
    for (size_t j = 0; j < i; ++j) {
      bool live_together =
          reqs[i].first_step <= reqs[j].last_step && reqs[j].first_step <= reqs[i].last_step;
      if (!live_together) continue;
      int64_t a0 = plan.offsets[i], a1 = a0 + std::max<int64_t>(reqs[i].bytes, 1);
      int64_t b0 = plan.offsets[j], b1 = b0 + std::max<int64_t>(reqs[j].bytes, 1);
      if (a0 < b1 && b0 < a1)
        return kiln::str("buffers ", j, " [", b0, ", ", b1, ") and ", i, " [", a0, ", ", a1,
                         ") are live together and overlap");
    }
  }
  if (plan.naive_bytes != naive)
    return kiln::str("naive_bytes ", plan.naive_bytes, ", expected ", naive);
  if (plan.arena_bytes > naive) return "arena larger than no reuse at all";
  return "";
}

TEST(MemoryPlan, BuffersLiveTogetherNeverOverlapAcrossRandomCases) {
  kiln_examples::Rng rng(42);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<BufferRequest> reqs;
    int n = 1 + static_cast<int>(rng.next() % 40);
    int steps = 1 + static_cast<int>(rng.next() % 30);
    for (int i = 0; i < n; ++i) {
      BufferRequest r;
      r.bytes = static_cast<int64_t>(rng.next() % (trial % 3 == 0 ? 300 : 100000));
      r.first_step = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(steps));
      r.last_step = r.first_step + static_cast<int32_t>(rng.next() % 6);
      reqs.push_back(r);
    }
    int64_t alignment = trial % 2 ? 256 : 64;
    MemoryPlan plan = plan_memory(reqs, alignment);
    std::string error = check_plan(reqs, plan, alignment);
    ASSERT_EQ(error, "") << "trial " << trial << " with " << n << " buffers";
  }
}

TEST(MemoryPlan, ChainReusesBuffersAfterTheirLastUse) {
  // s0 writes b0; s1 reads b0 and writes b1; ...: at most two are live at once.
  std::vector<BufferRequest> reqs;
  for (int i = 0; i < 10; ++i) reqs.push_back({4096, i, i + 1});
  MemoryPlan plan = plan_memory(reqs, 256);
  EXPECT_EQ(check_plan(reqs, plan, 256), "");
  EXPECT_EQ(plan.naive_bytes, 10 * 4096);
  EXPECT_EQ(plan.arena_bytes, 2 * 4096);
  EXPECT_LT(plan.arena_bytes, plan.naive_bytes);
}

TEST(MemoryPlan, DisjointLifetimesShareOffsetZero) {
  std::vector<BufferRequest> reqs = {{1000, 0, 0}, {3000, 1, 1}, {500, 2, 3}};
  MemoryPlan plan = plan_memory(reqs, 256);
  EXPECT_EQ(plan.offsets, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(plan.arena_bytes, 3072);
}

TEST(MemoryPlan, OverlappingLifetimesGetSeparateAlignedRanges) {
  std::vector<BufferRequest> reqs = {{10, 0, 2}, {300, 1, 3}, {1, 2, 2}};
  MemoryPlan plan = plan_memory(reqs, 256);
  EXPECT_EQ(check_plan(reqs, plan, 256), "");
  for (int64_t off : plan.offsets) EXPECT_EQ(off % 256, 0);
  EXPECT_EQ(plan.arena_bytes, 512 + 256 + 256);
}

TEST(MemoryPlan, SmallBufferFillsAGapLeftByADeadOne) {
  // b0 and b2 live through everything; b1 dies at 1, so b3 (same size, later) can take its place.
  std::vector<BufferRequest> reqs = {{1024, 0, 5}, {1024, 0, 1}, {1024, 0, 5}, {1024, 2, 5}};
  MemoryPlan plan = plan_memory(reqs, 256);
  EXPECT_EQ(check_plan(reqs, plan, 256), "");
  EXPECT_EQ(plan.arena_bytes, 3 * 1024);
  EXPECT_EQ(plan.offsets[3], plan.offsets[1]);
}

TEST(MemoryPlan, EmptyPlanHasNoArena) {
  MemoryPlan plan = plan_memory({}, 256);
  EXPECT_EQ(plan.arena_bytes, 0);
  EXPECT_TRUE(plan.offsets.empty());
}

}  // namespace
}  // namespace kiln_test
