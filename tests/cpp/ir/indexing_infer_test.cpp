#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

TEST_F(IrTest, EmbeddingAppendsFeatureDim) {
  Tensor w = in("table", DType::kFloat16, {1000, 64});
  Tensor ids = in("ids", DType::kInt64, {batch, seq});
  Tensor y = ok(OpKind::kEmbedding, {w, ids});
  EXPECT_EQ(info(y).dtype, DType::kFloat16);
  EXPECT_EQ(dims(y, 2, 9), v({2, 9, 64}));
}

TEST_F(IrTest, EmbeddingErrors) {
  Tensor w = f32("table", {1000, 64});
  Tensor fids = f32("fids", {4});
  fails(OpKind::kEmbedding, {w, fids}, {}, {"embedding 'bad'", "index 'fids'", "float32"});
  Tensor w3 = f32("w3", {10, 4, 4});
  Tensor ids = in("ids", DType::kInt32, {4});
  fails(OpKind::kEmbedding, {w3, ids}, {}, {"embedding 'bad'", "'w3'", "3 dims"});
}

TEST_F(IrTest, GatherTakesIndexShape) {
  Tensor x = f32("x", {batch, 10, 5});
  Tensor idx = in("idx", DType::kInt32, {batch, 3, 5});
  Tensor y = ok(OpKind::kGather, {x, idx}, {{"dim", int64_t{-2}}});
  EXPECT_EQ(attrs_of(y).getInt("dim", -1), 1);
  EXPECT_EQ(info(y).dtype, DType::kFloat32);
  EXPECT_EQ(dims(y, 4), v({4, 3, 5}));
}

TEST_F(IrTest, GatherErrors) {
  Tensor x = f32("x", {4, 10});
  Tensor idx = in("idx", DType::kInt64, {4, 3, 1});
  fails(OpKind::kGather, {x, idx}, {{"dim", int64_t{1}}}, {"gather 'bad'", "index 'idx'", "3 dims"});
  Tensor big = in("big", DType::kInt64, {5, 3});
  fails(OpKind::kGather, {x, big}, {{"dim", int64_t{1}}}, {"gather 'bad'", "'big'", "dim 0"});
  Tensor fi = in("fi", DType::kFloat16, {4, 3});
  fails(OpKind::kGather, {x, fi}, {{"dim", int64_t{1}}}, {"gather 'bad'", "'fi'"});
  Tensor i2 = in("i2", DType::kInt64, {4, 3});
  fails(OpKind::kGather, {x, i2}, {{"dim", int64_t{2}}}, {"gather 'bad'", "dim 2"});
}

TEST_F(IrTest, IndexSelectReplacesDim) {
  Tensor x = f32("x", {batch, 10, 5});
  Tensor idx = in("idx", DType::kInt64, {seq});
  Tensor y = ok(OpKind::kIndexSelect, {x, idx}, {{"dim", int64_t{-2}}});
  EXPECT_EQ(attrs_of(y).getInt("dim", -1), 1);
  EXPECT_EQ(dims(y, 2, 7), v({2, 7, 5}));
}

TEST_F(IrTest, IndexSelectErrors) {
  Tensor x = f32("x", {4, 10});
  Tensor idx2 = in("idx2", DType::kInt64, {2, 2});
  fails(OpKind::kIndexSelect, {x, idx2}, {{"dim", int64_t{0}}}, {"index_select 'bad'", "'idx2'"});
  Tensor b = in("bidx", DType::kBool, {2});
  fails(OpKind::kIndexSelect, {x, b}, {{"dim", int64_t{0}}}, {"index_select 'bad'", "'bidx'", "bool"});
}

}  // namespace
}  // namespace kiln
