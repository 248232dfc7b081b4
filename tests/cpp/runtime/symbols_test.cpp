// Dynamic dims at the edges: a declared symbol no input uses, a constant-folded output.

#include <gtest/gtest.h>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

TEST(Symbols, SymbolThatNoInputUsesDoesNotBlockRuns) {
  Network net("unused_symbol");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  (void)*net.addSymbol("unused", 1, 3, 9);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 3});
  Tensor y = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, "relu");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor in = random_tensor({3, 3}, 1);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], ref::relu(ref::from(in))));
}

TEST(Symbols, OutputFoldedToAConstantIsCopiedOut) {
  Network net("folded_output");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {2});
  Tensor a = *add_constant(net, "a", {2}, {1.0f, 2.0f});
  Tensor b = *add_constant(net, "b", {2}, {0.5f, -4.0f});
  Tensor s = *net.add(OpKind::kBinary, {a, b}, {{"fn", std::string("mul")}}, "const_mul");
  Tensor y = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  ASSERT_TRUE(net.markOutput(s, "s").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor in{{2}, {3.0f, -1.0f}};
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(all_close(out[0], DTensor{{2}, {-3.0, 1.0}}, 0, 0));
  EXPECT_TRUE(all_close(out[1], DTensor{{2}, {0.5, -8.0}}, 0, 0));
}

// y = x[:, :n] where n comes from a second input's dynamic dim (seq <= width).
TEST(Symbols, OutputShapeFollowsASymbolOfAnotherInput) {
  Network net("two_symbols");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  kiln::SymExpr seq = *net.addSymbol("seq", 1, 4, 8);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 8});
  Tensor len = *net.addInput("len", kiln::DType::kFloat32, {seq});
  auto sliced = net.add(OpKind::kSlice, {x},
                        {{"dim", int64_t{1}}, {"start", kiln::SymExpr(0)}, {"end", seq}}, "take");
  ASSERT_TRUE(sliced.ok()) << sliced.status().toString();
  Tensor y = *net.add(OpKind::kUnary, {*sliced}, {{"fn", std::string("neg")}}, "neg");
  Tensor z = *net.add(OpKind::kUnary, {len}, {{"fn", std::string("abs")}}, "abs");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  ASSERT_TRUE(net.markOutput(z, "z").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor xin = random_tensor({3, 8}, 2), lin = random_tensor({5}, 3);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {xin, lin}));
  DTensor want{{3, 5}, {}};
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t j = 0; j < 5; ++j) want.v.push_back(-xin.data[static_cast<size_t>(b * 8 + j)]);
  EXPECT_TRUE(all_close(out[0], want, 0, 0));
  DTensor zwant = ref::from(lin);
  for (double& v : zwant.v) v = std::abs(v);
  EXPECT_TRUE(all_close(out[1], zwant, 0, 0));
}

}  // namespace
}  // namespace kiln_test
