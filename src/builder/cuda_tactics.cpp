#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <optional>
#include <random>
#include <utility>

#include "backends/common/l2_prefetch_rule.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/l2_touch.h"
#include "builder/tactics.h"
#include "ir/half.h"

namespace kiln::builder {
namespace {

// KILN_EXCLUDE_TACTICS=name[,name...]: a debugging aid that keeps the named registered kernels
// (for example cuda.attention.cudnn) out of the candidates, where another kernel can serve.
bool excluded_by_environment(const std::string& tactic) {
  const char* v = std::getenv("KILN_EXCLUDE_TACTICS");
  if (!v || !*v) return false;
  std::string_view list(v);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == tactic) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Tactics are timed as a model runs them. Before every run of the candidate the L2 cache is
// flushed, since a model's weights are larger than L2 and each layer's stream from device memory
// once per call; then the op's activation inputs (its non-constant inputs, up to L2's size) are
// read back into L2, since in a model the op before wrote them just now. Timed warm (the same
// buffers again and again, all in L2), small-batch GEMMs favour tiles that are fast on cached
// data, not those that pull memory fastest; timed all cold, kernels that read activations in
// several passes (attention's K and V) are charged device-memory latency they do not pay in a
// model. In an engine that will prefetch its weights into L2 (plan_network), its GEMMs' weights
// are read back too. KILN_TACTIC_TIMING=activations (weights always cold), =cold (everything
// flushed) and =warm (nothing) time the older ways.
enum class TimingMode { kActivationsWarm, kActivationsOnly, kCold, kWarm };
TimingMode timing_mode() {
  const char* v = std::getenv("KILN_TACTIC_TIMING");
  if (v && std::string_view(v) == "warm") return TimingMode::kWarm;
  if (v && std::string_view(v) == "cold") return TimingMode::kCold;
  if (v && std::string_view(v) == "activations") return TimingMode::kActivationsOnly;
  return TimingMode::kActivationsWarm;
}
bool time_cold() { return timing_mode() != TimingMode::kWarm; }

Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::Ok();
  (void)cudaGetLastError();  // clear a non-sticky error so later calls start clean
  return Status(StatusCode::kCudaError, str(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
}
#define KILN_CUDA_TRY(expr, what) KILN_RETURN_IF_ERROR(cuda_status((expr), what))

// Makes `device` current for a scope and restores the caller's device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) status_ = cuda_status(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() {
    int now = -1;
    if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
  }
  const Status& status() const { return status_; }

 private:
  int previous_ = -1;
  Status status_;
};

// Host bytes of n small random values of `dtype` (zeros for integers and bool).
std::vector<std::byte> random_bytes(DType dtype, int64_t n, uint32_t seed) {
  const size_t es = dtype_size(dtype);
  std::vector<std::byte> out(static_cast<size_t>(n) * es);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  for (int64_t i = 0; i < n && is_floating(dtype); ++i) {
    const float x = dist(rng);
    std::byte* p = out.data() + static_cast<size_t>(i) * es;
    if (dtype == DType::kFloat32) {
      std::memcpy(p, &x, 4);
    } else {
      const uint16_t h = dtype == DType::kFloat16 ? float_to_half(x) : float_to_bf16(x);
      std::memcpy(p, &h, 2);
    }
  }
  return out;
}

// Device buffers for timing one op, made once per op and reused for each of its candidates.
struct TimingBuffers {
  const Op* op = nullptr;
  std::vector<void*> buffers;  // inputs, then outputs
  std::vector<TensorView> inputs, outputs;
  std::vector<std::pair<const void*, size_t>> warm;  // activation inputs: base, bytes
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  TimingBuffers() = default;
  TimingBuffers(const TimingBuffers&) = delete;
  TimingBuffers& operator=(const TimingBuffers&) = delete;
  ~TimingBuffers() { release(); }
  void release() {
    for (void* p : buffers) cudaFree(p);
    buffers.clear();
    warm.clear();
    if (workspace) cudaFree(workspace);
    workspace = nullptr;
    workspace_bytes = 0;
    op = nullptr;
  }
};

// Offers the CUDA backend's candidates per op at the profile's opt shapes and strides (a
// permuted input is a transposed operand, as at run time): cuBLASLt heuristic algorithms, cuDNN
// algorithms, one entry per Kiln kernel otherwise. Times candidates on the device.
class CudaTacticProvider final : public TacticProvider {
 public:
  CudaTacticProvider(std::unique_ptr<cuda::CudaBackendState> state, size_t workspace_limit, int max_candidates)
      : state_(std::move(state)), workspace_limit_(workspace_limit), max_candidates_(max_candidates) {}
  ~CudaTacticProvider() override {
    DeviceScope scope(state_->device);
    buffers_.release();
    if (flush_) cudaFree(flush_);
    if (start_) cudaEventDestroy(start_);
    for (cudaEvent_t e : events_)
      if (e) cudaEventDestroy(e);  // null when nothing was timed: destroying it would leave an error pending
    if (stream_) cudaStreamDestroy(stream_);
  }

  Result<std::vector<TacticCandidate>> candidates(const Network& network, const Op& op,
                                                  const OpShapes& shapes) override {
    DeviceScope scope(state_->device);
    KILN_RETURN_IF_ERROR(scope.status());
    std::vector<DType> dtypes;
    for (Tensor t : op.inputs) dtypes.push_back(network.tensor(t).dtype);
    std::string reasons;
    for (const cuda::CudaKernel& k : cuda::kernels_for(op.kind)) {
      Status s = k.supports ? k.supports(op, dtypes) : Status::Ok();
      if (!s.ok()) reasons += (reasons.empty() ? "" : "; ") + s.message();
    }
    KILN_ASSIGN_OR_RETURN(auto cands, cuda::tactic_candidates(*state_, op, shapes.inputs, shapes.outputs,
                                                              shapes.bindings, workspace_limit_, max_candidates_));
    std::vector<TacticCandidate> out;
    for (auto& c : cands) {
      const cuda::CudaKernel* k = cuda::find_kernel(op.kind, c.tactic);
      if (k && k->supports && !k->supports(op, dtypes).ok()) continue;
      if (excluded_by_environment(c.tactic)) continue;
      out.push_back(
          {std::move(c.tactic), std::move(c.data), std::move(c.label), c.handicap, c.always_timed});
    }
    if (out.empty())
      return unsupported(op_kind_name(op.kind), " '", op.name, "': no CUDA kernel supports it",
                         reasons.empty() ? std::string() : " (" + reasons + ")");
    return out;
  }

  bool can_time() const override { return true; }
  // cuBLASLt's and cuDNN's versions too: another release has other algorithms and timings.
  std::string timing_method() const override {
    const TimingMode m = timing_mode();
    return str(m == TimingMode::kWarm   ? "L2 warm"
               : m == TimingMode::kCold ? "L2 flushed"
               : weights_in_l2_         ? "L2 flushed, activations and GEMM weights warm"
                                        : "L2 flushed, activations warm",
               ", cuBLASLt ", cublasLtGetVersion(), ", cuDNN ", cudnnGetVersion());
  }

  // An engine whose CUDA graphs will prefetch its weights into L2 (the runtime's rule, applied to
  // the network at the opt shapes) runs each GEMM with its weights there, or on their way: its
  // GEMMs are timed with them read back into L2 after the flush, like the activations. Timed with
  // them cold, GPT-2's fc2 at batch 1 took a split-K tile whose extra reduction kernel made it
  // slower in the prefetching model (session 24's profile).
  void plan_network(const Network& network, const std::vector<OpShapes>& shapes) override {
    weights_in_l2_ = false;
    if (timing_mode() != TimingMode::kActivationsWarm) return;
    const L2PrefetchOptions options =
        l2_prefetch_options_from_environment(cuda::l2_prefetch_auto_bytes(state_->device));
    const WeightTraffic t = weight_traffic(network, shapes);
    weights_in_l2_ =
        l2_prefetch_off_reason(t.weight_bytes, t.activation_bytes, t.steps, options).empty();
  }

  // Warm-up 2, then the median of 10 runs, each between two events on the provider's stream.
  Result<double> time(const Network& network, const Op& op, const OpShapes& shapes,
                      const TacticCandidate& tactic) override {
    DeviceScope scope(state_->device);
    KILN_RETURN_IF_ERROR(scope.status());
    const cuda::CudaKernel* k = cuda::find_kernel(op.kind, tactic.name);
    if (!k || !k->run) return not_found("no CUDA kernel '", tactic.name, "'");
    KILN_RETURN_IF_ERROR(prepare(network, op, shapes));
    KernelArgs args{op.name.c_str(), op.attrs, buffers_.inputs, buffers_.outputs, shapes.bindings};
    args.stream = stream_;
    args.backend = state_.get();
    args.tactic_data = tactic.data;
    const size_t ws = k->workspace ? k->workspace(args) : 0;
    if (ws > buffers_.workspace_bytes) {
      if (buffers_.workspace) cudaFree(buffers_.workspace);
      buffers_.workspace = nullptr;
      buffers_.workspace_bytes = 0;
      KILN_CUDA_TRY(cudaMalloc(&buffers_.workspace, ws), "cudaMalloc (timing workspace)");
      buffers_.workspace_bytes = ws;
    }
    args.workspace = buffers_.workspace;
    args.workspace_bytes = buffers_.workspace_bytes;
    constexpr int kWarmup = 2, kRuns = 10;
    for (int r = 0; r < kWarmup; ++r) KILN_RETURN_IF_ERROR(k->run(args));
    KILN_CUDA_TRY(cudaStreamSynchronize(stream_), "warm-up");
    // As the engine runs it: inside a CUDA graph, where the per-launch host cost is gone. Timed
    // with plain launches, a kernel whose host path is slower than its device time (cuDNN's graph
    // API, small problems) would be charged for the host. Plain launches if capture fails.
    if (std::optional<double> in_graph = time_in_graph(*k, args, kRuns)) {
      KILN_RETURN_IF_ERROR(cuda::read_device_errors(*state_, stream_));
      return *in_graph;
    }
    KILN_CUDA_TRY(cudaEventRecord(start_, stream_), "cudaEventRecord");
    for (int r = 0; r < kRuns; ++r) {
      KILN_RETURN_IF_ERROR(k->run(args));
      KILN_CUDA_TRY(cudaEventRecord(events_[static_cast<size_t>(r)], stream_), "cudaEventRecord");
    }
    KILN_CUDA_TRY(cudaEventSynchronize(events_[kRuns - 1]), "cudaEventSynchronize");
    std::vector<float> ms(kRuns);
    cudaEvent_t prev = start_;
    for (int r = 0; r < kRuns; ++r) {
      KILN_CUDA_TRY(cudaEventElapsedTime(&ms[static_cast<size_t>(r)], prev, events_[static_cast<size_t>(r)]),
                    "cudaEventElapsedTime");
      prev = events_[static_cast<size_t>(r)];
    }
    Status errors = cuda::read_device_errors(*state_, stream_);
    if (!errors.ok()) return errors;
    std::nth_element(ms.begin(), ms.begin() + kRuns / 2, ms.end());
    return static_cast<double>(ms[kRuns / 2]);
  }

 private:
  // Mean device time of one run of `k`, from a CUDA graph of `runs` runs replayed (the median
  // replay); nullopt when the runs cannot be captured or replayed. Cold: each run follows an L2
  // flush, and a graph of the flushes alone, timed the same way (once), is subtracted.
  std::optional<double> time_in_graph(const cuda::CudaKernel& k, const KernelArgs& args, int runs) {
    const bool cold = time_cold() && ensure_flush_buffer();
    std::optional<double> with = replay_ms(&k, args, runs, cold);
    if (!with || !cold) return with ? std::optional<double>(*with / runs) : std::nullopt;
    // The flushes (and read-backs) alone are the same graph for every candidate of an op:
    // timed once per run count and set of read-back inputs.
    if (flush_runs_ != runs || flush_warm_ != buffers_.warm) {
      std::optional<double> flushes = replay_ms(nullptr, args, runs, true);
      if (!flushes) return std::nullopt;
      flush_ms_ = *flushes;
      flush_runs_ = runs;
      flush_warm_ = buffers_.warm;
    }
    // A difference below zero is noise: no candidate times as free.
    return std::max(*with - flush_ms_, 0.0) / runs + 1e-6;
  }

  // An L2-sized-twice buffer whose memset evicts what the candidate's previous run left in L2.
  bool ensure_flush_buffer() {
    if (flush_) return true;
    int l2 = 0;
    if (cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, state_->device) != cudaSuccess || l2 <= 0) {
      (void)cudaGetLastError();
      return false;
    }
    flush_bytes_ = 2 * static_cast<size_t>(l2);
    l2_bytes_ = static_cast<size_t>(l2);
    if (cudaMalloc(&flush_, flush_bytes_) != cudaSuccess) {
      (void)cudaGetLastError();
      flush_ = nullptr;
      return false;
    }
    return true;
  }

  // Median over 5 replays of a graph of `runs` x (flush if `flush`, then `k` if given), in ms.
  std::optional<double> replay_ms(const cuda::CudaKernel* k, const KernelArgs& args, int runs, bool flush) {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    auto give_up = [&]() -> std::optional<double> {
      if (exec) cudaGraphExecDestroy(exec);
      if (graph) cudaGraphDestroy(graph);
      cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
      if (cudaStreamIsCapturing(stream_, &capturing) == cudaSuccess &&
          capturing != cudaStreamCaptureStatusNone) {
        cudaGraph_t partial = nullptr;
        if (cudaStreamEndCapture(stream_, &partial) == cudaSuccess && partial)
          cudaGraphDestroy(partial);
      }
      (void)cudaGetLastError();
      (void)cudaStreamSynchronize(stream_);
      return std::nullopt;
    };
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess)
      return give_up();
    for (int r = 0; r < runs; ++r) {
      if (flush && cudaMemsetAsync(flush_, r & 0xff, flush_bytes_, stream_) != cudaSuccess) return give_up();
      if (flush)
        for (const auto& [p, bytes] : buffers_.warm)
          if (cuda::launch_l2_touch(p, bytes, stream_) != cudaSuccess) return give_up();
      if (k && !k->run(args).ok()) return give_up();
    }
    if (cudaStreamEndCapture(stream_, &graph) != cudaSuccess || !graph) return give_up();
    if (cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) return give_up();
    if (cudaGraphLaunch(exec, stream_) != cudaSuccess) return give_up();  // warm-up
    constexpr int kReplays = 5;
    float ms[kReplays] = {};
    for (int r = 0; r < kReplays; ++r) {
      if (cudaEventRecord(start_, stream_) != cudaSuccess ||
          cudaGraphLaunch(exec, stream_) != cudaSuccess ||
          cudaEventRecord(events_[0], stream_) != cudaSuccess ||
          cudaEventSynchronize(events_[0]) != cudaSuccess ||
          cudaEventElapsedTime(&ms[r], start_, events_[0]) != cudaSuccess)
        return give_up();
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    std::sort(ms, ms + kReplays);
    return static_cast<double>(ms[kReplays / 2]);
  }

  // Stream, events and buffers of random values for `op` (kept while the same op is timed), and
  // which of them hold activations (read back into L2 after each flush).
  Status prepare(const Network& network, const Op& op, const OpShapes& shapes) {
    if (!stream_) {
      KILN_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      KILN_CUDA_TRY(cudaEventCreate(&start_), "cudaEventCreate");
      for (cudaEvent_t& e : events_) KILN_CUDA_TRY(cudaEventCreate(&e), "cudaEventCreate");
    }
    if (buffers_.op == &op && buffers_.inputs.size() == shapes.inputs.size()) return Status::Ok();
    buffers_.release();
    buffers_.inputs = shapes.inputs;
    buffers_.outputs = shapes.outputs;
    for (size_t i = 0; i < shapes.inputs.size(); ++i) {
      TensorView& v = buffers_.inputs[i];
      const size_t es = dtype_size(v.dtype);
      const int64_t n = shapes.input_offsets[i] + v.extent();
      void* p = nullptr;
      KILN_CUDA_TRY(cudaMalloc(&p, std::max<size_t>(256, static_cast<size_t>(n) * es)), "cudaMalloc (timing input)");
      buffers_.buffers.push_back(p);
      std::vector<std::byte> host = random_bytes(v.dtype, n, static_cast<uint32_t>(1234 + i));
      if (!host.empty()) KILN_CUDA_TRY(cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
      v.data = static_cast<std::byte*>(p) + static_cast<size_t>(shapes.input_offsets[i]) * es;
    }
    for (TensorView& v : buffers_.outputs) {
      void* p = nullptr;
      const size_t bytes = static_cast<size_t>(v.numel()) * dtype_size(v.dtype);
      KILN_CUDA_TRY(cudaMalloc(&p, std::max<size_t>(256, bytes)), "cudaMalloc (timing output)");
      buffers_.buffers.push_back(p);
      v.data = p;
    }
    const TimingMode mode = timing_mode();
    if ((mode == TimingMode::kActivationsWarm || mode == TimingMode::kActivationsOnly) &&
        ensure_flush_buffer())
      for (const auto& [i, bytes] :
           warm_input_bytes(network, op, shapes, l2_bytes_, weights_in_l2_))
        buffers_.warm.emplace_back(buffers_.buffers[i], bytes);
    buffers_.op = &op;
    return Status::Ok();
  }

  std::unique_ptr<cuda::CudaBackendState> state_;
  size_t workspace_limit_;
  int max_candidates_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t events_[10] = {};
  TimingBuffers buffers_;
  void* flush_ = nullptr;
  size_t flush_bytes_ = 0;
  size_t l2_bytes_ = 0;
  int flush_runs_ = 0;      // the run count flush_ms_ was timed for (0: not yet)
  std::vector<std::pair<const void*, size_t>> flush_warm_;  // and the read-backs it included
  double flush_ms_ = 0.0;   // a replay of flush_runs_ flushes alone
  bool weights_in_l2_ = false;  // plan_network: GEMM weights are read back into L2 too
};

}  // namespace

Result<std::unique_ptr<TacticProvider>> make_cuda_tactic_provider(int device, size_t workspace_limit,
                                                                  int max_candidates) {
  KILN_ASSIGN_OR_RETURN(auto state, cuda::create_backend_state(device));
  return std::unique_ptr<TacticProvider>(
      new CudaTacticProvider(std::move(state), workspace_limit, max_candidates));
}

Result<format::Target> cuda_build_target(int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device >= count) {
    (void)cudaGetLastError();
    return invalid_argument("target 'cuda:", device, "': no such CUDA device (", count, " visible)");
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return Status(StatusCode::kCudaError, str("cudaGetDeviceProperties(", device, ") failed"));
  format::Target t;
  t.kind = format::DeviceKind::kCuda;
  t.sm_major = prop.major;
  t.sm_minor = prop.minor;
  t.device_name = prop.name;
  return t;
}

}  // namespace kiln::builder
