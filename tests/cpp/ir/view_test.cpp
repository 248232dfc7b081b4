// View functions against hand-computed layouts. Each op's attributes come from inference, so
// these also check that the normalized attributes are what the view functions expect.
#include "ir/ir_test_util.h"
#include "ir/op_def.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

ViewLayout contiguous(std::vector<int64_t> shape, int64_t offset = 0) {
  ViewLayout l;
  l.shape = shape;
  l.strides.assign(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) l.strides[i - 1] = l.strides[i] * shape[i];
  l.offset = offset;
  return l;
}

class ViewTest : public IrTest {
 protected:
  // Runs the view function of the op that made `t`, with batch = b, seq = s.
  bool view(Tensor t, const ViewLayout& in, ViewLayout& out, int64_t b = 2, int64_t s = 6) {
    const Op& op = net.ops().at(static_cast<size_t>(info(t).producer));
    std::vector<int64_t> bindings = {b, s};
    return op_def(op.kind).view(in, op.attrs, bindings, info(t).output_index, out);
  }
  void expect(const ViewLayout& l, std::vector<int64_t> shape, std::vector<int64_t> strides,
              int64_t offset) {
    EXPECT_EQ(l.shape, shape);
    EXPECT_EQ(l.strides, strides);
    EXPECT_EQ(l.offset, offset);
  }
};

TEST_F(ViewTest, ReshapeOfContiguousInput) {
  Tensor x = f32("x", {batch, seq, 4});
  Tensor y = ok(OpKind::kReshape, {x}, {{"shape", Shape{batch, -1}}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({2, 6, 4}, 5), out));
  expect(out, {2, 24}, {24, 1}, 5);
}

TEST_F(ViewTest, ReshapeOfNonContiguousInputIsRefused) {
  Tensor x = f32("x", {4, 6});
  Tensor y = ok(OpKind::kReshape, {x}, {{"shape", v({24})}});
  ViewLayout transposed;  // a [6, 4] tensor seen as [4, 6]
  transposed.shape = {4, 6};
  transposed.strides = {1, 4};
  ViewLayout out;
  EXPECT_FALSE(view(y, transposed, out));
  ViewLayout padded_size1;  // size-1 dims may carry any stride
  padded_size1.shape = {4, 6};
  padded_size1.strides = {6, 1};
  EXPECT_TRUE(view(y, padded_size1, out));
}

TEST_F(ViewTest, PermuteSwapsStrides) {
  Tensor x = f32("x", {2, 3, 4});
  Tensor y = ok(OpKind::kPermute, {x}, {{"perm", v({2, 0, -2})}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({2, 3, 4}, 7), out));
  expect(out, {4, 2, 3}, {1, 12, 4}, 7);
}

TEST_F(ViewTest, ExpandUsesZeroStrides) {
  Tensor x = f32("x", {3, 1});
  Tensor y = ok(OpKind::kExpand, {x}, {{"shape", Shape{batch, -1, 5}}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({3, 1}), out, 4));
  expect(out, {4, 3, 5}, {0, 1, 0}, 0);
}

TEST_F(ViewTest, SliceStepsAndOffsets) {
  Tensor x = f32("x", {batch, 10});
  Tensor y = ok(OpKind::kSlice, {x}, {{"dim", int64_t{1}}, {"start", int64_t{-8}}, {"end", int64_t{9}},
                                      {"step", int64_t{3}}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({2, 10}), out));
  // Elements 2, 5, 8 of each row.
  expect(out, {2, 3}, {10, 3}, 2);
}

TEST_F(ViewTest, SliceOfSymbolicDim) {
  Tensor x = f32("x", {seq, 4});
  Tensor y = ok(OpKind::kSlice, {x}, {{"dim", int64_t{0}}, {"start", int64_t{1}}, {"end", int64_t{-1}}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({6, 4}), out, 2, 6));
  expect(out, {4, 4}, {4, 1}, 4);
}

TEST_F(ViewTest, SelectDropsDimAndOffsets) {
  Tensor x = f32("x", {2, seq, 4});
  Tensor y = ok(OpKind::kSelect, {x}, {{"dim", int64_t{1}}, {"index", int64_t{-2}}});
  ViewLayout out;
  ASSERT_TRUE(view(y, contiguous({2, 6, 4}), out, 2, 6));
  expect(out, {2, 4}, {24, 1}, 4 * 4);
}

TEST_F(ViewTest, SplitOutputsOffsetIntoTheInput) {
  Tensor x = f32("x", {4, 10});
  auto outs = net.addOp(OpKind::kSplit, {x}, {{"dim", int64_t{1}}, {"sizes", v({3, 7})}});
  ASSERT_TRUE(outs.ok());
  ViewLayout a, b;
  ASSERT_TRUE(view((*outs)[0], contiguous({4, 10}), a));
  ASSERT_TRUE(view((*outs)[1], contiguous({4, 10}), b));
  expect(a, {4, 3}, {10, 1}, 0);
  expect(b, {4, 7}, {10, 1}, 3);
}

TEST_F(ViewTest, SqueezeAndUnsqueeze) {
  Tensor x = f32("x", {2, 1, 3, 1});
  Tensor s = ok(OpKind::kSqueeze, {x});
  ViewLayout out;
  ASSERT_TRUE(view(s, contiguous({2, 1, 3, 1}), out));
  expect(out, {2, 3}, {3, 1}, 0);
  Tensor y = f32("y", {2, 3});
  Tensor u = ok(OpKind::kUnsqueeze, {y}, {{"dim", int64_t{1}}});
  ASSERT_TRUE(view(u, contiguous({2, 3}), out));
  expect(out, {2, 1, 3}, {3, 3, 1}, 0);
  Tensor last = ok(OpKind::kUnsqueeze, {y}, {{"dim", int64_t{-1}}});
  ASSERT_TRUE(view(last, contiguous({2, 3}), out));
  expect(out, {2, 3, 1}, {3, 1, 1}, 0);
}

}  // namespace
}  // namespace kiln
