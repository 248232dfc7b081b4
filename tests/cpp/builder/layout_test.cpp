// Layout assignment (NHWC): run on the CPU by forcing the pass on (LayoutOptions::
// all_float_dtypes) for a float32 ResNet-like network; the transformed network is built into a
// CPU engine and compared with the engine of the plain network. Permutes may remain only at the
// edges of the NHWC region (after the input, before the flatten), none between convs.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"
#include "resnet_block.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;

// The builder's passes up to and including layout assignment, with the layout pass forced on.
kiln::Result<Network> fused_nhwc(const Network& net, std::vector<std::string>& log,
                                 bool all_float = true, int64_t min_input_channels = 0) {
  using namespace kiln::builder;
  KILN_ASSIGN_OR_RETURN(Network n, eliminate_dead_code(net, log));
  KILN_ASSIGN_OR_RETURN(n, fold_constants(n, log));
  KILN_ASSIGN_OR_RETURN(n, fold_batch_norm(n, log));
  KILN_ASSIGN_OR_RETURN(n, simplify(n, log));
  KILN_ASSIGN_OR_RETURN(n, eliminate_dead_code(n, log));
  KILN_ASSIGN_OR_RETURN(n, fuse_conv_epilogues(n, log));
  return assign_layout(n, log, LayoutOptions{all_float, min_input_channels});
}

bool is_nhwc(const kiln::Op& op) { return op.attrs.getString("layout", "nchw") == "nhwc"; }

TEST(LayoutAssignment, ResnetBlockRunsInNhwcWithPermutesOnlyAtTheEdges) {
  KILN_ASSERT_OK_AND_ASSIGN(Network net, make_resnet_block());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network nhwc, fused_nhwc(net, log));
  ASSERT_TRUE(nhwc.verify().ok());
  EXPECT_EQ(log.back(),
            "layout assignment: 6 convs and 2 pools in NHWC, 0 pointwise ops moved to NHWC, "
            "2 permutes left");
  int convs = 0, pools = 0;
  for (const kiln::Op& op : nhwc.ops()) {
    if (op.kind == OpKind::kConv) {
      ++convs;
      EXPECT_TRUE(is_nhwc(op)) << op.name;
      // The KRSC weight: [O, kh, kw, C].
      const kiln::TensorInfo& w = nhwc.tensor(op.inputs[1]);
      EXPECT_TRUE(w.isConstant()) << op.name;
      EXPECT_EQ(w.shape[3].str(), nhwc.tensor(op.inputs[0]).shape[3].str()) << op.name;
      // Every conv input (activation and residual) comes straight from an NHWC op or a permute
      // of the network input: no transpose between consecutive convs.
      for (size_t i : {size_t{0}, size_t{3}}) {
        if (i >= op.inputs.size()) continue;
        const kiln::TensorInfo& t = nhwc.tensor(op.inputs[i]);
        ASSERT_GE(t.producer, 0) << op.name;
        const kiln::Op& p = nhwc.ops()[static_cast<size_t>(t.producer)];
        if (p.kind == OpKind::kPermute) {
          EXPECT_TRUE(nhwc.tensor(p.inputs[0]).producer < 0 ||
                      nhwc.ops()[static_cast<size_t>(nhwc.tensor(p.inputs[0]).producer)].kind ==
                          OpKind::kCast)
              << op.name << " reads a permute of an op output";
        } else {
          EXPECT_TRUE(is_nhwc(p)) << op.name << " reads " << p.name;
        }
      }
    }
    if (op.kind == OpKind::kPool || op.kind == OpKind::kAdaptiveAvgPool) {
      ++pools;
      EXPECT_TRUE(is_nhwc(op)) << op.name;
    }
  }
  EXPECT_EQ(convs, 6);
  EXPECT_EQ(pools, 2);
  EXPECT_EQ(count_ops(nhwc, OpKind::kPermute), 2);

  // The NHWC network on the CPU backend matches the plain network.
  KILN_ASSERT_OK_AND_ASSIGN(auto plain_engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto nhwc_engine, build_engine(nhwc));
  for (int64_t batch : {1, 3}) {
    HostTensor input = random_tensor({batch, 3, 16, 16}, 40 + static_cast<uint64_t>(batch));
    KILN_ASSERT_OK_AND_ASSIGN(auto want, run_engine(*plain_engine, {input}));
    KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*nhwc_engine, {input}));
    DTensor ref{want[0].dims, std::vector<double>(want[0].data.begin(), want[0].data.end())};
    EXPECT_TRUE(all_close(got[0], ref, 1e-4, 1e-5));
  }
}

// The block's stem reads 3 channels: with a minimum of 4 or 8 its weight gets zero channels and
// its NHWC input a pad op, and the network computes the same; the other convs are untouched.
TEST(LayoutAssignment, ConvsWithFewInputChannelsArePaddedWithZeroChannels) {
  KILN_ASSERT_OK_AND_ASSIGN(Network net, make_resnet_block());
  KILN_ASSERT_OK_AND_ASSIGN(auto plain_engine, build_engine(net));
  for (int64_t channels : {4, 8}) {
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network nhwc, fused_nhwc(net, log, true, channels));
    ASSERT_TRUE(nhwc.verify().ok());
    EXPECT_EQ(log.back(), "layout assignment: 1 convs with input channels padded to " +
                              std::to_string(channels));
    int padded = 0;
    for (const kiln::Op& op : nhwc.ops()) {
      if (op.kind != OpKind::kConv) continue;
      const kiln::TensorInfo& x = nhwc.tensor(op.inputs[0]);
      const kiln::TensorInfo& w = nhwc.tensor(op.inputs[1]);
      EXPECT_EQ(w.shape[3].str(), x.shape[3].str()) << op.name;
      const kiln::Op& producer = nhwc.ops()[static_cast<size_t>(x.producer)];
      if (producer.kind != OpKind::kPad) {
        EXPECT_GE(x.shape[3].constant(), channels) << op.name;
        continue;
      }
      ++padded;
      EXPECT_EQ(x.shape[3].constant(), channels) << op.name;
      EXPECT_EQ(producer.attrs.getInts("pads", {}), (std::vector<int64_t>{0, channels - 3}));
    }
    EXPECT_EQ(padded, 1);
    KILN_ASSERT_OK_AND_ASSIGN(auto nhwc_engine, build_engine(nhwc));
    HostTensor input = random_tensor({2, 3, 16, 16}, 90 + static_cast<uint64_t>(channels));
    KILN_ASSERT_OK_AND_ASSIGN(auto want, run_engine(*plain_engine, {input}));
    KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*nhwc_engine, {input}));
    DTensor ref{want[0].dims, std::vector<double>(want[0].data.begin(), want[0].data.end())};
    EXPECT_TRUE(all_close(got[0], ref, 1e-4, 1e-5)) << channels << " channels";
  }
}

TEST(LayoutAssignment, DefaultOptionsLeaveFloat32ConvsAlone) {
  KILN_ASSERT_OK_AND_ASSIGN(Network net, make_resnet_block());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, fused_nhwc(net, log, /*all_float=*/false));
  for (const kiln::Op& op : out.ops()) EXPECT_FALSE(is_nhwc(op)) << op.name;
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 0);
}

TEST(LayoutAssignment, HalfPrecisionConvsGetNhwcByDefault) {
  for (kiln::DType dt : {kiln::DType::kFloat16, kiln::DType::kBFloat16}) {
    ResnetBlockOptions o;
    o.dtype = dt;
    KILN_ASSERT_OK_AND_ASSIGN(Network net, make_resnet_block(o));
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, fused_nhwc(net, log, /*all_float=*/false));
    int nhwc_ops = 0;
    for (const kiln::Op& op : out.ops()) nhwc_ops += is_nhwc(op);
    EXPECT_EQ(nhwc_ops, 8);
    EXPECT_EQ(count_ops(out, OpKind::kPermute), 2);
  }
}

TEST(LayoutAssignment, PermutesSinkThroughUnfusedPointwiseOps) {
  // c0's output feeds two pointwise ops (so nothing fuses into c0): relu and sigmoid, then their
  // sum feeds c1. The three pointwise ops run on NHWC data; no permute separates c0 and c1.
  kiln_examples::NetworkMaker m("pointwise", 9);
  kiln::SymExpr batch = *m.net().addSymbol("batch", 1, 2, 2);
  kiln::Tensor x = *m.net().addInput("x", kiln::DType::kFloat32, {batch, 4, 6, 6});
  kiln::Tensor c = *m.conv(x, 4, 4, 3, 1, 1, true, "c0");
  kiln::Tensor r = *m.unary(c, "relu", "r0");
  kiln::Tensor g = *m.unary(c, "sigmoid", "g0");
  kiln::Tensor s = *m.add(r, g, "sum");
  kiln::Tensor y = *m.conv(s, 4, 2, 3, 1, 1, true, "c1");
  ASSERT_TRUE(m.net().markOutput(y, "y").ok());
  ExampleNetwork model = m.finish();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network nhwc, fused_nhwc(model.network, log));
  EXPECT_EQ(count_ops(nhwc, OpKind::kPermute), 2) << nhwc.toString();
  for (const kiln::Op& op : nhwc.ops()) {
    if (op.kind != OpKind::kUnary) continue;
    const kiln::Op& p = nhwc.ops()[static_cast<size_t>(nhwc.tensor(op.inputs[0]).producer)];
    EXPECT_TRUE(p.kind == OpKind::kConv && is_nhwc(p)) << op.name << " reads " << p.name;
  }
  EXPECT_NE(log.back().find("3 pointwise ops moved to NHWC"), std::string::npos) << log.back();

  KILN_ASSERT_OK_AND_ASSIGN(auto plain_engine, build_engine(model.network));
  KILN_ASSERT_OK_AND_ASSIGN(auto nhwc_engine, build_engine(nhwc));
  HostTensor input = random_tensor({2, 4, 6, 6}, 77);
  KILN_ASSERT_OK_AND_ASSIGN(auto want, run_engine(*plain_engine, {input}));
  KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*nhwc_engine, {input}));
  DTensor ref{want[0].dims, std::vector<double>(want[0].data.begin(), want[0].data.end())};
  EXPECT_TRUE(all_close(got[0], ref, 1e-4, 1e-5));
}

}  // namespace
}  // namespace kiln_test
