#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/dtype.h"
#include "kiln/export.h"
#include "kiln/status.h"
#include "kiln/sym_expr.h"

// The one third-party type the public API shows (same declaration as cuda_runtime_api.h).
struct CUstream_st;
using cudaStream_t = CUstream_st*;

namespace kiln {

class ExecutionContext;
struct EngineState;

// Selects the CUDA stream that Kiln calls without a stream argument use on this thread, for the
// guard's scope (RAII, thread-local, nests). With no guard they use cudaStreamPerThread. A
// caller running in a CUDA green context must pass or guard a stream of that context.
class KILN_API CudaStreamGuard {
 public:
  explicit CudaStreamGuard(cudaStream_t stream);
  ~CudaStreamGuard();
  CudaStreamGuard(const CudaStreamGuard&) = delete;
  CudaStreamGuard& operator=(const CudaStreamGuard&) = delete;
  // The innermost guarded stream of this thread, or null when none.
  static cudaStream_t current();
  static bool active();

 private:
  cudaStream_t previous_;
  bool previous_active_;
};

struct BindingInfo {
  std::string name;
  bool is_input = true;
  DType dtype = DType::kFloat32;
  Shape shape;  // symbolic; dims of outputs are SymExprs of the input symbols
};

struct StepInfo {
  std::string name;
  std::string op;      // "conv"
  std::string tactic;  // "cpu.conv.im2col_gemm"; "view" for aliasing steps
  std::string attrs;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

// A CUDA device this process sees: what an engine's target is matched against.
struct CudaDeviceInfo {
  int index = 0;
  int sm_major = 0;
  int sm_minor = 0;
  std::string name;
};
// Every visible CUDA device, in index order; empty in a build without CUDA or with no device.
KILN_API std::vector<CudaDeviceInfo> cudaDevices();

struct EngineInfo {
  std::string name;
  std::string kiln_version;
  uint32_t format_version = 0;
  std::string device;  // the target: "cpu (<model>)" or "cuda sm_90 (NVIDIA H100 ...)"
  std::string platform;
  std::vector<SymbolInfo> symbols;
  std::vector<BindingInfo> bindings;
  std::vector<StepInfo> steps;
  int64_t arena_bytes = 0;
  int64_t constant_bytes = 0;
  int64_t num_constants = 0;
  struct Kernel {
    std::string name;
    std::string source;
  };
  std::vector<Kernel> kernels;  // generated kernels and their source
  std::string build_options;    // JSON
};

struct DeserializeOptions {
  std::string device = "cpu";  // "cpu" or "cuda:N"; the file must target this kind
};

// Immutable and thread-safe: the plan and the weights. Contexts share it.
class KILN_API Engine : public std::enable_shared_from_this<Engine> {
 public:
  // Verifies and loads a serialized engine. Truncated, corrupted, future-version and
  // wrong-target files are refused with a message that says which.
  static Result<std::shared_ptr<Engine>> deserialize(std::span<const std::byte> bytes,
                                                     const DeserializeOptions& options = {});
  static Result<std::shared_ptr<Engine>> load(const std::string& path,
                                              const DeserializeOptions& options = {});
  // Describes a serialized engine without loading it for a device: the same checks as
  // deserialize (truncation, corruption, version, checksum, fields) but not the target's, and
  // nothing is uploaded or bound, so any machine can inspect an engine built for any target
  // (a CUDA engine without a GPU). info.device names the target: pick a device from it, then
  // deserialize or load, which still refuse a wrong target.
  static Result<EngineInfo> inspect(std::span<const std::byte> bytes);
  static Result<EngineInfo> inspect(const std::string& path);
  ~Engine();

  const std::string& name() const;
  const std::vector<BindingInfo>& bindings() const;
  std::vector<std::string> inputNames() const;
  std::vector<std::string> outputNames() const;
  const std::vector<SymbolInfo>& symbols() const;
  // Activation memory a context needs at the profile's max shapes, in bytes.
  int64_t deviceMemorySize() const;
  EngineInfo info() const;
  // The serialized bytes this engine was loaded from.
  std::span<const std::byte> serialized() const;

  // With allocate_memory false the caller must setDeviceMemory() before enqueue.
  Result<std::unique_ptr<ExecutionContext>> createExecutionContext(bool allocate_memory = true);

  const EngineState& state() const { return *state_; }

 private:
  Engine() = default;
  std::unique_ptr<EngineState> state_;
};

struct ContextState;

// Per-execution state: input shapes, tensor addresses, activation memory. One execution at a
// time; enqueue it again and again without synchronizing in between.
class KILN_API ExecutionContext {
 public:
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;

  const Engine& engine() const;

  // Binds the dynamic dims of input `name`; fails naming the binding, dim and range when a
  // dim is outside the built profile or contradicts another input sharing its symbol.
  Status setInputShape(const std::string& name, std::span<const int64_t> dims);
  // Shape of any binding; outputs are known once every input shape is set.
  Result<std::vector<int64_t>> getTensorShape(const std::string& name) const;
  // The same into `dims`, reusing its capacity (no allocation per call once it is large
  // enough); `dims` is left unchanged on failure.
  Status getTensorShape(const std::string& name, std::vector<int64_t>& dims) const;
  Status setTensorAddress(const std::string& name, void* data);
  // Caller-owned activation memory of at least engine().deviceMemorySize() bytes, 256-aligned.
  Status setDeviceMemory(void* memory, size_t bytes);

  // Runs the plan. On the CPU it runs on the calling thread and `stream` must be null; on CUDA
  // it queues the work on `stream` (null: the thread's selected stream) and returns.
  Status enqueue(cudaStream_t stream = nullptr);

  // CUDA graphs (CUDA engines): the first enqueue with given input shapes and addresses captures
  // the plan's launches into a graph (on a private stream), later ones replay it on the caller's
  // stream. On by default when the engine was built with BuilderConfig::cuda_graphs and the
  // environment has no KILN_CUDA_GRAPHS=0; a capture that fails turns them off for this context
  // and the enqueue runs plain. Enqueues on a stream the caller is capturing (they become part
  // of the caller's graph) or on a green-context stream run plain. Off: every enqueue launches
  // the kernels one by one.
  void setCudaGraphs(bool enabled);
  // Whether this context may use graphs now (false on the CPU).
  bool cudaGraphs() const;
  // Enqueues that replayed an existing graph without capturing, and captures made, so far.
  int64_t cudaGraphReplays() const;
  int64_t cudaGraphCaptures() const;
  // Device copies queued so far between the caller's buffers and the context's staging buffers:
  // a binding whose address changes from enqueue to enqueue (fresh output tensors every call)
  // is read or written through a buffer of the context's own, so that the graph still replays.
  int64_t cudaGraphStagedCopies() const;
  // Graph launches (replays and first launches after a capture) that the device made: the host
  // launched a one-node graph whose kernel launched the engine's graph. Opt-in with the
  // environment variable KILN_DEVICE_GRAPH_LAUNCH=1 when the context captures; not usable under
  // CUPTI tracing (torch.profiler, Nsight Systems' CUDA trace), where the device launch fails.
  int64_t cudaGraphDeviceLaunches() const;
  // CUDA engines: enqueues that launched the kernels one by one (graphs off, in the caller's capture, a
  // green-context stream, or addresses that keep moving), and why graphs went off for this
  // context when a capture, instantiation or launch failed ("" while they are on).
  int64_t plainLaunches() const;
  const std::string& cudaGraphFailure() const;
  // Nodes of the graph captured last (0 before any capture): what a host graph launch costs
  // grows with it.
  int64_t cudaGraphNodes() const;
  // The L2 weight prefetch of the graph captured last: its launches (part of cudaGraphNodes),
  // and the runtime's decision with its figures ("on: ...", "off: ..."; "" before any capture).
  // A weight-bound engine (a transformer at batch 1, whose GEMMs stream more weight bytes than
  // activation bytes) gets a side branch in its graph that fetches the next GEMMs' weights into
  // L2 while the ones before run. Automatic on sm_90 and later; KILN_L2_PREFETCH=0 or 1 in the
  // environment turns it off or on for every capture.
  int64_t cudaGraphPrefetchNodes() const;
  const std::string& l2Prefetch() const;
  // Host time spent so far inside enqueue (on the CPU: the whole run), and inside the graph
  // launches it made, in nanoseconds of the steady clock.
  int64_t enqueueHostNanoseconds() const;
  int64_t graphLaunchHostNanoseconds() const;

  // Convenience: bind inputs in the engine's input order (dims and host/device pointers),
  // outputs in output order, and run.
  struct TensorRef {
    void* data = nullptr;
    std::vector<int64_t> dims;
  };
  Status execute(std::span<const TensorRef> inputs, std::span<void* const> outputs);

 private:
  friend class Engine;
  ExecutionContext() = default;
  std::unique_ptr<ContextState> state_;
};

}  // namespace kiln
