// Runtime behaviour on CUDA (DESIGN.md 5): the caller's stream, CudaStreamGuard, no hidden
// synchronization, completion events across streams, contexts destroyed right after enqueue,
// threads sharing one engine, and green contexts. Skipped without a GPU.
#include <cuda.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <random>
#include <thread>

#include "cuda_test_util.h"

namespace kiln {
namespace {

constexpr int64_t kDim = 256;
constexpr int64_t kBatch = 64;

TEST(CudaRuntime, MatchesCpuAndLeavesDefaultStreamIdleUnderGuard) {
  REQUIRE_GPU();
  // A long engine: big enough that the host sees the user stream still busy.
  Network big = mlp(4096, 24, 512);
  auto engine = build(big, "cuda:0");
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer x(512 * 4096 * 4), y(512 * 4096 * 4);
  CUDA_OK(cudaMemset(x.ptr, 0, 512 * 4096 * 4));
  CUDA_OK(cudaDeviceSynchronize());
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{512, 4096}).ok());
  ASSERT_TRUE(ctx->setTensorAddress("x", x.ptr).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.ptr).ok());
  cudaStream_t user;
  CUDA_OK(cudaStreamCreateWithFlags(&user, cudaStreamNonBlocking));
  ASSERT_TRUE(ctx->enqueue(user).ok());  // warm-up: library handles, workspace
  CUDA_OK(cudaStreamSynchronize(user));
  cudaEvent_t on_default;
  CUDA_OK(cudaEventCreate(&on_default));
  {
    CudaStreamGuard guard(user);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(ctx->enqueue().ok());
    auto host_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The work went to the guarded stream: it is busy, the legacy default stream is idle.
    EXPECT_EQ(cudaStreamQuery(user), cudaErrorNotReady) << "enqueue returned after " << host_ms << " ms";
    // Work on the legacy default stream completes while the engine is still running: the
    // engine queued nothing there and the default stream does not wait for it.
    CUDA_OK(cudaEventRecord(on_default, nullptr));
    CUDA_OK(cudaEventSynchronize(on_default));
    EXPECT_EQ(cudaStreamQuery(user), cudaErrorNotReady) << "default stream waited for the engine";
  }
  CUDA_OK(cudaStreamSynchronize(user));
  cudaEventDestroy(on_default);
  cudaStreamDestroy(user);
}

TEST(CudaRuntime, EnqueueDoesNotSynchronizeTheHost) {
  REQUIRE_GPU();
  Network big = mlp(4096, 24, 512);
  auto engine = build(big, "cuda:0");
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer x(512 * 4096 * 4), y(512 * 4096 * 4);
  CUDA_OK(cudaMemset(x.ptr, 0, 512 * 4096 * 4));
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{512, 4096}).ok());
  ASSERT_TRUE(ctx->setTensorAddress("x", x.ptr).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.ptr).ok());
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  ASSERT_TRUE(ctx->enqueue(s).ok());
  CUDA_OK(cudaStreamSynchronize(s));
  // Two back-to-back enqueues: the second must not wait on the host for the first.
  ASSERT_TRUE(ctx->enqueue(s).ok());
  ASSERT_TRUE(ctx->enqueue(s).ok());
  EXPECT_EQ(cudaStreamQuery(s), cudaErrorNotReady);
  CUDA_OK(cudaStreamSynchronize(s));
  cudaStreamDestroy(s);
}

TEST(CudaRuntime, ThousandEnqueuesOnAlternatingStreamsWithoutCallerSync) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kBatch);
  auto engine = build(net, "cuda:0");
  auto ctx = engine->createExecutionContext().value();
  constexpr int kInputs = 4, kRuns = 1000;
  std::vector<std::vector<float>> xs, refs;
  DeviceBuffer dx(kInputs * kBatch * kDim * 4), dy(size_t{kRuns} * kBatch * kDim * 4);
  for (int i = 0; i < kInputs; ++i) {
    auto bytes = random_bytes(kBatch * kDim, 1.0f, 1000 + i);
    std::vector<float> x(kBatch * kDim);
    std::memcpy(x.data(), bytes.data(), bytes.size());
    CUDA_OK(cudaMemcpy(dx.as<float>() + i * kBatch * kDim, x.data(), bytes.size(), cudaMemcpyHostToDevice));
    refs.push_back(cpu_reference(net, x, kBatch, kDim));
    xs.push_back(std::move(x));
  }
  cudaStream_t streams[2];
  for (auto& s : streams) CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kBatch, kDim}).ok());
  for (int r = 0; r < kRuns; ++r) {
    ASSERT_TRUE(ctx->setTensorAddress("x", dx.as<float>() + (r % kInputs) * kBatch * kDim).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", dy.as<float>() + size_t(r) * kBatch * kDim).ok());
    ASSERT_TRUE(ctx->enqueue(streams[r % 2]).ok());
  }
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<float> y(size_t{kRuns} * kBatch * kDim);
  CUDA_OK(cudaMemcpy(y.data(), dy.ptr, y.size() * 4, cudaMemcpyDeviceToHost));
  for (int r = 0; r < kRuns; ++r) {
    std::vector<float> got(y.begin() + size_t(r) * kBatch * kDim, y.begin() + size_t(r + 1) * kBatch * kDim);
    ASSERT_LT(max_rel_error(got, refs[r % kInputs]), 1e-3) << "run " << r;
  }
  for (auto& s : streams) cudaStreamDestroy(s);
}

TEST(CudaRuntime, DestroyingAContextRightAfterEnqueueIsSafe) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 4, kBatch);
  auto engine = build(net, "cuda:0");
  auto bytes = random_bytes(kBatch * kDim, 1.0f, 7);
  std::vector<float> x(kBatch * kDim);
  std::memcpy(x.data(), bytes.data(), bytes.size());
  auto ref = cpu_reference(net, x, kBatch, kDim);
  DeviceBuffer dx(bytes.size()), dy(bytes.size());
  CUDA_OK(cudaMemcpy(dx.ptr, x.data(), bytes.size(), cudaMemcpyHostToDevice));
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (int i = 0; i < 20; ++i) {
    auto ctx = engine->createExecutionContext().value();
    ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kBatch, kDim}).ok());
    ASSERT_TRUE(ctx->setTensorAddress("x", dx.ptr).ok());
    ASSERT_TRUE(ctx->setTensorAddress("y", dy.ptr).ok());
    ASSERT_TRUE(ctx->enqueue(s).ok());
  }  // each context is destroyed with its work possibly still queued
  CUDA_OK(cudaStreamSynchronize(s));
  std::vector<float> y(kBatch * kDim);
  CUDA_OK(cudaMemcpy(y.data(), dy.ptr, bytes.size(), cudaMemcpyDeviceToHost));
  EXPECT_LT(max_rel_error(y, ref), 1e-3);
  cudaStreamDestroy(s);
}

TEST(CudaRuntime, ThreadsWithTheirOwnContextsShareOneEngine) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 3, kBatch);
  auto engine = build(net, "cuda:0");
  auto bytes = random_bytes(kBatch * kDim, 1.0f, 11);
  std::vector<float> x(kBatch * kDim);
  std::memcpy(x.data(), bytes.data(), bytes.size());
  auto ref = cpu_reference(net, x, kBatch, kDim);
  DeviceBuffer dx(bytes.size());
  CUDA_OK(cudaMemcpy(dx.ptr, x.data(), bytes.size(), cudaMemcpyHostToDevice));
  constexpr int kThreads = 4;
  const int kRuns = test_runs(1000);  // fewer under compute-sanitizer (tools/gpu_check.sh)
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      cudaStream_t s;
      cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
      auto ctx = engine->createExecutionContext().value();
      void* y = nullptr;
      cudaMalloc(&y, size_t{kRuns} * kBatch * kDim * 4);
      ctx->setInputShape("x", std::vector<int64_t>{kBatch, kDim}).ok();
      ctx->setTensorAddress("x", dx.ptr).ok();
      for (int r = 0; r < kRuns; ++r) {
        ctx->setTensorAddress("y", static_cast<float*>(y) + size_t(r) * kBatch * kDim).ok();
        if (!ctx->enqueue(s).ok()) ++failures[t];
      }
      cudaStreamSynchronize(s);
      std::vector<float> host(size_t{kRuns} * kBatch * kDim);
      cudaMemcpy(host.data(), y, host.size() * 4, cudaMemcpyDeviceToHost);
      for (int r = 0; r < kRuns; ++r) {
        std::vector<float> got(host.begin() + size_t(r) * kBatch * kDim, host.begin() + size_t(r + 1) * kBatch * kDim);
        if (max_rel_error(got, ref) > 1e-3) ++failures[t];
      }
      cudaFree(y);
      cudaStreamDestroy(s);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

TEST(CudaRuntime, CudaDevicesMatchTheCudaRuntime) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  std::vector<kiln::CudaDeviceInfo> devices = kiln::cudaDevices();
  ASSERT_EQ(static_cast<int>(devices.size()), count);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    ASSERT_EQ(cudaGetDeviceProperties(&prop, i), cudaSuccess);
    EXPECT_EQ(devices[i].index, i);
    EXPECT_EQ(devices[i].sm_major, prop.major);
    EXPECT_EQ(devices[i].sm_minor, prop.minor);
    EXPECT_EQ(devices[i].name, prop.name);
  }
}

TEST(CudaRuntime, KeepsTheCallersDevice) {
  REQUIRE_GPU();
  Network net = mlp(kDim, 1, kBatch);
  auto engine = build(net, "cuda:0");
  auto ctx = engine->createExecutionContext().value();
  int before = -1, after = -1;
  CUDA_OK(cudaGetDevice(&before));
  DeviceBuffer dx(kBatch * kDim * 4), dy(kBatch * kDim * 4);
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{kBatch, kDim}).ok());
  ASSERT_TRUE(ctx->setTensorAddress("x", dx.ptr).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", dy.ptr).ok());
  ASSERT_TRUE(ctx->enqueue(cudaStreamPerThread).ok());
  CUDA_OK(cudaGetDevice(&after));
  EXPECT_EQ(before, after);
  CUDA_OK(cudaStreamSynchronize(cudaStreamPerThread));
}

TEST(CudaRuntime, WrongSmEngineIsRefused) {
  REQUIRE_GPU();
  // A CPU engine asked to load on CUDA names both targets.
  auto bytes = Builder::build(mlp(kDim, 1, kBatch), BuilderConfig{}).value();
  auto engine = Engine::deserialize(bytes, {"cuda:0"});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kWrongTarget) << engine.status().toString();
}

// Runs `runs` enqueues of a compute-bound engine on `stream` and returns the median ms.
double time_engine(ExecutionContext& ctx, cudaStream_t stream, int runs) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int i = 0; i < runs; ++i) {
    cudaEventRecord(a, stream);
    EXPECT_TRUE(ctx.enqueue(stream).ok());
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

TEST(CudaRuntime, GreenContextConfinesTheEngine) {
  REQUIRE_GPU();
  ASSERT_EQ(cuInit(0), CUDA_SUCCESS);
  CUdevice dev;
  ASSERT_EQ(cuDeviceGet(&dev, 0), CUDA_SUCCESS);
  CUdevResource all{};
  ASSERT_EQ(cuDeviceGetDevResource(dev, &all, CU_DEV_RESOURCE_TYPE_SM), CUDA_SUCCESS);
  CUdevResource part{}, rest{};
  unsigned int groups = 1;
  ASSERT_EQ(cuDevSmResourceSplitByCount(&part, &groups, &all, &rest, 0, 16), CUDA_SUCCESS);
  CUdevResourceDesc desc;
  ASSERT_EQ(cuDevResourceGenerateDesc(&desc, &part, 1), CUDA_SUCCESS);
  CUgreenCtx green;
  ASSERT_EQ(cuGreenCtxCreate(&green, desc, dev, CU_GREEN_CTX_DEFAULT_STREAM), CUDA_SUCCESS);
  CUstream green_stream;
  ASSERT_EQ(cuGreenCtxStreamCreate(&green_stream, green, CU_STREAM_NON_BLOCKING, 0), CUDA_SUCCESS);

  Network big = mlp(4096, 8, 1024);
  auto engine = build(big, "cuda:0");
  auto ctx = engine->createExecutionContext().value();
  DeviceBuffer dx(1024 * 4096 * 4), dy(1024 * 4096 * 4);
  CUDA_OK(cudaMemset(dx.ptr, 0, 1024 * 4096 * 4));
  ASSERT_TRUE(ctx->setInputShape("x", std::vector<int64_t>{1024, 4096}).ok());
  ASSERT_TRUE(ctx->setTensorAddress("x", dx.ptr).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", dy.ptr).ok());
  cudaStream_t whole;
  CUDA_OK(cudaStreamCreateWithFlags(&whole, cudaStreamNonBlocking));
  time_engine(*ctx, whole, 3);
  double whole_ms = time_engine(*ctx, whole, 10);
  double green_ms = time_engine(*ctx, reinterpret_cast<cudaStream_t>(green_stream), 10);
  std::printf("whole GPU %.3f ms, %u-SM green context %.3f ms\n", whole_ms, part.sm.smCount, green_ms);
  EXPECT_GT(green_ms, 2.0 * whole_ms) << "a 16-SM partition should be much slower than the whole GPU";

  // And correct there: compare a small engine's result on the green stream with the CPU.
  Network net = mlp(kDim, 4, kBatch);
  auto small = build(net, "cuda:0");
  auto sctx = small->createExecutionContext().value();
  auto bytes = random_bytes(kBatch * kDim, 1.0f, 5);
  std::vector<float> x(kBatch * kDim), y(kBatch * kDim);
  std::memcpy(x.data(), bytes.data(), bytes.size());
  DeviceBuffer sx(bytes.size()), sy(bytes.size());
  CUDA_OK(cudaMemcpy(sx.ptr, x.data(), bytes.size(), cudaMemcpyHostToDevice));
  ASSERT_TRUE(sctx->setInputShape("x", std::vector<int64_t>{kBatch, kDim}).ok());
  ASSERT_TRUE(sctx->setTensorAddress("x", sx.ptr).ok());
  ASSERT_TRUE(sctx->setTensorAddress("y", sy.ptr).ok());
  {
    CudaStreamGuard guard(reinterpret_cast<cudaStream_t>(green_stream));
    ASSERT_TRUE(sctx->enqueue().ok());
  }
  ASSERT_EQ(cuStreamSynchronize(green_stream), CUDA_SUCCESS);
  CUDA_OK(cudaMemcpy(y.data(), sy.ptr, bytes.size(), cudaMemcpyDeviceToHost));
  EXPECT_LT(max_rel_error(y, cpu_reference(net, x, kBatch, kDim)), 1e-3);
  cudaStreamDestroy(whole);
  cuStreamDestroy(green_stream);
  cuGreenCtxDestroy(green);
}

}  // namespace
}  // namespace kiln
