// conv's fused epilogue (activation, residual) and layout "nhwc" for conv and pools: shapes,
// and errors that name the op and the tensor at fault.

#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

Attrs nhwc() { return {{"layout", std::string("nhwc")}}; }

TEST_F(IrTest, NhwcConvTakesNhwcInputAndKrscWeight) {
  Tensor x = f32("x", {batch, 16, 12, 3});      // [N, H, W, C]
  Tensor w = f32("w", {8, 3, 3, 3});            // [O, kh, kw, C]
  Tensor b = f32("b", {8});
  Attrs a = nhwc();
  a.set("stride", v({2, 1})).set("padding", v({1, 1}));
  Tensor y = ok(OpKind::kConv, {x, w, b}, a);
  EXPECT_EQ(dims(y, 2), v({2, 8, 12, 8}));      // [N, OH, OW, O]
  Tensor z = f32("z", {batch, 8, 12, 8});
  a.set("activation", std::string("relu"));
  Tensor y2 = ok(OpKind::kConv, {x, w, b, z}, a);
  EXPECT_EQ(dims(y2, 3), v({3, 8, 12, 8}));
}

TEST_F(IrTest, PlainConvDoesNotGainLayoutOrActivationAttrs) {
  Tensor x = f32("x", {batch, 3, 8, 8});
  Tensor w = f32("w", {4, 3, 3, 3});
  Tensor y = ok(OpKind::kConv, {x, w});
  EXPECT_FALSE(attrs_of(y).has("layout"));
  EXPECT_FALSE(attrs_of(y).has("activation"));
}

TEST_F(IrTest, ConvResidualMustMatchTheOutput) {
  Tensor x = f32("x", {batch, 3, 8, 8});
  Tensor w = f32("w", {4, 3, 3, 3});
  Tensor b = f32("b", {4});
  Tensor good = f32("good", {batch, 4, 6, 6});
  EXPECT_EQ(dims(ok(OpKind::kConv, {x, w, b, good}), 5), v({5, 4, 6, 6}));
  Tensor small = f32("small", {batch, 4, 6, 5});
  fails(OpKind::kConv, {x, w, b, small}, {}, {"conv 'bad'", "residual 'small'", "4, 6, 6]"});
  Tensor other_batch = f32("other", {seq, 4, 6, 6});
  fails(OpKind::kConv, {x, w, b, other_batch}, {}, {"residual 'other'"});
  Tensor half = in("half", DType::kFloat16, {batch, 4, 6, 6});
  fails(OpKind::kConv, {x, w, b, half}, {}, {"conv 'bad'", "'half'"});
}

TEST_F(IrTest, ConvRejectsUnknownActivationAndLayoutMisuse) {
  Tensor x = f32("x", {batch, 3, 8, 8});
  Tensor w = f32("w", {4, 3, 3, 3});
  fails(OpKind::kConv, {x, w}, {{"activation", std::string("gelu")}}, {"conv 'bad'", "activation 'gelu'"});
  fails(OpKind::kConv, {x, w}, {{"layout", std::string("nchwc")}}, {"layout 'nchwc'"});
  Tensor x1 = f32("x1", {batch, 3, 8});
  Tensor w1 = f32("w1", {4, 3, 3});
  fails(OpKind::kConv, {x1, w1}, nhwc(), {"conv 'bad'", "layout nhwc", "'x1'"});
  Attrs t = nhwc();
  t.set("transposed", true);
  Tensor wt = f32("wt", {8, 3, 3, 4});
  fails(OpKind::kConv, {f32("xt", {batch, 8, 8, 8}), wt}, t, {"transposed"});
  // NHWC weight whose channel dim (last) does not match x's channels (last).
  Tensor xn = f32("xn", {batch, 8, 8, 3});
  Tensor wn = f32("wn", {4, 3, 3, 5});
  fails(OpKind::kConv, {xn, wn}, nhwc(), {"conv 'bad'", "3 channels", "'wn'"});
}

TEST_F(IrTest, NhwcPoolsKeepChannelsLast) {
  Tensor x = f32("x", {batch, 9, 8, 5});
  Attrs p = nhwc();
  p.set("kind", std::string("max")).set("kernel", v({3, 3})).set("stride", v({2, 2}));
  p.set("padding", v({1, 1}));
  EXPECT_EQ(dims(ok(OpKind::kPool, {x}, p), 2), v({2, 5, 4, 5}));
  Attrs a = nhwc();
  a.set("output_size", v({1, 2}));
  EXPECT_EQ(dims(ok(OpKind::kAdaptiveAvgPool, {x}, a), 2), v({2, 1, 2, 5}));
  fails(OpKind::kAdaptiveAvgPool, {f32("x3", {batch, 5, 8})}, a, {"layout nhwc"});
}

}  // namespace
}  // namespace kiln
