// The CUDA execution context: completion-event protocol, workspace, and CUDA graphs.
#include <cuda.h>  // CUcontext / CUgreenCtx only: driver calls come through cudaGetDriverEntryPoint
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/graph_memset.h"
#include "backends/cuda/l2_touch.h"
#include "runtime/cuda_device_guard.h"
#include "runtime/cuda_graph_cache.h"
#include "runtime/cuda_runtime.h"
#include "runtime/host_clock.h"
#include "runtime/l2_prefetch.h"

namespace kiln {

struct CudaResources {
  int device = 0;
  cudaEvent_t done = nullptr;  // recorded after the last kernel of each enqueue
  bool recorded = false;
  cudaStream_t done_stream = nullptr;  // where `done` was last recorded (null: unknown)
  void* owned_arena = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  bool workspace_stream_ordered = true;  // from cudaMallocAsync (else cudaMalloc)
  std::vector<void*> retired;  // cudaMalloc'd workspaces outgrown; freed with the context
  size_t workspace_needed = 0;  // for the current shapes
  uint64_t shape_generation = 0;  // of the layouts workspace_needed and shape_key describe
  std::unique_ptr<cuda::CudaBackendState> backend;

  bool graphs_allowed = false;  // the engine was built with graphs and the environment allows them
  bool graphs_failed = false;   // a capture failed: plain launches from then on
  // Graphs are captured on this private stream, created on first use, and launched on the
  // caller's: capture runs nothing, so the caller's stream (even the legacy default stream,
  // where capture is illegal) sees only the launch.
  cudaStream_t capture_stream = nullptr;
  CUcontext capture_context = nullptr;
  CudaGraphCache graphs;
  std::vector<int64_t> shape_key;  // every input's dims, one after another
  std::vector<uintptr_t> address_key, last_address_key;  // reused by every enqueue
  int address_misses = 0;  // enqueues in a row whose addresses differed from their graph's
  // Per binding: read and written through a staging buffer in every graph (cuda_graph_cache.h).
  std::vector<uint8_t> staged;
  std::vector<void*> saved_addresses;  // the caller's, while a capture binds the staging buffers
  // The L2 prefetch branch of captured graphs (l2_prefetch.h): its stream and the events that
  // fork it from the capture stream and join it back, made on first use.
  cudaStream_t prefetch_stream = nullptr;
  cudaEvent_t prefetch_fork = nullptr, prefetch_join = nullptr;
  int64_t l2_bytes = -1;  // the device's L2 (0: prefetching never decided on automatically)
};

void destroy_cuda_resources(CudaResources* r) {
  if (!r) return;
  {
    DeviceGuard guard(r->device);
    // The one host wait of the runtime: the memory below may still be in use by queued work.
    if (r->done) {
      cudaEventSynchronize(r->done);
      cudaEventDestroy(r->done);
    }
    r->graphs.clear();
    for (CudaGraphCache::Entry& e : r->graphs.entries())
      for (void* p : e.staging)
        if (p) cudaFree(p);
    if (r->capture_stream) cudaStreamDestroy(r->capture_stream);
    if (r->prefetch_stream) cudaStreamDestroy(r->prefetch_stream);
    if (r->prefetch_fork) cudaEventDestroy(r->prefetch_fork);
    if (r->prefetch_join) cudaEventDestroy(r->prefetch_join);
    if (r->workspace) cudaFree(r->workspace);
    for (void* p : r->retired) cudaFree(p);
    if (r->owned_arena) cudaFree(r->owned_arena);
    r->backend.reset();
  }
  delete r;
}

namespace {

bool graphs_disabled_by_environment() {
  const char* v = std::getenv("KILN_CUDA_GRAPHS");
  return v && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

// Two driver calls, fetched through the runtime so that the runtime need not link libcuda.
struct DriverCalls {
  CUresult (*stream_get_ctx)(CUstream, CUcontext*, CUgreenCtx*) = nullptr;  // cuStreamGetCtx_v2
  CUresult (*ctx_get_current)(CUcontext*) = nullptr;
};

// A driver entry point through the runtime (libkiln does not link libcuda); null where missing.
void* driver_entry(const char* name, int version) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found{};
  if (cudaGetDriverEntryPointByVersion(name, &fn, version, cudaEnableDefault, &found) != cudaSuccess ||
      found != cudaDriverEntryPointSuccess)
    fn = nullptr;
  (void)cudaGetLastError();
  return fn;
}

const DriverCalls& driver_calls() {
  static const DriverCalls calls = [] {
    DriverCalls c;
    c.stream_get_ctx = reinterpret_cast<decltype(c.stream_get_ctx)>(driver_entry("cuStreamGetCtx", 12050));
    c.ctx_get_current = reinterpret_cast<decltype(c.ctx_get_current)>(driver_entry("cuCtxGetCurrent", 12050));
    return c;
  }();
  return calls;
}

// The CUDA context of `stream` when a graph may be instantiated and launched there: a regular
// context that is also the current one (where cudaGraphInstantiate puts the executable graph).
// Null for green-context streams, which run plain, and on error.
CUcontext graph_context(cudaStream_t stream) {
  const DriverCalls& d = driver_calls();
  if (!d.stream_get_ctx || !d.ctx_get_current) return nullptr;
  CUcontext ctx = nullptr, current = nullptr;
  CUgreenCtx green = nullptr;
  if (d.stream_get_ctx(reinterpret_cast<CUstream>(stream), &ctx, &green) != CUDA_SUCCESS || green) return nullptr;
  if (d.ctx_get_current(&current) != CUDA_SUCCESS || current != ctx) return nullptr;
  return ctx;
}

bool done_node_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("KILN_GRAPH_DONE_NODE");
    return !(v && v[0] == '0');
  }();
  return enabled;
}

bool graphs_on(const ContextState& st, const CudaResources& r) {
  return st.cuda_graphs_requested && r.graphs_allowed && !r.graphs_failed;
}

enum class Launch {
  kPlain,             // kernel by kernel
  kGraph,             // replay or capture our own graph
  kInCallersCapture,  // kernel by kernel into the graph the caller is capturing on the stream
};

Launch choose_launch(const ContextState& st, CudaResources& r, cudaStream_t stream, CUcontext* ctx) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    (void)cudaGetLastError();
    return Launch::kPlain;
  }
  if (capture != cudaStreamCaptureStatusNone) return Launch::kInCallersCapture;
  if (!graphs_on(st, r)) return Launch::kPlain;
  *ctx = graph_context(stream);
  if (!*ctx) return Launch::kPlain;
  if (!r.capture_stream) {
    if (cudaStreamCreateWithFlags(&r.capture_stream, cudaStreamNonBlocking) != cudaSuccess) {
      r.capture_stream = nullptr;
      (void)cudaGetLastError();
      r.graphs_failed = true;
      return Launch::kPlain;
    }
    r.capture_context = graph_context(r.capture_stream);
  }
  // Captured in one context, launched in another would not work: such a caller runs plain.
  return r.capture_context == *ctx ? Launch::kGraph : Launch::kPlain;
}

// Grows the workspace to what the current shapes need; before any capture, since an allocation
// inside one would live only while the graph runs. Outside a capture the allocation is
// stream-ordered (no device-wide synchronization). Inside the caller's capture it is a cudaMalloc
// in relaxed capture mode, and the outgrown workspace stays allocated until the context goes,
// because work the caller's graph has not run yet may still use it.
Status ensure_workspace(CudaResources& r, cudaStream_t stream, bool in_callers_capture) {
  if (r.workspace_needed <= r.workspace_bytes) return Status::Ok();
  const std::string what = str("allocating ", r.workspace_needed, " bytes of workspace");
  void* fresh = nullptr;
  if (in_callers_capture) {
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    KILN_RETURN_IF_ERROR(cuda_status(cudaThreadExchangeStreamCaptureMode(&mode), "cudaThreadExchangeStreamCaptureMode"));
    cudaError_t err = cudaMalloc(&fresh, r.workspace_needed);
    cudaThreadExchangeStreamCaptureMode(&mode);
    KILN_RETURN_IF_ERROR(cuda_status(err, what));
    if (r.workspace) r.retired.push_back(r.workspace);
  } else {
    if (r.workspace && r.workspace_stream_ordered) {
      KILN_RETURN_IF_ERROR(cuda_status(cudaFreeAsync(r.workspace, stream), "cudaFreeAsync"));
    } else if (r.workspace) {
      r.retired.push_back(r.workspace);
    }
    r.workspace = nullptr;
    r.workspace_bytes = 0;
    KILN_RETURN_IF_ERROR(cuda_status(cudaMallocAsync(&fresh, r.workspace_needed, stream), what));
  }
  r.workspace = fresh;
  r.workspace_bytes = r.workspace_needed;
  r.workspace_stream_ordered = !in_callers_capture;
  return Status::Ok();
}

// Bytes of binding `b` (inputs then outputs) at the current shapes.
size_t binding_bytes(const ContextState& st, size_t b) {
  const format::EnginePlan& p = st.plan();
  const size_t num_inputs = p.inputs.size();
  const format::Binding& binding = b < num_inputs ? p.inputs[b] : p.outputs[b - num_inputs];
  const TensorView& v = st.tensors[static_cast<size_t>(binding.tensor)].view;
  return static_cast<size_t>(v.numel()) * dtype_size(v.dtype);
}

// Gives `entry` a staging buffer of the current bytes for every staged binding; before any
// capture, stream-ordered on the caller's stream (after its wait on the previous enqueue, so a
// buffer outgrown is freed once the work using it is done). A buffer large enough is kept.
Status ensure_staging(const ContextState& st, CudaResources& r, CudaGraphCache::Entry& entry, cudaStream_t stream) {
  const size_t n = r.staged.size();
  entry.staging.resize(n, nullptr);
  entry.staging_bytes.resize(n, 0);
  for (size_t b = 0; b < n; ++b) {
    if (!r.staged[b]) continue;
    const size_t need = binding_bytes(st, b);
    if (need == 0 || (entry.staging[b] && entry.staging_bytes[b] >= need)) continue;
    if (entry.staging[b])
      KILN_RETURN_IF_ERROR(cuda_status(cudaFreeAsync(entry.staging[b], stream), "cudaFreeAsync"));
    entry.staging[b] = nullptr;
    entry.staging_bytes[b] = 0;
    void* fresh = nullptr;
    KILN_RETURN_IF_ERROR(cuda_status(cudaMallocAsync(&fresh, need, stream),
                                     str("allocating ", need, " bytes of staging for '", st.es->bindings[b].name, "'")));
    entry.staging[b] = fresh;
    entry.staging_bytes[b] = need;
  }
  return Status::Ok();
}

// The steps whose constant operands are weights a GEMM streams (linear, matmul, convolution),
// with the byte ranges of those constants and the bytes of their other operands and outputs.
std::vector<WeightedStep> weighted_steps(const ContextState& st) {
  const format::EnginePlan& p = st.plan();
  std::vector<WeightedStep> out;
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const format::PlanStep& step = p.steps[s];
    if (step.is_view || !streams_weights(step.kind)) continue;
    WeightedStep w;
    w.step = s;
    auto extent = [](const TensorView& v) {
      return static_cast<size_t>(v.extent()) * dtype_size(v.dtype);
    };
    for (int32_t t : step.inputs) {
      const ResolvedTensor& rt = st.tensors[static_cast<size_t>(t)];
      if (p.tensors[static_cast<size_t>(rt.root)].role == format::TensorRole::kConstant)
        w.weights.push_back({static_cast<const std::byte*>(rt.view.data), extent(rt.view)});
      else
        w.activation_bytes += extent(rt.view);
    }
    for (int32_t t : step.outputs)
      w.activation_bytes += extent(st.tensors[static_cast<size_t>(t)].view);
    if (!w.weights.empty()) out.push_back(std::move(w));
  }
  return out;
}

// During a capture: launches the prefetch nodes of `plan` on the side stream, each forked from
// the capture stream after its step (or at the start), and joins the branch back at the end.
class PrefetchBranch final : public StepObserver {
 public:
  PrefetchBranch(CudaResources& r, const L2PrefetchPlan& plan) : r_(r), plan_(plan) {}

  Status start() { return forkDue(PrefetchNode::kAtStart); }
  Status afterStep(size_t step) override { return forkDue(step); }
  // Joins the branch into the capture stream (nothing to join when nothing was forked).
  Status finish() {
    if (!forked_) return Status::Ok();
    KILN_RETURN_IF_ERROR(cuda_status(cudaEventRecord(r_.prefetch_join, r_.prefetch_stream),
                                     "joining the L2 prefetch branch"));
    return cuda_status(cudaStreamWaitEvent(r_.capture_stream, r_.prefetch_join, 0),
                       "joining the L2 prefetch branch");
  }
  int launches() const { return launches_; }

 private:
  // Forks the branch after the work captured so far and launches the nodes due at `step` (the
  // plan's nodes come in launch order).
  Status forkDue(size_t step) {
    bool forked_here = false;
    for (; next_ < plan_.nodes.size() && plan_.nodes[next_].after_step == step; ++next_) {
      if (!forked_here) {
        KILN_RETURN_IF_ERROR(cuda_status(cudaEventRecord(r_.prefetch_fork, r_.capture_stream),
                                         "forking the L2 prefetch branch"));
        KILN_RETURN_IF_ERROR(
            cuda_status(cudaStreamWaitEvent(r_.prefetch_stream, r_.prefetch_fork, 0),
                        "forking the L2 prefetch branch"));
        forked_here = forked_ = true;
      }
      starts_.clear();
      bytes_.clear();
      for (const ByteRange& range : plan_.nodes[next_].ranges) {
        starts_.push_back(range.first);
        bytes_.push_back(range.second);
      }
      KILN_RETURN_IF_ERROR(cuda_status(
          cuda::launch_l2_prefetch(starts_.data(), bytes_.data(), static_cast<int>(starts_.size()),
                                   r_.prefetch_stream),
          "launching an L2 prefetch"));
      ++launches_;
    }
    return Status::Ok();
  }

  CudaResources& r_;
  const L2PrefetchPlan& plan_;
  size_t next_ = 0;
  bool forked_ = false;
  int launches_ = 0;
  std::vector<const void*> starts_;
  std::vector<size_t> bytes_;
};

// This capture's prefetch plan; empty when prefetching is off or its stream and events cannot
// be made (the graph is then captured without the branch).
L2PrefetchPlan prefetch_plan(ContextState& st, CudaResources& r) {
  if (r.l2_bytes < 0) r.l2_bytes = static_cast<int64_t>(cuda::l2_prefetch_auto_bytes(r.device));
  L2PrefetchOptions options = l2_prefetch_options_from_environment(static_cast<size_t>(r.l2_bytes));
  L2PrefetchPlan plan = plan_l2_prefetch(weighted_steps(st), options);
  if (plan.nodes.empty()) return plan;
  const bool ready =
      (r.prefetch_stream ||
       cudaStreamCreateWithFlags(&r.prefetch_stream, cudaStreamNonBlocking) == cudaSuccess) &&
      (r.prefetch_fork ||
       cudaEventCreateWithFlags(&r.prefetch_fork, cudaEventDisableTiming) == cudaSuccess) &&
      (r.prefetch_join ||
       cudaEventCreateWithFlags(&r.prefetch_join, cudaEventDisableTiming) == cudaSuccess);
  if (!ready) {
    (void)cudaGetLastError();
    plan.nodes.clear();
    plan.reason = "off: could not create the prefetch stream or events";
  }
  return plan;
}

// Captures the plan's launches into a graph on the private capture stream; nothing runs. Staged
// bindings are bound to `entry`'s staging buffers for the capture and to the caller's addresses
// again after it. Null when the capture failed (a kernel that cannot be captured); the stream is
// then out of capture mode and no CUDA error is left pending.
cudaGraph_t capture_plan(ContextState& st, CudaResources& r, const CudaGraphCache::Entry& entry, bool record_done,
                         std::string* why) {
  bool staging = false;
  for (size_t b = 0; b < r.staged.size(); ++b) staging = staging || r.staged[b];
  if (staging) {
    r.saved_addresses.assign(st.addresses.begin(), st.addresses.end());
    for (size_t b = 0; b < r.staged.size(); ++b)
      if (r.staged[b]) st.addresses[b] = binding_bytes(st, b) > 0 ? entry.staging[b] : nullptr;
    st.pointers_ready = false;
  }
  // Replays skip binding (cuda_enqueue); a capture launches kernels, so every pointer is bound.
  if (!st.pointers_ready && !st.bindPointers().ok()) {
    *why = "binding the tensors' pointers";  // addresses checked by the enqueue: does not happen
    if (staging) st.addresses.assign(r.saved_addresses.begin(), r.saved_addresses.end());
    st.pointers_ready = false;
    return nullptr;
  }
  cudaGraph_t graph = nullptr;
  cudaStream_t stream = r.capture_stream;
  cudaError_t begun = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (begun != cudaSuccess) *why = str("cudaStreamBeginCapture: ", cudaGetErrorString(begun));
  if (begun == cudaSuccess) {
    const L2PrefetchPlan plan = prefetch_plan(st, r);
    PrefetchBranch branch(r, plan);
    Status launched = branch.start();
    if (launched.ok())
      launched = st.launch(stream, r.backend.get(), r.workspace, r.workspace_bytes, &branch);
    if (launched.ok()) launched = branch.finish();
    st.graph_prefetch_nodes = branch.launches();
    st.l2_prefetch_reason = plan.reason;
    if (launched.ok() && record_done) {
      if (cudaError_t rec = cudaEventRecordWithFlags(r.done, stream, cudaEventRecordExternal); rec != cudaSuccess)
        launched = cuda_status(rec, "recording the done event into the graph");
    }
    cudaError_t err = cudaStreamEndCapture(stream, &graph);
    if (!launched.ok() || err != cudaSuccess) {
      *why = !launched.ok() ? str("capturing: ", launched.message())
                            : str("cudaStreamEndCapture: ", cudaGetErrorString(err));
      if (graph) cudaGraphDestroy(graph);
      graph = nullptr;
      cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
        cudaGraph_t stray = nullptr;
        if (cudaStreamEndCapture(stream, &stray) == cudaSuccess && stray) cudaGraphDestroy(stray);
      }
    }
  }
  if (!graph) (void)cudaGetLastError();
  if (staging) {
    st.addresses.assign(r.saved_addresses.begin(), r.saved_addresses.end());
    st.pointers_ready = false;  // bound again by the next plain launch or capture
  }
  return graph;
}

// Per kernel node of `graph`: name, launch shape and what the function asks of the driver
// (registers, local memory, shared memory, parameter bytes, cluster), one line each.
void write_kernel_table(cudaGraph_t graph, const std::string& path) {
  using GetParams = CUresult (*)(CUgraphNode, CUDA_KERNEL_NODE_PARAMS*);
  using GetAttr = CUresult (*)(int*, CUfunction_attribute, CUfunction);
  using GetName = CUresult (*)(const char**, CUfunction);
  using GetParamInfo = CUresult (*)(CUfunction, size_t, size_t*, size_t*);
  auto get_params = reinterpret_cast<GetParams>(driver_entry("cuGraphKernelNodeGetParams", 12000));
  auto get_attr = reinterpret_cast<GetAttr>(driver_entry("cuFuncGetAttribute", 12000));
  auto get_name = reinterpret_cast<GetName>(driver_entry("cuFuncGetName", 12030));
  auto param_info = reinterpret_cast<GetParamInfo>(driver_entry("cuFuncGetParamInfo", 12040));
  size_t count = 0;
  if (!get_params || !get_attr || cudaGraphGetNodes(graph, nullptr, &count) != cudaSuccess) return;
  std::vector<cudaGraphNode_t> nodes(count);
  if (cudaGraphGetNodes(graph, nodes.data(), &count) != cudaSuccess) return;
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return;
  std::fprintf(f, "name\tgrid\tblock\tdyn_smem\tregs\tlocal_bytes\tstatic_smem\tmax_dyn_smem\tparam_bytes\tcluster\tattrs\n");
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    if (cudaGraphNodeGetType(node, &type) != cudaSuccess || type != cudaGraphNodeTypeKernel) continue;
    CUDA_KERNEL_NODE_PARAMS kp{};
    if (get_params(reinterpret_cast<CUgraphNode>(node), &kp) != CUDA_SUCCESS || !kp.func) continue;
    const char* name = "?";
    if (get_name) get_name(&name, kp.func);
    int regs = -1, local = -1, smem = -1, max_dyn = -1;
    get_attr(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, kp.func);
    get_attr(&local, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kp.func);
    get_attr(&smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, kp.func);
    get_attr(&max_dyn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, kp.func);
    size_t param_bytes = 0;
    for (size_t i = 0, offset = 0, size = 0; param_info && param_info(kp.func, i, &offset, &size) == CUDA_SUCCESS; ++i)
      param_bytes = offset + size;
    cudaLaunchAttributeValue cluster{};
    const bool has_cluster =
        cudaGraphKernelNodeGetAttribute(node, cudaLaunchAttributeClusterDimension, &cluster) == cudaSuccess;
    std::string attrs;
    const std::pair<cudaLaunchAttributeID, const char*> ids[] = {
        {cudaLaunchAttributeProgrammaticStreamSerialization, "pss"},
        {cudaLaunchAttributeMemSyncDomain, "syncdomain"},
        {cudaLaunchAttributePriority, "prio"},
        {cudaLaunchAttributeClusterSchedulingPolicyPreference, "clusterpolicy"},
        {cudaLaunchAttributeDeviceUpdatableKernelNode, "devupdatable"},
        {cudaLaunchAttributePreferredSharedMemoryCarveout, "carveout"},
        {cudaLaunchAttributeCooperative, "coop"}};
    for (const auto& [id, label] : ids) {
      cudaLaunchAttributeValue v{};
      if (cudaGraphKernelNodeGetAttribute(node, id, &v) != cudaSuccess) {
        (void)cudaGetLastError();
        attrs += str(label, "=err ");
        continue;
      }
      unsigned raw = 0;
      std::memcpy(&raw, &v, sizeof(raw));
      if (raw) attrs += str(label, "=", raw, " ");
    }
    int cache_mode = -1, carve = -1;
    get_attr(&cache_mode, CU_FUNC_ATTRIBUTE_CACHE_MODE_CA, kp.func);
    get_attr(&carve, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, kp.func);
    attrs += str("fn_ca=", cache_mode, " fn_carveout=", carve);
    std::fprintf(f, "%s\t%ux%ux%u\t%ux%ux%u\t%u\t%d\t%d\t%d\t%d\t%zu\t%s\t%s\n", name, kp.gridDimX, kp.gridDimY,
                 kp.gridDimZ, kp.blockDimX, kp.blockDimY, kp.blockDimZ, kp.sharedMemBytes, regs, local, smem,
                 max_dyn, param_bytes,
                 has_cluster ? str(cluster.clusterDim.x, "x", cluster.clusterDim.y, "x", cluster.clusterDim.z).c_str()
                             : "-",
                 attrs.c_str());
  }
  (void)cudaGetLastError();
  std::fclose(f);
}

// Debugging aid: with KILN_CUDA_GRAPH_DOT=<folder>, every captured graph is written there as
// Graphviz (cudaGraphDebugDotPrint, verbose: node kinds, launch parameters and attributes), with
// a table of its kernels' resource needs beside it (.kernels.tsv).
void dump_graph(const ContextState& st, cudaGraph_t graph) {
  const char* folder = std::getenv("KILN_CUDA_GRAPH_DOT");
  if (!folder || !*folder) return;
  const std::string stem = str(folder, "/", st.plan().name, "_capture", st.graph_captures);
  if (cudaGraphDebugDotPrint(graph, (stem + ".dot").c_str(), cudaGraphDebugDotFlagsVerbose) != cudaSuccess)
    (void)cudaGetLastError();
  write_kernel_table(graph, stem + ".kernels.tsv");
}

// Turns graphs off for this context after a failure (`why`, kept for cudaGraphFailure) and
// drops what is cached.
void give_up_graphs(ContextState& st, CudaResources& r, std::string why) {
  (void)cudaGetLastError();
  st.graph_failure = std::move(why);
  r.graphs_failed = true;
  r.graphs.clear();
}

// Queues `entry`'s graph on `stream` with its staged copies: inputs in, the graph, outputs out.
// Sets *queued once the graph launch is queued; an error before that leaves nothing that matters
// queued (staging buffers written only), an error after it is the enqueue's error.
Status launch_entry(ContextState& st, CudaResources& r, CudaGraphCache::Entry& entry, cudaStream_t stream,
                    bool* queued, bool* recorded_done) {
  const size_t num_inputs = st.plan().inputs.size();
  for (size_t b = 0; b < num_inputs && b < r.staged.size(); ++b) {
    if (!r.staged[b]) continue;
    const size_t bytes = binding_bytes(st, b);
    if (bytes == 0) continue;
    cudaError_t err = cudaMemcpyAsync(entry.staging[b], st.addresses[b], bytes, cudaMemcpyDefault, stream);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return cuda_status(err, str("copying input '", st.es->bindings[b].name, "' into its staging buffer"));
    }
    ++st.graph_staged_copies;
  }
  cudaError_t launched;
  {
    AddHostNanoseconds timed(st.graph_launch_host_ns);
    launched = CudaGraphCache::launch(entry, stream);
  }
  if (cudaError_t err = launched; err != cudaSuccess) {
    give_up_graphs(st, r, str("cudaGraphLaunch: ", cudaGetErrorString(err)));
    return Status::Ok();  // not queued: the enqueue launches plain
  }
  *queued = true;
  *recorded_done = entry.records_done;
  if (entry.launcher) ++st.graph_device_launches;
  for (size_t b = num_inputs; b < r.staged.size(); ++b) {
    if (!r.staged[b]) continue;
    *recorded_done = false;  // the copy out comes after the graph's record
    const size_t bytes = binding_bytes(st, b);
    if (bytes == 0) continue;
    cudaError_t err = cudaMemcpyAsync(st.addresses[b], entry.staging[b], bytes, cudaMemcpyDefault, stream);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return cuda_status(err, str("copying output '", st.es->bindings[b].name, "' out of its staging buffer"));
    }
    ++st.graph_staged_copies;
  }
  return Status::Ok();
}

// Queues the plan on `stream` as a CUDA graph: replays the one captured for these shapes and
// addresses, or captures (and updates or instantiates) one, staging the bindings whose address
// churns (the policy: cuda_graph_cache.h). Leaves *queued false when nothing was queued and the
// enqueue must launch the kernels itself.
Status launch_graph(ContextState& st, CudaResources& r, cudaStream_t stream, CUcontext ctx, bool* queued,
                    bool* recorded_done) {
  const size_t num_bindings = st.addresses.size();
  if (r.staged.size() != num_bindings) r.staged.assign(num_bindings, 0);
  r.address_key.clear();
  for (void* a : st.addresses) r.address_key.push_back(reinterpret_cast<uintptr_t>(a));
  r.address_key.push_back(reinterpret_cast<uintptr_t>(st.arena));
  r.address_key.push_back(reinterpret_cast<uintptr_t>(r.workspace));
  r.address_key.push_back(static_cast<uintptr_t>(r.workspace_bytes));
  r.address_key.push_back(reinterpret_cast<uintptr_t>(ctx));
  const bool same_as_last = r.address_key == r.last_address_key;
  r.last_address_key = r.address_key;  // reuses its storage
  for (size_t b = 0; b < num_bindings; ++b)
    if (r.staged[b]) r.address_key[b] = CudaGraphCache::kStaged;

  if (CudaGraphCache::Entry* match = r.graphs.find(r.shape_key, r.address_key)) {
    KILN_RETURN_IF_ERROR(launch_entry(st, r, *match, stream, queued, recorded_done));
    if (*queued) {
      r.graphs.touch(*match);
      r.address_misses = 0;
      ++st.graph_replays;
    }
    return Status::Ok();
  }
  // A miss, unless these shapes have no graph yet (the policy: cuda_graph_cache.h).
  CudaGraphCache::Entry* newest = r.graphs.newest(r.shape_key);
  bool new_variant = false, staged_now = false;
  if (newest && newest->addresses.size() == r.address_key.size()) {
    // A binding newly staged since this graph was captured is no miss, only a recapture (and
    // the shape's other variants, captured before the staging too, will never match again).
    bool binding_moved = false, rest_moved = false;
    for (size_t b = 0; b < num_bindings; ++b) {
      binding_moved = binding_moved || (!r.staged[b] && newest->addresses[b] != r.address_key[b]);
      staged_now = staged_now || (r.staged[b] && newest->addresses[b] != CudaGraphCache::kStaged);
    }
    for (size_t i = num_bindings; i < r.address_key.size(); ++i)
      rest_moved = rest_moved || newest->addresses[i] != r.address_key[i];
    if (binding_moved && r.address_misses + 1 >= static_cast<int>(CudaGraphCache::kMaxVariants)) {
      // More buffers in turn than variants: stage the bindings that moved.
      for (size_t b = 0; b < num_bindings; ++b) {
        if (r.staged[b] || newest->addresses[b] == r.address_key[b]) continue;
        r.staged[b] = 1;
        r.address_key[b] = CudaGraphCache::kStaged;
      }
      staged_now = true;
    } else if (!binding_moved && rest_moved && r.address_misses >= 2 && !same_as_last) {
      // Only the arena, workspace or context moved, again: recapturing every time would be
      // slower than plain launches, so run plain until the addresses repeat.
      ++r.address_misses;
      return Status::Ok();
    } else {
      new_variant = binding_moved;
    }
    if (binding_moved || rest_moved) ++r.address_misses;
  }
  CudaGraphCache::Entry& slot = r.graphs.slot(r.shape_key, new_variant);
  if (staged_now) r.graphs.dropVariantsBut(slot);
  Status staged = ensure_staging(st, r, slot, stream);
  if (!staged.ok()) {
    give_up_graphs(st, r, str("staging: ", staged.message()));
    return Status::Ok();  // runs plain, without staging
  }
  // The graph records `done` itself unless staged outputs are copied out after it, or the graph
  // is launched from the device (whose graphs take no event nodes). KILN_GRAPH_DONE_NODE=0: a
  // cudaEventRecord after every launch instead (A/B timing).
  bool any_staged = false;
  for (size_t b = 0; b < num_bindings; ++b) any_staged = any_staged || r.staged[b];
  const bool record_done = !any_staged && done_node_enabled() && !CudaGraphCache::deviceLaunchEnabled();
  std::string why;
  cudaGraph_t graph = capture_plan(st, r, slot, record_done, &why);
  if (!graph) {
    give_up_graphs(st, r, why.empty() ? std::string("the capture failed") : why);
    return Status::Ok();
  }
  int replaced = 0;
  if (cudaError_t err = cuda::replace_memset_nodes(graph, &replaced); err != cudaSuccess) {
    cudaGraphDestroy(graph);
    give_up_graphs(st, r, str("replacing the graph's memset nodes: ", cudaGetErrorString(err)));
    return Status::Ok();
  }
  st.graph_memset_nodes_replaced += replaced;
  size_t nodes = 0;
  if (cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess) st.graph_nodes = static_cast<int64_t>(nodes);
  dump_graph(st, graph);
  const bool installed = r.graphs.install(slot, r.address_key, graph, stream);
  cudaGraphDestroy(graph);
  if (!installed) {
    give_up_graphs(st, r, "cudaGraphInstantiate or cudaGraphExecUpdate failed");
    return Status::Ok();
  }
  slot.records_done = record_done;
  KILN_RETURN_IF_ERROR(launch_entry(st, r, slot, stream, queued, recorded_done));
  if (*queued) ++st.graph_captures;
  return Status::Ok();
}

}  // namespace

Status cuda_create_context(ContextState& st, bool allocate_memory) {
  DeviceGuard guard(st.es->device);
  st.cuda.reset(new CudaResources());
  CudaResources& r = *st.cuda;
  r.device = st.es->device;
  r.graphs_allowed = st.es->cuda_graphs && !graphs_disabled_by_environment();
  KILN_RETURN_IF_ERROR(cuda_status(cudaEventCreateWithFlags(&r.done, cudaEventDisableTiming), "cudaEventCreate"));
  KILN_ASSIGN_OR_RETURN(r.backend, cuda::create_backend_state(r.device));
  int64_t bytes = st.plan().arena_bytes;
  if (allocate_memory && bytes > 0) {
    KILN_RETURN_IF_ERROR(cuda_status(cudaMalloc(&r.owned_arena, static_cast<size_t>(bytes)),
                                     str("engine '", st.plan().name, "': allocating ", bytes, " bytes of activations")));
    st.arena = static_cast<std::byte*>(r.owned_arena);
    st.arena_size = static_cast<size_t>(bytes);
  }
  return Status::Ok();
}

// A CUDA error that earlier work on this thread left pending (a launch or call whose error was
// never read) would otherwise be read by Kiln's first launch check after it, reported as that
// kernel's failure, and during a capture turn this context's graphs off for good. It is
// reported here instead, once (reading it clears it, as any later check would), and nothing is
// launched.
Status pending_error_before_enqueue(const ContextState& st) {
  const cudaError_t pending = cudaPeekAtLastError();
  if (pending == cudaSuccess) return Status::Ok();
  (void)cudaGetLastError();
  // An event or stream query that found work still running leaves cudaErrorNotReady behind:
  // not an error (PyTorch clears it after its own queries).
  if (pending == cudaErrorNotReady) return Status::Ok();
  return Status(StatusCode::kCudaError,
                str("engine '", st.plan().name, "': a CUDA error was pending before the enqueue, left by earlier "
                    "work on this thread (not by this engine, which launched nothing): ",
                    cudaGetErrorName(pending), ": ", cudaGetErrorString(pending)));
}

Status cuda_enqueue(ContextState& st, cudaStream_t stream) {
  CudaResources& r = *st.cuda;
  if (!st.arena && st.plan().arena_bytes > 0)
    return invalid_argument("context of engine '", st.plan().name, "' has no activation memory: call setDeviceMemory");
  DeviceGuard guard(r.device);
  KILN_RETURN_IF_ERROR(pending_error_before_enqueue(st));
  if (!stream) stream = CudaStreamGuard::active() ? CudaStreamGuard::current() : cudaStreamPerThread;
  // Shapes and pointers are recomputed only when they changed since the last enqueue
  // (getTensorShape may have resolved new shapes in between: shape_generation tells).
  if (!st.shapes_ready) KILN_RETURN_IF_ERROR(st.resolveShapes());
  if (r.shape_generation != st.shape_generation) {
    r.workspace_needed = st.workspaceBytes(r.backend.get());
    r.shape_key.clear();
    for (const std::vector<int64_t>& dims : st.input_dims) r.shape_key.insert(r.shape_key.end(), dims.begin(), dims.end());
    r.shape_generation = st.shape_generation;
  }
  // A graph replay reads only the bindings' addresses: the per-tensor pointers are bound where
  // kernels are launched or captured (capture_plan, the plain path below), not on every call.
  if (!st.pointers_ready) KILN_RETURN_IF_ERROR(st.checkAddresses());

  CUcontext ctx = nullptr;
  const Launch how = choose_launch(st, r, stream, &ctx);
  const bool in_callers_capture = how == Launch::kInCallersCapture;
  // The previous enqueue may still be using the arena on another stream: wait on the device.
  // The wait and the record below stay outside our graphs; inside the caller's capture they
  // become event nodes of the caller's graph (waits and records when that graph runs).
  // On the stream of the last enqueue the order is already the stream's own: no wait.
  if (r.recorded && (in_callers_capture || stream != r.done_stream))
    KILN_RETURN_IF_ERROR(cuda_status(
        cudaStreamWaitEvent(stream, r.done, in_callers_capture ? cudaEventWaitExternal : cudaEventWaitDefault),
        "cudaStreamWaitEvent"));
  KILN_RETURN_IF_ERROR(ensure_workspace(r, stream, in_callers_capture));
  Status status = Status::Ok();
  bool queued = false, recorded_done = false;
  if (how == Launch::kGraph) status = launch_graph(st, r, stream, ctx, &queued, &recorded_done);
  if (status.ok() && !queued) {
    // Plain launches read and write the caller's addresses; a failed capture may have left the
    // pointers unbound.
    if (!st.pointers_ready) status = st.bindPointers();
    if (status.ok()) status = st.launch(stream, r.backend.get(), r.workspace, r.workspace_bytes);
    ++st.plain_launches;
  }
  if (queued && recorded_done) {  // the graph's last node recorded it, on this stream
    r.recorded = true;
    r.done_stream = stream;
    return status;
  }
  cudaError_t err = in_callers_capture ? cudaEventRecordWithFlags(r.done, stream, cudaEventRecordExternal)
                                       : cudaEventRecord(r.done, stream);
  if (in_callers_capture) {
    r.recorded = r.recorded || err == cudaSuccess;  // else the last real record still stands
    r.done_stream = nullptr;  // recorded when the caller's graph runs, on a stream unknown here
  } else {
    r.recorded = err == cudaSuccess;
    r.done_stream = stream;
  }
  KILN_RETURN_IF_ERROR(status);
  return cuda_status(err, "cudaEventRecord");
}

void cuda_set_graphs(ContextState& st, bool enabled) {
  CudaResources& r = *st.cuda;
  if (enabled) {
    r.graphs_failed = false;  // try capturing again
    st.graph_failure.clear();
    return;
  }
  DeviceGuard guard(r.device);
  r.graphs.clear();
}

bool cuda_graphs_enabled(const ContextState& st) { return graphs_on(st, *st.cuda); }

}  // namespace kiln
