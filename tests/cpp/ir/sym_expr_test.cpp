#include "kiln/sym_expr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace kiln {
namespace {

const SymExpr s0 = SymExpr::symbol(0);
const SymExpr s1 = SymExpr::symbol(1);

int64_t eval(const SymExpr& e, std::vector<int64_t> b) {
  auto r = e.evaluate(b);
  EXPECT_TRUE(r.ok()) << r.status().toString();
  return r.ok() ? *r : -999999;
}

// Python's // and % by the definition: floor of the real quotient.
int64_t ref_floordiv(int64_t a, int64_t b) {
  return static_cast<int64_t>(std::floor(static_cast<double>(a) / static_cast<double>(b)));
}
int64_t ref_mod(int64_t a, int64_t b) { return a - b * ref_floordiv(a, b); }

TEST(SymExpr, ConstantsFold) {
  SymExpr e = SymExpr(3) + SymExpr(4) * SymExpr(5) - SymExpr(2);
  ASSERT_TRUE(e.isConstant());
  EXPECT_EQ(e.constant(), 21);
  EXPECT_EQ(floordiv(SymExpr(7), SymExpr(2)).constant(), 3);
  EXPECT_EQ(mod(SymExpr(7), SymExpr(-3)).constant(), -2);
  EXPECT_EQ(sym_max(SymExpr(7), SymExpr(9)).constant(), 9);
  EXPECT_EQ(sym_min(SymExpr(7), SymExpr(9)).constant(), 7);
}

TEST(SymExpr, IdentitiesSimplify) {
  EXPECT_TRUE((s0 + 0).equals(s0));
  EXPECT_TRUE((SymExpr(0) + s0).equals(s0));
  EXPECT_TRUE((s0 - 0).equals(s0));
  EXPECT_TRUE((s0 * 1).equals(s0));
  EXPECT_TRUE((SymExpr(1) * s0).equals(s0));
  EXPECT_TRUE((s0 * 0).isConstant());
  EXPECT_EQ((SymExpr(0) * s0).constant(), 0);
  EXPECT_TRUE(floordiv(s0, 1).equals(s0));
  EXPECT_EQ(mod(s0, 1).constant(), 0);
  EXPECT_TRUE(sym_max(s0 + 1, s0 + 1).equals(s0 + 1));
  EXPECT_TRUE(sym_min(s1, s1).equals(s1));
}

TEST(SymExpr, SubtractingEqualExpressionsGivesZero) {
  SymExpr a = s0 * 3 + s1;
  SymExpr b = s0 * 3 + s1;
  SymExpr d = a - b;
  ASSERT_TRUE(d.isConstant());
  EXPECT_EQ(d.constant(), 0);
  EXPECT_EQ(((s0 + 5) - (s0 + 2)).constant(), 3);
}

TEST(SymExpr, NestedConstantAddsMerge) {
  SymExpr e = (s0 + 1) + 2;
  EXPECT_TRUE(e.equals(s0 + 3));
  EXPECT_EQ(e.str(), "s0 + 3");
  EXPECT_TRUE(((s0 + 1) - 1).equals(s0));
  EXPECT_EQ(((s0 - 4) + 1).str(), "s0 - 3");
  EXPECT_EQ((SymExpr(5) - (s0 + 2)).str(), "3 - s0");
}

TEST(SymExpr, NestedConstantMulsMerge) {
  SymExpr e = (SymExpr(3) * s0) * 4;
  EXPECT_TRUE(e.equals(s0 * 12));
  EXPECT_EQ(e.str(), "s0*12");
  EXPECT_TRUE(floordiv(s0 * 12, 12).equals(s0));
  EXPECT_TRUE(floordiv(s0 * 24, 12).equals(s0 * 2));
}

TEST(SymExpr, FloorDivCancelsCommonFactors) {
  SymExpr numel = s0 * s1 * 12 * 64;
  SymExpr q = floordiv(numel, s1 * 4);
  EXPECT_EQ(q.str(), "s0*192");
  EXPECT_EQ(eval(q, {3, 5}), 3 * 5 * 12 * 64 / (5 * 4));
  EXPECT_EQ(floordiv(numel, s0 * s1).constant(), 768);
  // Not exact: kept as a division.
  EXPECT_EQ(floordiv(s0 * 3, s1 * 2).kind(), SymExpr::Kind::kFloorDiv);
}

TEST(SymExpr, EvaluatesWithBindings) {
  SymExpr e = floordiv(s0 - 3 + 2 * 1, 2) + 1;  // conv output size: (H + 2p - k)//s + 1
  for (int64_t h : {3, 4, 5, 224}) {
    EXPECT_EQ(eval(e, {h}), ref_floordiv(h - 1, 2) + 1) << h;
  }
  EXPECT_EQ(eval(sym_max(s0, s1) * s1, {3, 7}), 49);
  EXPECT_EQ(eval(sym_min(s0, s1) - s1, {3, 7}), -4);
}

TEST(SymExpr, FloorDivAndModFollowPythonOnNegatives) {
  for (int64_t a : {-7, -6, -1, 0, 1, 6, 7}) {
    for (int64_t b : {-3, -2, -1, 1, 2, 3}) {
      EXPECT_EQ(eval(floordiv(s0, s1), {a, b}), ref_floordiv(a, b)) << a << " // " << b;
      EXPECT_EQ(eval(mod(s0, s1), {a, b}), ref_mod(a, b)) << a << " % " << b;
      EXPECT_EQ(floordiv(SymExpr(a), SymExpr(b)).constant(), ref_floordiv(a, b));
      EXPECT_EQ(mod(SymExpr(a), SymExpr(b)).constant(), ref_mod(a, b));
    }
  }
  EXPECT_EQ(floordiv(SymExpr(-7), SymExpr(2)).constant(), -4);
  EXPECT_EQ(mod(SymExpr(-7), SymExpr(2)).constant(), 1);
}

TEST(SymExpr, DivisionByZeroIsAnEvaluationError) {
  SymExpr e = floordiv(s0, s1);
  auto r = e.evaluate(std::vector<int64_t>{4, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("division by zero"), std::string::npos);
  SymExpr c = mod(SymExpr(5), SymExpr(0));  // not folded
  EXPECT_FALSE(c.isConstant());
  EXPECT_FALSE(c.evaluate({}).ok());
}

TEST(SymExpr, UnboundSymbolIsNamed) {
  SymExpr e = s0 + SymExpr::symbol(3);
  auto r = e.evaluate(std::vector<int64_t>{1, 2});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("s3"), std::string::npos) << r.status().message();
}

TEST(SymExpr, BoundsOfMonotoneExpressions) {
  std::vector<int64_t> lo = {1, 2}, hi = {8, 5};
  auto b = (s0 * 3 + s1).bounds(lo, hi);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, 1 * 3 + 2);
  EXPECT_EQ(b->second, 8 * 3 + 5);
  auto d = (s0 - s1).bounds(lo, hi);
  EXPECT_EQ(d->first, 1 - 5);
  EXPECT_EQ(d->second, 8 - 2);
  auto m = (s0 * (SymExpr(0) - s1)).bounds(lo, hi);
  EXPECT_EQ(m->first, -40);
  EXPECT_EQ(m->second, -2);
}

TEST(SymExpr, BoundsOfFloorDivByConstantAreExact) {
  std::vector<int64_t> lo = {-7}, hi = {9};
  auto b = floordiv(s0, 2).bounds(lo, hi);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, ref_floordiv(-7, 2));
  EXPECT_EQ(b->second, ref_floordiv(9, 2));
  auto n = floordiv(s0, -2).bounds(lo, hi);
  EXPECT_EQ(n->first, ref_floordiv(9, -2));
  EXPECT_EQ(n->second, ref_floordiv(-7, -2));
}

TEST(SymExpr, BoundsOfModByConstant) {
  std::vector<int64_t> lo = {10}, hi = {12}, wide = {100};
  auto within = mod(s0, 8).bounds(lo, hi);  // 10..12 -> 2..4
  ASSERT_TRUE(within.ok());
  EXPECT_EQ(within->first, 2);
  EXPECT_EQ(within->second, 4);
  auto across = mod(s0, 8).bounds(lo, wide);
  EXPECT_EQ(across->first, 0);
  EXPECT_EQ(across->second, 7);
}

TEST(SymExpr, BoundsWithSymbolicDivisorAreConservative) {
  std::vector<int64_t> lo = {10, 2}, hi = {20, 4};
  auto b = floordiv(s0, s1).bounds(lo, hi);
  ASSERT_TRUE(b.ok());
  EXPECT_LE(b->first, 10 / 4);
  EXPECT_GE(b->second, 20 / 2);
  auto m = mod(s0, s1).bounds(lo, hi);
  EXPECT_LE(m->first, 0);
  EXPECT_GE(m->second, 3);
}

TEST(SymExpr, BoundsOfMaxMin) {
  std::vector<int64_t> lo = {1, 4}, hi = {10, 6};
  auto mx = sym_max(s0, s1).bounds(lo, hi);
  EXPECT_EQ(mx->first, 4);
  EXPECT_EQ(mx->second, 10);
  auto mn = sym_min(s0, s1).bounds(lo, hi);
  EXPECT_EQ(mn->first, 1);
  EXPECT_EQ(mn->second, 6);
}

TEST(SymExpr, PrintsWithMinimalParentheses) {
  EXPECT_EQ((s0 * 3 + 1).str(), "s0*3 + 1");
  EXPECT_EQ(((s0 + s1) * 2).str(), "(s0 + s1)*2");
  EXPECT_EQ((s0 - (s1 - SymExpr::symbol(2))).str(), "s0 - (s1 - s2)");
  EXPECT_EQ((s0 + (s1 - SymExpr::symbol(2))).str(), "s0 + s1 - s2");
  EXPECT_EQ((floordiv(s0 - 1, 2) + 1).str(), "(s0 - 1)//2 + 1");
  EXPECT_EQ((s0 * floordiv(s1, 2)).str(), "s0*(s1//2)");
  EXPECT_EQ(sym_max(s0 - 1, SymExpr(0)).str(), "max(s0 - 1, 0)");
  EXPECT_EQ(mod(s0, 4).str(), "s0%4");
  std::vector<std::string> names = {"batch", "seq"};
  EXPECT_EQ((s0 * s1).str(names), "batch*seq");
}

TEST(SymExpr, CollectsEachSymbolOnce) {
  std::vector<int32_t> ids;
  (s1 * s0 + s1).collectSymbols(ids);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 0);
}

TEST(SymExpr, EqualsIsStructural) {
  EXPECT_TRUE((s0 * 2).equals(s0 * 2));
  EXPECT_FALSE((s0 * 2).equals(s1 * 2));
  EXPECT_FALSE((s0 + 1).equals(s0 + 2));
  EXPECT_TRUE(SymExpr(5).equals(SymExpr(5)));
  EXPECT_FALSE(SymExpr(5).equals(s0));
}

TEST(ShapeHelpers, StrEqualNumelConstant) {
  Shape s = {s0, SymExpr(3), SymExpr(224)};
  EXPECT_EQ(shape_str(s), "[s0, 3, 224]");
  EXPECT_TRUE(shapes_equal(s, Shape{s0, 3, 224}));
  EXPECT_FALSE(shapes_equal(s, Shape{s0, 3}));
  EXPECT_FALSE(shapes_equal(s, Shape{s1, 3, 224}));
  EXPECT_EQ(eval(shape_numel(s), {2}), 2 * 3 * 224);
  EXPECT_EQ(shape_numel({}).constant(), 1);
  auto dims = constant_dims(shape_of(std::vector<int64_t>{2, 5}), "x");
  ASSERT_TRUE(dims.ok());
  EXPECT_EQ(*dims, (std::vector<int64_t>{2, 5}));
  auto bad = constant_dims(s, "input 'img'");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("input 'img'"), std::string::npos);
}

}  // namespace
}  // namespace kiln
