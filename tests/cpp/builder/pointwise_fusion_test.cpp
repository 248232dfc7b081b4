// Pointwise fusion and residual layer-norm fusion: the fused network must compute what the
// unfused one computes on the CPU kernels (bit for bit: the pointwise interpreter rounds every
// register where the unfused network stored it), the pass log says what was fused, and
// intermediates read elsewhere stay.

#include <gtest/gtest.h>

#include "builder/network_eval.h"
#include "builder/passes/passes.h"
#include "ir/pointwise_program.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Shape;
using kiln::Tensor;

std::vector<float> random_values(size_t n, uint64_t seed, float lo = -3, float hi = 3) {
  kiln_examples::Rng rng(seed * 131 + 7);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return v;
}

Buffer random_buffer(DType dtype, std::vector<int64_t> dims, uint64_t seed) {
  size_t n = static_cast<size_t>(numel(dims));
  return make_buffer(dtype, std::move(dims), random_values(n, seed));
}

// Bitwise equal outputs of `a` and `b` (NaNs compare equal to NaNs).
::testing::AssertionResult same_outputs(const std::vector<Buffer>& a, const std::vector<Buffer>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "output counts differ";
  for (size_t o = 0; o < a.size(); ++o) {
    if (a[o].dtype != b[o].dtype || a[o].dims != b[o].dims)
      return ::testing::AssertionFailure() << "output " << o << ": dtype or dims differ";
    for (size_t i = 0; i < buffer_numel(a[o]); ++i) {
      float x = buffer_at(a[o], i), y = buffer_at(b[o], i);
      if (!(x == y || (x != x && y != y)))
        return ::testing::AssertionFailure() << "output " << o << " element " << i << ": " << x << " vs " << y;
    }
  }
  return ::testing::AssertionSuccess();
}

// Runs fuse_pointwise (after fuse_residual_norm) and compares against the source network.
struct Fused {
  Network net;
  std::vector<std::string> log;
};
Fused fuse_and_compare(const Network& net, const std::vector<Buffer>& inputs,
                       const std::vector<int64_t>& symbols) {
  Fused f;
  auto normed = kiln::builder::fuse_residual_norm(net, f.log);
  EXPECT_TRUE(normed.ok()) << normed.status().toString();
  auto fused = kiln::builder::fuse_pointwise(*normed, f.log);
  EXPECT_TRUE(fused.ok()) << fused.status().toString();
  f.net = *fused;
  kiln::Status v = f.net.verify();
  EXPECT_TRUE(v.ok()) << v.toString() << "\n" << f.net.toString();
  auto want = evaluate_network(net, inputs, symbols);
  auto got = evaluate_network(f.net, inputs, symbols);
  EXPECT_TRUE(want.ok()) << want.status().toString();
  EXPECT_TRUE(got.ok()) << got.status().toString() << "\n" << f.net.toString();
  if (want.ok() && got.ok()) EXPECT_TRUE(same_outputs(*want, *got)) << f.net.toString();
  return f;
}

kiln::Attrs fn(const char* name) { return {{"fn", std::string(name)}}; }

// gelu_tanh written out as torch decomposes it, plus a bias: 9 elementwise ops.
Tensor gelu_chain(Network& net, Tensor x, Tensor bias, DType dtype) {
  auto scalar = [&](const char* name, float v) {
    return *net.addConstant(name, dtype, std::vector<int64_t>{},
                            make_buffer(dtype, {}, {v}).bytes);
  };
  Tensor h = *net.add(OpKind::kBinary, {x, bias}, fn("add"), "bias_add");
  Tensor cube = *net.add(OpKind::kBinary, {h, *net.add(OpKind::kBinary, {h, h}, fn("mul"), "sq")},
                         fn("mul"), "cube");
  Tensor inner = *net.add(OpKind::kBinary, {h, *net.add(OpKind::kBinary, {cube, scalar("c", 0.044715f)}, fn("mul"), "c_cube")},
                          fn("add"), "inner");
  Tensor t = *net.add(OpKind::kUnary,
                      {*net.add(OpKind::kBinary, {inner, scalar("k", 0.7978845608f)}, fn("mul"), "scaled")},
                      fn("tanh"), "tanh");
  Tensor one_plus = *net.add(OpKind::kBinary, {t, scalar("one", 1.0f)}, fn("add"), "one_plus");
  Tensor half_h = *net.add(OpKind::kBinary, {h, scalar("half", 0.5f)}, fn("mul"), "half_h");
  return *net.add(OpKind::kBinary, {half_h, one_plus}, fn("mul"), "gelu");
}

class PointwiseDtypes : public ::testing::TestWithParam<DType> {};

TEST_P(PointwiseDtypes, GeluChainWithBroadcastBiasIsOneOpAndExact) {
  const DType dt = GetParam();
  Network net("gelu");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 4, 8);
  Tensor x = *net.addInput("x", dt, {batch, 3, 32});
  Tensor bias = *net.addInput("bias", dt, {32});
  ASSERT_TRUE(net.markOutput(gelu_chain(net, x, bias, dt), "y").ok());
  Fused f = fuse_and_compare(net, {random_buffer(dt, {5, 3, 32}, 1), random_buffer(dt, {32}, 2)}, {5});
  EXPECT_EQ(f.net.ops().size(), 1u) << f.net.toString();
  EXPECT_EQ(count_ops(f.net, OpKind::kPointwise), 1);
  EXPECT_NE(f.log.back().find("pointwise fusion: 10 ops into 1 pointwise ops"), std::string::npos) << f.log.back();
}

TEST_P(PointwiseDtypes, WhereCompareCastClampChain) {
  const DType dt = GetParam();
  Network net("where");
  Tensor x = *net.addInput("x", dt, {4, 1, 16});
  Tensor y = *net.addInput("y", dt, {6, 16});
  Tensor pos = *net.add(OpKind::kBinary, {x, y}, fn("gt"), "gt");
  Tensor w = *net.add(OpKind::kWhere, {pos, x, *net.add(OpKind::kUnary, {y}, fn("silu"), "silu")}, {}, "where");
  Tensor c = *net.add(OpKind::kCast, {w}, {{"dtype", DType::kFloat32}}, "up");
  Tensor cl = *net.add(OpKind::kClamp, {c}, {{"min", -0.5}}, "clamp");
  Tensor back = *net.add(OpKind::kCast, {*net.add(OpKind::kUnary, {cl}, fn("exp"), "exp")}, {{"dtype", dt}}, "down");
  Tensor notpos = *net.add(OpKind::kUnary, {pos}, fn("logical_not"), "not");
  ASSERT_TRUE(net.markOutput(back, "out").ok());
  ASSERT_TRUE(net.markOutput(notpos, "mask").ok());
  Fused f = fuse_and_compare(net, {random_buffer(dt, {4, 1, 16}, 3), random_buffer(dt, {6, 16}, 4)}, {});
  // gt feeds both chains: it stays an op of its own (a group of one); the rest fuses.
  EXPECT_EQ(count_ops(f.net, OpKind::kPointwise), 1) << f.net.toString();
  EXPECT_EQ(count_ops(f.net, OpKind::kBinary), 1) << f.net.toString();
  EXPECT_EQ(count_ops(f.net, OpKind::kUnary), 1) << f.net.toString();  // logical_not alone
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PointwiseDtypes,
                         ::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
                         [](const auto& info) { return std::string(kiln::dtype_name(info.param)); });

TEST(PointwiseFusion, IntermediateUsedElsewhereIsNotAbsorbed) {
  Network net("shared");
  Tensor x = *net.addInput("x", DType::kFloat32, {8, 8});
  Tensor a = *net.add(OpKind::kUnary, {x}, fn("relu"), "relu");
  Tensor b = *net.add(OpKind::kUnary, {a}, fn("exp"), "exp");
  Tensor c = *net.add(OpKind::kUnary, {b}, fn("neg"), "neg");
  Tensor s = *net.add(OpKind::kReduce, {a}, {{"fn", std::string("sum")}, {"dims", std::vector<int64_t>{1}}}, "sum");
  ASSERT_TRUE(net.markOutput(c, "c").ok());
  ASSERT_TRUE(net.markOutput(s, "s").ok());
  ASSERT_TRUE(net.markOutput(b, "b").ok());  // a network output: not absorbed either
  Fused f = fuse_and_compare(net, {random_buffer(DType::kFloat32, {8, 8}, 5)}, {});
  EXPECT_EQ(count_ops(f.net, OpKind::kPointwise), 0) << f.net.toString();
  EXPECT_EQ(f.log.back(), "pointwise fusion: nothing to fuse");
}

TEST(PointwiseFusion, IntegerChainsAreNotFused) {
  Network net("ints");
  Tensor x = *net.addInput("x", DType::kInt32, {8});
  Tensor y = *net.add(OpKind::kUnary, {*net.add(OpKind::kUnary, {x}, fn("neg"))}, fn("abs"));
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  auto fused = kiln::builder::fuse_pointwise(net, log);
  ASSERT_TRUE(fused.ok());
  EXPECT_EQ(count_ops(*fused, OpKind::kPointwise), 0);
}

TEST(PointwiseFusion, FullBuildMatchesTheUnfusedNetwork) {
  Network net("build");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {batch, 32});
  Tensor bias = *add_constant(net, "bias", {32}, random_values(32, 9));
  Tensor y = *net.add(OpKind::kUnary, {*net.add(OpKind::kBinary, {x, bias}, fn("add"), "add")}, fn("relu"), "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  kiln::BuildReport report;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, {}, &report));
  bool logged = false;
  for (const std::string& line : report.pass_log) logged |= line.find("pointwise fusion: 2 ops into 1") == 0;
  EXPECT_TRUE(logged);
  ASSERT_EQ(engine->info().steps.size(), 1u);
  EXPECT_EQ(engine->info().steps[0].op, "pointwise");
  HostTensor in = random_tensor({3, 32}, 11);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  auto want = evaluate_network(net, {make_buffer(DType::kFloat32, {3, 32}, in.data)}, {3});
  ASSERT_TRUE(want.ok());
  for (size_t i = 0; i < out[0].data.size(); ++i) ASSERT_EQ(out[0].data[i], buffer_at((*want)[0], i)) << i;
}

// ---- the op's verifier ----------------------------------------------------------------------

kiln::Status add_pointwise(const std::string& code, std::vector<int64_t> operands,
                           std::vector<int64_t> outputs) {
  Network net("verify");
  Tensor x = *net.addInput("x", DType::kFloat32, {4});
  std::vector<double> params(operands.size() / 3 * 2, 0.0);
  kiln::Attrs attrs{{"code", code}, {"operands", operands}, {"params", params}, {"outputs", outputs}};
  return net.add(OpKind::kPointwise, {x, x}, attrs, "fused").status();
}

TEST(PointwiseOp, VerifiesItsProgram) {
  EXPECT_TRUE(add_pointwise("binary.add unary.relu", {0, 1, -1, 2, -1, -1}, {3}).ok());
  kiln::Status bad_reg = add_pointwise("binary.add unary.relu", {0, 1, -1, 3, -1, -1}, {3});
  EXPECT_NE(bad_reg.message().find("pointwise 'fused': instruction 1 (unary.relu): operand 0 is register 3"),
            std::string::npos) << bad_reg.message();
  kiln::Status bad_fn = add_pointwise("binary.add unary.frobnicate", {0, 1, -1, 2, -1, -1}, {3});
  EXPECT_NE(bad_fn.message().find("pointwise 'fused': instruction 1: unknown unary fn 'frobnicate'"),
            std::string::npos) << bad_fn.message();
  kiln::Status bad_out = add_pointwise("binary.add", {0, 1, -1}, {1});
  EXPECT_NE(bad_out.message().find("output 0 is register 1"), std::string::npos) << bad_out.message();
  kiln::Status bad_dtype = add_pointwise("binary.gt binary.add", {0, 1, -1, 2, 0, -1}, {3});
  EXPECT_NE(bad_dtype.message().find("instruction 1 (binary.add)"), std::string::npos) << bad_dtype.message();
  kiln::Status bad_count = add_pointwise("binary.add", {0, 1}, {2});
  EXPECT_FALSE(bad_count.ok());
}

// ---- residual + layer norm ----------------------------------------------------------------

class ResidualNorm : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(ResidualNorm, AddThenLayerNormIsOneOp) {
  const auto [dt, sum_used] = GetParam();
  Network net("ln");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", dt, {batch, 5, 64});
  Tensor r = *net.addInput("r", dt, {batch, 5, 64});
  Tensor w = *net.addInput("w", dt, {64});
  Tensor b = *net.addInput("b", dt, {64});
  Tensor s = *net.add(OpKind::kBinary, {x, r}, fn("add"), "residual_add");
  Tensor y = *net.add(OpKind::kLayerNorm, {s, w, b}, {{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}}, "ln");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  if (sum_used) ASSERT_TRUE(net.markOutput(*net.add(OpKind::kUnary, {s}, fn("neg"), "use"), "s").ok());
  Fused f = fuse_and_compare(net, {random_buffer(dt, {3, 5, 64}, 1), random_buffer(dt, {3, 5, 64}, 2),
                                   random_buffer(dt, {64}, 3), random_buffer(dt, {64}, 4)}, {3});
  EXPECT_EQ(count_ops(f.net, OpKind::kBinary), 0) << f.net.toString();
  ASSERT_EQ(count_ops(f.net, OpKind::kLayerNorm), 1);
  for (const kiln::Op& op : f.net.ops())
    if (op.kind == OpKind::kLayerNorm) {
      EXPECT_EQ(op.outputs.size(), sum_used ? 2u : 1u);
      EXPECT_TRUE(op.attrs.getBool("residual", false));
    }
  EXPECT_NE(f.log[0].find("residual norm fusion: 1 add + layer_norm pairs"), std::string::npos) << f.log[0];
}

INSTANTIATE_TEST_SUITE_P(Cases, ResidualNorm,
                         ::testing::Combine(::testing::Values(DType::kFloat32, DType::kFloat16, DType::kBFloat16),
                                            ::testing::Bool()));

// A position embedding added to every batch entry (GPT-2, ViT): the broadcast operand becomes the
// residual through an expand view, whichever side of the add it is on.
class ResidualNormBroadcast : public ::testing::TestWithParam<std::tuple<DType, bool, bool>> {};

TEST_P(ResidualNormBroadcast, BroadcastOperandBecomesAnExpandedResidual) {
  const auto [dt, broadcast_first, sum_used] = GetParam();
  Network net("bcast");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", dt, {batch, 5, 32});
  Tensor pos = *net.addConstant("pos", dt, std::vector<int64_t>{1, 5, 32},
                                make_buffer(dt, {1, 5, 32}, random_values(5 * 32, 7)).bytes);
  Tensor w = *net.addInput("w", dt, {32});
  Tensor s = *net.add(OpKind::kBinary, {broadcast_first ? pos : x, broadcast_first ? x : pos},
                      fn("add"), "pos_add");
  Tensor y = *net.add(OpKind::kLayerNorm, {s, w}, {{"normalized_ndim", int64_t{1}}}, "ln");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  if (sum_used)
    ASSERT_TRUE(net.markOutput(*net.add(OpKind::kUnary, {s}, fn("neg"), "use"), "s").ok());
  Fused f =
      fuse_and_compare(net, {random_buffer(dt, {3, 5, 32}, 1), random_buffer(dt, {32}, 3)}, {3});
  EXPECT_EQ(count_ops(f.net, OpKind::kBinary), 0) << f.net.toString();
  ASSERT_EQ(count_ops(f.net, OpKind::kExpand), 1) << f.net.toString();
  for (const kiln::Op& op : f.net.ops()) {
    if (op.kind != OpKind::kLayerNorm) continue;
    EXPECT_TRUE(op.attrs.getBool("residual", false));
    EXPECT_EQ(op.outputs.size(), sum_used ? 2u : 1u);
    EXPECT_EQ(op.inputs[0], *f.net.findTensor("x")) << "the full-shaped operand is the input";
  }
  EXPECT_NE(f.log[0].find("1 with a broadcast residual"), std::string::npos) << f.log[0];
}

INSTANTIATE_TEST_SUITE_P(Cases, ResidualNormBroadcast,
                         ::testing::Combine(::testing::Values(DType::kFloat32, DType::kFloat16),
                                            ::testing::Bool(), ::testing::Bool()));

// The CPU engine runs the fused norm with the expanded residual (zero batch stride) and returns
// the sum too, matching the unfused network.
TEST(ResidualNormFusion, BroadcastResidualEngineMatchesTheUnfusedNetwork) {
  Network net("bcast_engine");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {batch, 5, 32});
  Tensor pos = *add_constant(net, "pos", {1, 5, 32}, random_values(5 * 32, 7));
  Tensor s = *net.add(OpKind::kBinary, {x, pos}, fn("add"), "pos_add");
  Tensor y = *net.add(OpKind::kLayerNorm, {s}, {{"normalized_ndim", int64_t{1}}}, "ln");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  ASSERT_TRUE(net.markOutput(*net.add(OpKind::kUnary, {s}, fn("neg"), "use"), "s").ok());
  kiln::BuildReport report;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, {}, &report));
  bool logged = false;
  for (const std::string& line : report.pass_log)
    logged |= line.find("1 with a broadcast residual") != std::string::npos;
  EXPECT_TRUE(logged);
  HostTensor in = random_tensor({3, 5, 32}, 11);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  auto want = evaluate_network(net, {make_buffer(DType::kFloat32, {3, 5, 32}, in.data)}, {3});
  ASSERT_TRUE(want.ok());
  ASSERT_EQ(out.size(), 2u);
  for (size_t o = 0; o < 2; ++o)
    for (size_t i = 0; i < out[o].data.size(); ++i)
      ASSERT_NEAR(out[o].data[i], buffer_at((*want)[o], i), 1e-5) << "output " << o << " at " << i;
}

TEST(ResidualNormFusion, AddWhereBothOperandsBroadcastIsLeftAlone) {
  Network net("bcast");
  Tensor x = *net.addInput("x", DType::kFloat32, {4, 1});
  Tensor r = *net.addInput("r", DType::kFloat32, {16});
  Tensor y = *net.add(OpKind::kLayerNorm, {*net.add(OpKind::kBinary, {x, r}, fn("add"))},
                      {{"normalized_ndim", int64_t{1}}});
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  auto fused = kiln::builder::fuse_residual_norm(net, log);
  ASSERT_TRUE(fused.ok());
  EXPECT_EQ(count_ops(*fused, OpKind::kBinary), 1);
}

}  // namespace
}  // namespace kiln_test
