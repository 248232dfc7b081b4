// ResNet-like networks built for cuda:0 (conv epilogue fusion, NHWC layout in half precision)
// against the same network in float32 on the CPU backend. Skipped without a GPU.

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>

#include "model_util.h"
#include "resnet_block.h"

namespace kiln_test {
namespace {

bool has_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device"

// Runs a CUDA engine on host data: device copies in and out, one stream, synchronized.
std::vector<float> run_cuda(kiln::Engine& engine, const HostTensor& input) {
  auto ctx = engine.createExecutionContext();
  EXPECT_TRUE(ctx.ok()) << ctx.status().toString();
  if (!ctx.ok()) return {};
  EXPECT_TRUE((*ctx)->setInputShape("input", input.dims).ok());
  auto out_dims = (*ctx)->getTensorShape("logits");
  EXPECT_TRUE(out_dims.ok());
  if (!out_dims.ok()) return {};
  std::vector<float> out(static_cast<size_t>(numel(*out_dims)), NAN);
  void *din = nullptr, *dout = nullptr;
  EXPECT_EQ(cudaMalloc(&din, input.data.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dout, out.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(din, input.data.data(), input.data.size() * 4, cudaMemcpyHostToDevice),
            cudaSuccess);
  cudaStream_t stream = nullptr;
  EXPECT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  EXPECT_TRUE((*ctx)->setTensorAddress("input", din).ok());
  EXPECT_TRUE((*ctx)->setTensorAddress("logits", dout).ok());
  kiln::Status s = (*ctx)->enqueue(stream);
  EXPECT_TRUE(s.ok()) << s.toString();
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaStreamDestroy(stream);
  cudaFree(din);
  cudaFree(dout);
  return out;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

std::vector<float> cpu_reference(const HostTensor& input) {
  auto net = make_resnet_block();
  EXPECT_TRUE(net.ok()) << net.status().toString();
  auto engine = build_engine(*net);
  EXPECT_TRUE(engine.ok()) << engine.status().toString();
  auto out = run_engine(**engine, {input});
  EXPECT_TRUE(out.ok()) << out.status().toString();
  return out.ok() ? (*out)[0].data : std::vector<float>{};
}

std::shared_ptr<kiln::Engine> build_cuda(kiln::DType dtype, kiln::BuildReport* report) {
  ResnetBlockOptions o;
  o.dtype = dtype;
  auto net = make_resnet_block(o);
  EXPECT_TRUE(net.ok()) << net.status().toString();
  kiln::BuilderConfig config;
  config.device = "cuda:0";
  auto bytes = kiln::Builder::build(*net, config, report);
  EXPECT_TRUE(bytes.ok()) << bytes.status().toString();
  if (!bytes.ok()) return nullptr;
  auto engine = kiln::Engine::deserialize(*bytes, {"cuda:0"});
  EXPECT_TRUE(engine.ok()) << engine.status().toString();
  return engine.ok() ? *engine : nullptr;
}

bool logged(const kiln::BuildReport& report, const std::string& line) {
  for (const std::string& l : report.pass_log)
    if (l == line) return true;
  return false;
}

TEST(CudaConvEngine, HalfPrecisionResnetBlockRunsNhwcAndMatchesCpuFloat32) {
  REQUIRE_GPU();
  for (kiln::DType dt : {kiln::DType::kFloat16, kiln::DType::kBFloat16}) {
    SCOPED_TRACE(kiln::dtype_name(dt));
    kiln::BuildReport report;
    auto engine = build_cuda(dt, &report);
    ASSERT_NE(engine, nullptr);
    EXPECT_TRUE(logged(report, "conv fusion: fused 5 convs (2 residual adds, 5 relus)"));
    EXPECT_TRUE(logged(report,
                       "layout assignment: 6 convs and 2 pools in NHWC, 0 pointwise ops moved to "
                       "NHWC, 2 permutes left"));
    // The RGB stem reads 4 channels, the fourth zero (a pad op before it).
    EXPECT_TRUE(logged(report, "layout assignment: 1 convs with input channels padded to 4"));
    for (int64_t batch : {1, 4}) {
      HostTensor input = random_tensor({batch, 3, 16, 16}, 90 + static_cast<uint64_t>(batch));
      std::vector<float> want = cpu_reference(input);
      std::vector<float> got = run_cuda(*engine, input);
      ASSERT_EQ(got.size(), want.size());
      const double cos = cosine(got, want);
      EXPECT_GT(cos, dt == kiln::DType::kFloat16 ? 0.999 : 0.995) << "batch " << batch;
      for (float v : got) ASSERT_TRUE(std::isfinite(v));
    }
  }
}

TEST(CudaConvEngine, Float32ResnetBlockFusesWithoutNhwcAndMatchesCpu) {
  REQUIRE_GPU();
  kiln::BuildReport report;
  auto engine = build_cuda(kiln::DType::kFloat32, &report);
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(logged(report, "conv fusion: fused 5 convs (2 residual adds, 5 relus)"));
  EXPECT_TRUE(logged(report,
                     "layout assignment: 0 convs and 0 pools in NHWC, 0 pointwise ops moved to "
                     "NHWC, 0 permutes left"));
  HostTensor input = random_tensor({3, 3, 16, 16}, 7);
  std::vector<float> want = cpu_reference(input);
  std::vector<float> got = run_cuda(*engine, input);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-3 * (1.0 + std::abs(want[i]))) << i;
}

}  // namespace
}  // namespace kiln_test
