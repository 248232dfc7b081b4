// Simplification (no-op removal) and dead code elimination.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

bool has_op(const Network& net, OpKind kind) {
  for (const kiln::Op& op : net.ops())
    if (op.kind == kind) return true;
  return false;
}

bool has_step(const kiln::EngineInfo& info, const std::string& op) {
  for (const kiln::StepInfo& s : info.steps)
    if (s.op == op) return true;
  return false;
}

DTensor relu_of(const HostTensor& x) { return ref::relu(ref::from(x)); }

TEST(Simplification, CastToTheSameDtypeIsRemoved) {
  Network net("cast");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 5});
  Tensor c = *net.add(OpKind::kCast, {x}, {{"dtype", kiln::DType::kFloat32}}, "noop_cast");
  Tensor y = *net.add(OpKind::kUnary, {c}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network simple, kiln::builder::simplify(net, log));
  EXPECT_FALSE(has_op(simple, OpKind::kCast)) << simple.toString();
  EXPECT_EQ(simple.ops().size(), 1u);

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_FALSE(has_step(engine->info(), "cast"));
  HostTensor in = random_tensor({3, 5}, 1);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], relu_of(in)));
}

TEST(Simplification, CastToAnotherDtypeIsKept) {
  Network net("cast");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4});
  Tensor c = *net.add(OpKind::kCast, {x}, {{"dtype", kiln::DType::kInt32}}, "real_cast");
  ASSERT_TRUE(net.markOutput(c, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network simple, kiln::builder::simplify(net, log));
  EXPECT_TRUE(has_op(simple, OpKind::kCast));
}

TEST(Simplification, IdentityPermuteAndSameShapeReshapeAreRemoved) {
  Network net("identity");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 3, 2});
  Tensor p = *net.add(OpKind::kPermute, {x}, {{"perm", std::vector<int64_t>{0, 1, 2}}},
                      "identity_permute");
  Tensor r = *net.add(OpKind::kReshape, {p}, {{"shape", kiln::Shape{batch, 3, 2}}}, "same_reshape");
  Tensor y = *net.add(OpKind::kUnary, {r}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network simple, kiln::builder::simplify(net, log));
  EXPECT_FALSE(has_op(simple, OpKind::kPermute)) << simple.toString();
  EXPECT_FALSE(has_op(simple, OpKind::kReshape)) << simple.toString();
  EXPECT_EQ(log.back(), "simplification: removed 2 no-op ops");
}

TEST(DeadCode, BranchThatReachesNoOutputIsRemoved) {
  Network net("dead");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {6});
  Tensor y = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "live_relu");
  Tensor d1 = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("exp")}}, "dead_exp");
  (void)*net.add(OpKind::kUnary, {d1}, {{"fn", std::string("sin")}}, "dead_sin");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network live, kiln::builder::eliminate_dead_code(net, log));
  ASSERT_EQ(live.ops().size(), 1u) << live.toString();
  EXPECT_EQ(live.ops()[0].name, "live_relu");

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  kiln::EngineInfo info = engine->info();
  ASSERT_EQ(info.steps.size(), 1u);
  EXPECT_EQ(info.steps[0].name, "live_relu");
  HostTensor in = random_tensor({6}, 2);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], relu_of(in)));
}

TEST(DeadCode, UnusedInputStaysABinding) {
  Network net("unused");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {3});
  (void)*net.addInput("unused", kiln::DType::kFloat32, {2});
  Tensor y = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(engine->inputNames(), (std::vector<std::string>{"x", "unused"}));
  HostTensor in{{3}, {-1.0f, 2.0f, -3.0f}};
  HostTensor other{{2}, {0.0f, 0.0f}};
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in, other}));
  EXPECT_TRUE(all_close(out[0], relu_of(in)));
}

}  // namespace
}  // namespace kiln_test
