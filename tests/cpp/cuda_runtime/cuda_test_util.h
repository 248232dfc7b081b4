#pragma once

// Shared by the CUDA runtime tests: GPU presence, a small MLP network (and binding and running it
// on a stream), building engines, the CPU reference run, and device buffers.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

inline bool has_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device"

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

// Run counts of the long loops: KILN_TEST_RUNS overrides `fallback` (tools/gpu_check.sh lowers
// it under compute-sanitizer, where every launch is far slower).
inline int test_runs(int fallback) {
  const char* v = std::getenv("KILN_TEST_RUNS");
  if (!v) return fallback;
  int n = std::atoi(v);
  return n > 0 ? n : fallback;
}

inline std::vector<std::byte> random_bytes(size_t floats, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<std::byte> out(floats * 4);
  for (size_t i = 0; i < floats; ++i) {
    float v = dist(rng);
    std::memcpy(out.data() + 4 * i, &v, 4);
  }
  return out;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed) {
  auto bytes = random_bytes(n, 1.0f, seed);
  std::vector<float> out(n);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// x[batch, dim] -> `layers` x (linear + relu) -> y. Weights scaled to keep values O(1).
inline Network mlp(int64_t dim, int layers, int64_t max_batch) {
  Network net("mlp");
  SymExpr batch = net.addSymbol("batch", 1, max_batch, max_batch).value();
  Tensor x = net.addInput("x", DType::kFloat32, {batch, dim}).value();
  float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  for (int l = 0; l < layers; ++l) {
    std::vector<int64_t> wd{dim, dim}, bd{dim};
    Tensor w = net.addConstant(str("w", l), DType::kFloat32, wd, random_bytes(dim * dim, 2 * scale, l)).value();
    Tensor b = net.addConstant(str("b", l), DType::kFloat32, bd, random_bytes(dim, 0.1f, 100 + l)).value();
    x = net.add(OpKind::kLinear, {x, w, b}).value();
    x = net.add(OpKind::kUnary, {x}, Attrs{{"fn", std::string("relu")}}).value();
  }
  EXPECT_TRUE(net.markOutput(x, "y").ok());
  return net;
}

inline std::shared_ptr<Engine> build(const Network& net, const std::string& device, bool cuda_graphs = true) {
  BuilderConfig config;
  config.device = device;
  config.cuda_graphs = cuda_graphs;
  auto bytes = Builder::build(net, config);
  EXPECT_TRUE(bytes.ok()) << bytes.status().toString();
  if (!bytes.ok()) return nullptr;
  auto engine = Engine::deserialize(*bytes, {device});
  EXPECT_TRUE(engine.ok()) << engine.status().toString();
  return engine.ok() ? *engine : nullptr;
}

// The reference: the same network on the CPU backend (whose kernels are tested against
// double-precision references in tests/cpp/backends).
inline std::vector<float> cpu_reference(const Network& net, const std::vector<float>& x, int64_t batch, int64_t dim) {
  auto engine = build(net, "cpu");
  auto ctx = engine->createExecutionContext().value();
  std::vector<float> y(static_cast<size_t>(batch * dim));
  std::vector<ExecutionContext::TensorRef> in{{const_cast<float*>(x.data()), {batch, dim}}};
  std::vector<void*> out{y.data()};
  EXPECT_TRUE(ctx->execute(in, out).ok());
  return y;
}

inline double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(double(b[i])));
    if (!(err <= worst)) worst = err;  // NaN counts as the worst
  }
  return worst;
}

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { EXPECT_EQ(cudaMalloc(&ptr, bytes), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() { return static_cast<T*>(ptr); }
};

// A non-blocking stream for a test's lifetime.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

// Copies `x` into the input buffer, enqueues on `stream`, and returns the output (synchronizes).
inline std::vector<float> run_once(ExecutionContext& ctx, cudaStream_t stream,
                                   const std::vector<float>& x, void* dx, void* dy) {
  std::vector<float> y(x.size(), NAN);
  EXPECT_EQ(cudaMemcpyAsync(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice, stream),
            cudaSuccess);
  Status st = ctx.enqueue(stream);
  EXPECT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(cudaMemcpyAsync(y.data(), dy, y.size() * 4, cudaMemcpyDeviceToHost, stream),
            cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  return y;
}

// Binds the mlp() network's input x [batch, dim] and output y to device buffers.
inline void bind_mlp(ExecutionContext& ctx, int64_t batch, int64_t dim, void* dx, void* dy) {
  ASSERT_TRUE(ctx.setInputShape("x", std::vector<int64_t>{batch, dim}).ok());
  ASSERT_TRUE(ctx.setTensorAddress("x", dx).ok());
  ASSERT_TRUE(ctx.setTensorAddress("y", dy).ok());
}

}  // namespace kiln
