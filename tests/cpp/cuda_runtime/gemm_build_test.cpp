// CUDA engines with fused gemm epilogues, transposed matmul operands and timed tactics: results
// against the same network on the CPU backend; a build at optimization level 2 with a timing
// cache times candidates once, and a rebuild times none and computes the same.

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "kiln/kiln.h"

namespace kiln {
namespace {

bool has_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
#define REQUIRE_GPU() \
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device"
#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

std::vector<float> random_floats(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

Tensor constant(Network& net, const std::string& name, std::vector<int64_t> dims, float scale,
                uint32_t seed) {
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  std::vector<float> v = random_floats(n, scale, seed);
  return net.addConstant(name, DType::kFloat32, dims, std::as_bytes(std::span<const float>(v))).value();
}

// x[batch, dim] f32 -> cast to `dt` -> layers of linear(+bias) + activation -> cast back -> y.
Network mlp(DType dt, int64_t dim, const std::vector<std::string>& acts, int64_t max_batch) {
  Network net("mlp");
  SymExpr batch = net.addSymbol("batch", 1, max_batch, max_batch).value();
  Tensor x = net.addInput("x", DType::kFloat32, {batch, dim}).value();
  if (dt != DType::kFloat32) x = net.add(OpKind::kCast, {x}, Attrs{{"dtype", dt}}).value();
  const float scale = 2.0f / std::sqrt(static_cast<float>(dim));
  for (size_t l = 0; l < acts.size(); ++l) {
    Tensor w = constant(net, str("w", l), {dim, dim}, scale, static_cast<uint32_t>(l + 1));
    Tensor b = constant(net, str("b", l), {dim}, 0.1f, static_cast<uint32_t>(100 + l));
    if (dt != DType::kFloat32) {
      w = net.add(OpKind::kCast, {w}, Attrs{{"dtype", dt}}).value();
      b = net.add(OpKind::kCast, {b}, Attrs{{"dtype", dt}}).value();
    }
    x = net.add(OpKind::kLinear, {x, w}).value();
    x = net.add(OpKind::kBinary, {x, b}, Attrs{{"fn", std::string("add")}}).value();
    x = net.add(OpKind::kUnary, {x}, Attrs{{"fn", acts[l]}}).value();
  }
  if (dt != DType::kFloat32) x = net.add(OpKind::kCast, {x}, Attrs{{"dtype", DType::kFloat32}}).value();
  EXPECT_TRUE(net.markOutput(x, "y").ok());
  return net;
}

std::shared_ptr<Engine> build(const Network& net, BuilderConfig config, BuildReport* report = nullptr) {
  auto bytes = Builder::build(net, config, report);
  EXPECT_TRUE(bytes.ok()) << bytes.status().toString();
  if (!bytes.ok()) return nullptr;
  auto engine = Engine::deserialize(*bytes, {config.device});
  EXPECT_TRUE(engine.ok()) << engine.status().toString();
  return engine.ok() ? *engine : nullptr;
}

// Runs an engine with float32 host inputs/outputs (device copies for CUDA engines).
std::vector<float> run(Engine& engine, bool cuda, const std::vector<std::vector<float>>& inputs,
                       const std::vector<std::vector<int64_t>>& dims) {
  auto ctx = engine.createExecutionContext().value();
  std::vector<std::string> in_names = engine.inputNames();
  std::vector<void*> device;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_TRUE(ctx->setInputShape(in_names[i], dims[i]).ok());
    void* p = const_cast<float*>(inputs[i].data());
    if (cuda) {
      EXPECT_EQ(cudaMalloc(&p, inputs[i].size() * 4), cudaSuccess);
      EXPECT_EQ(cudaMemcpy(p, inputs[i].data(), inputs[i].size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
      device.push_back(p);
    }
    EXPECT_TRUE(ctx->setTensorAddress(in_names[i], p).ok());
  }
  const std::string out_name = engine.outputNames()[0];
  auto out_dims = ctx->getTensorShape(out_name);
  EXPECT_TRUE(out_dims.ok());
  size_t n = 1;
  for (int64_t d : *out_dims) n *= static_cast<size_t>(d);
  std::vector<float> out(n, NAN);
  void* po = out.data();
  if (cuda) {
    EXPECT_EQ(cudaMalloc(&po, n * 4), cudaSuccess);
    device.push_back(po);
  }
  EXPECT_TRUE(ctx->setTensorAddress(out_name, po).ok());
  cudaStream_t s = nullptr;
  if (cuda) {
    EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  }
  Status st = ctx->enqueue(s);
  EXPECT_TRUE(st.ok()) << st.toString();
  if (cuda) {
    EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(out.data(), po, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaStreamDestroy(s);
    for (void* p : device) cudaFree(p);
  }
  return out;
}

double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double e = std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(double(b[i])));
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

int count_steps(const Engine& engine, const std::string& op) {
  int n = 0;
  for (const StepInfo& s : engine.info().steps) n += s.op == op ? 1 : 0;
  return n;
}

TEST(CudaGemmBuild, FusedMlpMatchesCpuInEveryFloatDtype) {
  REQUIRE_GPU();
  const int64_t dim = 128, batch = 32;
  const std::vector<std::string> acts = {"relu", "gelu_tanh", "gelu"};
  for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    Network net = mlp(dt, dim, acts, batch);
    BuilderConfig cuda_config;
    cuda_config.device = "cuda:0";
    auto gpu = build(net, cuda_config);
    auto cpu = build(net, BuilderConfig{});
    ASSERT_TRUE(gpu && cpu);
    EXPECT_EQ(count_steps(*gpu, "unary"), 0) << "activations were not fused";
    EXPECT_EQ(count_steps(*gpu, "binary"), 0) << "bias adds were not fused";
    auto x = random_floats(batch * dim, 1.0f, 7);
    auto want = run(*cpu, false, {x}, {{batch, dim}});
    auto got = run(*gpu, true, {x}, {{batch, dim}});
    const double tol = dt == DType::kFloat32 ? 1e-4 : dt == DType::kFloat16 ? 1e-2 : 6e-2;
    EXPECT_LT(max_rel_error(got, want), tol);
  }
}

TEST(CudaGemmBuild, MatmulOfPermutedInputUsesNoCopy) {
  REQUIRE_GPU();
  // y = permute(xt, [0, 2, 1]) @ w: the permuted operand reaches cuBLASLt transposed.
  const int64_t B = 4, M = 48, K = 64, N = 32;
  Network net("perm_mm");
  Tensor xt = net.addInput("xt", DType::kFloat32, {B, K, M}).value();
  Tensor x = net.add(OpKind::kPermute, {xt}, Attrs{{"perm", std::vector<int64_t>{0, 2, 1}}}).value();
  Tensor w = constant(net, "w", {K, N}, 0.2f, 3);
  Tensor y = net.add(OpKind::kMatmul, {x, w}).value();
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  BuilderConfig config;
  config.device = "cuda:0";
  config.optimization_level = 2;
  auto gpu = build(net, config);
  auto cpu = build(net, BuilderConfig{});
  ASSERT_TRUE(gpu && cpu);
  for (const StepInfo& s : gpu->info().steps) {
    EXPECT_NE(s.op, "copy");
    if (s.op == "permute") {
      EXPECT_EQ(s.tactic, "view");
    }
  }
  auto in = random_floats(B * K * M, 1.0f, 9);
  EXPECT_LT(max_rel_error(run(*gpu, true, {in}, {{B, K, M}}), run(*cpu, false, {in}, {{B, K, M}})), 1e-4);
}

TEST(CudaGemmBuild, WarmTimingCacheRebuildTimesNothing) {
  REQUIRE_GPU();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / str("kiln_gemm_build_test_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const int64_t dim = 256, batch = 64;
  Network net = mlp(DType::kFloat16, dim, {"relu", "gelu_tanh", "relu"}, batch);
  BuilderConfig config;
  config.device = "cuda:0";
  config.optimization_level = 2;
  config.timing_cache_path = (dir / "timing.cache").string();
  std::vector<std::string> timing_progress;
  config.progress = [&](const BuildProgress& p) {
    if (p.stage == "tactic timing") timing_progress.push_back(str(p.done, "/", p.total));
  };

  BuildReport cold, warm;
  auto first_bytes = Builder::build(net, config, &cold);
  ASSERT_TRUE(first_bytes.ok()) << first_bytes.status().toString();
  EXPECT_GT(cold.tactic_timings, 0) << "no op had more than one candidate to time";
  EXPECT_FALSE(timing_progress.empty());
  EXPECT_TRUE(std::filesystem::exists(config.timing_cache_path));
  timing_progress.clear();
  auto second_bytes = Builder::build(net, config, &warm);
  ASSERT_TRUE(second_bytes.ok()) << second_bytes.status().toString();
  EXPECT_EQ(warm.tactic_timings, 0);
  EXPECT_EQ(warm.timing_cache_hits, cold.tactic_timings + cold.timing_cache_hits);
  // Same winners (algorithm blobs included): the engine files are identical.
  EXPECT_TRUE(*first_bytes == *second_bytes);
  auto first = Engine::deserialize(*first_bytes, {config.device}).value();
  auto second = Engine::deserialize(*second_bytes, {config.device}).value();

  auto cpu = build(net, BuilderConfig{});
  auto x = random_floats(batch * dim, 1.0f, 5);
  auto want = run(*cpu, false, {x}, {{batch, dim}});
  auto a = run(*first, true, {x}, {{batch, dim}});
  auto b = run(*second, true, {x}, {{batch, dim}});
  EXPECT_LT(max_rel_error(a, want), 1e-2);
  EXPECT_LT(max_rel_error(b, a), 1e-3);

  // A corrupt cache is a warning, not an error: the build times again.
  { std::FILE* f = std::fopen(config.timing_cache_path.c_str(), "w"); std::fputs("junk", f); std::fclose(f); }
  BuildReport again;
  ASSERT_TRUE(build(net, config, &again));
  EXPECT_EQ(again.tactic_timings, cold.tactic_timings);
  bool warned = false;
  for (const std::string& l : again.pass_log) warned = warned || l.find("warning: timing cache") != std::string::npos;
  EXPECT_TRUE(warned);
  std::filesystem::remove_all(dir);
}

// Level 1 times the first 8 of cuBLASLt's heuristic algorithms per GEMM; level 2 asks the
// heuristic for up to 32 and times them all, and still picks a working one.
TEST(CudaGemmBuild, LevelTwoTimesMoreAlgorithmsThanLevelOne) {
  REQUIRE_GPU();
  const int64_t dim = 512, batch = 256;
  Network net = mlp(DType::kFloat16, dim, {"relu", "relu"}, batch);
  BuildReport reports[2];
  std::shared_ptr<Engine> engines[2];
  for (int level = 1; level <= 2; ++level) {
    BuilderConfig config;
    config.device = "cuda:0";
    config.optimization_level = level;
    engines[level - 1] = build(net, config, &reports[level - 1]);
    ASSERT_TRUE(engines[level - 1]);
  }
  EXPECT_GT(reports[0].tactic_timings, 0);
  EXPECT_GT(reports[1].tactic_timings, reports[0].tactic_timings);
  auto cpu = build(net, BuilderConfig{});
  auto x = random_floats(batch * dim, 1.0f, 9);
  auto want = run(*cpu, false, {x}, {{batch, dim}});
  for (const auto& e : engines) EXPECT_LT(max_rel_error(run(*e, true, {x}, {{batch, dim}}), want), 1e-2);
}

}  // namespace
}  // namespace kiln
