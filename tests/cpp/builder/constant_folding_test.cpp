// Constant folding: ops over constants become constants, numerically the same, and a fold that
// would grow the engine past the limit (a huge expand of a scalar) is left as an op.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

const std::vector<float> kA = {0.5f, -1.25f, 2.0f, 0.75f};
const std::vector<float> kB = {0.25f, 0.5f, -1.5f, 1.0f};
constexpr float kScale = 0.5f;

// y = x + exp((a + b) * k): three ops over constants feed one op over the input.
Network make_foldable() {
  Network net("fold");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4});
  Tensor a = *add_constant(net, "a", {4}, kA);
  Tensor b = *add_constant(net, "b", {4}, kB);
  Tensor k = *add_constant(net, "k", {1}, {kScale});
  Tensor c = *net.add(OpKind::kBinary, {a, b}, {{"fn", std::string("add")}}, "c_sum");
  Tensor d = *net.add(OpKind::kBinary, {c, k}, {{"fn", std::string("mul")}}, "d_scale");
  Tensor e = *net.add(OpKind::kUnary, {d}, {{"fn", std::string("exp")}}, "e_exp");
  Tensor y = *net.add(OpKind::kBinary, {x, e}, {{"fn", std::string("add")}}, "y_add");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  return net;
}

double folded_value(size_t i) { return std::exp((double{kA[i]} + kB[i]) * kScale); }

std::vector<float> constant_values(const kiln::TensorInfo& info) {
  std::vector<float> v(info.constant->size() / sizeof(float));
  std::memcpy(v.data(), info.constant->data(), v.size() * sizeof(float));
  return v;
}

TEST(ConstantFolding, OpsOverConstantsBecomeAConstant) {
  Network net = make_foldable();
  ASSERT_EQ(net.ops().size(), 4u);
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network folded, kiln::builder::fold_constants(net, log));
  ASSERT_EQ(folded.ops().size(), 1u) << folded.toString();
  const kiln::Op& op = folded.ops()[0];
  EXPECT_EQ(op.name, "y_add");
  const kiln::TensorInfo& e = folded.tensor(op.inputs[1]);
  ASSERT_TRUE(e.isConstant()) << folded.toString();
  std::vector<float> values = constant_values(e);
  ASSERT_EQ(values.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    EXPECT_NEAR(values[i], folded_value(i), 1e-6 * folded_value(i)) << i;
}

TEST(ConstantFolding, FoldedEngineComputesTheSameResult) {
  Network net = make_foldable();
  kiln::BuildReport report;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, {}, &report));
  kiln::EngineInfo info = engine->info();
  ASSERT_EQ(info.steps.size(), 1u);
  EXPECT_EQ(info.steps[0].op, "binary");
  bool logged = false;
  for (const std::string& line : report.pass_log)
    logged = logged || line == "constant folding: folded 3 ops";
  EXPECT_TRUE(logged);

  HostTensor x{{4}, {1.0f, -2.0f, 3.5f, 0.0f}};
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {x}));
  DTensor want{{4}, {}};
  for (size_t i = 0; i < 4; ++i) want.v.push_back(x.data[i] + folded_value(i));
  EXPECT_TRUE(all_close(out[0], want));
}

// A [1, 1] scalar expanded to 1024 x 1024 float32 (4 MiB) stays an expand: folding it would
// store 4 MiB in the engine for 4 bytes of input.
TEST(ConstantFolding, HugeExpandOfAScalarIsNotFolded) {
  Network net("grow");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {1, 1024});
  Tensor s = *add_constant(net, "s", {1, 1}, {2.0f});
  auto big = net.add(OpKind::kExpand, {s}, {{"shape", kiln::Shape{1024, 1024}}}, "big_expand");
  ASSERT_TRUE(big.ok()) << big.status().toString();
  Tensor y = *net.add(OpKind::kBinary, {x, *big}, {{"fn", std::string("add")}}, "y_add");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network folded, kiln::builder::fold_constants(net, log));
  ASSERT_EQ(folded.ops().size(), 2u) << folded.toString();
  EXPECT_EQ(folded.ops()[0].kind, OpKind::kExpand);
  for (const kiln::TensorInfo& t : folded.tensors()) {
    if (t.isConstant()) {
      EXPECT_LT(t.constant->size(), 1024u) << t.name;
    }
  }
}

TEST(ConstantFolding, SmallExpandOfAScalarIsFolded) {
  Network net("small");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {1, 16});
  Tensor s = *add_constant(net, "s", {1, 1}, {2.0f});
  Tensor e = *net.add(OpKind::kExpand, {s}, {{"shape", kiln::Shape{16, 16}}}, "small_expand");
  Tensor y = *net.add(OpKind::kBinary, {x, e}, {{"fn", std::string("add")}}, "y_add");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network folded, kiln::builder::fold_constants(net, log));
  ASSERT_EQ(folded.ops().size(), 1u) << folded.toString();
  const kiln::TensorInfo& c = folded.tensor(folded.ops()[0].inputs[1]);
  ASSERT_TRUE(c.isConstant());
  std::vector<float> values = constant_values(c);
  ASSERT_EQ(values.size(), 256u);
  for (float v : values) EXPECT_EQ(v, 2.0f);
}

TEST(ConstantFolding, OpOverAnInputIsNotFolded) {
  Network net("nofold");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4});
  Tensor y = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("exp")}}, "y_exp");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network folded, kiln::builder::fold_constants(net, log));
  ASSERT_EQ(folded.ops().size(), 1u);
  EXPECT_EQ(folded.ops()[0].kind, OpKind::kUnary);
}

}  // namespace
}  // namespace kiln_test
