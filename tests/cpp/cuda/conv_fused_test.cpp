// CUDA conv with the fused epilogue (cuDNN conv-bias-activation, or conv + Kiln epilogue
// kernel) and layout "nhwc" for conv (cuDNN NHWC/KRSC) and pools, against the double-precision
// references of backends/conv_nhwc_cases.h.

#include <gtest/gtest.h>

#include "backends/conv_nhwc_cases.h"
#include "cuda/cuda_test_util.h"

namespace kiln::test {
namespace {

void check_conv(const Conv2dCase& c, DType dtype, Layout layout = Layout::kContiguous) {
  SCOPED_TRACE(str(c.label(), " ", dtype_name(dtype), " ", layout_name(layout)));
  Conv2dTensors t = make_conv2d(c, dtype, layout, 51);
  ASSERT_OK(gpu().run(OpKind::kConv, c.attrs(), t.inputs(), {&t.y}));
  EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dtype, t.ref)));
}

TEST(CudaConvFused, BiasReluResidualMatchReferenceInBothLayouts) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes)
    for (bool nhwc : {false, true})
      for (bool relu : {false, true})
        for (bool residual : {false, true}) {
          Conv2dCase c{{2, 8, 9, 7}, 16};
          c.relu = relu;
          c.residual = residual;
          c.nhwc = nhwc;
          check_conv(c, dt);
          if (!residual) {  // relu / nothing without a bias: the epilogue kernel's path
            c.bias = false;
            check_conv(c, dt);
          }
        }
}

TEST(CudaConvFused, ResnetShapesInNhwc) {
  KILN_REQUIRE_CUDA();
  // Stem (3 input channels, 7x7/2), 3x3, strided 3x3, 1x1 downsample and bottleneck 1x1s.
  std::vector<Conv2dCase> cases = {
      {{2, 3, 32, 32}, 16, 7, 2, 3}, {{2, 16, 8, 8}, 16, 3, 1, 1}, {{2, 16, 8, 8}, 32, 3, 2, 1},
      {{2, 16, 8, 8}, 32, 1, 2, 0},  {{2, 32, 4, 4}, 64, 1, 1, 0}};
  for (DType dt : {DType::kFloat16, DType::kBFloat16})
    for (Conv2dCase c : cases) {
      c.nhwc = true;
      c.relu = true;
      check_conv(c, dt);
      c.relu = false;
      c.residual = true;
      check_conv(c, dt);
    }
}

TEST(CudaConvFused, NhwcAcceptsStridedInputAndResidual) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes)
    for (Layout l : {Layout::kPermuted, Layout::kSliced}) {
      Conv2dCase c{{2, 8, 6, 5}, 8, 3, 1, 1};
      c.nhwc = c.residual = c.relu = true;
      check_conv(c, dt, l);
    }
}

TEST(CudaConvFused, EveryTacticCandidateRunsAndMatches) {
  KILN_REQUIRE_CUDA();
  // Identity activation with a residual: cuDNN's fused call serves only IMPLICIT_PRECOMP_GEMM,
  // the other algorithms take the conv + epilogue path; both must agree with the reference. A
  // 1x1 conv also gets cuBLASLt GEMM candidates (residual as C, bias and relu in the epilogue).
  for (int kernel : {3, 1})
  for (bool relu : {false, true})
  for (bool residual : {true, false}) {
    Conv2dCase c{{2, 16, 12, 12}, 32, kernel, 1, kernel / 2};
    c.nhwc = true;
    c.residual = residual;
    c.relu = relu;
    const DType dt = DType::kFloat16;
    Conv2dTensors t = make_conv2d(c, dt, Layout::kContiguous, 61);
    Op op;
    op.kind = OpKind::kConv;
    op.name = "conv";
    op.attrs = c.attrs();
    std::vector<TensorView> ins;
    for (const TestTensor* in : t.inputs()) ins.push_back(in->view);
    TensorView outs[1] = {t.y.view};
    auto cands = cuda::tactic_candidates(gpu().state(), op, ins, outs, {}, size_t{64} << 20, 8);
    ASSERT_TRUE(cands.ok()) << cands.status().toString();
    ASSERT_FALSE(cands->empty());
    int gemms = 0;
    for (const cuda::TacticCandidate& cand : *cands) gemms += cand.label.find("as gemm") != std::string::npos;
    EXPECT_EQ(gemms > 0, kernel == 1);
    for (const cuda::TacticCandidate& cand : *cands) {
      SCOPED_TRACE(str(kernel, "x", kernel, relu ? " relu " : " identity ", residual ? "residual " : "", cand.label));
      ASSERT_OK(gpu().run(OpKind::kConv, op.attrs, t.inputs(), {&t.y}, {}, nullptr, cand.data,
                          cand.tactic.c_str()));
      EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dt, t.ref)));
    }
  }
}

TEST(CudaConvFused, RejectsResidualOfTheWrongShape) {
  KILN_REQUIRE_CUDA();
  Conv2dCase c{{1, 4, 6, 6}, 8};
  c.residual = true;
  Conv2dTensors t = make_conv2d(c, DType::kFloat32, Layout::kContiguous, 3);
  TestTensor z = make_tensor(DType::kFloat32, {1, 8, 6, 5}, random_values(240, 4));
  Status s = gpu().run(OpKind::kConv, c.attrs(), {&t.x, &t.w, &t.b, &z}, {&t.y});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("residual"), std::string::npos) << s.message();
}

TEST(CudaPoolNhwc, MaxAvgAndAdaptiveMatchReference) {
  KILN_REQUIRE_CUDA();
  for (DType dt : kFloatDTypes)
    for (Layout l : kAllLayouts)
      for (const char* kind : {"max", "avg", "adaptive"}) {
        SCOPED_TRACE(str(kind, " ", dtype_name(dt), " ", layout_name(l)));
        Pool2dCase c{{2, 12, 9, 8}, kind};
        for (int variant = 0; variant < 2; ++variant) {
          if (variant == 1) {
            c.out = 3;
            c.k = 2;
            c.pad = 0;
          }
          Pool2dTensors t = make_pool2d(c, dt, l, 71);
          ASSERT_OK(gpu().run(c.op(), c.attrs(), {&t.x}, {&t.y}));
          EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dt, t.ref)));
        }
      }
}

}  // namespace
}  // namespace kiln::test
