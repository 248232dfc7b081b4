// Attention masks to additive form: each bool mask becomes one where(mask, 0, -inf) shared by the
// attentions that read it (an expanded mask is converted before its expand), and the network
// computes what it computed with the bool masks, fully masked rows included (zeros).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "builder/cpu_eval.h"
#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kH = 2, kL = 5, kE = 4;

// q [B,H,L,E]; two attentions (the second's query is the first's output) read
// expand(pad > 0) [B,1,L,L]; a third reads dense > 0 [B,1,L,L] directly.
Network three_attentions() {
  Network net("masks");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor q = *net.addInput("q", DType::kFloat32, {b, kH, kL, kE});
  Tensor k = *net.addInput("k", DType::kFloat32, {b, kH, kL, kE});
  Tensor v = *net.addInput("v", DType::kFloat32, {b, kH, kL, kE});
  Tensor pad = *net.addInput("pad", DType::kFloat32, {b, 1, 1, kL});
  Tensor dense = *net.addInput("dense", DType::kFloat32, {b, 1, kL, kL});
  const float zero = 0.0f;
  Tensor z = *net.addConstant("zero", DType::kFloat32, std::vector<int64_t>{}, std::as_bytes(std::span(&zero, 1)));
  Tensor pad_mask = *net.add(OpKind::kBinary, {pad, z}, {{"fn", std::string("gt")}}, "pad_gt");
  Tensor expanded = *net.add(OpKind::kExpand, {pad_mask}, {{"shape", kiln::Shape{b, 1, kL, kL}}}, "pad_expand");
  Tensor dense_mask = *net.add(OpKind::kBinary, {dense, z}, {{"fn", std::string("gt")}}, "dense_gt");
  const kiln::Attrs scale{{"scale", 0.5}};
  Tensor a1 = *net.add(OpKind::kAttention, {q, k, v, expanded}, scale, "attn1");
  Tensor a2 = *net.add(OpKind::kAttention, {a1, k, v, expanded}, scale, "attn2");
  Tensor a3 = *net.add(OpKind::kAttention, {a2, k, v, dense_mask}, scale, "attn3");
  EXPECT_TRUE(net.markOutput(a2, "y2").ok());
  EXPECT_TRUE(net.markOutput(a3, "y3").ok());
  return net;
}

TEST(AttentionMasks, EachBoolMaskBecomesOneSharedAdditiveMask) {
  Network net = three_attentions();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::attention_masks_to_bias(net, log));
  EXPECT_EQ(log.back(), "attention masks: 2 bool masks made additive once for the attentions that read them");
  int wheres = 0;
  std::vector<const kiln::Op*> attentions;
  for (const kiln::Op& op : out.ops()) {
    if (op.kind == OpKind::kWhere) {
      ++wheres;
      // The expanded mask is converted at its source's shape [B,1,1,L], not at [B,1,L,L].
      const kiln::Shape& cond = out.tensor(op.inputs[0]).shape;
      EXPECT_TRUE(cond[2].equals(kiln::SymExpr(1)) || cond[2].equals(kiln::SymExpr(kL))) << kiln::shape_str(cond);
    }
    if (op.kind == OpKind::kAttention) attentions.push_back(&op);
  }
  EXPECT_EQ(wheres, 2) << out.toString();
  ASSERT_EQ(attentions.size(), 3u);
  for (const kiln::Op* a : attentions) EXPECT_EQ(out.tensor(a->inputs[3]).dtype, DType::kFloat32);
  EXPECT_EQ(attentions[0]->inputs[3], attentions[1]->inputs[3]);  // made once, read twice
  EXPECT_NE(attentions[0]->inputs[3], attentions[2]->inputs[3]);
  const kiln::Op* expand = nullptr;
  for (const kiln::Op& op : out.ops())
    if (op.kind == OpKind::kExpand && op.outputs[0] == attentions[0]->inputs[3]) expand = &op;
  ASSERT_NE(expand, nullptr) << "the shared mask should be the expand of the converted pad mask";
  EXPECT_EQ(out.tensor(expand->inputs[0]).dtype, DType::kFloat32);
}

TEST(AttentionMasks, AdditiveMasksComputeWhatBoolMasksDid) {
  Network net = three_attentions();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network converted, kiln::builder::attention_masks_to_bias(net, log));
  KILN_ASSERT_OK_AND_ASSIGN(auto before, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto after, build_engine(converted));
  const int64_t batch = 3;
  std::vector<HostTensor> in;
  for (int i = 0; i < 3; ++i) in.push_back(random_tensor({batch, kH, kL, kE}, 40 + i, -1, 1));
  HostTensor pad = random_tensor({batch, 1, 1, kL}, 50, 0.1, 1);
  for (int64_t j = 0; j < kL; ++j) pad.data[static_cast<size_t>(kL + j)] = -1;  // batch 1: every key masked
  pad.data[2] = -1;                                                                // batch 0: one key masked
  HostTensor dense = random_tensor({batch, 1, kL, kL}, 51, -1, 1);
  for (int64_t j = 0; j < kL; ++j) dense.data[static_cast<size_t>(j)] = -1;  // batch 0, query 0: all masked
  in.push_back(pad);
  in.push_back(dense);
  KILN_ASSERT_OK_AND_ASSIGN(auto want, run_engine(*before, in));
  KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*after, in));
  ASSERT_EQ(got.size(), 2u);
  for (size_t o = 0; o < got.size(); ++o) {
    EXPECT_TRUE(all_close(got[o], ref::from(want[o]), 1e-6, 1e-6)) << "output " << o;
    for (float x : got[o].data) EXPECT_FALSE(std::isnan(x));
  }
  // Batch 1 masks every key of attn1 and attn2: its rows are zeros, as torch 2.11 gives.
  const size_t per_batch = static_cast<size_t>(kH * kL * kE);
  for (size_t i = per_batch; i < 2 * per_batch; ++i) EXPECT_EQ(got[0].data[i], 0.0f);
}

// q [B,H,L,E] attending with `mask` (a constant of `mask_shape`), expanded to [B,1,L,L] as HF's
// BERT builds its mask when no attention_mask is given.
Network constant_mask_attention(DType mask_dtype, const std::vector<double>& mask_values,
                                const std::vector<int64_t>& mask_shape) {
  Network net("constant_mask");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor q = *net.addInput("q", DType::kFloat32, {b, kH, kL, kE});
  Tensor k = *net.addInput("k", DType::kFloat32, {b, kH, kL, kE});
  Tensor v = *net.addInput("v", DType::kFloat32, {b, kH, kL, kE});
  kiln::ConstantBytes bytes = kiln::builder::doubles_to_constant(mask_values, mask_dtype);
  Tensor m = *net.addConstant("mask", mask_dtype, mask_shape, bytes);
  Tensor expanded = *net.add(OpKind::kExpand, {m}, {{"shape", kiln::Shape{b, 1, kL, kL}}}, "mask_expand");
  const kiln::Attrs scale{{"scale", 0.5}};
  auto added = net.add(OpKind::kAttention, {q, k, v, expanded}, scale, "attn");
  EXPECT_TRUE(added.ok()) << added.status().message();
  Tensor y = *added;
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  return net;
}

size_t attention_inputs(const Network& net) {
  for (const kiln::Op& op : net.ops())
    if (op.kind == OpKind::kAttention) return op.inputs.size();
  return 0;
}

TEST(AttentionMasks, ConstantMasksThatMaskNothingAreDropped) {
  const std::vector<double> ones(kL, 1.0), zeros(kL, 0.0);
  std::vector<double> neg_zero(kL, -0.0);
  for (auto [dtype, values] : {std::pair{DType::kBool, ones}, std::pair{DType::kFloat32, zeros},
                               std::pair{DType::kFloat32, neg_zero}}) {
    Network net = constant_mask_attention(dtype, values, {1, 1, kL, 1});
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::drop_noop_attention_masks(net, log));
    EXPECT_EQ(attention_inputs(out), 3u) << kiln::dtype_name(dtype);
    ASSERT_FALSE(log.empty());
    EXPECT_EQ(log.back(), "attention masks: 1 constant mask that mask nothing dropped (all true, or all zero)");
    // The same results as the masked network.
    KILN_ASSERT_OK_AND_ASSIGN(auto before, build_engine(net));
    KILN_ASSERT_OK_AND_ASSIGN(auto after, build_engine(out));
    std::vector<HostTensor> in;
    for (int i = 0; i < 3; ++i) in.push_back(random_tensor({2, kH, kL, kE}, 60 + i, -1, 1));
    KILN_ASSERT_OK_AND_ASSIGN(auto want, run_engine(*before, in));
    KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*after, in));
    EXPECT_TRUE(all_close(got[0], ref::from(want[0]), 1e-6, 1e-6)) << kiln::dtype_name(dtype);
  }
}

TEST(AttentionMasks, MasksThatMaskSomethingStay) {
  std::vector<double> one_false(kL, 1.0), one_minus_inf(kL, 0.0), one_nan(kL, 0.0), small(kL, 0.0);
  one_false[3] = 0.0;
  one_minus_inf[1] = -std::numeric_limits<double>::infinity();
  one_nan[2] = std::nan("");
  small[4] = 1e-3;
  for (auto [dtype, values] : {std::pair{DType::kBool, one_false}, std::pair{DType::kFloat32, one_minus_inf},
                               std::pair{DType::kFloat32, one_nan}, std::pair{DType::kFloat32, small}}) {
    Network net = constant_mask_attention(dtype, values, {1, 1, kL, 1});
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::drop_noop_attention_masks(net, log));
    EXPECT_EQ(attention_inputs(out), 4u) << kiln::dtype_name(dtype);
    EXPECT_TRUE(log.empty());
  }
  // A mask the network computes from its inputs is no constant: it stays.
  Network net = three_attentions();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::drop_noop_attention_masks(net, log));
  for (const kiln::Op& op : out.ops())
    if (op.kind == OpKind::kAttention) EXPECT_EQ(op.inputs.size(), 4u) << op.name;
}

}  // namespace
}  // namespace kiln_test
