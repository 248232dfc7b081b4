#include "runtime/cuda_graph_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backends/cuda/rdc/graph_launcher.h"

namespace kiln {
namespace {

// Destroys the entry's executable graph and its launcher (launcher first: it names the graph).
void release(CudaGraphCache::Entry& e) {
  if (e.launcher) cudaGraphExecDestroy(e.launcher);
  if (e.exec) cudaGraphExecDestroy(e.exec);
  e.launcher = nullptr;
  e.exec = nullptr;
}

}  // namespace

// Opt-in (KILN_DEVICE_GRAPH_LAUNCH=1), read at each instantiation. Off by default: under
// torch.profiler (CUPTI tracing) the device-side launch fails, and a launch that fails cannot be
// recovered on the device (graph_launcher.cu then traps, so the failure is loud).
bool CudaGraphCache::deviceLaunchEnabled() {
  const char* v = std::getenv("KILN_DEVICE_GRAPH_LAUNCH");
  return v && std::strcmp(v, "1") == 0;
}

namespace {

bool same_shape(const CudaGraphCache::Entry& e, std::span<const int64_t> shape) {
  return e.exec && std::equal(e.shape.begin(), e.shape.end(), shape.begin(), shape.end());
}

}  // namespace

CudaGraphCache::Entry* CudaGraphCache::find(std::span<const int64_t> shape, std::span<const uintptr_t> addresses) {
  for (Entry& e : entries_)
    if (same_shape(e, shape) && std::equal(e.addresses.begin(), e.addresses.end(), addresses.begin(), addresses.end()))
      return &e;
  return nullptr;
}

CudaGraphCache::Entry* CudaGraphCache::newest(std::span<const int64_t> shape) {
  Entry* best = nullptr;
  for (Entry& e : entries_)
    if (same_shape(e, shape) && (!best || e.last_use > best->last_use)) best = &e;
  return best;
}

CudaGraphCache::Entry& CudaGraphCache::slot(std::span<const int64_t> shape, bool new_variant) {
  auto older = [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; };
  Entry* e = nullptr;
  if (!new_variant) {
    e = newest(shape);
  } else {
    size_t variants = 0;
    Entry* oldest = nullptr;
    for (Entry& v : entries_) {
      if (!same_shape(v, shape)) continue;
      ++variants;
      if (!oldest || older(v, *oldest)) oldest = &v;
    }
    if (variants >= kMaxVariants) e = oldest;
  }
  if (e) return *e;  // keeps its graph: install updates it
  for (Entry& free : entries_)
    if (!free.exec) e = &free;
  // entries_ has kMaxEntries reserved: emplace_back never moves the entries handed out.
  if (!e && entries_.size() < kMaxEntries) e = &entries_.emplace_back();
  if (!e) {
    e = &*std::min_element(entries_.begin(), entries_.end(), older);
    release(*e);
  }
  e->shape.assign(shape.begin(), shape.end());
  e->addresses.clear();
  return *e;
}

void CudaGraphCache::dropVariantsBut(const Entry& keep) {
  for (Entry& e : entries_)
    if (&e != &keep && same_shape(e, keep.shape)) {
      release(e);
      e.addresses.clear();
    }
}

bool CudaGraphCache::install(Entry& e, std::span<const uintptr_t> addresses, cudaGraph_t graph,
                             cudaStream_t stream) {
  if (e.exec) {
    // Same shapes, so usually the same kernels and launch dims: only parameters change.
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(e.exec, graph, &info) != cudaSuccess) {
      (void)cudaGetLastError();
      release(e);
    }
  }
  if (!e.exec && deviceLaunchEnabled()) {
    // Device launch where CUDA accepts the graph (it refuses some node kinds), else host launch.
    if (cudaGraphInstantiate(&e.exec, graph, cudaGraphInstantiateFlagDeviceLaunch) != cudaSuccess ||
        make_tail_launcher(e.exec, &e.launcher) != cudaSuccess) {
      (void)cudaGetLastError();
      release(e);
    }
  }
  if (!e.exec && cudaGraphInstantiate(&e.exec, graph, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    e.exec = nullptr;
    e.addresses.clear();
    return false;
  }
  // A device-launched graph runs what was last uploaded: upload after every (re)instantiation or
  // update, stream-ordered before the launch that follows.
  if (e.launcher && cudaGraphUpload(e.exec, stream) != cudaSuccess) {
    (void)cudaGetLastError();
    release(e);
    e.addresses.clear();
    return false;
  }
  e.addresses.assign(addresses.begin(), addresses.end());
  touch(e);
  return true;
}

void CudaGraphCache::clear() {
  for (Entry& e : entries_) release(e);
}

}  // namespace kiln
