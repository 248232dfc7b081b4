// The L2 weight-prefetch branch of a context's captured graph (runtime/l2_prefetch.h; the plan
// itself is tested on the CPU in tests/cpp/runtime/l2_prefetch_test.cpp), and the builder's
// timing of a prefetching engine's GEMMs. Skipped without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"

namespace kiln {
namespace {

constexpr int64_t kDim = 128;
constexpr int64_t kMaxBatch = 64;
constexpr size_t kMaxFloats = kMaxBatch * kDim;

// Sets KILN_L2_PREFETCH to `value` for its lifetime (read at every capture).
struct L2PrefetchEnv {
  explicit L2PrefetchEnv(const char* value) { EXPECT_EQ(setenv("KILN_L2_PREFETCH", value, 1), 0); }
  ~L2PrefetchEnv() { unsetenv("KILN_L2_PREFETCH"); }
  L2PrefetchEnv(const L2PrefetchEnv&) = delete;
  L2PrefetchEnv& operator=(const L2PrefetchEnv&) = delete;
};

// The graph's L2 prefetch branch (runtime/l2_prefetch.h): forced on, the captured graph has one
// prefetch launch per two linears more than with it off, replays give the same bits, and graphs
// stay on; automatic, this MLP's 0.4 MB of weights stay in L2 anyway, so it gets none.
TEST(CudaGraphs, L2PrefetchBranchAddsNodesAndChangesNoOutput) {
  REQUIRE_GPU();
  constexpr int kLayers = 6;
  Network net = mlp(kDim, kLayers, kMaxBatch);
  auto engine = build(net, "cuda:0");
  ASSERT_TRUE(engine);
  Stream s;
  std::vector<float> x = random_floats(kMaxFloats, 77);
  auto nodes_and_outputs = [&](const char* mode) {
    L2PrefetchEnv env(mode);
    auto ctx = engine->createExecutionContext().value();
    DeviceBuffer dx(kMaxFloats * 4), dy(kMaxFloats * 4);
    bind_mlp(*ctx, kMaxBatch, kDim, dx.ptr, dy.ptr);
    std::vector<float> y;
    for (int call = 0; call < 3; ++call) y = run_once(*ctx, s.s, x, dx.ptr, dy.ptr);
    EXPECT_TRUE(ctx->cudaGraphs()) << mode << ": " << ctx->cudaGraphFailure();
    EXPECT_EQ(ctx->cudaGraphCaptures(), 1) << mode;
    EXPECT_EQ(ctx->cudaGraphReplays(), 2) << mode;
    const std::string& decision = ctx->l2Prefetch();
    const std::string want = mode[0] == '0'   ? "off (KILN_L2_PREFETCH=0)"
                             : mode[0] == '1' ? "on (KILN_L2_PREFETCH=1): "
                                              : "off: ";
    EXPECT_EQ(decision.rfind(want, 0), 0u) << mode << ": " << decision;
    EXPECT_EQ(ctx->cudaGraphPrefetchNodes(), mode[0] == '1' ? (kLayers + 1) / 2 : 0) << decision;
    return std::make_pair(ctx->cudaGraphNodes(), y);
  };
  const auto [off_nodes, off_y] = nodes_and_outputs("0");
  const auto [on_nodes, on_y] = nodes_and_outputs("1");
  const auto [auto_nodes, auto_y] = nodes_and_outputs("");
  EXPECT_EQ(on_nodes, off_nodes + (kLayers + 1) / 2);
  EXPECT_EQ(auto_nodes, off_nodes);
  EXPECT_EQ(on_y, off_y);
  EXPECT_EQ(auto_y, off_y);
  EXPECT_LT(max_rel_error(on_y, cpu_reference(net, x, kMaxBatch, kDim)), 1e-3);
}

// The builder applies the runtime's rule to the network: an engine whose graphs will prefetch its
// weights has its GEMMs timed with them in L2 (the build log's timing method says so), and its
// context then does prefetch; with KILN_L2_PREFETCH=0, or weights that fit in L2, neither.
TEST(CudaGraphs, PrefetchingEnginesTimeTheirGemmsWithWeightsInL2) {
  REQUIRE_GPU();
  constexpr int64_t kWide = 2048, kBatch = 16;  // 8 x 16 MB of float weights
  const Network wide = mlp(kWide, 8, kBatch), narrow = mlp(kDim, 6, kMaxBatch);
  auto build_logged = [](const Network& net, std::string& timing_line) {
    BuilderConfig config;
    config.device = "cuda:0";
    BuildReport report;
    auto bytes = Builder::build(net, config, &report);
    EXPECT_TRUE(bytes.ok()) << bytes.status().toString();
    for (const std::string& l : report.pass_log)
      if (l.rfind("tactic timing", 0) == 0) timing_line = l;
    return bytes.ok() ? Engine::deserialize(*bytes, {"cuda:0"}).value() : nullptr;
  };
  Stream s;
  auto decision = [&](Engine& engine, int64_t dim, int64_t batch) {
    auto ctx = engine.createExecutionContext().value();
    DeviceBuffer dx(static_cast<size_t>(batch * dim) * 4), dy(static_cast<size_t>(batch * dim) * 4);
    bind_mlp(*ctx, batch, dim, dx.ptr, dy.ptr);
    const std::vector<float> x = random_floats(static_cast<size_t>(batch * dim), 5);
    for (int call = 0; call < 3; ++call) run_once(*ctx, s.s, x, dx.ptr, dy.ptr);
    EXPECT_EQ(ctx->cudaGraphCaptures(), 1) << ctx->cudaGraphFailure();
    return ctx->l2Prefetch();
  };
  for (const char* mode : {"", "0"}) {
    L2PrefetchEnv env(mode);
    std::string line;
    auto engine = build_logged(wide, line);
    ASSERT_TRUE(engine);
    const bool on = mode[0] != '0';
    EXPECT_EQ(line.find("GEMM weights warm") != std::string::npos, on) << mode << ": " << line;
    EXPECT_NE(line.find("activations"), std::string::npos) << line;
    EXPECT_EQ(decision(*engine, kWide, kBatch).rfind(on ? "on: " : "off", 0), 0u) << mode;
  }
  std::string line;
  auto small = build_logged(narrow, line);
  ASSERT_TRUE(small);
  EXPECT_EQ(line.find("GEMM weights warm"), std::string::npos) << line;
  EXPECT_EQ(decision(*small, kDim, kMaxBatch).rfind("off: ", 0), 0u);
}

}  // namespace
}  // namespace kiln
