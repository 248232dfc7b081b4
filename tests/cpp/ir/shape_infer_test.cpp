#include <algorithm>
#include <limits>

#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

// Python's len(range(n)[start:end:step]) by walking the indices.
int64_t py_slice_len(int64_t n, int64_t start, int64_t end, int64_t step) {
  auto norm = [n](int64_t i) { return i < 0 ? std::max<int64_t>(i + n, 0) : std::min(i, n); };
  int64_t count = 0;
  for (int64_t i = norm(start); i < norm(end); i += step) ++count;
  return count;
}

int64_t range_len(int64_t start, int64_t end, int64_t step) {
  int64_t count = 0;
  for (int64_t x = start; step > 0 ? x < end : x > end; x += step) ++count;
  return count;
}

TEST_F(IrTest, ReshapeResolvesMinusOne) {
  Tensor x = f32("x", {batch, seq, 12, 64});
  Tensor y = ok(OpKind::kReshape, {x}, {{"shape", Shape{batch, seq, -1}}});
  EXPECT_EQ(dims(y, 2, 3), v({2, 3, 768}));
  EXPECT_EQ(info(y).shape[2].constant(), 768);  // the symbols cancel
  const Shape* s = attrs_of(y).find<Shape>("shape");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ((*s)[2].constant(), 768);
  Tensor z = ok(OpKind::kReshape, {x}, {{"shape", Shape{-1, 64}}});
  EXPECT_EQ(dims(z, 2, 3), v({2 * 3 * 12, 64}));
  Tensor c = ok(OpKind::kReshape, {f32("c", {6, 4})}, {{"shape", v({3, -1, 2})}});
  EXPECT_EQ(dims(c), v({3, 4, 2}));
}

TEST_F(IrTest, ReshapeErrors) {
  Tensor x = f32("x", {6, 4});
  fails(OpKind::kReshape, {x}, {{"shape", v({5, -1})}}, {"reshape 'bad'", "'x'", "24"});
  fails(OpKind::kReshape, {x}, {{"shape", v({5, 5})}}, {"reshape 'bad'", "'x'", "24", "25"});
  fails(OpKind::kReshape, {x}, {{"shape", v({-1, -1})}}, {"reshape 'bad'", "more than one -1"});
  fails(OpKind::kReshape, {x}, {{"shape", v({-2, 12})}}, {"reshape 'bad'", "negative"});
  fails(OpKind::kReshape, {x}, {}, {"reshape 'bad'", "'shape'"});
}

TEST_F(IrTest, PermuteReordersAndNormalizes) {
  Tensor x = f32("x", {batch, seq, 3});
  Tensor y = ok(OpKind::kPermute, {x}, {{"perm", v({-1, 0, 1})}});
  EXPECT_EQ(attrs_of(y).getInts("perm", {}), v({2, 0, 1}));
  EXPECT_EQ(dims(y, 4, 5), v({3, 4, 5}));
  fails(OpKind::kPermute, {x}, {{"perm", v({0, 0, 1})}}, {"permute 'bad'", "repeats"});
  fails(OpKind::kPermute, {x}, {{"perm", v({0, 1})}}, {"permute 'bad'", "'x'", "3 dims"});
}

TEST_F(IrTest, ExpandResolvesMinusOneAndAddsLeadingDims) {
  Tensor x = f32("x", {seq, 1});
  Tensor y = ok(OpKind::kExpand, {x}, {{"shape", Shape{batch, -1, 8}}});
  EXPECT_EQ(dims(y, 2, 5), v({2, 5, 8}));
  const Shape* s = attrs_of(y).find<Shape>("shape");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->size(), 3u);
  EXPECT_TRUE((*s)[1].equals(seq));  // no -1 left
}

TEST_F(IrTest, ExpandErrors) {
  Tensor x = f32("x", {3, 4});
  fails(OpKind::kExpand, {x}, {{"shape", v({3, 5})}}, {"expand 'bad'", "'x'", "[3, 5]"});
  fails(OpKind::kExpand, {x}, {{"shape", v({4})}}, {"expand 'bad'", "fewer dims"});
  fails(OpKind::kExpand, {x}, {{"shape", v({-1, 3, 4})}}, {"expand 'bad'", "leading"});
}

TEST_F(IrTest, SliceLengthMatchesPythonOnConstantDims) {
  Tensor x = f32("x", {10, 3});
  const int64_t kEnd = std::numeric_limits<int64_t>::max();
  for (int64_t start : {-12, -3, 0, 2, 9, 11}) {
    for (int64_t end : v({-11, -1, 0, 4, 10, 15, kEnd})) {
      for (int64_t step : {1, 2, 3}) {
        Tensor y = ok(OpKind::kSlice, {x},
                      {{"dim", int64_t{0}}, {"start", start}, {"end", end}, {"step", step}});
        EXPECT_EQ(dims(y), v({py_slice_len(10, start, end, step), 3}))
            << start << ":" << end << ":" << step;
        const Attrs& a = attrs_of(y);
        int64_t s = a.getSym("start", -1).constant(), e = a.getSym("end", -1).constant();
        EXPECT_TRUE(s >= 0 && s <= 10 && e >= 0 && e <= 10) << s << " " << e;
      }
    }
  }
}

TEST_F(IrTest, SliceLengthMatchesPythonOnSymbolicDims) {
  Tensor x = f32("x", {batch, seq});
  for (int64_t start : {-4, -1, 0, 1, 3}) {
    for (int64_t end : v({-2, 0, 2, 5, std::numeric_limits<int64_t>::max()})) {
      for (int64_t step : {1, 2}) {
        Tensor y = ok(OpKind::kSlice, {x},
                      {{"dim", int64_t{-1}}, {"start", start}, {"end", end}, {"step", step}});
        for (int64_t n : {1, 2, 3, 4, 7, 20}) {
          EXPECT_EQ(dims(y, 2, n), v({2, py_slice_len(n, start, end, step)}))
              << start << ":" << end << ":" << step << " n=" << n;
        }
      }
    }
  }
}

TEST_F(IrTest, SliceNormalizesAttributes) {
  Tensor x = f32("x", {batch, seq});
  Tensor y = ok(OpKind::kSlice, {x}, {{"dim", int64_t{-1}}, {"start", int64_t{-1}}});
  const Attrs& a = attrs_of(y);
  EXPECT_EQ(a.getInt("dim", -1), 1);
  EXPECT_EQ(a.getInt("step", 0), 1);
  EXPECT_EQ(a.getSym("start", 0).str(), "max(s1 - 1, 0)");
  EXPECT_TRUE(a.getSym("end", 0).equals(seq));
  Tensor sym = ok(OpKind::kSlice, {x}, {{"dim", int64_t{1}}, {"end", seq - 1}});  // x[:, :seq-1]
  EXPECT_TRUE(attrs_of(sym).getSym("end", 0).equals(seq - 1));
  EXPECT_EQ(dims(sym, 2, 6), v({2, 5}));
}

TEST_F(IrTest, SliceErrors) {
  Tensor x = f32("x", {4, 4});
  fails(OpKind::kSlice, {x}, {{"dim", int64_t{0}}, {"step", int64_t{0}}}, {"slice 'bad'", "step is 0"});
  fails(OpKind::kSlice, {x}, {{"dim", int64_t{2}}}, {"slice 'bad'", "dim 2"});
  fails(OpKind::kSlice, {x}, {{"dim", int64_t{0}}, {"start", batch - 3}}, {"slice 'bad'", "start"});
}

TEST_F(IrTest, SelectRemovesDimAndNormalizesIndex) {
  Tensor x = f32("x", {batch, seq, 4});
  Tensor y = ok(OpKind::kSelect, {x}, {{"dim", int64_t{1}}, {"index", int64_t{-1}}});
  EXPECT_EQ(dims(y, 2, 9), v({2, 4}));
  SymExpr index = attrs_of(y).getSym("index", -5);
  EXPECT_EQ(index.evaluate(v({2, 9})).value(), 8);
  Tensor c = ok(OpKind::kSelect, {x}, {{"dim", int64_t{-1}}, {"index", int64_t{-4}}});
  EXPECT_EQ(attrs_of(c).getSym("index", -5).constant(), 0);
  EXPECT_EQ(attrs_of(c).getInt("dim", -1), 2);
  fails(OpKind::kSelect, {x}, {{"dim", int64_t{2}}, {"index", int64_t{4}}}, {"select 'bad'", "'x'", "4"});
  fails(OpKind::kSelect, {x}, {{"dim", int64_t{2}}, {"index", int64_t{-5}}}, {"select 'bad'", "-5"});
  fails(OpKind::kSelect, {x}, {{"dim", int64_t{0}}}, {"select 'bad'", "'index'"});
}

TEST_F(IrTest, ConcatAddsDims) {
  Tensor a = f32("a", {batch, 3});
  Tensor b = f32("b", {batch, seq});
  Tensor c = f32("c", {batch, 5});
  Tensor y = ok(OpKind::kConcat, {a, b, c}, {{"dim", int64_t{-1}}});
  EXPECT_EQ(attrs_of(y).getInt("dim", -1), 1);
  EXPECT_EQ(dims(y, 2, 7), v({2, 3 + 7 + 5}));
  Tensor d = f32("d", {4, 3});
  Tensor e = f32("e", {5, 4});
  fails(OpKind::kConcat, {d, e}, {{"dim", int64_t{0}}}, {"concat 'bad'", "'e'", "'d'"});
  Tensor h = in("h", DType::kFloat16, {4, 3});
  fails(OpKind::kConcat, {d, h}, {{"dim", int64_t{0}}}, {"concat 'bad'", "'h'"});
  Tensor r3 = f32("r3", {4, 3, 1});
  fails(OpKind::kConcat, {d, r3}, {{"dim", int64_t{0}}}, {"concat 'bad'", "'r3'", "rank"});
}

TEST_F(IrTest, SplitMakesOneOutputPerSize) {
  Tensor x = f32("x", {batch, 10});
  auto outs = net.addOp(OpKind::kSplit, {x}, {{"dim", int64_t{-1}}, {"sizes", v({2, 3, 5})}});
  ASSERT_TRUE(outs.ok()) << outs.status().toString();
  ASSERT_EQ(outs->size(), 3u);
  EXPECT_EQ(dims((*outs)[0], 4), v({4, 2}));
  EXPECT_EQ(dims((*outs)[2], 4), v({4, 5}));
  EXPECT_EQ(net.ops().back().attrs.getInt("dim", -1), 1);
  fails(OpKind::kSplit, {x}, {{"dim", int64_t{1}}, {"sizes", v({2, 3})}}, {"split 'bad'", "'x'", "add up"});
  fails(OpKind::kSplit, {x}, {{"dim", int64_t{1}}, {"sizes", v({-2, 12})}}, {"split 'bad'", "negative"});
}

TEST_F(IrTest, SqueezeAndUnsqueeze) {
  Tensor x = f32("x", {batch, 1, seq, 1});
  Tensor all = ok(OpKind::kSqueeze, {x});
  EXPECT_EQ(attrs_of(all).getInts("dims", {}), v({1, 3}));
  EXPECT_EQ(dims(all, 2, 3), v({2, 3}));
  Tensor one = ok(OpKind::kSqueeze, {x}, {{"dims", v({-1})}});
  EXPECT_EQ(attrs_of(one).getInts("dims", {}), v({3}));
  EXPECT_EQ(dims(one, 2, 3), v({2, 1, 3}));
  fails(OpKind::kSqueeze, {x}, {{"dims", v({0})}}, {"squeeze 'bad'", "'x'", "not 1"});
  Tensor u = ok(OpKind::kUnsqueeze, {x}, {{"dim", int64_t{-1}}});
  EXPECT_EQ(attrs_of(u).getInt("dim", -1), 4);
  EXPECT_EQ(dims(u, 2, 3), v({2, 1, 3, 1, 1}));
  Tensor u0 = ok(OpKind::kUnsqueeze, {x}, {{"dim", int64_t{0}}});
  EXPECT_EQ(dims(u0, 2, 3), v({1, 2, 1, 3, 1}));
  fails(OpKind::kUnsqueeze, {x}, {{"dim", int64_t{5}}}, {"unsqueeze 'bad'", "dim 5"});
}

TEST_F(IrTest, PadGrowsAndCropsTrailingDims) {
  Tensor x = f32("x", {batch, 3, seq, 8});
  Tensor y = ok(OpKind::kPad, {x}, {{"pads", v({1, 2, 3, -1})}});
  EXPECT_EQ(dims(y, 2, 5), v({2, 3, 5 + 3 - 1, 8 + 1 + 2}));
  const Attrs& a = attrs_of(y);
  EXPECT_EQ(a.getString("mode", ""), "constant");
  EXPECT_DOUBLE_EQ(a.getDouble("value", -1), 0.0);
  Tensor r = ok(OpKind::kPad, {x}, {{"pads", v({7, 7})}, {"mode", std::string("reflect")}});
  EXPECT_EQ(dims(r, 2, 5), v({2, 3, 5, 22}));
  fails(OpKind::kPad, {x}, {{"pads", v({8, 0})}, {"mode", std::string("reflect")}},
        {"pad 'bad'", "'x'", "too large"});
  fails(OpKind::kPad, {x}, {{"pads", v({1, 2, 3})}}, {"pad 'bad'", "pairs"});
  fails(OpKind::kPad, {x}, {{"pads", v({-5, -4})}}, {"pad 'bad'", "'x'", "-1"});
  fails(OpKind::kPad, {x}, {{"pads", v({1, 1})}, {"mode", std::string("circular")}}, {"pad 'bad'", "circular"});
}

TEST_F(IrTest, FlipNormalizesDims) {
  Tensor x = f32("x", {batch, seq, 3});
  Tensor y = ok(OpKind::kFlip, {x}, {{"dims", v({-1, 0})}});
  EXPECT_EQ(attrs_of(y).getInts("dims", {}), v({0, 2}));
  EXPECT_TRUE(shapes_equal(info(y).shape, info(x).shape));
  fails(OpKind::kFlip, {x}, {{"dims", v({3})}}, {"flip 'bad'", "dim 3"});
}

TEST_F(IrTest, ArangeLengthMatchesRange) {
  for (int64_t start : {-5, 0, 3}) {
    for (int64_t end : {-7, 0, 4, 10}) {
      for (int64_t step : {-3, -1, 1, 2, 5}) {
        if ((end - start) * step < 0) continue;  // inconsistent: tested below
        Tensor y = ok(OpKind::kArange, {}, {{"start", start}, {"end", end}, {"step", step}});
        EXPECT_EQ(dims(y), v({range_len(start, end, step)})) << start << " " << end << " " << step;
      }
    }
  }
  Tensor s = ok(OpKind::kArange, {}, {{"end", seq}, {"step", int64_t{3}}, {"dtype", DType::kInt32}});
  EXPECT_EQ(info(s).dtype, DType::kInt32);
  for (int64_t n : {1, 2, 3, 4, 10}) EXPECT_EQ(dims(s, 1, n), v({range_len(0, n, 3)}));
  Tensor d = ok(OpKind::kArange, {}, {{"start", seq}, {"end", int64_t{0}}, {"step", int64_t{-2}}});
  for (int64_t n : {1, 2, 5}) EXPECT_EQ(dims(d, 1, n), v({range_len(n, 0, -2)}));
  EXPECT_EQ(info(d).dtype, DType::kInt64);
}

TEST_F(IrTest, ArangeErrors) {
  fails(OpKind::kArange, {}, {{"end", int64_t{4}}, {"step", int64_t{0}}}, {"arange 'bad'", "step is 0"});
  fails(OpKind::kArange, {}, {{"start", int64_t{5}}, {"end", int64_t{1}}}, {"arange 'bad'", "inconsistent"});
  fails(OpKind::kArange, {}, {}, {"arange 'bad'", "'end'"});
  fails(OpKind::kArange, {}, {{"end", SymExpr::symbol(9)}}, {"arange 'bad'", "s9"});
}

TEST_F(IrTest, FillMakesShapeAndDtype) {
  Tensor y = ok(OpKind::kFill, {}, {{"shape", Shape{batch, 4}}, {"value", 1.5}, {"dtype", DType::kFloat16}});
  EXPECT_EQ(info(y).dtype, DType::kFloat16);
  EXPECT_EQ(dims(y, 3), v({3, 4}));
  Tensor z = ok(OpKind::kFill, {}, {{"shape", v({2})}});
  EXPECT_EQ(info(z).dtype, DType::kFloat32);
  EXPECT_DOUBLE_EQ(attrs_of(z).getDouble("value", -1), 0.0);
  fails(OpKind::kFill, {}, {{"shape", v({2, -1})}}, {"fill 'bad'", "negative"});
}

TEST_F(IrTest, CopyKeepsDtypeAndShape) {
  Tensor x = in("x", DType::kInt8, {batch, 2});
  Tensor y = ok(OpKind::kCopy, {x});
  EXPECT_EQ(info(y).dtype, DType::kInt8);
  EXPECT_TRUE(shapes_equal(info(y).shape, info(x).shape));
  fails(OpKind::kCopy, {x, x}, {}, {"copy 'bad'", "1 inputs, got 2"});
}

}  // namespace
}  // namespace kiln
