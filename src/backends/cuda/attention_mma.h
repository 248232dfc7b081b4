#pragma once

// Host-visible facts about the tensor-core attention kernel (attention_mma.cu), for tests and
// benchmarks; no CUDA header.

#include <cstdint>

namespace kiln::cuda {

// How many times the tensor-core attention kernel was launched in this process. The attention
// tactic falls back to the CUDA-core kernel for shapes or layouts it does not serve; tests read
// this to check which path a case took.
int64_t attention_mma_launch_count();
// Of those, the launches of the short-sequence kernel (all keys of a batch entry in shared
// memory: S <= 256 at head dim 64, S <= 128 at 128); the rest streamed K and V in tiles.
int64_t attention_mma_short_launch_count();

}  // namespace kiln::cuda
