#include "builder/memory_plan.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace kiln::builder {
namespace {

int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

bool overlaps(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, int64_t alignment) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return requests[a].bytes > requests[b].bytes;
  });

  std::vector<size_t> placed;
  for (size_t r : order) {
    const BufferRequest& req = requests[r];
    int64_t size = align_up(std::max<int64_t>(req.bytes, 1), alignment);
    plan.naive_bytes += size;
    // Ranges taken by live-overlapping buffers, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> taken;
    for (size_t p : placed) {
      if (!overlaps(req, requests[p])) continue;
      taken.emplace_back(plan.offsets[p],
                         plan.offsets[p] + align_up(std::max<int64_t>(requests[p].bytes, 1), alignment));
    }
    std::sort(taken.begin(), taken.end());
    int64_t best = -1;
    int64_t best_gap = std::numeric_limits<int64_t>::max();
    int64_t cursor = 0;
    for (const auto& [begin, end] : taken) {
      if (begin > cursor && begin - cursor >= size && begin - cursor < best_gap) {
        best = cursor;
        best_gap = begin - cursor;
      }
      cursor = std::max(cursor, end);
    }
    if (best < 0) best = cursor;  // past everything live
    plan.offsets[r] = best;
    plan.arena_bytes = std::max(plan.arena_bytes, best + size);
    placed.push_back(r);
  }
  return plan;
}

}  // namespace kiln::builder
