#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

Attrs fn(const char* name) { return {{"fn", std::string(name)}}; }

TEST_F(IrTest, UnaryKeepsDtypeAndShape) {
  Tensor x = in("x", DType::kFloat16, {batch, seq, 8});
  Tensor y = ok(OpKind::kUnary, {x}, fn("gelu"));
  EXPECT_EQ(info(y).dtype, DType::kFloat16);
  EXPECT_TRUE(shapes_equal(info(y).shape, info(x).shape));
  EXPECT_EQ(dims(y, 4, 9), v({4, 9, 8}));
}

TEST_F(IrTest, UnaryPredicatesGiveBool) {
  Tensor x = f32("x", {3});
  EXPECT_EQ(info(ok(OpKind::kUnary, {x}, fn("isnan"))).dtype, DType::kBool);
  EXPECT_EQ(info(ok(OpKind::kUnary, {x}, fn("logical_not"))).dtype, DType::kBool);
}

TEST_F(IrTest, UnaryNormalizesAlpha) {
  Tensor x = f32("x", {3});
  EXPECT_DOUBLE_EQ(attrs_of(ok(OpKind::kUnary, {x}, fn("leaky_relu"))).getDouble("alpha", -1), 0.01);
  EXPECT_DOUBLE_EQ(attrs_of(ok(OpKind::kUnary, {x}, fn("elu"))).getDouble("alpha", -1), 1.0);
  Attrs a = fn("leaky_relu");
  a.set("alpha", 0.2);
  EXPECT_DOUBLE_EQ(attrs_of(ok(OpKind::kUnary, {x}, a)).getDouble("alpha", -1), 0.2);
}

TEST_F(IrTest, UnaryIntInputs) {
  Tensor i = in("i", DType::kInt32, {5});
  EXPECT_EQ(info(ok(OpKind::kUnary, {i}, fn("neg"))).dtype, DType::kInt32);
  EXPECT_EQ(info(ok(OpKind::kUnary, {i}, fn("bitwise_not"))).dtype, DType::kInt32);
  fails(OpKind::kUnary, {i}, fn("exp"), {"unary 'bad'", "exp", "'i'", "int32"});
  Tensor b = in("flags", DType::kBool, {5});
  fails(OpKind::kUnary, {b}, fn("neg"), {"unary 'bad'", "'flags'", "bool"});
  Tensor f = f32("f", {5});
  fails(OpKind::kUnary, {f}, fn("bitwise_not"), {"'f'", "float32"});
}

TEST_F(IrTest, UnaryRejectsUnknownFnAndMissingFn) {
  Tensor x = f32("x", {3});
  fails(OpKind::kUnary, {x}, fn("cube"), {"unary 'bad'", "unknown fn 'cube'"});
  fails(OpKind::kUnary, {x}, {}, {"unary 'bad'", "missing attribute 'fn'"});
  fails(OpKind::kUnary, {x}, {{"fn", int64_t{3}}}, {"attribute 'fn' must be a string"});
}

TEST_F(IrTest, BinaryBroadcastsSymbolicShapes) {
  Tensor a = f32("a", {batch, 1, 16});
  Tensor b = f32("b", {seq, 1});
  Tensor c = ok(OpKind::kBinary, {a, b}, fn("add"));
  ASSERT_EQ(info(c).rank(), 3u);
  EXPECT_EQ(dims(c, 4, 7), v({4, 7, 16}));
  EXPECT_TRUE(info(c).shape[0].equals(batch));
  EXPECT_TRUE(info(c).shape[1].equals(seq));
}

TEST_F(IrTest, BinaryConstantWinsOverSymbol) {
  Tensor a = f32("a", {batch, 4});
  Tensor b = f32("b", {3, 4});
  Tensor c = ok(OpKind::kBinary, {a, b}, fn("mul"));
  EXPECT_EQ(info(c).shape[0].constant(), 3);
}

TEST_F(IrTest, BinaryComparisonsGiveBool) {
  Tensor a = in("a", DType::kInt64, {4});
  Tensor b = in("b", DType::kInt64, {4});
  EXPECT_EQ(info(ok(OpKind::kBinary, {a, b}, fn("lt"))).dtype, DType::kBool);
  EXPECT_EQ(info(ok(OpKind::kBinary, {a, b}, fn("logical_xor"))).dtype, DType::kBool);
  EXPECT_EQ(info(ok(OpKind::kBinary, {a, b}, fn("floor_divide"))).dtype, DType::kInt64);
}

TEST_F(IrTest, BinaryRejectsMixedDtypes) {
  Tensor a = f32("a", {4});
  Tensor h = in("h", DType::kFloat16, {4});
  fails(OpKind::kBinary, {a, h}, fn("add"), {"binary 'bad'", "'a'", "'h'", "float16"});
}

TEST_F(IrTest, BinaryRejectsShapesThatDoNotBroadcast) {
  Tensor a = f32("a", {2, 3});
  Tensor b = f32("b", {4, 3});
  fails(OpKind::kBinary, {a, b}, fn("add"), {"binary 'bad'", "'a' [2, 3]", "'b' [4, 3]"});
}

TEST_F(IrTest, BinaryDivNeedsFloat) {
  Tensor a = in("a", DType::kInt32, {4});
  Tensor b = in("b", DType::kInt32, {4});
  fails(OpKind::kBinary, {a, b}, fn("div"), {"div", "'a'", "int32"});
  fails(OpKind::kBinary, {a, b}, fn("avg"), {"unknown fn 'avg'"});
}

TEST_F(IrTest, WhereBroadcastsAllThree) {
  Tensor c = in("cond", DType::kBool, {batch, 1, 1});
  Tensor a = in("a", DType::kFloat16, {1, seq, 1});
  Tensor b = in("b", DType::kFloat16, {5});
  Tensor w = ok(OpKind::kWhere, {c, a, b});
  EXPECT_EQ(info(w).dtype, DType::kFloat16);
  EXPECT_EQ(dims(w, 2, 3), v({2, 3, 5}));
}

TEST_F(IrTest, WhereNeedsBoolCondition) {
  Tensor c = f32("mask", {4});
  Tensor a = f32("a", {4});
  fails(OpKind::kWhere, {c, a, a}, {}, {"where 'bad'", "'mask'", "bool"});
  Tensor cb = in("cb", DType::kBool, {4});
  Tensor i = in("i", DType::kInt32, {4});
  fails(OpKind::kWhere, {cb, a, i}, {}, {"'a'", "'i'"});
}

TEST_F(IrTest, CastSetsDtype) {
  Tensor x = f32("x", {batch});
  Tensor y = ok(OpKind::kCast, {x}, {{"dtype", DType::kBFloat16}});
  EXPECT_EQ(info(y).dtype, DType::kBFloat16);
  Tensor z = ok(OpKind::kCast, {x}, {{"dtype", std::string("int32")}});  // parsed, normalized
  EXPECT_EQ(info(z).dtype, DType::kInt32);
  ASSERT_NE(attrs_of(z).find<DType>("dtype"), nullptr);
  fails(OpKind::kCast, {x}, {}, {"cast 'bad'", "'dtype'"});
  fails(OpKind::kCast, {x}, {{"dtype", std::string("complex64")}}, {"cast 'bad'", "complex64"});
}

TEST_F(IrTest, ClampNeedsABound) {
  Tensor x = f32("x", {batch, 2});
  Tensor y = ok(OpKind::kClamp, {x}, {{"min", int64_t{0}}});
  EXPECT_NE(attrs_of(y).find<double>("min"), nullptr);  // int normalized to float
  EXPECT_FALSE(attrs_of(y).has("max"));
  EXPECT_TRUE(shapes_equal(info(y).shape, info(x).shape));
  fails(OpKind::kClamp, {x}, {}, {"clamp 'bad'", "min, max"});
  Tensor b = in("flags", DType::kBool, {2});
  fails(OpKind::kClamp, {b}, {{"max", 1.0}}, {"clamp 'bad'", "'flags'"});
}

}  // namespace
}  // namespace kiln
