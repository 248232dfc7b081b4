#pragma once

// A context's executable CUDA graphs (DESIGN.md 5). CUDA builds only (cuda_*.cpp).
//
// A graph bakes in every address it was captured with: the bindings, the arena, the workspace
// (and the CUDA context). Enqueue replays the graph of the current input shapes when those
// addresses are the graph's; otherwise it captures again and updates the graph in place.
//
// Address variants. A caller that allocates each call's output while it still holds the last
// one's (PyTorch's fresh output tensors, and more so pre-allocated outputs) hands the engine a
// short cycle of buffers: A, B, A, B, ... or A, B, C, A, B, C, ... So a shape keeps up to
// kMaxVariants graphs, each captured at its own binding addresses, and a call replays whichever
// matches: no copies, no recapture, once each buffer of the cycle has been seen.
//
// Staged bindings. Callers that bind a fresh buffer on every call (no cycle) would never see
// their addresses repeat. The policy, per context:
//  - A miss is an enqueue that finds graphs for its shapes but none at its addresses (an
//    unstaged binding, the arena, the workspace or the CUDA context differ). A replay ends a run
//    of misses; capturing a graph for new shapes neither counts as a miss nor ends a run.
//  - The first kMaxVariants - 1 misses in a run capture a new variant at the new addresses (or,
//    with kMaxVariants variants already, recapture the least recently used one): a few buffers in
//    turn are not churn.
//  - On the kMaxVariants-th and later misses in a run, every unstaged binding whose address
//    differs from the shape's newest graph's becomes staged, for good (for every shape), and the
//    shape's other variants are dropped. Each graph-cache entry then owns a device staging buffer
//    per staged binding, sized for its bytes at the entry's shapes (grown stream-ordered when
//    the entry is reused for larger shapes, never per call; always outside any capture), and its
//    graph is captured against the staging buffer. Enqueue copies each staged input in (staging
//    <- caller's address) before the graph launch and each staged output out (caller's address
//    <- staging) after it, on the caller's stream, between the wait on the previous enqueue's
//    completion event and the record of this one's. Staged bindings' own addresses no longer take
//    part in the match; zero-size staged bindings copy nothing.
//  - Bindings whose address stays put, or cycles through a few buffers, are never staged and
//    cost no copy.
//  - A miss in which no binding differs (only the arena, workspace or context moved) cannot be
//    staged: after two such misses in a row the enqueue runs plain (kernel by kernel) until the
//    same addresses come twice in a row.
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

namespace kiln {

// Executable graphs by input-shape signature, up to kMaxVariants per signature, each with the
// addresses (bindings, arena, workspace, CUDA context) its kernels were captured with. At most
// kMaxEntries in all; a new one takes the place of the least recently used.
class CudaGraphCache {
 public:
  static constexpr size_t kMaxEntries = 16;
  static constexpr size_t kMaxVariants = 3;
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
    // The graph ends with a record of the context's `done` event (an event record node), so a
    // replay needs no cudaEventRecord of its own (cuda_context.cpp).
    bool records_done = false;
  };

  // Whether graphs are instantiated for device-side launch (KILN_DEVICE_GRAPH_LAUNCH=1).
  static bool deviceLaunchEnabled();

  CudaGraphCache() { entries_.reserve(kMaxEntries); }
  CudaGraphCache(const CudaGraphCache&) = delete;
  CudaGraphCache& operator=(const CudaGraphCache&) = delete;
  ~CudaGraphCache() { clear(); }

  // The graph captured for `shape` at `addresses`, or null.
  Entry* find(std::span<const int64_t> shape, std::span<const uintptr_t> addresses);
  // The most recently used graph for `shape`, or null.
  Entry* newest(std::span<const int64_t> shape);
  // The entry to capture `shape` into. With `new_variant`, a free slot or the least recently used
  // entry, unless `shape` has kMaxVariants graphs already: then its least recently used one.
  // Without, the shape's newest graph, or a slot as above when it has none. A reused entry keeps
  // its graph (install updates it in place) when it had `shape`; otherwise its graph is destroyed
  // and it is set to `shape`. Stays valid until clear() or the next slot().
  Entry& slot(std::span<const int64_t> shape, bool new_variant);
  // Destroys every graph for `keep`'s shape but `keep`'s.
  void dropVariantsBut(const Entry& keep);
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
