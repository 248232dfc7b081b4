// Patch convolutions as GEMMs: a conv whose kernel equals its stride becomes gather + linear +
// view, and the engine built from it matches a direct double-precision convolution; convs that
// overlap, pad, group or leave a remainder stay convs.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

struct PatchConv {
  int64_t c = 3, h = 8, w = 12, o = 5, kh = 4, kw = 4;
  std::vector<int64_t> stride{4, 4};
  std::vector<int64_t> padding{0, 0};
  int64_t groups = 1;
  bool bias = true;
};

Network conv_net(const PatchConv& p) {
  Network net("patch");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, p.c, p.h, p.w});
  Tensor w = *add_constant(net, "w", {p.o, p.c / p.groups, p.kh, p.kw},
                           random_tensor({p.o * p.c / p.groups * p.kh * p.kw}, 3).data);
  std::vector<Tensor> in{x, w};
  if (p.bias) in.push_back(*add_constant(net, "b", {p.o}, random_tensor({p.o}, 4).data));
  Tensor y = *net.add(OpKind::kConv, in,
                      {{"stride", p.stride}, {"padding", p.padding}, {"groups", p.groups}}, "embed");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  return net;
}

// Direct convolution with stride = kernel, no padding, one group, in double precision.
// The weights are conv_net's (same seeds).
DTensor reference(const PatchConv& p, const HostTensor& x) {
  const std::vector<float> w = random_tensor({p.o * p.c * p.kh * p.kw}, 3).data;
  const std::vector<float> b = p.bias ? random_tensor({p.o}, 4).data : std::vector<float>(static_cast<size_t>(p.o), 0.0f);
  const int64_t n = x.dims[0], hp = p.h / p.kh, wp = p.w / p.kw;
  DTensor out{{n, p.o, hp, wp}, std::vector<double>(static_cast<size_t>(n * p.o * hp * wp))};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t oc = 0; oc < p.o; ++oc)
      for (int64_t y = 0; y < hp; ++y)
        for (int64_t z = 0; z < wp; ++z) {
          double acc = b[static_cast<size_t>(oc)];
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t u = 0; u < p.kh; ++u)
              for (int64_t v = 0; v < p.kw; ++v)
                acc += w[static_cast<size_t>(((oc * p.c + c) * p.kh + u) * p.kw + v)] *
                       x.data[static_cast<size_t>(((i * p.c + c) * p.h + y * p.kh + u) * p.w + z * p.kw + v)];
          out.v[static_cast<size_t>(((i * p.o + oc) * hp + y) * wp + z)] = acc;
        }
  return out;
}

TEST(PatchConv, KernelEqualToStrideBecomesAGemmThatMatchesTheConv) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "no bias");
    PatchConv p;
    p.bias = bias;
    Network net = conv_net(p);
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::patch_conv_to_gemm(net, log));
    EXPECT_EQ(log.back(), "patch convolutions: 1 conv with kernel = stride rewritten as GEMMs");
    EXPECT_EQ(count_ops(out, OpKind::kConv), 0) << out.toString();
    EXPECT_EQ(count_ops(out, OpKind::kLinear), 1) << out.toString();

    KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));  // the builder runs the pass
    bool has_conv = false;
    for (const kiln::StepInfo& s : engine->info().steps) has_conv = has_conv || s.op == "conv";
    EXPECT_FALSE(has_conv);
    for (int64_t batch : {1, 3}) {
      HostTensor x = random_tensor({batch, p.c, p.h, p.w}, 10 + batch);
      KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {x}));
      EXPECT_TRUE(all_close(y[0], reference(p, x), 1e-5, 1e-5)) << "batch " << batch;
    }
  }
}

TEST(PatchConv, OtherConvsStayConvs) {
  PatchConv overlapping;
  overlapping.stride = {2, 2};
  PatchConv padded;
  padded.padding = {1, 1};
  PatchConv grouped;
  grouped.groups = 3;
  grouped.o = 6;
  PatchConv remainder;
  remainder.w = 10;  // 10 is not a multiple of 4: the conv drops two columns
  PatchConv one_by_one;
  one_by_one.kh = one_by_one.kw = 1;
  one_by_one.stride = {1, 1};
  for (const PatchConv& p : {overlapping, padded, grouped, remainder, one_by_one}) {
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::patch_conv_to_gemm(conv_net(p), log));
    EXPECT_EQ(count_ops(out, OpKind::kConv), 1) << out.toString();
    EXPECT_EQ(log.back(), "patch convolutions: 0 convs with kernel = stride rewritten as GEMMs");
  }
}

}  // namespace
}  // namespace kiln_test
