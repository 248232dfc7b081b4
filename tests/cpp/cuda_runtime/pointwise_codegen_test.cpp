// Generated (NVRTC) pointwise kernels and the fused residual layer norm on CUDA, against the same
// network built for the CPU (whose pointwise interpreter equals the unfused CPU kernels bit for
// bit: tests/cpp/builder/pointwise_fusion_test.cpp). The engine is serialized and loaded into a
// fresh Engine before it runs, so the CUBIN travels in the file. Skipped without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "ir/half.h"

namespace kiln {
namespace {

Attrs fn(const char* name) { return {{"fn", std::string(name)}}; }

std::vector<std::byte> to_dtype(DType dt, const std::vector<float>& v) {
  std::vector<std::byte> out(v.size() * dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kFloat32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dt == DType::kFloat16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

std::vector<float> from_dtype(DType dt, const std::vector<std::byte>& b) {
  std::vector<float> v(b.size() / dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::kFloat32) {
      std::memcpy(&v[i], b.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      v[i] = dt == DType::kFloat16 ? half_to_float(h) : bf16_to_float(h);
    }
  }
  return v;
}

struct IO {
  std::vector<std::vector<int64_t>> dims;
  std::vector<std::vector<std::byte>> data;
};

// Runs `engine` (on the CPU or, through device buffers, on CUDA); returns the outputs' bytes.
std::vector<std::vector<std::byte>> run(Engine& engine, const IO& in, bool cuda) {
  auto ctx = engine.createExecutionContext().value();
  auto names = engine.inputNames();
  std::vector<std::unique_ptr<DeviceBuffer>> keep;
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(ctx->setInputShape(names[i], in.dims[i]).ok());
    void* p = const_cast<std::byte*>(in.data[i].data());
    if (cuda) {
      keep.push_back(std::make_unique<DeviceBuffer>(in.data[i].size() + 16));
      EXPECT_EQ(cudaMemcpy(keep.back()->ptr, p, in.data[i].size(), cudaMemcpyHostToDevice), cudaSuccess);
      p = keep.back()->ptr;
    }
    EXPECT_TRUE(ctx->setTensorAddress(names[i], p).ok());
  }
  std::vector<std::vector<std::byte>> outs;
  std::vector<void*> dev;
  for (const std::string& name : engine.outputNames()) {
    auto dims = ctx->getTensorShape(name).value();
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    DType dt = DType::kFloat32;
    for (const BindingInfo& b : engine.bindings())
      if (b.name == name) dt = b.dtype;
    outs.emplace_back(static_cast<size_t>(n) * dtype_size(dt));
    void* p = outs.back().data();
    if (cuda) {
      keep.push_back(std::make_unique<DeviceBuffer>(outs.back().size() + 16));
      p = keep.back()->ptr;
    }
    dev.push_back(p);
    EXPECT_TRUE(ctx->setTensorAddress(name, p).ok());
  }
  cudaStream_t stream = nullptr;
  if (cuda) EXPECT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  Status s = ctx->enqueue(stream);
  EXPECT_TRUE(s.ok()) << s.toString();
  if (cuda) {
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    for (size_t o = 0; o < outs.size(); ++o)
      EXPECT_EQ(cudaMemcpy(outs[o].data(), dev[o], outs[o].size(), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaStreamDestroy(stream);
  }
  return outs;
}

// Builds for cuda:0, reloads the serialized engine into a fresh Engine, and compares each
// output with the CPU engine within `tol` (relative to 1 + |value|).
void check_against_cpu(const Network& net, DType dt, const std::vector<IO>& cases, double tol,
                       int expect_kernels) {
  auto cpu = build(net, "cpu");
  auto built = build(net, "cuda:0");
  ASSERT_TRUE(cpu && built);
  std::vector<std::byte> file(built->serialized().begin(), built->serialized().end());
  built.reset();
  auto gpu = Engine::deserialize(file, {"cuda:0"});
  ASSERT_TRUE(gpu.ok()) << gpu.status().toString();
  EngineInfo info = (*gpu)->info();
  EXPECT_EQ(static_cast<int>(info.kernels.size()), expect_kernels);
  for (const auto& k : info.kernels) EXPECT_NE(k.source.find("__global__"), std::string::npos) << k.name;
  for (const IO& io : cases) {
    auto want = run(*cpu, io, false);
    auto got = run(**gpu, io, true);
    ASSERT_EQ(want.size(), got.size());
    for (size_t o = 0; o < want.size(); ++o) {
      std::vector<float> w = from_dtype(dt, want[o]), g = from_dtype(dt, got[o]);
      EXPECT_LE(max_rel_error(g, w), tol) << "output " << o << " of " << net.name() << " in " << dtype_name(dt);
    }
  }
}

IO random_io(DType dt, std::vector<std::vector<int64_t>> dims, uint32_t seed) {
  IO io;
  io.dims = dims;
  for (auto& d : dims) {
    int64_t n = 1;
    for (int64_t v : d) n *= v;
    std::vector<float> f = random_floats(static_cast<size_t>(n), seed++);
    for (float& v : f) v *= 3.0f;
    io.data.push_back(to_dtype(dt, f));
  }
  return io;
}

// One f16/bf16 ulp at |x| ~ 3, plus slack for a transcendental's last bit flipping a rounding.
double tolerance(DType dt) { return dt == DType::kFloat32 ? 1e-5 : dt == DType::kFloat16 ? 4e-3 : 3e-2; }

class CudaPointwise : public ::testing::TestWithParam<DType> {};

TEST_P(CudaPointwise, GeluBiasChainMatchesCpuAfterReload) {
  REQUIRE_GPU();
  const DType dt = GetParam();
  Network net("gelu_chain");
  SymExpr batch = net.addSymbol("batch", 1, 4, 16).value();
  SymExpr width = net.addSymbol("width", 1, 64, 128).value();
  Tensor x = net.addInput("x", dt, {batch, 3, width}).value();
  Tensor bias = net.addInput("bias", dt, {width}).value();
  Tensor h = net.add(OpKind::kBinary, {x, bias}, fn("add")).value();
  Tensor g = net.add(OpKind::kUnary, {h}, fn("gelu_tanh")).value();
  Tensor t = net.add(OpKind::kBinary, {g, net.add(OpKind::kUnary, {h}, fn("sigmoid")).value()}, fn("mul")).value();
  Tensor y = net.add(OpKind::kUnary, {t}, fn("relu")).value();
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  // width 64: vectorized entry with a row-broadcast bias; 33: generic entry; batch 1: tiny.
  check_against_cpu(net, dt,
                    {random_io(dt, {{4, 3, 64}, {64}}, 1), random_io(dt, {{5, 3, 33}, {33}}, 2),
                     random_io(dt, {{1, 3, 1}, {1}}, 3), random_io(dt, {{16, 3, 128}, {128}}, 4)},
                    tolerance(dt), 1);
}

TEST_P(CudaPointwise, WhereCastClampAndStridedInputMatchCpu) {
  REQUIRE_GPU();
  const DType dt = GetParam();
  Network net("where_chain");
  SymExpr batch = net.addSymbol("batch", 1, 4, 8).value();
  Tensor x = net.addInput("x", dt, {batch, 24, 16}).value();
  Tensor z = net.addInput("z", dt, {batch, 16, 24}).value();
  Tensor zt = net.add(OpKind::kPermute, {z}, {{"perm", std::vector<int64_t>{0, 2, 1}}}).value();  // strided view
  Tensor gt = net.add(OpKind::kBinary, {x, zt}, fn("gt")).value();
  Tensor up = net.add(OpKind::kCast, {x}, {{"dtype", DType::kFloat32}}).value();
  Tensor e = net.add(OpKind::kUnary, {up}, fn("exp")).value();
  Tensor cl = net.add(OpKind::kClamp, {e}, {{"min", 0.25}, {"max", 4.0}}).value();
  Tensor down = net.add(OpKind::kCast, {cl}, {{"dtype", dt}}).value();
  Tensor w = net.add(OpKind::kWhere, {gt, down, zt}).value();
  ASSERT_TRUE(net.markOutput(w, "y").ok());
  check_against_cpu(net, dt, {random_io(dt, {{3, 24, 16}, {3, 16, 24}}, 7), random_io(dt, {{8, 24, 16}, {8, 16, 24}}, 8)},
                    tolerance(dt), 1);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaPointwise,
                         ::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

class CudaResidualNorm : public ::testing::TestWithParam<std::tuple<DType, int64_t, bool>> {};

// add + layer_norm fused, with the sum an output too (the fused op's second output). With
// `broadcast` the residual is one batch entry added to every entry (a position embedding), first
// in the add: the fused norm reads it through an expand view with a zero batch stride. len 256
// takes the fast kernel, 20000 the general one.
TEST_P(CudaResidualNorm, FusedAddLayerNormMatchesCpu) {
  REQUIRE_GPU();
  const auto [dt, len, broadcast] = GetParam();
  Network net("residual_ln");
  SymExpr batch = net.addSymbol("batch", 1, 4, 8).value();
  Tensor x = net.addInput("x", dt, {batch, 5, len}).value();
  Tensor r = net.addInput("r", dt, {broadcast ? SymExpr(1) : batch, 5, len}).value();
  Tensor w = net.addInput("w", dt, {len}).value();
  Tensor b = net.addInput("b", dt, {len}).value();
  Tensor s = net.add(OpKind::kBinary, {broadcast ? r : x, broadcast ? x : r}, fn("add")).value();
  Tensor y = net.add(OpKind::kLayerNorm, {s, w, b}, {{"normalized_ndim", int64_t{1}}}).value();
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  ASSERT_TRUE(net.markOutput(s, "sum").ok());
  check_against_cpu(net, dt,
                    {random_io(dt, {{3, 5, len}, {broadcast ? 1 : 3, 5, len}, {len}, {len}}, 11)},
                    dt == DType::kFloat32 ? 1e-4 : tolerance(dt) * 2, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CudaResidualNorm,
    ::testing::Combine(::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
                       ::testing::Values(int64_t{256}, int64_t{20000}), ::testing::Bool()));

}  // namespace
}  // namespace kiln
