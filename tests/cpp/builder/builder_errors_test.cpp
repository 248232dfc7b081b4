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
  // The CPU matmul is float-only; an int32 matmul is valid IR that it cannot run.
  Network net("int_matmul");
  Tensor a = *net.addInput("a", kiln::DType::kInt32, {2, 3});
  Tensor b = *net.addInput("b", kiln::DType::kInt32, {3, 4});
  auto mm = net.add(OpKind::kMatmul, {a, b}, {}, "int_mm");
  if (!mm.ok()) GTEST_SKIP() << "the IR refuses an int32 matmul: " << mm.status().toString();
  ASSERT_TRUE(net.markOutput(*mm, "c").ok());
  auto built = kiln::Builder::build(net, {});
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kUnsupported) << built.status().toString();
  EXPECT_TRUE(contains(built.status().message(), "'int_mm'")) << built.status().toString();
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
