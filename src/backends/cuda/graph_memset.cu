// replace_memset_nodes: memset nodes of a captured graph become kernel nodes doing the same fill.
//
// cuDNN's SDPA clears a 4-byte counter in its workspace before each attention kernel, and
// cuBLASLt's stream-K / split-K GEMMs clear a semaphore, both with cudaMemsetAsync, which stream
// capture records as memset nodes. On the H100 driver measured here (CUDA 13), a host-launched
// graph holding memset nodes is slow to launch and waits for the GPU whenever it is busy:
// twelve cuDNN attentions (24 nodes) launched in 18.7 us with the GPU idle, GPT-2's forward in
// 34 us and, back to back, 190 us per call (each launch waited for the previous forward). With
// the memsets as fill kernels: 3.9 us and 9.7 us (tools/launch_probe.sh, session 7). A fill
// kernel costs the GPU about what the memset did.

#include <vector>

#include "backends/cuda/graph_memset.h"

#include <algorithm>
#include <cstdint>

namespace kiln::cuda {
namespace {

template <typename T>
__global__ void fill_rows_kernel(char* dst, size_t pitch, T value, size_t width, size_t height) {
  const size_t total = width * height;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / width, col = i % width;
    reinterpret_cast<T*>(dst + row * pitch)[col] = value;
  }
}

// A contiguous fill: `head` elements up to a 16-byte boundary, `words` 16-byte words of the
// repeated value, then `tail` elements. cuDNN's first-layer convolution clears a 12.8 MB
// workspace this way at ResNet-50 batch 32: 22 us with one byte per thread and a division per
// element (fill_rows_kernel), a few us in words.
template <typename T>
__global__ void fill_span_kernel(T* dst, size_t head, size_t words, size_t tail, T value) {
  union {
    uint4 word;
    T elements[sizeof(uint4) / sizeof(T)];
  } pattern;
  for (size_t k = 0; k < sizeof(uint4) / sizeof(T); ++k) pattern.elements[k] = value;
  const size_t first = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  uint4* body = reinterpret_cast<uint4*>(dst + head);
  for (size_t i = first; i < words; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    body[i] = pattern.word;
  if (first < head) dst[first] = value;
  if (first < tail) reinterpret_cast<T*>(body + words)[first] = value;
}

cudaError_t add_kernel_node(cudaGraph_t graph, void* func, void** params, size_t threads,
                            const std::vector<cudaGraphNode_t>& deps, cudaGraphNode_t* node) {
  cudaKernelNodeParams k{};
  k.func = func;
  k.blockDim = dim3(256);
  k.gridDim = dim3(static_cast<unsigned>(std::clamp<size_t>((threads + 255) / 256, 1, 2048)));
  k.kernelParams = params;
  return cudaGraphAddKernelNode(node, graph, deps.data(), deps.size(), &k);
}

// The kernel node doing what the memset node `p` does, added with `deps` as its dependencies.
template <typename T>
cudaError_t add_fill_node(cudaGraph_t graph, const cudaMemsetParams& p,
                          const std::vector<cudaGraphNode_t>& deps, cudaGraphNode_t* node) {
  T value = static_cast<T>(p.value);
  size_t width = p.width, height = p.height;
  if (height <= 1 || p.pitch == width * sizeof(T)) {
    // One span of width * height elements; dst is aligned to the element (a memset's rule).
    T* dst = static_cast<T*>(p.dst);
    const size_t count = width * height;
    const size_t misaligned = reinterpret_cast<uintptr_t>(dst) % sizeof(uint4);
    size_t head = misaligned ? std::min(count, (sizeof(uint4) - misaligned) / sizeof(T)) : 0;
    size_t words = (count - head) * sizeof(T) / sizeof(uint4);
    size_t tail = count - head - words * (sizeof(uint4) / sizeof(T));
    void* params[] = {&dst, &head, &words, &tail, &value};
    return add_kernel_node(graph, reinterpret_cast<void*>(&fill_span_kernel<T>), params,
                           std::max({words, head, tail}), deps, node);
  }
  char* dst = static_cast<char*>(p.dst);
  size_t pitch = p.pitch;
  void* params[] = {&dst, &pitch, &value, &width, &height};
  return add_kernel_node(graph, reinterpret_cast<void*>(&fill_rows_kernel<T>), params,
                         width * height, deps, node);
}

}  // namespace

cudaError_t replace_memset_nodes(cudaGraph_t graph, int* replaced) {
  *replaced = 0;
  size_t count = 0;
  if (cudaError_t e = cudaGraphGetNodes(graph, nullptr, &count); e != cudaSuccess) return e;
  std::vector<cudaGraphNode_t> nodes(count);
  if (cudaError_t e = cudaGraphGetNodes(graph, nodes.data(), &count); e != cudaSuccess) return e;
  for (cudaGraphNode_t m : nodes) {
    cudaGraphNodeType type;
    if (cudaError_t e = cudaGraphNodeGetType(m, &type); e != cudaSuccess) return e;
    if (type != cudaGraphNodeTypeMemset) continue;
    cudaMemsetParams p{};
    if (cudaError_t e = cudaGraphMemsetNodeGetParams(m, &p); e != cudaSuccess) return e;
    if (p.width * p.height == 0) continue;
    size_t n_deps = 0, n_outs = 0;
    if (cudaError_t e = cudaGraphNodeGetDependencies(m, nullptr, nullptr, &n_deps); e != cudaSuccess) return e;
    if (cudaError_t e = cudaGraphNodeGetDependentNodes(m, nullptr, nullptr, &n_outs); e != cudaSuccess) return e;
    std::vector<cudaGraphNode_t> deps(n_deps), outs(n_outs);
    std::vector<cudaGraphEdgeData> dep_edges(n_deps), out_edges(n_outs);
    if (cudaError_t e = cudaGraphNodeGetDependencies(m, deps.data(), dep_edges.data(), &n_deps); e != cudaSuccess) return e;
    if (cudaError_t e = cudaGraphNodeGetDependentNodes(m, outs.data(), out_edges.data(), &n_outs); e != cudaSuccess) return e;
    // Only plain full dependencies are carried over; a memset with programmatic edges stays.
    bool plain = true;
    for (const cudaGraphEdgeData& d : dep_edges) plain = plain && d.type == cudaGraphDependencyTypeDefault && d.from_port == 0;
    for (const cudaGraphEdgeData& d : out_edges) plain = plain && d.type == cudaGraphDependencyTypeDefault && d.from_port == 0;
    if (!plain) continue;
    cudaGraphNode_t fill = nullptr;
    cudaError_t e = p.elementSize == 1   ? add_fill_node<uint8_t>(graph, p, deps, &fill)
                    : p.elementSize == 2 ? add_fill_node<uint16_t>(graph, p, deps, &fill)
                                         : add_fill_node<uint32_t>(graph, p, deps, &fill);
    if (e != cudaSuccess) return e;
    for (cudaGraphNode_t out : outs)
      if ((e = cudaGraphAddDependencies(graph, &fill, &out, nullptr, 1)) != cudaSuccess) return e;
    if ((e = cudaGraphDestroyNode(m)) != cudaSuccess) return e;
    ++*replaced;
  }
  return cudaSuccess;
}

}  // namespace kiln::cuda
