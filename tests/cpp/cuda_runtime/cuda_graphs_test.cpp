// CUDA graphs in the execution context (DESIGN.md 5): replays match plain launches, new shapes
// and new addresses are honoured, the completion-event protocol holds across streams, enqueue
// works inside a capture of the caller's own, and a replay costs the host less than launching
// kernel by kernel; output buffers taken in turn from a short cycle replay a graph per buffer
// with no copy, and fresh caller buffers every call replay through staging buffers. Skipped
// without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/cuda/graph_memset.h"
#include "runtime/cuda_graph_cache.h"
#include "cuda_test_util.h"

namespace kiln {
namespace {

constexpr int64_t kDim = 128;
constexpr int64_t kMaxBatch = 64;
constexpr size_t kMaxFloats = kMaxBatch * kDim;

void bind(ExecutionContext& ctx, int64_t batch, void* dx, void* dy) {
  bind_mlp(ctx, batch, kDim, dx, dy);
}

// An MLP of `layers` layers built for cuda:0, one execution context, and an input and an output
// buffer of the largest batch bound to it (call under ASSERT_NO_FATAL_FAILURE).
struct BoundMlp {
  Network net;
  std::shared_ptr<Engine> engine;
  std::unique_ptr<ExecutionContext> ctx;
  DeviceBuffer dx{kMaxFloats * 4}, dy{kMaxFloats * 4};
};
void make_bound_mlp(int layers, BoundMlp& m) {
  m.net = mlp(kDim, layers, kMaxBatch);
  m.engine = build(m.net, "cuda:0");
  ASSERT_TRUE(m.engine);
  m.ctx = m.engine->createExecutionContext().value();
  ASSERT_NO_FATAL_FAILURE(bind(*m.ctx, kMaxBatch, m.dx.ptr, m.dy.ptr));
}

TEST(CudaGraphs, ReplaysMatchGraphsOff) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto on = engine->createExecutionContext().value();
  auto off = engine->createExecutionContext().value();
  off->setCudaGraphs(false);
  EXPECT_FALSE(off->cudaGraphs());
  ASSERT_TRUE(on->cudaGraphs()) << "graphs should be on by default";
  DeviceBuffer dx(kMaxFloats * 4), dy_on(kMaxFloats * 4), dy_off(kMaxFloats * 4);
  Stream s;
  ASSERT_NO_FATAL_FAILURE(bind(*on, kMaxBatch, dx.ptr, dy_on.ptr));
  ASSERT_NO_FATAL_FAILURE(bind(*off, kMaxBatch, dx.ptr, dy_off.ptr));
  constexpr int kCalls = 5;
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(i);
    std::vector<float> x = random_floats(kMaxFloats, 40 + i);  // new data each call, same buffers
    std::vector<float> y_on = run_once(*on, s.s, x, dx.ptr, dy_on.ptr);
    std::vector<float> y_off = run_once(*off, s.s, x, dx.ptr, dy_off.ptr);
    EXPECT_LT(max_rel_error(y_on, y_off), 1e-6);
    EXPECT_LT(max_rel_error(y_on, cpu_reference(net, x, kMaxBatch, kDim)), 1e-3);
  }
  EXPECT_TRUE(on->cudaGraphs()) << "graphs went off: " << on->cudaGraphFailure();
  EXPECT_EQ(on->cudaGraphFailure(), "");
  EXPECT_EQ(on->cudaGraphCaptures(), 1);
  EXPECT_EQ(on->cudaGraphReplays(), kCalls - 1);
  EXPECT_EQ(on->plainLaunches(), 0);
  EXPECT_EQ(on->cudaGraphDeviceLaunches(), 0) << "device-side launch is opt-in";
  EXPECT_EQ(off->cudaGraphCaptures(), 0);
  EXPECT_EQ(off->cudaGraphReplays(), 0);
  EXPECT_EQ(off->plainLaunches(), kCalls);
}

// An error other code left pending (here cudaEventDestroy of a null event, as a tactic provider
// once did) is reported by the next enqueue as what it is, nothing is launched, and it does not
// reach the capture: the following enqueues capture and replay as usual.
TEST(CudaGraphs, AnErrorLeftPendingByOtherWorkIsReportedAsSuchAndGraphsStayOn) {
  REQUIRE_GPU();
  BoundMlp m;
  ASSERT_NO_FATAL_FAILURE(make_bound_mlp(3, m));
  Stream s;
  ASSERT_NE(cudaEventDestroy(nullptr), cudaSuccess);
  ASSERT_NE(cudaPeekAtLastError(), cudaSuccess) << "the test needs an error left pending";
  const Status st = m.ctx->enqueue(s.s);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kCudaError);
  EXPECT_NE(st.message().find("pending before the enqueue"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cudaErrorInvalidResourceHandle"), std::string::npos) << st.message();
  EXPECT_EQ(cudaPeekAtLastError(), cudaSuccess) << "reported once, then cleared";
  EXPECT_EQ(m.ctx->cudaGraphCaptures() + m.ctx->plainLaunches(), 0) << "nothing was launched";
  for (int i = 0; i < 3; ++i) {
    std::vector<float> x = random_floats(kMaxFloats, 60 + i);
    std::vector<float> y = run_once(*m.ctx, s.s, x, m.dx.ptr, m.dy.ptr);
    EXPECT_LT(max_rel_error(y, cpu_reference(m.net, x, kMaxBatch, kDim)), 1e-3);
  }
  EXPECT_TRUE(m.ctx->cudaGraphs()) << "graphs went off: " << m.ctx->cudaGraphFailure();
  EXPECT_EQ(m.ctx->cudaGraphCaptures(), 1);
  EXPECT_EQ(m.ctx->cudaGraphReplays(), 2);

  // A query that found work still running leaves cudaErrorNotReady: not an error, the enqueue
  // runs.
  DeviceBuffer big(size_t{512} << 20);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(cudaMemsetAsync(big.ptr, i, size_t{512} << 20, s.s), cudaSuccess);
  cudaEvent_t ev = nullptr;
  ASSERT_EQ(cudaEventCreate(&ev), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(ev, s.s), cudaSuccess);
  if (cudaEventQuery(ev) == cudaErrorNotReady) {  // else the stream drained first: nothing to test
    std::vector<float> x = random_floats(kMaxFloats, 70);
    std::vector<float> y = run_once(*m.ctx, s.s, x, m.dx.ptr, m.dy.ptr);
    EXPECT_LT(max_rel_error(y, cpu_reference(m.net, x, kMaxBatch, kDim)), 1e-3);
  }
  cudaEventDestroy(ev);
}

TEST(CudaGraphs, NewShapeRecapturesAndCachedShapesReplay) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 3, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer dx(kMaxFloats * 4), dy(kMaxFloats * 4);
  Stream s;
  struct Step {
    int64_t batch;
    bool captures;
  };
  int64_t captures = 0, replays = 0;
  for (Step step : {Step{64, true}, Step{64, false}, Step{16, true}, Step{16, false}, Step{64, false},
                    Step{1, true}, Step{16, false}}) {
    SCOPED_TRACE(step.batch);
    ASSERT_NO_FATAL_FAILURE(bind(*ctx, step.batch, dx.ptr, dy.ptr));
    std::vector<float> x = random_floats(static_cast<size_t>(step.batch * kDim), 7 + static_cast<uint32_t>(step.batch));
    std::vector<float> y = run_once(*ctx, s.s, x, dx.ptr, dy.ptr);
    EXPECT_LT(max_rel_error(y, cpu_reference(net, x, step.batch, kDim)), 1e-3);
    (step.captures ? captures : replays)++;
    EXPECT_EQ(ctx->cudaGraphCaptures(), captures);
    EXPECT_EQ(ctx->cudaGraphReplays(), replays);
  }
}

TEST(CudaGraphs, NewOutputAddressIsHonoured) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 3, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer dx(kMaxFloats * 4), y1(kMaxFloats * 4), y2(kMaxFloats * 4);
  Stream s;
  ASSERT_NO_FATAL_FAILURE(bind(*ctx, kMaxBatch, dx.ptr, y1.ptr));
  std::vector<float> x = random_floats(kMaxFloats, 3);
  std::vector<float> want = cpu_reference(net, x, kMaxBatch, kDim);
  run_once(*ctx, s.s, x, dx.ptr, y1.ptr);
  EXPECT_LT(max_rel_error(run_once(*ctx, s.s, x, dx.ptr, y1.ptr), want), 1e-3);
  ASSERT_EQ(ctx->cudaGraphReplays(), 1);
  // The old output gets a sentinel (all bits set: NaN) that no run writes.
  CUDA_OK(cudaMemsetAsync(y1.ptr, 0xff, kMaxFloats * 4, s.s));
  ASSERT_TRUE(ctx->setTensorAddress("y", y2.ptr).ok());
  EXPECT_LT(max_rel_error(run_once(*ctx, s.s, x, dx.ptr, y2.ptr), want), 1e-3);
  EXPECT_EQ(ctx->cudaGraphCaptures(), 2);
  std::vector<uint32_t> old(kMaxFloats);
  CUDA_OK(cudaMemcpy(old.data(), y1.ptr, old.size() * 4, cudaMemcpyDeviceToHost));
  for (uint32_t bits : old) ASSERT_EQ(bits, 0xffffffffu) << "the old output buffer was written";
  // A new input address too, then a replay at the new addresses.
  DeviceBuffer dx2(kMaxFloats * 4);
  ASSERT_TRUE(ctx->setTensorAddress("x", dx2.ptr).ok());
  std::vector<float> x2 = random_floats(kMaxFloats, 4);
  EXPECT_LT(max_rel_error(run_once(*ctx, s.s, x2, dx2.ptr, y2.ptr), cpu_reference(net, x2, kMaxBatch, kDim)), 1e-3);
  EXPECT_LT(max_rel_error(run_once(*ctx, s.s, x, dx2.ptr, y2.ptr), want), 1e-3);
  EXPECT_EQ(ctx->cudaGraphReplays(), 2);
}

TEST(CudaGraphs, ThousandEnqueuesOnAlternatingStreamsWithoutCallerSync) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  // Runs come in groups of 4 with the same input and output (a capture or update, then
  // replays); each group writes its own output buffer. Inputs cycle through kInputs.
  constexpr int kInputs = 4, kGroup = 4;
  const int runs = test_runs(1000) / kGroup * kGroup;
  const int groups = runs / kGroup;
  std::vector<std::vector<float>> refs;
  DeviceBuffer dx(kInputs * kMaxFloats * 4), dy(size_t(groups) * kMaxFloats * 4);
  for (int i = 0; i < kInputs; ++i) {
    std::vector<float> x = random_floats(kMaxFloats, 1000 + i);
    CUDA_OK(cudaMemcpy(dx.as<float>() + i * kMaxFloats, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    refs.push_back(cpu_reference(net, x, kMaxBatch, kDim));
  }
  Stream streams[2];
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kMaxBatch, kDim}).ok());
  for (int r = 0; r < runs; ++r) {
    int g = r / kGroup;
    ASSERT_TRUE(ctx->setTensorAddress("x", dx.as<float>() + (g % kInputs) * kMaxFloats).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", dy.as<float>() + size_t(g) * kMaxFloats).ok());
    ASSERT_TRUE(ctx->enqueue(streams[r % 2].s).ok());
  }
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_TRUE(ctx->cudaGraphs());
  EXPECT_EQ(ctx->cudaGraphCaptures(), groups);
  EXPECT_EQ(ctx->cudaGraphReplays(), runs - groups);
  std::vector<float> y(size_t(groups) * kMaxFloats);
  CUDA_OK(cudaMemcpy(y.data(), dy.ptr, y.size() * 4, cudaMemcpyDeviceToHost));
  for (int g = 0; g < groups; ++g) {
    std::vector<float> got(y.begin() + size_t(g) * kMaxFloats, y.begin() + size_t(g + 1) * kMaxFloats);
    ASSERT_LT(max_rel_error(got, refs[g % kInputs]), 1e-3) << "group " << g;
  }
}

// The caller captures our enqueue into a graph of its own; we must neither capture ourselves
// nor break their capture, and their graph must compute the engine when they launch it.
void check_enqueue_inside_callers_capture(bool warm) {
  BoundMlp m;
  ASSERT_NO_FATAL_FAILURE(make_bound_mlp(3, m));
  Stream s;
  if (warm) run_once(*m.ctx, s.s, random_floats(kMaxFloats, 1), m.dx.ptr, m.dy.ptr);
  const int64_t captures = m.ctx->cudaGraphCaptures();
  CUDA_OK(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeGlobal));
  Status st = m.ctx->enqueue(s.s);
  cudaGraph_t graph = nullptr;
  cudaError_t end = cudaStreamEndCapture(s.s, &graph);
  ASSERT_TRUE(st.ok()) << st.toString();
  ASSERT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(m.ctx->cudaGraphCaptures(), captures) << "captured its own graph inside the caller's capture";
  cudaGraphExec_t exec = nullptr;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (uint32_t seed : {11u, 12u}) {
    std::vector<float> x = random_floats(kMaxFloats, seed), y(kMaxFloats, NAN);
    CUDA_OK(cudaMemcpyAsync(m.dx.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice, s.s));
    CUDA_OK(cudaGraphLaunch(exec, s.s));
    CUDA_OK(cudaMemcpyAsync(y.data(), m.dy.ptr, y.size() * 4, cudaMemcpyDeviceToHost, s.s));
    CUDA_OK(cudaStreamSynchronize(s.s));
    EXPECT_LT(max_rel_error(y, cpu_reference(m.net, x, kMaxBatch, kDim)), 1e-3) << "seed " << seed;
  }
  // And the context still runs on its own afterwards.
  std::vector<float> x = random_floats(kMaxFloats, 13);
  EXPECT_LT(max_rel_error(run_once(*m.ctx, s.s, x, m.dx.ptr, m.dy.ptr), cpu_reference(m.net, x, kMaxBatch, kDim)), 1e-3);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaGraphs, EnqueueInsideTheCallersCapture) {
  REQUIRE_GPU();
  check_enqueue_inside_callers_capture(/*warm=*/true);
}

TEST(CudaGraphs, FirstEnqueueInsideTheCallersCapture) {
  REQUIRE_GPU();
  check_enqueue_inside_callers_capture(/*warm=*/false);
}

TEST(CudaGraphs, OffWhenTheEngineTheEnvironmentOrTheCallerSaysSo) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 2, kMaxBatch);
  auto no_graphs = build(net, "cuda:0", /*cuda_graphs=*/false);
  auto with_graphs = build(net, "cuda:0");
  ASSERT_TRUE(no_graphs && with_graphs);
  std::vector<std::unique_ptr<ExecutionContext>> contexts;
  contexts.push_back(no_graphs->createExecutionContext().value());
  setenv("KILN_CUDA_GRAPHS", "0", 1);
  contexts.push_back(with_graphs->createExecutionContext().value());
  unsetenv("KILN_CUDA_GRAPHS");
  contexts.push_back(with_graphs->createExecutionContext().value());
  contexts.back()->setCudaGraphs(false);
  DeviceBuffer dx(kMaxFloats * 4), dy(kMaxFloats * 4);
  Stream s;
  std::vector<float> x = random_floats(kMaxFloats, 21);
  std::vector<float> want = cpu_reference(net, x, kMaxBatch, kDim);
  for (size_t i = 0; i < contexts.size(); ++i) {
    SCOPED_TRACE(i);
    ExecutionContext& ctx = *contexts[i];
    EXPECT_FALSE(ctx.cudaGraphs());
    ASSERT_NO_FATAL_FAILURE(bind(ctx, kMaxBatch, dx.ptr, dy.ptr));
    for (int r = 0; r < 3; ++r) EXPECT_LT(max_rel_error(run_once(ctx, s.s, x, dx.ptr, dy.ptr), want), 1e-3);
    EXPECT_EQ(ctx.cudaGraphCaptures(), 0);
    EXPECT_EQ(ctx.cudaGraphReplays(), 0);
  }
  // Turned back on by the caller, graphs are used.
  contexts.back()->setCudaGraphs(true);
  for (int r = 0; r < 3; ++r) EXPECT_LT(max_rel_error(run_once(*contexts.back(), s.s, x, dx.ptr, dy.ptr), want), 1e-3);
  EXPECT_EQ(contexts.back()->cudaGraphCaptures(), 1);
  EXPECT_EQ(contexts.back()->cudaGraphReplays(), 2);
}

TEST(CudaGraphs, LegacyDefaultStreamReplaysToo) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 2, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer dx(kMaxFloats * 4), dy(kMaxFloats * 4);
  ASSERT_NO_FATAL_FAILURE(bind(*ctx, kMaxBatch, dx.ptr, dy.ptr));
  for (uint32_t seed : {31u, 32u, 33u}) {
    std::vector<float> x = random_floats(kMaxFloats, seed);
    // The legacy default stream, where capture is illegal: the capture happens on the context's
    // private stream and only the launch goes to the caller's.
    CudaStreamGuard guard(nullptr);
    EXPECT_LT(max_rel_error(run_once(*ctx, nullptr, x, dx.ptr, dy.ptr), cpu_reference(net, x, kMaxBatch, kDim)),
              1e-3);
  }
  EXPECT_TRUE(ctx->cudaGraphs());
  EXPECT_EQ(ctx->cudaGraphCaptures(), 1);
  EXPECT_EQ(ctx->cudaGraphReplays(), 2);
}

// ---- Staged bindings (cuda_graph_cache.h): fresh caller buffers every call still replay. ----

std::vector<float> download(const void* p, size_t floats) {
  std::vector<float> out(floats, NAN);
  EXPECT_EQ(cudaMemcpy(out.data(), p, floats * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

bool all_bits(const void* p, size_t floats, uint32_t bits) {
  std::vector<uint32_t> v(floats, 0);
  EXPECT_EQ(cudaMemcpy(v.data(), p, floats * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  for (uint32_t b : v)
    if (b != bits) return false;
  return true;
}

// Enqueues 20 times, each call with a new output buffer (like PyTorch's fresh output tensors)
// and new input data; with `fresh_inputs`, each call's input lies in a new buffer too.
void check_fresh_buffers_every_call(bool fresh_inputs) {
  Network net = mlp(kDim, 4, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  constexpr int kCalls = 20;
  std::vector<std::unique_ptr<DeviceBuffer>> xs, ys;
  for (int i = 0; i < kCalls; ++i) {
    ys.push_back(std::make_unique<DeviceBuffer>(kMaxFloats * 4));
    CUDA_OK(cudaMemset(ys.back()->ptr, 0xff, kMaxFloats * 4));  // sentinel: NaN, no run writes it
    if (fresh_inputs || i == 0) xs.push_back(std::make_unique<DeviceBuffer>(kMaxFloats * 4));
  }
  Stream s;
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kMaxBatch, kDim}).ok());
  std::vector<std::vector<float>> inputs;
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(i);
    void* dx = xs[fresh_inputs ? i : 0]->ptr;
    ASSERT_TRUE(ctx->setTensorAddress("x", dx).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", ys[i]->ptr).ok());
    inputs.push_back(random_floats(kMaxFloats, 500 + i));
    std::vector<float> y = run_once(*ctx, s.s, inputs.back(), dx, ys[i]->ptr);
    ASSERT_LT(max_rel_error(y, cpu_reference(net, inputs.back(), kMaxBatch, kDim)), 1e-3);
    if (i + 1 < kCalls) {
      ASSERT_TRUE(all_bits(ys[i + 1]->ptr, kMaxFloats, 0xffffffffu)) << "the next output was written";
    }
  }
  // Every output still holds its own call's result: no later call wrote an earlier buffer.
  for (int i = 0; i < kCalls; ++i)
    EXPECT_LT(max_rel_error(download(ys[i]->ptr, kMaxFloats), cpu_reference(net, inputs[i], kMaxBatch, kDim)), 1e-3)
        << "output " << i;
  if (fresh_inputs) {
    // Inputs are only read: the last one still holds its data.
    EXPECT_EQ(max_rel_error(download(xs.back()->ptr, kMaxFloats), inputs.back()), 0.0);
  }
  EXPECT_TRUE(ctx->cudaGraphs());
  // One capture per address variant, then one with the staged bindings.
  EXPECT_LE(ctx->cudaGraphCaptures(), 4);
  EXPECT_GE(ctx->cudaGraphReplays(), 15);
  EXPECT_EQ(ctx->cudaGraphCaptures() + ctx->cudaGraphReplays(), kCalls);
  // Each replay copies the staged output out (and the staged input in).
  EXPECT_GE(ctx->cudaGraphStagedCopies(), ctx->cudaGraphReplays() * (fresh_inputs ? 2 : 1));
  std::printf("captures %lld, replays %lld, staged copies %lld\n", (long long)ctx->cudaGraphCaptures(),
              (long long)ctx->cudaGraphReplays(), (long long)ctx->cudaGraphStagedCopies());
}

TEST(CudaGraphsStaging, NewOutputBufferEveryCallReplays) {
  REQUIRE_GPU();
  check_fresh_buffers_every_call(/*fresh_inputs=*/false);
}

TEST(CudaGraphsStaging, NewInputAndOutputBuffersEveryCallReplay) {
  REQUIRE_GPU();
  check_fresh_buffers_every_call(/*fresh_inputs=*/true);
}

// Outputs taken in turn from `cycle` buffers, as PyTorch's caching allocator hands them out when
// the caller keeps one or two earlier results alive: one graph per buffer, then replays with no
// staged copy; no call writes a buffer other than its own. A cycle longer than the variants a
// shape keeps is churn: it stages.
void check_output_cycle(int cycle) {
  Network net = mlp(kDim, 3, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  std::vector<std::unique_ptr<DeviceBuffer>> ys;
  for (int i = 0; i < cycle; ++i) ys.push_back(std::make_unique<DeviceBuffer>(kMaxFloats * 4));
  DeviceBuffer dx(kMaxFloats * 4);
  Stream s;
  constexpr int kCalls = 12;
  for (int i = 0; i < kCalls; ++i) {
    SCOPED_TRACE(str("call ", i));
    void* dy = ys[static_cast<size_t>(i % cycle)]->ptr;
    for (const auto& other : ys) {
      if (other->ptr != dy) {
        CUDA_OK(cudaMemsetAsync(other->ptr, 0xff, kMaxFloats * 4, s.s));  // sentinel
      }
    }
    ASSERT_NO_FATAL_FAILURE(bind(*ctx, kMaxBatch, dx.ptr, dy));
    std::vector<float> x = random_floats(kMaxFloats, 800 + static_cast<uint32_t>(i));
    ASSERT_LT(max_rel_error(run_once(*ctx, s.s, x, dx.ptr, dy), cpu_reference(net, x, kMaxBatch, kDim)), 1e-3);
    for (const auto& other : ys) {
      if (other->ptr != dy) {
        ASSERT_TRUE(all_bits(other->ptr, kMaxFloats, 0xffffffffu)) << "another buffer was written";
      }
    }
  }
  EXPECT_TRUE(ctx->cudaGraphs()) << ctx->cudaGraphFailure();
  if (cycle <= static_cast<int>(CudaGraphCache::kMaxVariants)) {
    EXPECT_EQ(ctx->cudaGraphCaptures(), cycle);
    EXPECT_EQ(ctx->cudaGraphReplays(), kCalls - cycle);
    EXPECT_EQ(ctx->cudaGraphStagedCopies(), 0);
  } else {
    EXPECT_EQ(ctx->cudaGraphCaptures(), static_cast<int>(CudaGraphCache::kMaxVariants) + 1);
    // One copy out per replay, and one after the capture that staged the output.
    EXPECT_EQ(ctx->cudaGraphStagedCopies(), ctx->cudaGraphReplays() + 1);
  }
}

TEST(CudaGraphsStaging, TwoOutputBuffersInTurnReplayWithoutCopies) {
  REQUIRE_GPU();
  check_output_cycle(2);
}

TEST(CudaGraphsStaging, ThreeOutputBuffersInTurnReplayWithoutCopies) {
  REQUIRE_GPU();
  check_output_cycle(3);
}

TEST(CudaGraphsStaging, FourOutputBuffersInTurnAreStaged) {
  REQUIRE_GPU();
  check_output_cycle(4);
}

TEST(CudaGraphsStaging, StableBindingsAreNotStaged) {
  REQUIRE_GPU();
  BoundMlp m;
  ASSERT_NO_FATAL_FAILURE(make_bound_mlp(2, m));
  Stream s;
  for (uint32_t seed : {61u, 62u, 63u, 64u}) {
    std::vector<float> x = random_floats(kMaxFloats, seed);
    EXPECT_LT(max_rel_error(run_once(*m.ctx, s.s, x, m.dx.ptr, m.dy.ptr), cpu_reference(m.net, x, kMaxBatch, kDim)), 1e-3);
  }
  EXPECT_EQ(m.ctx->cudaGraphReplays(), 3);
  EXPECT_EQ(m.ctx->cudaGraphStagedCopies(), 0);
}

TEST(CudaGraphsStaging, ShapeChangesWithStagedBindings) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 3, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  const std::vector<int64_t> batches{64, 64, 64, 64, 16, 16, 64, 1, 16, 33, 33, 64, 1, 64, 16, 16};
  std::vector<std::unique_ptr<DeviceBuffer>> xs, ys;
  Stream s;
  for (size_t i = 0; i < batches.size(); ++i) {
    const int64_t batch = batches[i];
    SCOPED_TRACE(str("call ", i, " batch ", batch));
    // Fresh buffers of exactly the call's size (so a staged copy of the wrong size would fault or
    // be caught by compute-sanitizer).
    xs.push_back(std::make_unique<DeviceBuffer>(static_cast<size_t>(batch * kDim) * 4));
    ys.push_back(std::make_unique<DeviceBuffer>(static_cast<size_t>(batch * kDim) * 4));
    ASSERT_NO_FATAL_FAILURE(bind(*ctx, batch, xs.back()->ptr, ys.back()->ptr));
    std::vector<float> x = random_floats(static_cast<size_t>(batch * kDim), 700 + static_cast<uint32_t>(i));
    std::vector<float> y = run_once(*ctx, s.s, x, xs.back()->ptr, ys.back()->ptr);
    ASSERT_LT(max_rel_error(y, cpu_reference(net, x, batch, kDim)), 1e-3);
  }
  EXPECT_TRUE(ctx->cudaGraphs());
  EXPECT_GT(ctx->cudaGraphStagedCopies(), 0);
  EXPECT_GE(ctx->cudaGraphReplays(), 5);
  std::printf("captures %lld, replays %lld\n", (long long)ctx->cudaGraphCaptures(), (long long)ctx->cudaGraphReplays());
}

TEST(CudaGraphsStaging, AlternatingStreamsWithoutCallerSync) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  // Every run has its own output slot and the next of kInputs inputs: both churn, both staged.
  constexpr int kInputs = 5;
  const int runs = test_runs(400);
  std::vector<std::vector<float>> refs;
  DeviceBuffer dx(kInputs * kMaxFloats * 4), dy(size_t(runs) * kMaxFloats * 4);
  CUDA_OK(cudaMemset(dy.ptr, 0xff, size_t(runs) * kMaxFloats * 4));
  for (int i = 0; i < kInputs; ++i) {
    std::vector<float> x = random_floats(kMaxFloats, 900 + i);
    CUDA_OK(cudaMemcpy(dx.as<float>() + i * kMaxFloats, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    refs.push_back(cpu_reference(net, x, kMaxBatch, kDim));
  }
  Stream streams[2];
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kMaxBatch, kDim}).ok());
  for (int r = 0; r < runs; ++r) {
    ASSERT_TRUE(ctx->setTensorAddress("x", dx.as<float>() + (r % kInputs) * kMaxFloats).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", dy.as<float>() + size_t(r) * kMaxFloats).ok());
    Status st = ctx->enqueue(streams[r % 2].s);
    ASSERT_TRUE(st.ok()) << st.toString();
  }
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_TRUE(ctx->cudaGraphs());
  EXPECT_LE(ctx->cudaGraphCaptures(), 4);
  EXPECT_EQ(ctx->cudaGraphCaptures() + ctx->cudaGraphReplays(), runs);
  std::vector<float> y(size_t(runs) * kMaxFloats);
  CUDA_OK(cudaMemcpy(y.data(), dy.ptr, y.size() * 4, cudaMemcpyDeviceToHost));
  for (int r = 0; r < runs; ++r) {
    std::vector<float> got(y.begin() + size_t(r) * kMaxFloats, y.begin() + size_t(r + 1) * kMaxFloats);
    ASSERT_LT(max_rel_error(got, refs[r % kInputs]), 1e-3) << "run " << r;
  }
}

// x, z [n, kPairDim] -> sum = x + z, diff = relu(x - z); n may be 0.
constexpr int64_t kPairDim = 64;
constexpr int64_t kPairMax = 32;

Network pair_network() {
  Network net("pair");
  SymExpr n = net.addSymbol("n", 0, kPairMax, kPairMax).value();
  Tensor x = net.addInput("x", DType::kFloat32, {n, SymExpr(kPairDim)}).value();
  Tensor z = net.addInput("z", DType::kFloat32, {n, SymExpr(kPairDim)}).value();
  Tensor sum = net.add(OpKind::kBinary, {x, z}, Attrs{{"fn", std::string("add")}}).value();
  Tensor diff = net.add(OpKind::kBinary, {x, z}, Attrs{{"fn", std::string("sub")}}).value();
  diff = net.add(OpKind::kUnary, {diff}, Attrs{{"fn", std::string("relu")}}).value();
  EXPECT_TRUE(net.markOutput(sum, "sum").ok());
  EXPECT_TRUE(net.markOutput(diff, "diff").ok());
  return net;
}

// Fresh buffers every call; on even calls x and z are the same buffer. Calls with n == 0 bind
// null addresses (as PyTorch's empty tensors have).
void check_pair_calls(const std::vector<int64_t>& ns) {
  auto engine = build(pair_network(), "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  Stream s;
  for (size_t i = 0; i < ns.size(); ++i) {
    const int64_t n = ns[i];
    const size_t count = static_cast<size_t>(n * kPairDim);
    SCOPED_TRACE(str("call ", i, " n ", n));
    const bool alias = i % 2 == 0;
    auto alloc = [&](size_t floats) { return std::make_unique<DeviceBuffer>(std::max<size_t>(floats, 1) * 4); };
    auto bx = alloc(count), bz = alloc(count), bsum = alloc(count), bdiff = alloc(count);
    void* px = n ? bx->ptr : nullptr;
    void* pz = n ? (alias ? bx->ptr : bz->ptr) : nullptr;
    void* psum = n ? bsum->ptr : nullptr;
    void* pdiff = n ? bdiff->ptr : nullptr;
    std::vector<float> x = random_floats(count, 300 + static_cast<uint32_t>(i));
    std::vector<float> z = alias ? x : random_floats(count, 400 + static_cast<uint32_t>(i));
    if (n) {
      CUDA_OK(cudaMemcpy(px, x.data(), count * 4, cudaMemcpyHostToDevice));
      if (!alias) {
        CUDA_OK(cudaMemcpy(pz, z.data(), count * 4, cudaMemcpyHostToDevice));
      }
    }
    ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{n, kPairDim}).ok());
    ASSERT_TRUE(ctx->setInputShape("z", std::vector<int64_t>{n, kPairDim}).ok());
    ASSERT_TRUE(ctx->setTensorAddress("x", px).ok());
    ASSERT_TRUE(ctx->setTensorAddress("z", pz).ok());
    ASSERT_TRUE(ctx->setTensorAddress("sum", psum).ok());
    ASSERT_TRUE(ctx->setTensorAddress("diff", pdiff).ok());
    Status st = ctx->enqueue(s.s);
    ASSERT_TRUE(st.ok()) << st.toString();
    CUDA_OK(cudaStreamSynchronize(s.s));
    if (!n) continue;
    std::vector<float> sum = download(psum, count), diff = download(pdiff, count);
    std::vector<float> want_sum(count), want_diff(count);
    for (size_t k = 0; k < count; ++k) {
      want_sum[k] = static_cast<float>(double(x[k]) + double(z[k]));
      want_diff[k] = static_cast<float>(std::max(0.0, double(x[k]) - double(z[k])));
    }
    ASSERT_LT(max_rel_error(sum, want_sum), 1e-6);
    ASSERT_LT(max_rel_error(diff, want_diff), 1e-6);
  }
  EXPECT_TRUE(ctx->cudaGraphs()) << "a capture failed and turned graphs off: " << ctx->cudaGraphFailure();
  std::printf("captures %lld, replays %lld, staged copies %lld\n", (long long)ctx->cudaGraphCaptures(),
              (long long)ctx->cudaGraphReplays(), (long long)ctx->cudaGraphStagedCopies());
}

TEST(CudaGraphsStaging, AliasedInputsFreshEveryCall) {
  REQUIRE_GPU();
  ASSERT_NO_FATAL_FAILURE(check_pair_calls(std::vector<int64_t>(12, kPairMax)));
}

TEST(CudaGraphsStaging, ZeroSizeBindingsWithStaging) {
  REQUIRE_GPU();
  ASSERT_NO_FATAL_FAILURE(check_pair_calls({32, 32, 32, 32, 0, 0, 0, 32, 8, 0, 8, 8, 32}));
}

// Sets KILN_DEVICE_GRAPH_LAUNCH=1 for its lifetime (read when a context instantiates a graph).
struct DeviceGraphLaunchOn {
  DeviceGraphLaunchOn() { EXPECT_EQ(setenv("KILN_DEVICE_GRAPH_LAUNCH", "1", 1), 0); }
  ~DeviceGraphLaunchOn() { unsetenv("KILN_DEVICE_GRAPH_LAUNCH"); }
  DeviceGraphLaunchOn(const DeviceGraphLaunchOn&) = delete;
  DeviceGraphLaunchOn& operator=(const DeviceGraphLaunchOn&) = delete;
};

// KILN_DEVICE_GRAPH_LAUNCH=1: every launch goes through the device-side launcher
// (backends/cuda/rdc/graph_launcher.h). The outputs are read right after each call, so the engine's tail-launched
// graph finished in stream order; new shapes and new addresses still recapture.
TEST(CudaGraphs, DeviceSideLaunchIsOptInAndMatches) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer dx(kMaxFloats * 4), dy(kMaxFloats * 4), dy2(kMaxFloats * 4);
  Stream s;
  DeviceGraphLaunchOn device_launch;
  int calls = 0;
  for (int64_t batch : {kMaxBatch, int64_t{3}, kMaxBatch}) {
    for (void* out : {dy.ptr, dy2.ptr, dy.ptr}) {
      SCOPED_TRACE(batch);
      ASSERT_NO_FATAL_FAILURE(bind(*ctx, batch, dx.ptr, out));
      std::vector<float> x = random_floats(batch * kDim, 70 + calls);
      std::vector<float> y = run_once(*ctx, s.s, x, dx.ptr, out);
      EXPECT_LT(max_rel_error(y, cpu_reference(net, x, batch, kDim)), 1e-3);
      ++calls;
    }
  }
  EXPECT_TRUE(ctx->cudaGraphs()) << "graphs went off: " << ctx->cudaGraphFailure();
  EXPECT_EQ(ctx->plainLaunches(), 0);
  EXPECT_EQ(ctx->cudaGraphDeviceLaunches(), calls);
}

// Host time of `runs` enqueues with unchanged shapes and addresses, in microseconds each.
double host_us_per_enqueue(ExecutionContext& ctx, cudaStream_t stream, int runs) {
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; ++i) EXPECT_TRUE(ctx.enqueue(stream).ok());
  auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  return std::chrono::duration<double, std::micro>(t1 - t0).count() / runs;
}

TEST(CudaGraphs, ReplayCostsTheHostLessThanPlainLaunches) {
  REQUIRE_GPU();
  // Small and many steps: launch overhead dominates.
  constexpr int64_t kSmallDim = 32, kBatch = 4;
  Network net = mlp(kSmallDim, 24, kBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  std::printf("engine: %zu steps\n", engine->info().steps.size());
  DeviceBuffer dx(kBatch * kSmallDim * 4), dy(kBatch * kSmallDim * 4);
  CUDA_OK(cudaMemset(dx.ptr, 0, kBatch * kSmallDim * 4));
  Stream s;
  const int runs = test_runs(500);
  double us[3] = {0, 0, 0};  // plain, graph launched by the host, graph launched by the device
  for (int graphs = 0; graphs < 3; ++graphs) {
    std::optional<DeviceGraphLaunchOn> device_launch;
    if (graphs == 2) device_launch.emplace();
    auto ctx = engine->createExecutionContext().value();
    ctx->setCudaGraphs(graphs >= 1);
    ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kBatch, kSmallDim}).ok());
    ASSERT_TRUE(ctx->setTensorAddress("x", dx.ptr).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", dy.ptr).ok());
    host_us_per_enqueue(*ctx, s.s, 10);  // warm-up: workspace, the capture
    int64_t replays = ctx->cudaGraphReplays();
    const int64_t device_launches = ctx->cudaGraphDeviceLaunches();
    us[graphs] = host_us_per_enqueue(*ctx, s.s, runs);
    if (graphs >= 1) {
      EXPECT_TRUE(ctx->cudaGraphs());
      EXPECT_EQ(ctx->cudaGraphReplays() - replays, runs);
      EXPECT_EQ(ctx->cudaGraphDeviceLaunches() - device_launches, graphs == 2 ? runs : 0);
    } else {
      EXPECT_EQ(ctx->cudaGraphReplays(), 0);
    }
  }
  std::printf(
      "host time per enqueue: plain %.2f us, graph replay %.2f us, graph replay launched by the "
      "device %.2f us (%d runs)\n",
      us[0], us[1], us[2], runs);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// Memset nodes (cuDNN SDPA and cuBLASLt stream-K clear counters with them) become fill kernels that
// write what the memsets wrote, in the same order: a later fill over an earlier one still wins.
// Pitched fills take the row kernel; contiguous ones (one row, or rows with pitch == width) the
// 16-byte word kernel, here with misaligned heads and tails of each element size.
TEST(CudaGraphs, MemsetNodesBecomeFillKernelsInTheSameOrder) {
  constexpr size_t kBytes = 8192;
  void* buf = nullptr;
  ASSERT_EQ(cudaMalloc(&buf, kBytes), cudaSuccess);
  std::unique_ptr<void, decltype(&cudaFree)> guard(buf, &cudaFree);
  char* base = static_cast<char*>(buf);
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaGraphCreate(&g, 0), cudaSuccess);
  auto add = [&](void* dst, unsigned value, unsigned element, size_t width, size_t height, size_t pitch,
                 cudaGraphNode_t* after) {
    cudaMemsetParams p{};
    p.dst = dst;
    p.value = value;
    p.elementSize = element;
    p.width = width;
    p.height = height;
    p.pitch = pitch;
    cudaGraphNode_t n = nullptr;
    EXPECT_EQ(cudaGraphAddMemsetNode(&n, g, after, after ? 1 : 0, &p), cudaSuccess);
    return n;
  };
  cudaGraphNode_t a = add(base, 0xAB, 1, 100, 1, 0, nullptr);
  cudaGraphNode_t b = add(base + 256, 0x1234, 2, 10, 3, 64, &a);  // 3 rows of 10, pitch 64 bytes
  cudaGraphNode_t c = add(base + 1024, 0xDEADBEEF, 4, 50, 1, 0, &b);
  cudaGraphNode_t d = add(base, 0x11, 1, 10, 1, 0, &c);  // overwrites the start of the first fill
  // cudaMalloc's buffer is 256-byte aligned, so these offsets set the head and tail lengths.
  cudaGraphNode_t e = add(base + 4099, 0x5A, 1, 1001, 1, 0, &d);  // head 13, tail 12
  cudaGraphNode_t f =
      add(base + 6146, 0xBEEF, 2, 301, 2, 602, &e);  // rows with pitch == width: head 7, tail 3
  cudaGraphNode_t h = add(base + 7168, 0x01020304, 4, 64, 1, 0, &f);  // words only
  add(base + 7200, 0x0A0B0C0D, 4, 3, 1, 0, &h);                       // tail only
  int replaced = 0;
  ASSERT_EQ(cuda::replace_memset_nodes(g, &replaced), cudaSuccess);
  EXPECT_EQ(replaced, 8);
  size_t count = 0;
  ASSERT_EQ(cudaGraphGetNodes(g, nullptr, &count), cudaSuccess);
  std::vector<cudaGraphNode_t> nodes(count);
  ASSERT_EQ(cudaGraphGetNodes(g, nodes.data(), &count), cudaSuccess);
  EXPECT_EQ(count, 8u);
  for (cudaGraphNode_t n : nodes) {
    cudaGraphNodeType type;
    ASSERT_EQ(cudaGraphNodeGetType(n, &type), cudaSuccess);
    EXPECT_EQ(type, cudaGraphNodeTypeKernel);
  }
  ASSERT_EQ(cudaMemset(buf, 0, kBytes), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint8_t> host(kBytes);
  ASSERT_EQ(cudaMemcpy(host.data(), buf, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  std::vector<uint8_t> want(kBytes, 0);
  for (size_t i = 0; i < 100; ++i) want[i] = i < 10 ? 0x11 : 0xAB;
  for (size_t r = 0; r < 3; ++r)
    for (size_t i = 0; i < 10; ++i) {
      want[256 + r * 64 + 2 * i] = 0x34;
      want[256 + r * 64 + 2 * i + 1] = 0x12;
    }
  auto put = [&](size_t at, size_t count, std::vector<uint8_t> element) {
    for (size_t i = 0; i < count; ++i)
      for (size_t k = 0; k < element.size(); ++k) want[at + element.size() * i + k] = element[k];
  };
  put(1024, 50, {0xEF, 0xBE, 0xAD, 0xDE});
  put(4099, 1001, {0x5A});
  put(6146, 602, {0xEF, 0xBE});
  put(7168, 64, {0x04, 0x03, 0x02, 0x01});
  put(7200, 3, {0x0D, 0x0C, 0x0B, 0x0A});
  for (size_t i = 0; i < kBytes; ++i) ASSERT_EQ(host[i], want[i]) << "byte " << i;
}

}  // namespace
}  // namespace kiln
