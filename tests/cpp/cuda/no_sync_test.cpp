// No CUDA kernel call synchronizes: with the stream held by a host callback that waits for the
// test to release it, every kernel (library calls included) must return while the stream still
// reports "not ready". A kernel that synchronized would block until the callback's 10 s timeout.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

using Clock = std::chrono::steady_clock;

struct Blocker {
  std::atomic<bool> released{false};
  static void CUDART_CB hold(void* p) {
    auto* b = static_cast<Blocker*>(p);
    const auto t0 = Clock::now();
    while (!b->released.load() && Clock::now() - t0 < std::chrono::seconds(10))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

// One kernel call, prepared before the stream is blocked.
struct Call {
  OpKind kind;
  Attrs attrs;
  std::vector<TestTensor> host_in, host_out;
  std::vector<DeviceCopy> in, out;
  std::vector<TensorView> vin, vout;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

TestTensor filled(DType dt, const std::vector<int64_t>& shape, Layout layout = Layout::kContiguous) {
  return make_tensor(dt, shape, round_all(dt, random_values(numel(shape), 3, 0.5, 1.0)), layout);
}

TEST(CudaNoSync, KernelCallsReturnWhileTheStreamIsBlocked) {
  KILN_REQUIRE_CUDA();
  std::vector<Call> calls;
  auto add = [&](OpKind kind, Attrs attrs, std::vector<TestTensor> in,
                 std::vector<TestTensor> out) {
    Call c;
    c.kind = kind;
    c.attrs = std::move(attrs);
    c.host_in = std::move(in);
    c.host_out = std::move(out);
    calls.push_back(std::move(c));
  };
  const DType h = DType::kFloat16;
  auto idx = make_tensor(DType::kInt64, {4}, {0, 2, 1, 3});
  {
    std::vector<TestTensor> in;
    in.push_back(filled(h, {64, 64}, Layout::kPermuted));
    add(OpKind::kUnary, {{"fn", std::string("gelu")}}, std::move(in), {});
  }
  add(OpKind::kBinary, {{"fn", std::string("add")}}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}));
  calls.back().host_in.push_back(filled(h, {64}));
  add(OpKind::kReduce, {{"fn", std::string("var")}, {"dims", std::vector<int64_t>{1}}}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 3000}));
  add(OpKind::kSoftmax, {{"dim", int64_t{1}}}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}, Layout::kSliced));
  add(OpKind::kLayerNorm, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}));
  add(OpKind::kMatmul, {}, {}, {});
  calls.back().host_in.push_back(filled(h, {4, 64, 64}, Layout::kSliced));  // packed operand
  calls.back().host_in.push_back(filled(h, {64, 64}));
  add(OpKind::kLinear, {}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}));
  calls.back().host_in.push_back(filled(h, {32, 64}));
  calls.back().host_in.push_back(filled(DType::kFloat32, {32}));  // converted bias
  add(OpKind::kConv, {{"stride", std::vector<int64_t>{1, 1}}, {"padding", std::vector<int64_t>{1, 1}},
                      {"dilation", std::vector<int64_t>{1, 1}}, {"groups", int64_t{1}}},
      {}, {});
  calls.back().host_in.push_back(filled(h, {2, 8, 16, 16}, Layout::kPermuted));
  calls.back().host_in.push_back(filled(h, {16, 8, 3, 3}));
  calls.back().host_in.push_back(filled(h, {16}));
  add(OpKind::kConv, {{"stride", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{1, 1}},
                      {"dilation", std::vector<int64_t>{1, 1}}, {"groups", int64_t{1}},
                      {"transposed", true}, {"output_padding", std::vector<int64_t>{1, 1}}},
      {}, {});
  calls.back().host_in.push_back(filled(h, {2, 8, 8, 8}));
  calls.back().host_in.push_back(filled(h, {8, 4, 3, 3}));
  add(OpKind::kAttention, {{"causal", true}}, {}, {});
  calls.back().host_in.push_back(filled(h, {2, 4, 64, 64}));
  calls.back().host_in.push_back(filled(h, {2, 4, 64, 64}));
  calls.back().host_in.push_back(filled(h, {2, 4, 64, 64}));
  add(OpKind::kIndexSelect, {{"dim", int64_t{0}}}, {}, {});
  calls.back().host_in.push_back(filled(h, {8, 16}));
  calls.back().host_in.push_back(std::move(idx));
  add(OpKind::kPool, {{"kind", std::string("max")}, {"kernel", std::vector<int64_t>{2, 2}}}, {}, {});
  calls.back().host_in.push_back(filled(h, {2, 8, 16, 16}));
  add(OpKind::kCopy, {}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}, Layout::kPermuted));
  add(OpKind::kCopy, {}, {}, {});
  calls.back().host_in.push_back(filled(h, {64, 64}));  // contiguous: cudaMemcpyAsync
  add(OpKind::kFill, {{"value", 2.0}, {"dtype", h}}, {}, {});
  add(OpKind::kCumsum, {{"dim", int64_t{1}}}, {}, {});  // long lines: the block scan
  calls.back().host_in.push_back(filled(h, {16, 3000}, Layout::kPermuted));

  // Output shapes, in call order.
  const std::vector<std::vector<int64_t>> out_shapes = {
      {64, 64}, {64, 64}, {64},      {64, 64},       {64, 64},  {4, 64, 64}, {64, 32},
      {2, 16, 16, 16}, {2, 4, 16, 16}, {2, 4, 64, 64}, {4, 16}, {2, 8, 8, 8}, {64, 64},
      {64, 64}, {5, 7}, {16, 3000}};
  ASSERT_EQ(out_shapes.size(), calls.size());
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);  // a blocking stream: legacy syncs show too
  for (size_t i = 0; i < calls.size(); ++i) {
    Call& c = calls[i];
    c.host_out.push_back(make_output(h, out_shapes[i]));
    for (const TestTensor& t : c.host_in) c.in.push_back(DeviceCopy::of(t));
    for (const TestTensor& t : c.host_out) c.out.push_back(DeviceCopy::of(t));
    for (const DeviceCopy& d : c.in) c.vin.push_back(d.view);
    for (const DeviceCopy& d : c.out) c.vout.push_back(d.view);
    const cuda::CudaKernel& k = cuda::kernels_for(c.kind)[0];
    KernelArgs args{op_kind_name(c.kind), c.attrs, c.vin, c.vout, {}};
    args.backend = &gpu().state();
    c.workspace_bytes = k.workspace ? k.workspace(args) : 0;
    if (c.workspace_bytes) {
      ASSERT_EQ(cudaMalloc(&c.workspace, c.workspace_bytes), cudaSuccess);
    }
  }
  auto run = [&](Call& c) {
    const cuda::CudaKernel& k = cuda::kernels_for(c.kind)[0];
    KernelArgs args{op_kind_name(c.kind), c.attrs, c.vin, c.vout, {}};
    args.stream = stream;
    args.backend = &gpu().state();
    args.workspace = c.workspace;
    args.workspace_bytes = c.workspace_bytes;
    return k.run(args);
  };
  // Warm up first: lazy module loading of each kernel happens at its first launch.
  for (Call& c : calls) EXPECT_TRUE(run(c).ok()) << op_kind_name(c.kind);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  Blocker blocker;
  ASSERT_EQ(cudaLaunchHostFunc(stream, Blocker::hold, &blocker), cudaSuccess);
  const auto t0 = Clock::now();
  for (Call& c : calls) {
    SCOPED_TRACE(op_kind_name(c.kind));
    EXPECT_TRUE(run(c).ok());
    EXPECT_EQ(cudaStreamQuery(stream), cudaErrorNotReady);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  blocker.released = true;
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_LT(seconds, 5.0) << "a kernel call waited for the blocked stream";
  for (Call& c : calls)
    if (c.workspace) cudaFree(c.workspace);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace kiln::test
