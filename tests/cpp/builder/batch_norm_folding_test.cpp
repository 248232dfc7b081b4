// Batch-norm folding: conv + batch_norm becomes one conv whose output equals the reference that
// applies batch norm separately, and the engine has no batch_norm step left.

#include <gtest/gtest.h>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

int count_steps(const kiln::EngineInfo& info, const std::string& op) {
  int n = 0;
  for (const kiln::StepInfo& s : info.steps) n += s.op == op;
  return n;
}

// input [batch, 3, 8, 8] -> conv 3->4 (3x3, pad 1, bias optional) -> batch_norm -> "y".
// With `conv_is_output` the conv's result is an output too, so the pair must not fold.
ExampleNetwork make_conv_bn(bool bias, bool conv_is_output) {
  kiln_examples::NetworkMaker m("conv_bn", 7);
  kiln::SymExpr batch = *m.net().addSymbol("batch", 1, 2, 4);
  Tensor x = *m.net().addInput("input", kiln::DType::kFloat32, {batch, 3, 8, 8});
  Tensor c = *m.conv(x, 3, 4, 3, 1, 1, bias, "conv");
  Tensor y = *m.batch_norm(c, 4, "bn");
  EXPECT_TRUE(m.net().markOutput(y, "y").ok());
  if (conv_is_output) {
    EXPECT_TRUE(m.net().markOutput(c, "conv_out").ok());
  }
  return m.finish();
}

DTensor conv_bn_reference(const ExampleNetwork& model, const HostTensor& input, bool bias,
                          DTensor* conv_out) {
  auto W = [&](const std::string& n) { return ref::from(model.weights.at(n)); };
  DTensor b = bias ? W("conv.bias") : DTensor{};
  DTensor c = ref::conv2d(ref::from(input), W("conv.weight"), bias ? &b : nullptr, 1, 1);
  if (conv_out) *conv_out = c;
  return ref::batch_norm(c, W("bn.running_mean"), W("bn.running_var"), W("bn.weight"), W("bn.bias"),
                         kiln_examples::convnet::kBnEps);
}

TEST(BatchNormFolding, ConvNetEngineHasNoBatchNormStep) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kConvNet));
  int bn_ops = 0;
  for (const kiln::Op& op : model.network.ops()) bn_ops += op.kind == OpKind::kBatchNorm;
  ASSERT_EQ(bn_ops, 6);
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  kiln::EngineInfo info = engine->info();
  EXPECT_EQ(count_steps(info, "batch_norm"), 0);
  EXPECT_EQ(count_steps(info, "conv"), 6);
}

TEST(BatchNormFolding, FoldedConvMatchesReferenceWithSeparateBatchNorm) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "conv with bias" : "conv without bias");
    ExampleNetwork model = make_conv_bn(bias, false);
    KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
    EXPECT_EQ(count_steps(engine->info(), "batch_norm"), 0);
    HostTensor input = random_tensor({3, 3, 8, 8}, 11);
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {input}));
    EXPECT_TRUE(all_close(out[0], conv_bn_reference(model, input, bias, nullptr)));
  }
}

TEST(BatchNormFolding, ConvNetMatchesReferenceWithSeparateBatchNorm) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kConvNet));
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  std::vector<HostTensor> inputs = make_inputs(ModelKind::kConvNet, 2, 5);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, inputs));
  EXPECT_TRUE(all_close(out[0], reference(ModelKind::kConvNet, model, inputs)[0]));
}

TEST(BatchNormFolding, ConvWhoseOutputIsAlsoUsedElsewhereIsNotFolded) {
  ExampleNetwork model = make_conv_bn(true, true);
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network));
  EXPECT_EQ(count_steps(engine->info(), "batch_norm"), 1);
  HostTensor input = random_tensor({2, 3, 8, 8}, 12);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {input}));
  DTensor conv_out;
  DTensor want = conv_bn_reference(model, input, true, &conv_out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(all_close(out[0], want));
  EXPECT_TRUE(all_close(out[1], conv_out));
}

}  // namespace
}  // namespace kiln_test
