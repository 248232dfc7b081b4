#include <cmath>

#include "ir/ir_test_util.h"

namespace kiln {
namespace {

using testing::IrTest;
using testing::v;

// PyTorch's documented output sizes, in floating point.
int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return static_cast<int64_t>(std::floor((in + 2.0 * p - d * (k - 1.0) - 1.0) / s)) + 1;
}
int64_t conv_transpose_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t op) {
  return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
}
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  double q = (in + 2.0 * p - d * (k - 1.0) - 1.0) / s;
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(q) : std::floor(q)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

TEST_F(IrTest, MatmulBroadcastsBatchDims) {
  Tensor a = f32("a", {batch, 1, seq, 64});
  Tensor b = f32("b", {12, 64, 32});
  Tensor c = ok(OpKind::kMatmul, {a, b});
  EXPECT_EQ(dims(c, 2, 7), v({2, 12, 7, 32}));
}

TEST_F(IrTest, MatmulErrors) {
  Tensor a = f32("a", {4, 8});
  Tensor b = f32("b", {7, 3});
  fails(OpKind::kMatmul, {a, b}, {}, {"matmul 'bad'", "K mismatch", "'a'", "'b'", "8 vs 7"});
  Tensor vec = f32("vec", {8});
  fails(OpKind::kMatmul, {vec, b}, {}, {"matmul 'bad'", "'vec'", "at least 2"});
  Tensor h = in("h", DType::kFloat16, {8, 3});
  fails(OpKind::kMatmul, {a, h}, {}, {"matmul 'bad'", "'a'", "'h'"});
  Tensor x = f32("x", {2, 4, 8}), y = f32("y", {3, 8, 5});
  fails(OpKind::kMatmul, {x, y}, {}, {"matmul 'bad'", "batch dims", "'x'", "'y'"});
}

TEST_F(IrTest, MatmulWithSymbolicKIsAccepted) {
  Tensor a = f32("a", {4, seq});
  Tensor b = f32("b", {seq, 3});
  EXPECT_EQ(dims(ok(OpKind::kMatmul, {a, b})), v({4, 3}));
}

TEST_F(IrTest, LinearShapes) {
  Tensor x = in("x", DType::kBFloat16, {batch, seq, 64});
  Tensor w = in("w", DType::kBFloat16, {128, 64});
  Tensor b = in("b", DType::kBFloat16, {128});
  Tensor y = ok(OpKind::kLinear, {x, w, b});
  EXPECT_EQ(info(y).dtype, DType::kBFloat16);
  EXPECT_EQ(dims(y, 2, 3), v({2, 3, 128}));
  Tensor w2 = in("w2", DType::kBFloat16, {128, 32});
  fails(OpKind::kLinear, {x, w2}, {}, {"linear 'bad'", "K mismatch", "'x'", "'w2'"});
  Tensor b2 = in("b2", DType::kBFloat16, {64});
  fails(OpKind::kLinear, {x, w, b2}, {}, {"linear 'bad'", "bias 'b2'"});
  // attr residual: the last input, of the output's shape; with or without a bias.
  Tensor z = in("z", DType::kBFloat16, {batch, seq, 128});
  const Attrs residual{{"residual", true}};
  EXPECT_EQ(dims(ok(OpKind::kLinear, {x, w, b, z}, residual), 2, 3), v({2, 3, 128}));
  EXPECT_EQ(dims(ok(OpKind::kLinear, {x, w, z}, residual), 2, 3), v({2, 3, 128}));
  Tensor z2 = in("z2", DType::kBFloat16, {batch, 128});
  fails(OpKind::kLinear, {x, w, b, z2}, residual, {"linear 'bad'", "residual 'z2'", "expected the output's"});
  fails(OpKind::kLinear, {x, w}, residual, {"linear 'bad'", "residual=true needs a residual input"});
}

TEST_F(IrTest, ConvOutputSizeIsSymbolic) {
  Tensor x = f32("x", {batch, 3, seq, seq});
  Tensor w = f32("w", {16, 3, 5, 5});
  Tensor y = ok(OpKind::kConv, {x, w},
                {{"stride", v({2, 3})}, {"padding", v({1, 2})}, {"dilation", v({2, 1})}});
  for (int64_t h : {9, 10, 33, 224}) {
    EXPECT_EQ(dims(y, 2, h), v({2, 16, conv_out(h, 5, 2, 1, 2), conv_out(h, 5, 3, 2, 1)})) << h;
  }
}

TEST_F(IrTest, ConvNormalizesAttributes) {
  Tensor x = f32("x", {batch, 4, 10, 10, 10});
  Tensor w = f32("w", {8, 2, 3, 3, 3});
  Tensor y = ok(OpKind::kConv, {x, w}, {{"groups", int64_t{2}}, {"padding", int64_t{1}}});
  const Attrs& a = attrs_of(y);
  EXPECT_EQ(a.getInts("stride", {}), v({1, 1, 1}));
  EXPECT_EQ(a.getInts("padding", {}), v({1, 1, 1}));  // one value for every spatial dim
  EXPECT_EQ(a.getInts("dilation", {}), v({1, 1, 1}));
  EXPECT_EQ(a.getInts("output_padding", {}), v({0, 0, 0}));
  EXPECT_EQ(a.getInt("groups", 0), 2);
  EXPECT_EQ(a.getBool("transposed", true), false);
  EXPECT_EQ(dims(y), v({2, 8, 10, 10, 10}));
}

TEST_F(IrTest, ConvChannelAndGroupErrors) {
  Tensor x = f32("img", {batch, 3, 32, 32});
  Tensor w = f32("w4", {16, 4, 3, 3});
  fails(OpKind::kConv, {x, w}, {}, {"conv 'bad'", "'img' has 3 channels", "'w4'", "expects 4"});
  Tensor x6 = f32("x6", {batch, 6, 32, 32});
  Tensor w2 = f32("w2", {16, 2, 3, 3});
  fails(OpKind::kConv, {x6, w2}, {{"groups", int64_t{4}}}, {"conv 'bad'", "groups 4", "6 channels"});
  Tensor w3 = f32("w3", {16, 3});
  fails(OpKind::kConv, {x, w3}, {}, {"conv 'bad'", "weight 'w3'", "2 dims"});
  Tensor w33 = f32("w33", {16, 3, 3, 3});
  fails(OpKind::kConv, {x, w33}, {{"stride", v({0, 1})}}, {"conv 'bad'", "stride"});
  fails(OpKind::kConv, {x, w33}, {{"padding", v({1, 1, 1})}}, {"conv 'bad'", "padding", "expected 2"});
  Tensor b = f32("bias8", {8});
  fails(OpKind::kConv, {x, w33, b}, {}, {"conv 'bad'", "bias 'bias8'"});
  Tensor i = in("ints", DType::kInt32, {1, 3, 8, 8});
  fails(OpKind::kConv, {i, w33}, {}, {"conv 'bad'", "'ints'"});
}

TEST_F(IrTest, ConvRejectsInputSmallerThanKernel) {
  Tensor x = f32("tiny", {batch, 3, 2, 2});
  Tensor w = f32("w", {8, 3, 5, 5});
  fails(OpKind::kConv, {x, w}, {}, {"conv 'bad'", "'tiny'", "would be -2"});
}

TEST_F(IrTest, TransposedConvShapes) {
  Tensor x = f32("x", {batch, 8, seq, 7});
  Tensor w = f32("w", {8, 3, 4, 3});  // [C, O/groups, kh, kw]
  Tensor y = ok(OpKind::kConv, {x, w},
                {{"transposed", true},
                 {"groups", int64_t{2}},
                 {"stride", v({2, 2})},
                 {"padding", v({1, 0})},
                 {"output_padding", v({1, 0})}});
  for (int64_t h : {1, 5, 16}) {
    EXPECT_EQ(dims(y, 3, h),
              v({3, 6, conv_transpose_out(h, 4, 2, 1, 1, 1), conv_transpose_out(7, 3, 2, 0, 1, 0)}));
  }
  fails(OpKind::kConv, {x, w}, {{"transposed", true}, {"output_padding", v({2, 0})}},
        {"conv 'bad'", "output_padding"});
  Tensor w2 = f32("w2", {4, 8, 3, 3});
  fails(OpKind::kConv, {x, w2}, {{"output_padding", v({1, 0})}}, {"conv 'bad'", "transposed"});
}

TEST_F(IrTest, PoolMatchesPytorchSizesIncludingCeilMode) {
  Tensor x = f32("x", {batch, 4, seq, 9});
  for (bool ceil_mode : {false, true}) {
    for (int64_t k : {2, 3}) {
      for (int64_t s : {1, 2, 3}) {
        for (int64_t p = 0; p <= k / 2; ++p) {
          Tensor y = ok(OpKind::kPool, {x},
                        {{"kind", std::string("max")}, {"kernel", v({k, k})}, {"stride", v({s, s})},
                         {"padding", v({p, p})}, {"ceil_mode", ceil_mode}});
          for (int64_t h : {5, 6, 7, 8, 13}) {
            EXPECT_EQ(dims(y, 1, h),
                      v({1, 4, pool_out(h, k, s, p, 1, ceil_mode), pool_out(9, k, s, p, 1, ceil_mode)}))
                << "k=" << k << " s=" << s << " p=" << p << " ceil=" << ceil_mode << " h=" << h;
          }
        }
      }
    }
  }
}

TEST_F(IrTest, PoolNormalizesAttributes) {
  Tensor x = f32("x", {batch, 4, 8});
  Tensor y = ok(OpKind::kPool, {x}, {{"kind", std::string("avg")}, {"kernel", v({2})}});
  const Attrs& a = attrs_of(y);
  EXPECT_EQ(a.getInts("stride", {}), v({2}));  // defaults to the kernel
  EXPECT_EQ(a.getInts("padding", {}), v({0}));
  EXPECT_EQ(a.getInts("dilation", {}), v({1}));
  EXPECT_EQ(a.getBool("ceil_mode", true), false);
  EXPECT_EQ(a.getBool("count_include_pad", false), true);
  EXPECT_EQ(dims(y), v({2, 4, 4}));
  Tensor e = ok(OpKind::kPool, {x},
                {{"kind", std::string("max")}, {"kernel", v({3})}, {"stride", std::vector<int64_t>{}}});
  EXPECT_EQ(attrs_of(e).getInts("stride", {}), v({3}));
}

TEST_F(IrTest, PoolErrors) {
  Tensor x = f32("x", {batch, 4, 8, 8});
  fails(OpKind::kPool, {x}, {{"kind", std::string("max")}, {"kernel", v({2, 2})}, {"padding", v({2, 2})}},
        {"pool 'bad'", "padding"});
  fails(OpKind::kPool, {x}, {{"kind", std::string("min")}, {"kernel", v({2, 2})}}, {"pool 'bad'", "min"});
  fails(OpKind::kPool, {x}, {{"kind", std::string("avg")}}, {"pool 'bad'", "'kernel'"});
  fails(OpKind::kPool, {x}, {{"kind", std::string("avg")}, {"kernel", v({-1, 2})}}, {"pool 'bad'", "kernel"});
  fails(OpKind::kPool, {x}, {{"kind", std::string("avg")}, {"kernel", v({2, 2})}, {"dilation", v({2, 2})}},
        {"pool 'bad'", "dilation"});
  Tensor i = in("ints", DType::kInt32, {1, 1, 4, 4});
  fails(OpKind::kPool, {i}, {{"kind", std::string("avg")}, {"kernel", v({2, 2})}}, {"pool 'bad'", "'ints'"});
}

TEST_F(IrTest, AdaptiveAvgPool) {
  Tensor x = f32("x", {batch, 64, seq, seq});
  Tensor y = ok(OpKind::kAdaptiveAvgPool, {x}, {{"output_size", v({1, 1})}});
  EXPECT_EQ(dims(y, 2, 9), v({2, 64, 1, 1}));
  Tensor z = ok(OpKind::kAdaptiveAvgPool, {x}, {{"output_size", int64_t{7}}});
  EXPECT_EQ(attrs_of(z).getInts("output_size", {}), v({7, 7}));
  fails(OpKind::kAdaptiveAvgPool, {x}, {{"output_size", v({1, 1, 1})}},
        {"adaptive_avg_pool 'bad'", "output_size"});
  Tensor flat = f32("flat", {4, 4});
  fails(OpKind::kAdaptiveAvgPool, {flat}, {{"output_size", v({1})}}, {"adaptive_avg_pool 'bad'", "'flat'"});
}

TEST_F(IrTest, AttentionShapesAndScale) {
  Tensor q = in("q", DType::kFloat16, {batch, 8, seq, 64});
  Tensor k = in("k", DType::kFloat16, {batch, 2, 77, 64});  // grouped-query: 8 heads over 2
  Tensor val = in("v", DType::kFloat16, {batch, 2, 77, 32});
  Tensor y = ok(OpKind::kAttention, {q, k, val});
  EXPECT_EQ(info(y).dtype, DType::kFloat16);
  EXPECT_EQ(dims(y, 2, 5), v({2, 8, 5, 32}));
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("scale", 0), 0.125);
  EXPECT_EQ(attrs_of(y).getBool("causal", true), false);
  Tensor mask = in("mask", DType::kBool, {seq, 77});
  Tensor m = ok(OpKind::kAttention, {q, k, val, mask}, {{"scale", 0.5}});
  EXPECT_DOUBLE_EQ(attrs_of(m).getDouble("scale", 0), 0.5);
}

TEST_F(IrTest, AttentionWithSymbolicHeadDimHasNoScale) {
  Tensor q = f32("q", {2, seq, batch});
  Tensor y = ok(OpKind::kAttention, {q, q, q}, {{"causal", true}});
  EXPECT_FALSE(attrs_of(y).has("scale"));
  EXPECT_EQ(dims(y, 4, 6), v({2, 6, 4}));
}

TEST_F(IrTest, AttentionSeqMajorOutSwapsHeadsAndSequence) {
  Tensor q = in("q", DType::kFloat16, {batch, 8, seq, 64});
  Tensor k = in("k", DType::kFloat16, {batch, 2, 77, 64});
  Tensor val = in("v", DType::kFloat16, {batch, 2, 77, 32});
  Tensor y = ok(OpKind::kAttention, {q, k, val}, {{"seq_major_out", true}});
  EXPECT_EQ(dims(y, 2, 5), v({2, 5, 8, 32}));  // [N, L, H, Ev]
  EXPECT_DOUBLE_EQ(attrs_of(y).getDouble("scale", 0), 0.125);
  Tensor off = ok(OpKind::kAttention, {q, k, val}, {{"seq_major_out", false}});
  EXPECT_EQ(dims(off, 2, 5), v({2, 8, 5, 32}));
  // Rank 3, heads without a batch dim: [H, L, Ev] becomes [L, H, Ev].
  Tensor q3 = f32("q3", {4, seq, 16});
  Tensor k3 = f32("k3", {4, 9, 16});
  Tensor y3 = ok(OpKind::kAttention, {q3, k3, k3}, {{"seq_major_out", true}, {"causal", true}});
  EXPECT_EQ(dims(y3, 2, 6), v({6, 4, 16}));
}

TEST_F(IrTest, AttentionSeqMajorOutNeedsAHeadsDim) {
  Tensor q = f32("q2", {seq, 16});
  fails(OpKind::kAttention, {q, q, q}, {{"seq_major_out", true}},
        {"attention 'bad'", "seq_major_out", "rank >= 3"});
  Tensor q4 = f32("q4", {2, 4, 10, 64});
  fails(OpKind::kAttention, {q4, q4, q4}, {{"seq_major_out", std::string("yes")}},
        {"attention 'bad'", "seq_major_out"});
}

TEST_F(IrTest, AttentionErrors) {
  Tensor q = f32("q", {2, 4, 10, 64});
  Tensor k = f32("k32", {2, 4, 10, 32});
  fails(OpKind::kAttention, {q, k, k}, {}, {"attention 'bad'", "'q'", "'k32'"});
  Tensor k3 = f32("k3", {2, 3, 10, 64});
  fails(OpKind::kAttention, {q, k3, k3}, {}, {"attention 'bad'", "'q'", "group"});
  Tensor val = f32("v9", {2, 4, 9, 64});
  fails(OpKind::kAttention, {q, q, val}, {}, {"attention 'bad'", "'v9'"});
  Tensor mask = f32("mask", {10, 11});
  fails(OpKind::kAttention, {q, q, q, mask}, {}, {"attention 'bad'", "mask 'mask'"});
  Tensor im = in("imask", DType::kInt32, {10, 10});
  fails(OpKind::kAttention, {q, q, q, im}, {}, {"attention 'bad'", "'imask'", "int32"});
  Tensor ok_mask = in("bmask", DType::kBool, {10, 10});
  fails(OpKind::kAttention, {q, q, q, ok_mask}, {{"causal", true}}, {"attention 'bad'", "not both"});
}

}  // namespace
}  // namespace kiln
