// Output isolation: every output gets a buffer of its own, written by a step of the engine.

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

TEST(OutputIsolation, OutputThatIsAnInputGetsACopy) {
  Network net("passthrough");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 3});
  Tensor r = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(r, "r").ok());
  ASSERT_TRUE(net.markOutput(x, "x_again").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(count_steps(engine->info(), "copy"), 1);
  HostTensor in = random_tensor({2, 3}, 3);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(all_close(out[0], ref::relu(ref::from(in))));
  EXPECT_TRUE(all_close(out[1], ref::from(in), 0, 0));
}

TEST(OutputIsolation, OutputThatIsAViewGetsACopy) {
  Network net("view_out");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 2, 3});
  Tensor r = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("neg")}}, "neg");
  Tensor p =
      *net.add(OpKind::kPermute, {r}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "transpose");
  ASSERT_TRUE(net.markOutput(p, "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(count_steps(engine->info(), "copy"), 1);
  HostTensor in = random_tensor({3, 2, 3}, 4);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  DTensor want{{3, 3, 2}, std::vector<double>(18)};
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        want.v[static_cast<size_t>((b * 3 + j) * 2 + i)] =
            -in.data[static_cast<size_t>((b * 2 + i) * 3 + j)];
  EXPECT_TRUE(all_close(out[0], want, 0, 0));
}

TEST(OutputIsolation, TwoOutputsNamingOneTensorBothGetTheValues) {
  Network net("twice");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {5});
  Tensor r = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(r, "a").ok());
  ASSERT_TRUE(net.markOutput(r, "b").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(engine->outputNames(), (std::vector<std::string>{"a", "b"}));
  HostTensor in{{5}, {-2.0f, -0.5f, 0.0f, 0.5f, 2.0f}};
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  ASSERT_EQ(out.size(), 2u);
  DTensor want = ref::relu(ref::from(in));
  EXPECT_TRUE(all_close(out[0], want, 0, 0));
  EXPECT_TRUE(all_close(out[1], want, 0, 0));
}

TEST(OutputIsolation, OutputThatIsAConstantGetsACopy) {
  Network net("const_out");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {2});
  Tensor r = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  Tensor c = *add_constant(net, "table", {3}, {1.5f, -2.5f, 4.0f});
  ASSERT_TRUE(net.markOutput(r, "r").ok());
  auto marked = net.markOutput(c, "table_out");
  if (!marked.ok()) GTEST_SKIP() << "the network refuses constant outputs: " << marked.toString();
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(count_steps(engine->info(), "copy"), 1);
  HostTensor in{{2}, {-1.0f, 1.0f}};
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(all_close(out[1], DTensor{{3}, {1.5, -2.5, 4.0}}, 0, 0));
}

}  // namespace
}  // namespace kiln_test
