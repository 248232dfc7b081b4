#pragma once

// Test helpers for the CUDA kernels: host TestTensors (tests/cpp/backends/test_util.h: layouts,
// sentinels, references, tolerances) are copied to the device buffer for buffer, so strided
// views keep their layout; after the kernel the outputs come back into the host tensors, where
// expect_close reads them. Every test starts with KILN_REQUIRE_CUDA(), which skips it on a
// machine without a CUDA device.
//
//   KILN_REQUIRE_CUDA();
//   auto x = make_tensor(DType::kFloat16, {2, 3}, values, Layout::kPermuted);
//   auto y = make_output(DType::kFloat16, {2, 3});
//   ASSERT_OK(gpu().run(OpKind::kUnary, {{"fn", std::string("exp")}}, {&x}, {&y}));
//   EXPECT_TRUE(expect_close(y.view, reference));

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_kernels.h"
#include "backends/test_util.h"

namespace kiln::test {

inline bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define KILN_REQUIRE_CUDA()                                                   \
  do {                                                                        \
    if (!::kiln::test::cuda_available()) GTEST_SKIP() << "no CUDA device";    \
  } while (0)

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    ::kiln::Status kiln_s_ = (expr);                     \
    ASSERT_TRUE(kiln_s_.ok()) << kiln_s_.toString();     \
  } while (0)

// A device copy of a host TestTensor's whole buffer and the view into it.
struct DeviceCopy {
  void* base = nullptr;
  size_t bytes = 0;
  TensorView view;
  DeviceCopy() = default;
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  DeviceCopy(DeviceCopy&& o) noexcept : base(o.base), bytes(o.bytes), view(o.view) { o.base = nullptr; }
  ~DeviceCopy() {
    if (base) cudaFree(base);
  }
  static DeviceCopy of(const TestTensor& t) {
    DeviceCopy d;
    d.bytes = t.buffer->size();
    EXPECT_EQ(cudaMalloc(&d.base, d.bytes), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(d.base, t.buffer->data(), d.bytes, cudaMemcpyHostToDevice), cudaSuccess);
    d.view = t.view;
    const ptrdiff_t off = static_cast<const std::byte*>(t.view.data) - t.buffer->data();
    d.view.data = static_cast<std::byte*>(d.base) + off;
    return d;
  }
  void copy_back(TestTensor& t) const {
    EXPECT_EQ(cudaMemcpy(t.buffer->data(), base, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  }
};

// Runs CUDA kernels on one stream with one backend state (created once per test binary).
class CudaOpRunner {
 public:
  CudaOpRunner() {
    auto s = cuda::create_backend_state(0);
    EXPECT_TRUE(s.ok()) << s.status().toString();
    if (s.ok()) state_ = std::move(s).value();
    EXPECT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  ~CudaOpRunner() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  cuda::CudaBackendState& state() { return *state_; }
  // When set, run() captures the kernel into a CUDA graph (global capture mode: calls that are
  // unsafe during capture fail) and launches the graph, as an engine does.
  bool capture = false;
  cudaStream_t stream() const { return stream_; }

  // The first CUDA kernel of `kind` (or the one named `tactic`), after asking its `supports`,
  // on device copies of the tensors; outputs are copied back. Returns supports' or run's Status,
  // else the device error word's (read_device_errors).
  Status run(OpKind kind, const Attrs& attrs, std::vector<const TestTensor*> inputs,
             std::vector<TestTensor*> outputs, std::vector<int64_t> bindings = {},
             const char* op_name = nullptr, std::span<const uint8_t> tactic_data = {},
             const char* tactic = nullptr) {
    const cuda::CudaKernel* k = nullptr;
    if (tactic) {
      k = cuda::find_kernel(kind, tactic);
    } else {
      auto ks = cuda::kernels_for(kind);
      if (!ks.empty()) k = &ks[0];
    }
    if (!k) return not_found("no CUDA kernel for ", op_kind_name(kind));
    Op op;
    op.kind = kind;
    op.name = "test";
    op.attrs = attrs;
    std::vector<DType> dtypes;
    for (const TestTensor* t : inputs) dtypes.push_back(t->view.dtype);
    if (k->supports) {
      Status s = k->supports(op, dtypes);
      if (!s.ok()) return s;
    }
    std::vector<DeviceCopy> din, dout;
    std::vector<TensorView> vin, vout;
    for (const TestTensor* t : inputs) din.push_back(DeviceCopy::of(*t));
    for (TestTensor* t : outputs) dout.push_back(DeviceCopy::of(*t));
    for (const DeviceCopy& d : din) vin.push_back(d.view);
    for (const DeviceCopy& d : dout) vout.push_back(d.view);
    KernelArgs args{op_name ? op_name : op_kind_name(kind), attrs, vin, vout, bindings};
    args.stream = stream_;
    args.backend = state_.get();
    args.tactic_data = tactic_data;
    const size_t ws = k->workspace ? k->workspace(args) : 0;
    void* wsp = nullptr;
    if (ws) {
      EXPECT_EQ(cudaMalloc(&wsp, ws), cudaSuccess);
    }
    args.workspace = wsp;
    args.workspace_bytes = ws;
    Status s = capture ? run_captured(*k, args) : k->run(args);
    EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    if (wsp) cudaFree(wsp);
    for (size_t i = 0; i < outputs.size(); ++i) dout[i].copy_back(*outputs[i]);
    if (!s.ok()) return s;
    return cuda::read_device_errors(*state_, stream_);
  }

 private:
  Status run_captured(const cuda::CudaKernel& k, const KernelArgs& args) {
    EXPECT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
    Status s = k.run(args);
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
    if (s.ok() && graph) {
      cudaGraphExec_t exec = nullptr;
      EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
      if (exec) {
        EXPECT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
        EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
        cudaGraphExecDestroy(exec);
      }
    }
    if (graph) cudaGraphDestroy(graph);
    return s;
  }

  std::unique_ptr<cuda::CudaBackendState> state_;
  cudaStream_t stream_ = nullptr;
};

// Never destroyed: library handles must not outlive the CUDA runtime at exit.
inline CudaOpRunner& gpu() {
  static CudaOpRunner* runner = new CudaOpRunner;
  return *runner;
}

// The values of `t` (host view) after broadcasting etc. are read with read_values; these build
// small host tensors quickly.
inline std::vector<double> iota(int64_t n, double start = 0.0, double step = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * static_cast<double>(i);
  return v;
}

}  // namespace kiln::test
