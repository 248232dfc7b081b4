#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace kiln::cuda {

// Reads `bytes` at `p` (16-byte loads that stop at L2, nothing written) on `stream`, so that they
// sit in L2 as if an op had just written them: tactic timing warms an op's activation inputs
// this way after flushing L2, and leaves its weights cold (l2_touch.cu).
cudaError_t launch_l2_touch(const void* p, size_t bytes, cudaStream_t stream);

// Asks for `n` byte ranges (starts[i], bytes[i]) to be fetched into L2, without waiting for them
// (cp.async.bulk.prefetch.L2 on sm_90 and later, prefetch.global.L2 per 128-byte line before):
// the kernel is done once the requests are issued. The 16-byte-aligned inside of each range is
// fetched. A graph's side branch prefetches the next GEMMs' weights this way
// (runtime/l2_prefetch.h).
cudaError_t launch_l2_prefetch(const void* const* starts, const size_t* bytes, int n,
                               cudaStream_t stream);

// The L2 size that decides automatic prefetching on `device` (L2PrefetchOptions::l2_bytes): its
// L2 from sm_90, whose bulk prefetch was measured; 0 before, or when it cannot be queried. The
// runtime plans its graphs' branch with it, the builder its tactic timing.
size_t l2_prefetch_auto_bytes(int device);

}  // namespace kiln::cuda
