#pragma once

#include <cstdint>
#include <vector>

namespace kiln::builder {

// One activation buffer to place in the arena: its size at the profile's max shapes and the
// steps during which it is live (inclusive: written at first_step, last read at last_step).
struct BufferRequest {
  int64_t bytes = 0;
  int32_t first_step = 0;
  int32_t last_step = 0;
};

// Offsets in one arena, as data, so tests and `kiln inspect` can read it.
struct MemoryPlan {
  std::vector<int64_t> offsets;  // per request, aligned to `alignment`
  int64_t arena_bytes = 0;
  int64_t naive_bytes = 0;  // sum of all buffers: what no reuse would cost
};

// Places buffers largest first, each in the best-fitting gap (the smallest free range that holds
// it) among the buffers already placed whose lifetimes overlap its own; buffers with disjoint
// lifetimes share memory.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, int64_t alignment = 256);

}  // namespace kiln::builder
