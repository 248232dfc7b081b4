// launch_l2_touch (l2_touch.h): a read-only sweep whose loads are kept (their XOR is stored only
// when `sink` is set, which the launcher never does).

#include "backends/cuda/l2_touch.h"

#include <algorithm>
#include <cstdint>

namespace kiln::cuda {
namespace {

__global__ void l2_touch_kernel(const uint4* p, size_t n, const unsigned char* tail, size_t tail_n,
                                unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint4 v = __ldcg(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (blockIdx.x == 0 && threadIdx.x < tail_n) acc ^= __ldcg(tail + threadIdx.x);
  if (sink) atomicXor(sink, acc);
}

}  // namespace

cudaError_t launch_l2_touch(const void* p, size_t bytes, cudaStream_t stream) {
  if (!p || bytes == 0) return cudaSuccess;
  // Whole 16-byte vectors from the first 16-byte boundary; the bytes before it and after the last
  // vector (under 32) by the first block's threads.
  const auto addr = reinterpret_cast<uintptr_t>(p);
  const size_t head = std::min<size_t>((16 - addr % 16) % 16, bytes);
  const size_t n = (bytes - head) / 16;
  const auto* vec = reinterpret_cast<const uint4*>(addr + head);
  const size_t tail_n = bytes - head - n * 16;
  if (head > 0) {
    l2_touch_kernel<<<1, 32, 0, stream>>>(nullptr, 0, static_cast<const unsigned char*>(p), head,
                                          nullptr);
  }
  if (n > 0 || tail_n > 0) {
    const unsigned blocks = static_cast<unsigned>(std::clamp<size_t>((n + 255) / 256, 1, 1024));
    l2_touch_kernel<<<blocks, 256, 0, stream>>>(
        vec, n, reinterpret_cast<const unsigned char*>(vec + n), tail_n, nullptr);
  }
  return cudaGetLastError();
}

}  // namespace kiln::cuda
