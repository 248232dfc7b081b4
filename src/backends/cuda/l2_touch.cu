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

constexpr int kPrefetchRanges = 8;
constexpr unsigned kPrefetchChunk = 16384;  // bytes per request

struct PrefetchRanges {
  const unsigned char* start[kPrefetchRanges];  // 16-byte aligned
  size_t bytes[kPrefetchRanges];                // multiples of 16
  int n;
};

// Requests of up to kPrefetchChunk bytes, the ranges' chunks numbered in a row and dealt to the
// blocks in turn (chunk c to block c % gridDim.x), so that few chunks still spread over blocks.
__global__ void l2_prefetch_kernel(PrefetchRanges r) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t chunk = static_cast<size_t>(threadIdx.x) * gridDim.x + blockIdx.x;
  size_t first = 0;  // the first chunk of range i
  for (int i = 0; i < r.n; ++i) {
    const size_t chunks = (r.bytes[i] + kPrefetchChunk - 1) / kPrefetchChunk;
    for (; chunk < first + chunks; chunk += stride) {
      const size_t off = (chunk - first) * kPrefetchChunk;
      const unsigned char* p = r.start[i] + off;
      const size_t left = r.bytes[i] - off;
      const unsigned n = static_cast<unsigned>(left < kPrefetchChunk ? left : kPrefetchChunk);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(n) : "memory");
#else
      for (unsigned line = 0; line < n; line += 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p + line));
#endif
    }
    first += chunks;
  }
}

}  // namespace

cudaError_t launch_l2_prefetch(const void* const* starts, const size_t* bytes, int n,
                               cudaStream_t stream) {
  for (int at = 0; at < n; at += kPrefetchRanges) {
    PrefetchRanges r{};
    size_t chunks = 0;
    for (int i = at; i < std::min(n, at + kPrefetchRanges); ++i) {
      const auto begin = (reinterpret_cast<uintptr_t>(starts[i]) + 15) & ~uintptr_t{15};
      const auto end = (reinterpret_cast<uintptr_t>(starts[i]) + bytes[i]) & ~uintptr_t{15};
      if (!starts[i] || end <= begin) continue;
      r.start[r.n] = reinterpret_cast<const unsigned char*>(begin);
      r.bytes[r.n] = end - begin;
      chunks += (r.bytes[r.n] + kPrefetchChunk - 1) / kPrefetchChunk;
      ++r.n;
    }
    if (r.n == 0) continue;
    // About 8 requests a block: they leave from many SMs at once, which fetches faster than
    // the same requests from a few (tools/l2_prefetch_probe.cu: 16 blocks beat 4).
    const unsigned blocks = static_cast<unsigned>(std::clamp<size_t>((chunks + 7) / 8, 1, 132));
    l2_prefetch_kernel<<<blocks, 32, 0, stream>>>(r);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

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

size_t l2_prefetch_auto_bytes(int device) {
  int l2 = 0, major = 0;
  if (cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return major >= 9 && l2 > 0 ? static_cast<size_t>(l2) : 0;
}

}  // namespace kiln::cuda
