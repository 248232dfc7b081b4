// launch_l2_touch (l2_touch.h): one read-only sweep whose loads are kept (their XOR is stored
// only when `sink` is set, which the launcher never does).

#include "backends/cuda/l2_touch.h"

#include <algorithm>
#include <cstdint>

namespace kiln::cuda {
namespace {

// The 16-byte vectors by every thread; the unaligned bytes before and after them (under 16 each)
// by the first block's threads.
__global__ void l2_touch_kernel(const uint4* p, size_t n, const unsigned char* head, int head_n,
                                const unsigned char* tail, int tail_n, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint4 v = __ldcg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (blockIdx.x == 0 && static_cast<int>(threadIdx.x) < head_n) acc ^= __ldcg(head + threadIdx.x);
  if (blockIdx.x == 0 && static_cast<int>(threadIdx.x) < tail_n) acc ^= __ldcg(tail + threadIdx.x);
  if (sink) atomicXor(sink, acc);
}

}  // namespace

cudaError_t launch_l2_touch(const void* p, size_t bytes, cudaStream_t stream) {
  if (!p || bytes == 0) return cudaSuccess;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  const size_t head = std::min<size_t>((16 - addr % 16) % 16, bytes);
  const size_t n = (bytes - head) / 16;
  const auto* vec = reinterpret_cast<const uint4*>(addr + head);
  const size_t tail = bytes - head - n * 16;
  const unsigned blocks = static_cast<unsigned>(std::clamp<size_t>((n + 255) / 256, 1, 1024));
  l2_touch_kernel<<<blocks, 256, 0, stream>>>(vec, n, static_cast<const unsigned char*>(p),
                                              static_cast<int>(head),
                                              reinterpret_cast<const unsigned char*>(vec + n),
                                              static_cast<int>(tail), nullptr);
  return cudaGetLastError();
}

}  // namespace kiln::cuda
