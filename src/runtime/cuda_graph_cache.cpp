#include "runtime/cuda_graph_cache.h"

#include <algorithm>

namespace kiln {

CudaGraphCache::Entry* CudaGraphCache::find(std::span<const int64_t> shape) {
  for (Entry& e : entries_)
    if (e.exec && std::equal(e.shape.begin(), e.shape.end(), shape.begin(), shape.end())) return &e;
  return nullptr;
}

CudaGraphCache::Entry& CudaGraphCache::slot(std::span<const int64_t> shape) {
  if (Entry* e = find(shape)) return *e;
  Entry* e = nullptr;
  for (Entry& free : entries_)
    if (!free.exec) e = &free;
  // entries_ has kMaxEntries reserved: emplace_back never moves the entries handed out.
  if (!e && entries_.size() < kMaxEntries) e = &entries_.emplace_back();
  if (!e) {
    e = &*std::min_element(entries_.begin(), entries_.end(),
                           [](const Entry& a, const Entry& b) { return a.last_use < b.last_use; });
    cudaGraphExecDestroy(e->exec);
    e->exec = nullptr;
  }
  e->shape.assign(shape.begin(), shape.end());
  e->addresses.clear();
  return *e;
}

bool CudaGraphCache::install(Entry& e, std::span<const uintptr_t> addresses, cudaGraph_t graph) {
  if (e.exec) {
    // Same shapes, so usually the same kernels and launch dims: only parameters change.
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(e.exec, graph, &info) != cudaSuccess) {
      (void)cudaGetLastError();
      cudaGraphExecDestroy(e.exec);
      e.exec = nullptr;
    }
  }
  if (!e.exec && cudaGraphInstantiate(&e.exec, graph, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    e.exec = nullptr;
    e.addresses.clear();
    return false;
  }
  e.addresses.assign(addresses.begin(), addresses.end());
  touch(e);
  return true;
}

void CudaGraphCache::clear() {
  for (Entry& e : entries_) {
    if (e.exec) cudaGraphExecDestroy(e.exec);
    e.exec = nullptr;
  }
}

}  // namespace kiln
