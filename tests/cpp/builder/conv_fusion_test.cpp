// Conv epilogue fusion: conv (+bias) -> residual add -> relu becomes one conv with activation
// and residual; what the pass makes is checked on the network it returns, and the engines built
// on the CPU (which run the pass) against double-precision references of the unfused ops.
// Intermediates used twice or marked as outputs stop the fusion.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

const kiln::Op* find_op(const Network& net, OpKind kind) {
  for (const kiln::Op& op : net.ops())
    if (op.kind == kind) return &op;
  return nullptr;
}

Network fused(const Network& net, std::string* log_line = nullptr) {
  std::vector<std::string> log;
  auto out = kiln::builder::fuse_conv_epilogues(net, log);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  if (log_line && !log.empty()) *log_line = log.back();
  return out.ok() ? std::move(out).value() : Network();
}

// input x [batch, 3, 8, 8], r [batch, 4, 8, 8]; c = conv 3->4 (3x3, pad 1).
struct Net {
  kiln_examples::NetworkMaker m{"conv_fusion", 5};
  Tensor x, r, c;
  explicit Net(bool bias) {
    kiln::SymExpr batch = *m.net().addSymbol("batch", 1, 2, 4);
    x = *m.net().addInput("x", kiln::DType::kFloat32, {batch, 3, 8, 8});
    r = *m.net().addInput("r", kiln::DType::kFloat32, {batch, 4, 8, 8});
    c = *m.conv(x, 3, 4, 3, 1, 1, bias, "conv");
  }
  ExampleNetwork finish() { return m.finish(); }
};

DTensor conv_ref(const ExampleNetwork& model, const HostTensor& x, bool bias) {
  DTensor b = bias ? ref::from(model.weights.at("conv.bias")) : DTensor{};
  return ref::conv2d(ref::from(x), ref::from(model.weights.at("conv.weight")), bias ? &b : nullptr,
                     1, 1);
}

std::vector<HostTensor> inputs(int64_t batch) {
  return {random_tensor({batch, 3, 8, 8}, 1), random_tensor({batch, 4, 8, 8}, 2)};
}

TEST(ConvFusion, ConvResidualAddReluBecomesOneConv) {
  for (bool swap : {false, true}) {
    SCOPED_TRACE(swap ? "add(r, conv)" : "add(conv, r)");
    Net n(true);
    Tensor a = swap ? *n.m.add(n.r, n.c, "add") : *n.m.add(n.c, n.r, "add");
    Tensor y = *n.m.unary(a, "relu", "relu");
    ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
    ExampleNetwork model = n.finish();

    std::string line;
    Network f = fused(model.network, &line);
    EXPECT_EQ(line, "conv fusion: fused 1 convs (1 residual adds, 1 relus)");
    ASSERT_EQ(f.ops().size(), 1u);
    const kiln::Op& conv = f.ops()[0];
    EXPECT_EQ(conv.kind, OpKind::kConv);
    EXPECT_EQ(conv.attrs.getString("activation", ""), "relu");
    ASSERT_EQ(conv.inputs.size(), 4u);
    EXPECT_EQ(f.tensor(conv.inputs[3]).name, "r");
    EXPECT_TRUE(f.verify().ok());

    KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
    std::vector<HostTensor> in = inputs(3);
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
    DTensor want = ref::relu(ref::add(conv_ref(model, in[0], true), ref::from(in[1])));
    EXPECT_TRUE(all_close(out[0], want));
  }
}

TEST(ConvFusion, ConvWithoutBiasAndReluGetsAZeroBias) {
  Net n(false);
  Tensor y = *n.m.unary(n.c, "relu", "relu");
  ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
  ExampleNetwork model = n.finish();
  Network f = fused(model.network);
  ASSERT_EQ(count_ops(f, OpKind::kUnary), 0);
  const kiln::Op* conv = find_op(f, OpKind::kConv);
  ASSERT_NE(conv, nullptr);
  ASSERT_EQ(conv->inputs.size(), 3u);
  EXPECT_EQ(conv->attrs.getString("activation", ""), "relu");

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  std::vector<HostTensor> in = inputs(2);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  EXPECT_TRUE(all_close(out[0], ref::relu(conv_ref(model, in[0], false))));
}

TEST(ConvFusion, ResidualAddWithoutReluKeepsActivationNone) {
  Net n(true);
  Tensor y = *n.m.add(n.c, n.r, "add");
  ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
  ExampleNetwork model = n.finish();
  Network f = fused(model.network);
  const kiln::Op* conv = find_op(f, OpKind::kConv);
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->inputs.size(), 4u);
  EXPECT_EQ(conv->attrs.getString("activation", ""), "none");
  EXPECT_EQ(count_ops(f, OpKind::kBinary), 0);

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  std::vector<HostTensor> in = inputs(2);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  EXPECT_TRUE(all_close(out[0], ref::add(conv_ref(model, in[0], true), ref::from(in[1]))));
}

TEST(ConvFusion, ConvOutputUsedTwiceIsNotFused) {
  Net n(true);
  Tensor y = *n.m.unary(n.c, "relu", "relu");
  Tensor z = *n.m.add(n.c, n.r, "add");  // a second use of the conv output
  ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
  ASSERT_TRUE(n.m.net().markOutput(z, "z").ok());
  ExampleNetwork model = n.finish();
  std::string line;
  Network f = fused(model.network, &line);
  EXPECT_EQ(line, "conv fusion: fused 0 convs (0 residual adds, 0 relus)");
  EXPECT_EQ(count_ops(f, OpKind::kUnary), 1);
  EXPECT_EQ(count_ops(f, OpKind::kBinary), 1);
  EXPECT_FALSE(find_op(f, OpKind::kConv)->attrs.has("activation"));

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  std::vector<HostTensor> in = inputs(2);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  DTensor c = conv_ref(model, in[0], true);
  EXPECT_TRUE(all_close(out[0], ref::relu(c)));
  EXPECT_TRUE(all_close(out[1], ref::add(c, ref::from(in[1]))));
}

TEST(ConvFusion, IntermediateThatIsAnOutputStopsTheChain) {
  // conv -> add (an output) -> relu: the add joins, the relu must not (its input is read by
  // the caller). And conv (an output) -> relu does not fuse at all.
  Net n(true);
  Tensor a = *n.m.add(n.c, n.r, "add");
  Tensor y = *n.m.unary(a, "relu", "relu");
  ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
  ASSERT_TRUE(n.m.net().markOutput(a, "sum").ok());
  ExampleNetwork model = n.finish();
  Network f = fused(model.network);
  const kiln::Op* conv = find_op(f, OpKind::kConv);
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->inputs.size(), 4u);
  EXPECT_EQ(conv->attrs.getString("activation", ""), "none");
  EXPECT_EQ(count_ops(f, OpKind::kUnary), 1);

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  std::vector<HostTensor> in = inputs(2);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  DTensor sum = ref::add(conv_ref(model, in[0], true), ref::from(in[1]));
  EXPECT_TRUE(all_close(out[0], ref::relu(sum)));
  EXPECT_TRUE(all_close(out[1], sum));

  Net n2(true);
  Tensor y2 = *n2.m.unary(n2.c, "relu", "relu");
  ASSERT_TRUE(n2.m.net().markOutput(y2, "y").ok());
  ASSERT_TRUE(n2.m.net().markOutput(n2.c, "conv_out").ok());
  Network f2 = fused(n2.finish().network);
  EXPECT_EQ(count_ops(f2, OpKind::kUnary), 1);
  EXPECT_FALSE(find_op(f2, OpKind::kConv)->attrs.has("activation"));
}

TEST(ConvFusion, BroadcastingAddIsNotAResidual) {
  Net n(true);
  kiln::Tensor b = *n.m.weight("shift", {4, 1, 1}, -1.0, 1.0);
  Tensor y = *n.m.add(n.c, b, "add");
  ASSERT_TRUE(n.m.net().markOutput(y, "y").ok());
  Network f = fused(n.finish().network);
  EXPECT_EQ(count_ops(f, OpKind::kBinary), 1);
  EXPECT_FALSE(find_op(f, OpKind::kConv)->attrs.has("activation"));
}

TEST(ConvFusion, ConvNetMatchesReference) {
  // The example convnet: stem and blocks fuse (conv+relu, conv+residual+relu).
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kConvNet));
  kiln::BuildReport report;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network, {}, &report));
  bool logged = false;
  for (const std::string& line : report.pass_log)
    logged = logged || line == "conv fusion: fused 6 convs (2 residual adds, 6 relus)";
  EXPECT_TRUE(logged);
  std::vector<HostTensor> in = make_inputs(ModelKind::kConvNet, 2, 9);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  EXPECT_TRUE(all_close(out[0], reference(ModelKind::kConvNet, model, in)[0]));
}

}  // namespace
}  // namespace kiln_test
