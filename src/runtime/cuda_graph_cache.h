#pragma once

// A context's executable CUDA graphs (DESIGN.md 5). CUDA builds only (cuda_*.cpp).
//
// A graph bakes in every address it was captured with: the bindings, the arena, the workspace
// (and the CUDA context). Enqueue replays the graph of the current input shapes when those
// addresses are the graph's; otherwise it captures again and updates the graph in place.
//
// Staged bindings. Callers such as PyTorch bind fresh tensors on every call (a new output each
// time, often new inputs), so the addresses would never repeat. The policy, per context:
//  - A miss is an enqueue that finds a graph for its shapes captured at another address of an
//    unstaged binding, or another arena, workspace or CUDA context. A replay ends a run of misses;
//    capturing a graph for new shapes neither counts as a miss nor ends a run.
//  - The first miss in a run recaptures at the new addresses: one new buffer is not churn.
//  - On the second and later misses in a run, every unstaged binding whose address differs from
//    the graph's becomes staged, for good (for every shape). Each graph-cache entry then owns a
//    device staging buffer per staged binding, sized for its bytes at the entry's shapes (grown
//    stream-ordered when the entry is reused for larger shapes, never per call; always outside
//    any capture), and its graph is captured against the staging buffer. Enqueue copies each
//    staged input in (staging <- caller's address) before the graph launch and each staged output
//    out (caller's address <- staging) after it, on the caller's stream, between the wait on the
//    previous enqueue's completion event and the record of this one's. Staged bindings' own
//    addresses no longer take part in the match; zero-size staged bindings copy nothing.
//  - Bindings whose address stays put are never staged and cost no copy.
//  - A miss in which no binding differs (only the arena, workspace or context moved) cannot be
//    staged: after two such misses in a row the enqueue runs plain (kernel by kernel) until the
//    same addresses come twice in a row.
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

namespace kiln {

// One executable graph per input-shape signature, each with the addresses (bindings, arena,
// workspace, CUDA context) its kernels were captured with. At most kMaxEntries; a new signature
// takes the place of the least recently used one.
class CudaGraphCache {
 public:
  static constexpr size_t kMaxEntries = 8;
  // In Entry::addresses, the value of a binding the graph reads or writes through its staging
  // buffer (no real address: the caller's one is not part of the match).
  static constexpr uintptr_t kStaged = ~uintptr_t(0);
  struct Entry {
    std::vector<int64_t> shape;
    std::vector<uintptr_t> addresses;
    cudaGraphExec_t exec = nullptr;  // null: a free slot
    // A one-node graph that launches `exec` from the device (backends/cuda/rdc/graph_launcher.h),
    // or null where `exec` is launched from the host. Lives and dies with `exec`.
    cudaGraphExec_t launcher = nullptr;
    uint64_t last_use = 0;
    // Per binding: the staging buffer (cudaMallocAsync) and its bytes, or null. Owned by the
    // context (cuda_context.cpp frees them); they outlive exec, since a slot keeps its buffers
    // when the slot is freed or reused for other shapes.
    std::vector<void*> staging;
    std::vector<size_t> staging_bytes;
  };

  CudaGraphCache() { entries_.reserve(kMaxEntries); }
  CudaGraphCache(const CudaGraphCache&) = delete;
  CudaGraphCache& operator=(const CudaGraphCache&) = delete;
  ~CudaGraphCache() { clear(); }

  // The graph captured for `shape`, or null.
  Entry* find(std::span<const int64_t> shape);
  // The entry for `shape`: the existing one, else a free slot or the least recently used entry
  // (whose graph is destroyed), now set to `shape` with no graph. Stays valid until clear() or
  // the next slot() for other shapes.
  Entry& slot(std::span<const int64_t> shape);
  // Makes `graph` (a fresh capture) the executable graph of `entry` (from slot()), captured at
  // `addresses`: updates the existing one in place when CUDA allows (cudaGraphExecUpdate), else
  // instantiates anew. False when instantiation failed; the entry is then a free slot and no
  // CUDA error is left pending. The caller still owns `graph`.
  // With KILN_DEVICE_GRAPH_LAUNCH=1 and where CUDA allows it, the graph is instantiated for
  // device launch and uploaded on `stream`, and the entry gets a launcher: launch() then costs
  // the host one node, not one per kernel. Otherwise (the default) the host launches it.
  bool install(Entry& entry, std::span<const uintptr_t> addresses, cudaGraph_t graph,
               cudaStream_t stream);
  // Queues the entry's graph on `stream` (through its launcher when it has one).
  static cudaError_t launch(const Entry& entry, cudaStream_t stream) {
    return cudaGraphLaunch(entry.launcher ? entry.launcher : entry.exec, stream);
  }
  void touch(Entry& entry) { entry.last_use = ++clock_; }
  // Destroys every executable graph (staging buffers stay). Launches still in flight complete
  // first: CUDA frees an executing graph when it finishes, so this needs no host wait.
  void clear();
  // Every slot, for freeing the staging buffers.
  std::span<Entry> entries() { return entries_; }

 private:
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
};

}  // namespace kiln
