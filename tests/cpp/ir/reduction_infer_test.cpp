#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

Attrs reduce(const char* fn, std::vector<int64_t> dims, bool keepdim = false) {
  return {{"fn", std::string(fn)}, {"dims", dims}, {"keepdim", keepdim}};
}

TEST_F(IrTest, ReduceRemovesOrKeepsDims) {
  Tensor x = f32("x", {batch, seq, 6, 7});
  Tensor y = ok(OpKind::kReduce, {x}, reduce("sum", {-1, 1}));
  EXPECT_EQ(dims(y, 2, 3), v({2, 6}));
  Tensor k = ok(OpKind::kReduce, {x}, reduce("amax", {3, 1}, true));
  EXPECT_EQ(dims(k, 2, 3), v({2, 1, 6, 1}));
}

TEST_F(IrTest, ReduceNormalizesDims) {
  Tensor x = f32("x", {batch, seq, 6});
  const Attrs& a = attrs_of(ok(OpKind::kReduce, {x}, reduce("mean", {-1, 0})));
  EXPECT_EQ(a.getInts("dims", {}), v({0, 2}));
  EXPECT_EQ(a.getBool("keepdim", true), false);
  EXPECT_EQ(a.getInt("correction", -1), 1);
  Tensor all = ok(OpKind::kReduce, {x}, {{"fn", std::string("var")}});
  EXPECT_EQ(attrs_of(all).getInts("dims", {}), v({0, 1, 2}));
  EXPECT_EQ(info(all).rank(), 0u);
}

TEST_F(IrTest, ReduceErrors) {
  Tensor x = f32("x", {batch, 4});
  fails(OpKind::kReduce, {x}, reduce("sum", {2}), {"reduce 'bad'", "dim 2", "rank 2"});
  fails(OpKind::kReduce, {x}, reduce("sum", {1, -1}), {"reduce 'bad'", "twice"});
  fails(OpKind::kReduce, {x}, reduce("median", {1}), {"reduce 'bad'", "median"});
  Tensor i = in("counts", DType::kInt32, {4});
  fails(OpKind::kReduce, {i}, reduce("mean", {0}), {"reduce 'bad'", "'counts'", "int32"});
  Tensor b = in("flags", DType::kBool, {4});
  fails(OpKind::kReduce, {b}, reduce("sum", {0}), {"reduce 'bad'", "'flags'", "cast first"});
}

TEST_F(IrTest, SoftmaxNormalizesDim) {
  Tensor x = in("x", DType::kFloat16, {batch, seq, 10});
  Tensor y = ok(OpKind::kSoftmax, {x}, {{"dim", int64_t{-1}}});
  EXPECT_EQ(attrs_of(y).getInt("dim", -1), 2);
  EXPECT_EQ(info(y).dtype, DType::kFloat16);
  EXPECT_EQ(dims(y, 2, 5), v({2, 5, 10}));
  Tensor l = ok(OpKind::kLogSoftmax, {x}, {{"dim", int64_t{1}}});
  EXPECT_EQ(attrs_of(l).getInt("dim", -1), 1);
}

TEST_F(IrTest, SoftmaxErrors) {
  Tensor x = f32("logits", {batch, 10});
  fails(OpKind::kSoftmax, {x}, {{"dim", int64_t{2}}}, {"softmax 'bad'", "dim 2"});
  fails(OpKind::kLogSoftmax, {x}, {}, {"log_softmax 'bad'", "'dim'"});
  Tensor i = in("ids", DType::kInt64, {10});
  fails(OpKind::kSoftmax, {i}, {{"dim", int64_t{0}}}, {"softmax 'bad'", "'ids'", "int64"});
}

TEST_F(IrTest, CumsumKeepsShapeAndPicksTorchDtype) {
  Tensor ids = in("ids", DType::kInt64, {batch, seq});
  Tensor y = ok(OpKind::kCumsum, {ids}, {{"dim", int64_t{-1}}});
  EXPECT_EQ(attrs_of(y).getInt("dim", -1), 1);
  EXPECT_EQ(info(y).dtype, DType::kInt64);
  EXPECT_EQ(dims(y, 2, 5), v({2, 5}));
  Tensor flags = in("flags", DType::kBool, {batch, seq});
  EXPECT_EQ(info(ok(OpKind::kCumsum, {flags}, {{"dim", int64_t{0}}})).dtype, DType::kInt64);
  Tensor i32 = in("i32", DType::kInt32, {seq});
  EXPECT_EQ(info(ok(OpKind::kCumsum, {i32}, {{"dim", int64_t{0}}})).dtype, DType::kInt64);
  EXPECT_EQ(info(ok(OpKind::kCumsum, {i32}, {{"dim", int64_t{0}}, {"dtype", DType::kInt32}})).dtype,
            DType::kInt32);
  Tensor h = in("h", DType::kFloat16, {batch, 3});
  Tensor hy = ok(OpKind::kCumsum, {h}, {{"dim", int64_t{1}}});
  EXPECT_EQ(info(hy).dtype, DType::kFloat16);
  EXPECT_EQ(attrs_of(hy).getDType("dtype", DType::kBool), DType::kFloat16);  // default stored
  EXPECT_EQ(info(ok(OpKind::kCumsum, {h}, {{"dim", int64_t{1}}, {"dtype", DType::kFloat32}})).dtype,
            DType::kFloat32);
}

TEST_F(IrTest, CumsumErrors) {
  Tensor x = f32("x", {batch, 4});
  fails(OpKind::kCumsum, {x}, {{"dim", int64_t{2}}}, {"cumsum 'bad'", "dim 2"});
  fails(OpKind::kCumsum, {x}, {}, {"cumsum 'bad'", "'dim'"});
  fails(OpKind::kCumsum, {x}, {{"dim", int64_t{0}}, {"dtype", DType::kBool}},
        {"cumsum 'bad'", "bool", "not supported"});
}

TEST_F(IrTest, BatchNormChecksChannelParams) {
  Tensor x = f32("x", {batch, 16, seq, seq});
  Tensor c16 = f32("c16", {16});
  Tensor y = ok(OpKind::kBatchNorm, {x, c16, c16, c16, c16});
  EXPECT_EQ(dims(y, 2, 5), v({2, 16, 5, 5}));
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("eps", 0), 1e-5);
  Tensor c8 = f32("c8", {8});
  fails(OpKind::kBatchNorm, {x, c16, c8}, {}, {"batch_norm 'bad'", "var 'c8'", "[8]", "[16]"});
  Tensor h = in("h16", DType::kFloat16, {16});
  fails(OpKind::kBatchNorm, {x, h, c16}, {}, {"batch_norm 'bad'", "'h16'", "float16"});
  Tensor flat = f32("flat", {16});
  fails(OpKind::kBatchNorm, {flat, c16, c16}, {}, {"batch_norm 'bad'", "'flat'", "at least 2"});
}

TEST_F(IrTest, LayerNormOverTrailingDims) {
  Tensor x = f32("x", {batch, seq, 64});
  Tensor w = f32("w", {64});
  Tensor y = ok(OpKind::kLayerNorm, {x, w, w});
  EXPECT_EQ(attrs_of(y).getInt("normalized_ndim", 0), 1);  // from the weight's rank
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("eps", 0), 1e-5);
  EXPECT_EQ(dims(y, 3, 4), v({3, 4, 64}));
  Tensor two = ok(OpKind::kLayerNorm, {x}, {{"normalized_ndim", int64_t{2}}, {"eps", 1e-6}});
  EXPECT_DOUBLE_EQ(attrs_of(two).getDouble("eps", 0), 1e-6);
}

TEST_F(IrTest, LayerNormErrors) {
  Tensor x = f32("x", {batch, seq, 64});
  Tensor w = f32("w32", {32});
  fails(OpKind::kLayerNorm, {x, w}, {}, {"layer_norm 'bad'", "weight 'w32'", "[64]"});
  fails(OpKind::kLayerNorm, {x}, {{"normalized_ndim", int64_t{4}}},
        {"layer_norm 'bad'", "normalized_ndim is 4"});
  fails(OpKind::kLayerNorm, {x}, {}, {"layer_norm 'bad'", "'normalized_ndim'"});
}

TEST_F(IrTest, RmsNormDefaultsEpsToDtypeEpsilon) {
  Tensor x = in("x", DType::kFloat16, {batch, 32});
  Tensor w = in("w", DType::kFloat16, {32});
  Tensor y = ok(OpKind::kRmsNorm, {x, w});
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("eps", 0), 0.0009765625);  // 2^-10
  Tensor f = f32("f", {batch, 32});
  Tensor yf = ok(OpKind::kRmsNorm, {f}, {{"normalized_ndim", int64_t{1}}});
  EXPECT_DOUBLE_EQ(attrs_of(yf).getDouble("eps", 0), 1.1920928955078125e-07);  // 2^-23
  Tensor i = in("i", DType::kInt32, {4});
  fails(OpKind::kRmsNorm, {i}, {{"normalized_ndim", int64_t{1}}}, {"rms_norm 'bad'", "'i'"});
}

TEST_F(IrTest, GroupNormChecksGroups) {
  Tensor x = f32("x", {batch, 32, seq});
  Tensor w = f32("w", {32});
  Tensor y = ok(OpKind::kGroupNorm, {x, w, w}, {{"groups", int64_t{8}}});
  EXPECT_EQ(dims(y, 2, 3), v({2, 32, 3}));
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("eps", 0), 1e-5);
  fails(OpKind::kGroupNorm, {x}, {{"groups", int64_t{5}}}, {"group_norm 'bad'", "5", "32", "'x'"});
  fails(OpKind::kGroupNorm, {x}, {{"groups", int64_t{0}}}, {"group_norm 'bad'", "groups is 0"});
  fails(OpKind::kGroupNorm, {x}, {}, {"group_norm 'bad'", "'groups'"});
}

}  // namespace
}  // namespace kiln
