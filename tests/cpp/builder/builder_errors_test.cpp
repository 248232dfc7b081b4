// Builder errors carry the name of what is at fault: the op no kernel supports, the profile's
// symbol, the target.

#include <gtest/gtest.h>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::StatusCode;
using kiln::Tensor;

kiln::BuilderConfig with_profile(const std::string& symbol, int64_t min, int64_t opt, int64_t max) {
  kiln::BuilderConfig config;
  config.profiles.push_back({{{symbol, min, opt, max}}});
  return config;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(BuilderErrors, OpWithoutACpuKernelIsNamed) {
  // The CPU pooling kernels are float-only; an int32 max pool is valid IR that they cannot run.
  Network net("int_pool");
  Tensor x = *net.addInput("x", kiln::DType::kInt32, {1, 2, 4, 4});
  kiln::Attrs attrs{{"kind", std::string("max")}, {"kernel", std::vector<int64_t>{2, 2}}};
  auto pooled = net.add(OpKind::kPool, {x}, attrs, "int_maxpool");
  if (!pooled.ok())
    GTEST_SKIP() << "the IR refuses an int32 max pool: " << pooled.status().toString();
  ASSERT_TRUE(net.markOutput(*pooled, "y").ok());
  auto built = kiln::Builder::build(net, {});
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kUnsupported) << built.status().toString();
  EXPECT_TRUE(contains(built.status().message(), "'int_maxpool'")) << built.status().toString();
  EXPECT_TRUE(contains(built.status().message(), "int32")) << built.status().toString();
}

TEST(BuilderErrors, ProfileNamingAnUnknownSymbolIsRefused) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  auto built = kiln::Builder::build(model.network, with_profile("seq_len", 1, 2, 3));
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(built.status().message(), "'seq_len'")) << built.status().toString();
}

TEST(BuilderErrors, ProfileWithMinAboveMaxIsRefused) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  auto built = kiln::Builder::build(model.network, with_profile("batch", 8, 8, 2));
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(contains(built.status().message(), "batch")) << built.status().toString();
}

TEST(BuilderErrors, ProfileWithOptOutsideTheRangeIsRefused) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  auto built = kiln::Builder::build(model.network, with_profile("batch", 2, 16, 8));
  ASSERT_FALSE(built.ok());
  EXPECT_TRUE(contains(built.status().message(), "batch")) << built.status().toString();
}

TEST(BuilderErrors, ProfileNarrowsTheRangeTheEngineAccepts) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  KILN_ASSERT_OK_AND_ASSIGN(auto engine,
                            build_engine(model.network, with_profile("batch", 2, 3, 5)));
  ASSERT_EQ(engine->symbols().size(), 1u);
  EXPECT_EQ(engine->symbols()[0].min, 2);
  EXPECT_EQ(engine->symbols()[0].opt, 3);
  EXPECT_EQ(engine->symbols()[0].max, 5);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, engine->createExecutionContext());
  std::vector<int64_t> six = {6, kiln_examples::mlp::kIn};
  EXPECT_EQ(ctx->setInputShape("input", six).code(), StatusCode::kOutOfRange);
}

// An engine reads a symbol's value from an input dim that is exactly that symbol; one seen only
// through an expression (2 * half) could never be bound.
TEST(BuilderErrors, SymbolKnownOnlyThroughAnExpressionIsRefused) {
  Network net("expr_only");
  kiln::SymExpr half = *net.addSymbol("half", 1, 2, 4);
  auto x = net.addInput("x", kiln::DType::kFloat32, {half * 2});
  if (!x.ok()) GTEST_SKIP() << "the IR refuses an input dim 2*half: " << x.status().toString();
  Tensor y = *net.add(OpKind::kUnary, {*x}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  auto built = kiln::Builder::build(net, {});
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(built.status().message(), "'half'")) << built.status().toString();
}

TEST(BuilderErrors, TwoProfilesAreUnsupported) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  kiln::BuilderConfig config = with_profile("batch", 1, 2, 4);
  config.profiles.push_back(config.profiles[0]);
  auto built = kiln::Builder::build(model.network, config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kUnsupported);
}

TEST(BuilderErrors, UnknownTargetDeviceIsRefused) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  kiln::BuilderConfig config;
  config.device = "tpu:0";
  auto built = kiln::Builder::build(model.network, config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(built.status().message(), "'tpu:0'")) << built.status().toString();
}

TEST(BuilderErrors, NetworkWithoutOutputsIsRefused) {
  Network net("no_outputs");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {2});
  (void)*net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  auto built = kiln::Builder::build(net, {});
  ASSERT_FALSE(built.ok());
  EXPECT_TRUE(contains(built.status().message(), "no_outputs")) << built.status().toString();
}

}  // namespace
}  // namespace kiln_test
