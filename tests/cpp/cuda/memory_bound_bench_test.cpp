// Bandwidth of the memory-bound CUDA kernels at the sizes of vit_b_16 / bert-base batch 32 (and
// bert batch 1 for the launch-bound layer norm). Each case is first checked against a double
// reference (the only pass/fail criterion), then timed with CUDA events over one CUDA graph of
// repeated calls; the test prints microseconds per call and the achieved GB/s (bytes read +
// written once).
//
//   ctest --test-dir BUILD -L gpu -R CudaMemoryBoundBench --output-on-failure -V

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

int64_t bytes_of(const TestTensor& t) {
  return t.view.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
}

// Checks the kernel once against `refs`, then times `iters` calls on one stream.
void bench(const char* label, OpKind kind, const Attrs& attrs,
           std::vector<const TestTensor*> inputs, std::vector<TestTensor*> outputs,
           const std::vector<std::vector<double>>& refs, const std::vector<Tolerance>& tols,
           int iters = 50) {
  SCOPED_TRACE(label);
  ASSERT_OK(gpu().run(kind, attrs, inputs, outputs));
  for (size_t i = 0; i < outputs.size(); ++i)
    EXPECT_TRUE(expect_close(outputs[i]->view, refs[i], tols[i])) << "output " << i;

  const cuda::CudaKernel& k = cuda::kernels_for(kind)[0];
  std::vector<DeviceCopy> din, dout;
  std::vector<TensorView> vin, vout;
  int64_t bytes = 0;
  for (const TestTensor* t : inputs) {
    din.push_back(DeviceCopy::of(*t));
    bytes += bytes_of(*t);
  }
  for (TestTensor* t : outputs) {
    dout.push_back(DeviceCopy::of(*t));
    bytes += bytes_of(*t);
  }
  for (const DeviceCopy& d : din) vin.push_back(d.view);
  for (const DeviceCopy& d : dout) vout.push_back(d.view);
  KernelArgs args{label, attrs, vin, vout, {}};
  args.stream = gpu().stream();
  args.backend = &gpu().state();
  ASSERT_EQ(k.workspace ? k.workspace(args) : size_t{0}, size_t{0}) << "bench kernels need none";
  cudaEvent_t start = nullptr, stop = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  for (int i = 0; i < 3; ++i) ASSERT_OK(k.run(args));  // warm-up
  // The calls are captured into one CUDA graph and replayed, as an engine runs them: launched one
  // by one from the host, a kernel shorter than its launch cost would time the host instead.
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(gpu().stream(), cudaStreamCaptureModeThreadLocal), cudaSuccess);
  for (int i = 0; i < iters; ++i) ASSERT_OK(k.run(args));
  ASSERT_EQ(cudaStreamEndCapture(gpu().stream(), &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, gpu().stream()), cudaSuccess);  // warm-up
  ASSERT_EQ(cudaEventRecord(start, gpu().stream()), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, gpu().stream()), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(stop, gpu().stream()), cudaSuccess);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = 0.0f;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double us = 1000.0 * ms / iters;
  std::printf("[bench] %-44s %9.1f us/call %8.1f GB/s  (%.1f MB moved)\n", label, us,
              static_cast<double>(bytes) / (us * 1e3), static_cast<double>(bytes) / 1e6);
  std::fflush(stdout);
}

constexpr DType kH = DType::kFloat16;
const Tolerance kExact{0, 0};

TestTensor filled(DType dt, const Shape64& shape, uint32_t seed, double lo = -3, double hi = 3) {
  return make_tensor(dt, shape, round_all(dt, random_values(numel(shape), seed, lo, hi)));
}

// permute(perm) of a contiguous fp16 tensor.
void bench_permute(const char* label, const Shape64& shape, const Shape64& perm) {
  auto x = filled(kH, shape, 1);
  const std::vector<double> in = read_values(x.view);
  Shape64 so, in_strides(shape.size()), src_stride(perm.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= shape[d];
  }
  for (size_t d = 0; d < perm.size(); ++d) {
    so.push_back(shape[perm[d]]);
    src_stride[d] = in_strides[perm[d]];
  }
  std::vector<double> ref(in.size());
  Shape64 idx(so.size(), 0);
  for (size_t i = 0; i < ref.size(); ++i) {  // odometer over the output
    int64_t off = 0;
    for (size_t d = 0; d < so.size(); ++d) off += idx[d] * src_stride[d];
    ref[i] = in[off];
    for (int d = static_cast<int>(so.size()) - 1; d >= 0 && ++idx[d] == so[d]; --d) idx[d] = 0;
  }
  auto y = make_output(kH, so);
  bench(label, OpKind::kPermute, {{"perm", perm}}, {&x}, {&y}, {ref}, {kExact});
}

void bench_gelu(const char* label, const Shape64& shape) {
  auto x = filled(kH, shape, 2, -4, 4);
  std::vector<double> ref = read_values(x.view);
  for (double& v : ref) v = round_to(kH, 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  auto y = make_output(kH, shape);
  bench(label, OpKind::kUnary, {{"fn", std::string("gelu")}}, {&x}, {&y}, {ref}, {tolerance(kH)});
}

void bench_add(const char* label, int64_t rows, int64_t cols, bool bias) {
  auto a = filled(kH, {rows, cols}, 3);
  auto b = bias ? filled(kH, {cols}, 4) : filled(kH, {rows, cols}, 4);
  const std::vector<double> va = read_values(a.view), vb = read_values(b.view);
  std::vector<double> ref(va.size());
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = round_to(kH, va[i] + vb[bias ? i % cols : i]);
  auto y = make_output(kH, {rows, cols});
  bench(label, OpKind::kBinary, {{"fn", std::string("add")}}, {&a, &b}, {&y}, {ref},
        {tolerance(kH)});
}

void bench_cast(const char* label, int64_t n) {
  auto x = filled(DType::kFloat32, {n}, 5);
  std::vector<double> ref = read_values(x.view);
  for (double& v : ref) v = round_to(kH, v);
  auto y = make_output(kH, {n});
  bench(label, OpKind::kCast, {}, {&x}, {&y}, {ref}, {kExact});
}

void bench_layer_norm(const char* label, int64_t rows, int64_t len, bool residual) {
  auto x = filled(kH, {rows, len}, 6), r = filled(kH, {rows, len}, 7);
  auto w = filled(kH, {len}, 8, 0.5, 2), b = filled(kH, {len}, 9);
  const std::vector<double> vx = read_values(x.view), vr = read_values(r.view);
  const std::vector<double> vw = read_values(w.view), vb = read_values(b.view);
  std::vector<double> sum = vx, ref(vx.size());
  if (residual)
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = round_to(kH, vx[i] + vr[i]);
  for (int64_t row = 0; row < rows; ++row) {
    const double* p = sum.data() + row * len;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < len; ++j) mean += p[j];
    mean /= static_cast<double>(len);
    for (int64_t j = 0; j < len; ++j) var += (p[j] - mean) * (p[j] - mean);
    var /= static_cast<double>(len);
    const double rs = 1.0 / std::sqrt(var + 1e-5);
    for (int64_t j = 0; j < len; ++j)
      ref[row * len + j] = round_to(kH, (p[j] - mean) * rs * vw[j] + vb[j]);
  }
  Attrs attrs{{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}};
  auto y = make_output(kH, {rows, len}), s = make_output(kH, {rows, len});
  if (!residual) {
    bench(label, OpKind::kLayerNorm, attrs, {&x, &w, &b}, {&y}, {ref}, {tolerance(kH)});
    return;
  }
  attrs.set("residual", true);
  attrs.set("sum_output", true);
  bench(label, OpKind::kLayerNorm, attrs, {&x, &w, &b, &r}, {&y, &s}, {ref, sum},
        {tolerance(kH), kExact});
}

TEST(CudaMemoryBoundBench, PrintsBandwidthOfFastPaths) {
  KILN_REQUIRE_CUDA();
  // vit_b_16 batch 32: 197 tokens, 12 heads of 64, hidden 768, mlp 3072.
  bench_permute("copy qkv permute [32,197,3,12,64] (2,0,3,1,4)", {32, 197, 3, 12, 64},
                {2, 0, 3, 1, 4});
  bench_permute("copy heads [32,197,12,64] (0,2,1,3)", {32, 197, 12, 64}, {0, 2, 1, 3});
  bench_permute("copy transpose [32,768,196] (0,2,1)", {32, 768, 196}, {0, 2, 1});
  bench_gelu("unary gelu [32,197,3072]", {32, 197, 3072});
  bench_add("binary add [6304,768]+[6304,768]", 6304, 768, false);
  bench_add("binary add bias [6304,3072]+[3072]", 6304, 3072, true);
  bench_cast("cast f32->f16 [6304*768]", 6304 * 768);
  bench_layer_norm("residual layer_norm 6304x768 (+sum out)", 6304, 768, true);
  bench_layer_norm("layer_norm 6304x768", 6304, 768, false);
  // bert-base batch 32 (seq 128) and batch 1.
  bench_permute("copy heads [32,128,12,64] (0,2,1,3)", {32, 128, 12, 64}, {0, 2, 1, 3});
  bench_gelu("unary gelu [32,128,3072]", {32, 128, 3072});
  bench_layer_norm("residual layer_norm 4096x768 (+sum out)", 4096, 768, true);
  bench_layer_norm("layer_norm 4096x768", 4096, 768, false);
  bench_layer_norm("residual layer_norm 128x768 (+sum out)", 128, 768, true);
  bench_layer_norm("residual layer_norm 64x4096 (block rows)", 64, 4096, true);
}

}  // namespace
}  // namespace kiln::test
