// CPU conv with the fused epilogue (activation, residual) and layout "nhwc" for conv and pool,
// against the double-precision direct references of conv_nhwc_cases.h.

#include <gtest/gtest.h>

#include "backends/conv_nhwc_cases.h"

namespace kiln::test {
namespace {

std::vector<TensorView> views(const std::vector<const TestTensor*>& ts) {
  std::vector<TensorView> out;
  for (const TestTensor* t : ts) out.push_back(t->view);
  return out;
}

void check_conv(const Conv2dCase& c, DType dtype, Layout layout = Layout::kContiguous) {
  SCOPED_TRACE(str(c.label(), " ", dtype_name(dtype), " ", layout_name(layout)));
  Conv2dTensors t = make_conv2d(c, dtype, layout, 21);
  Status s = run_op(OpKind::kConv, c.attrs(), views(t.inputs()), {t.y.view});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dtype, t.ref)));
}

TEST(CpuConvEpilogue, ReluAndResidualMatchReferenceInBothLayouts) {
  for (DType dt : kFloatDTypes)
    for (bool nhwc : {false, true})
      for (bool relu : {false, true})
        for (bool residual : {false, true}) {
          Conv2dCase c{{2, 5, 7, 6}, 4};
          c.relu = relu;
          c.residual = residual;
          c.nhwc = nhwc;
          check_conv(c, dt);
          if (!residual) {
            c.bias = false;
            check_conv(c, dt);
          }
        }
}

TEST(CpuConvEpilogue, NhwcWithStrideDilationGroupsAndStridedInputs) {
  for (Layout l : kAllLayouts) {
    Conv2dCase a{{1, 4, 9, 8}, 6, 3, 2, 2, 2, 2};
    a.nhwc = a.residual = a.relu = true;
    check_conv(a, DType::kFloat32, l);
    Conv2dCase b{{2, 3, 5, 5}, 8, 1, 1, 0};  // pointwise conv, 3 input channels
    b.nhwc = b.residual = true;
    check_conv(b, DType::kFloat16, l);
  }
}

TEST(CpuConvEpilogue, ReluKeepsNaN) {
  Conv2dCase c{{1, 1, 3, 3}, 1, 1, 1, 0};
  c.relu = true;
  TestTensor x = make_tensor(DType::kFloat32, c.x, {1, std::nan(""), -1, 2, 3, -4, 5, -6, 7});
  TestTensor w = make_tensor(DType::kFloat32, c.weight(), {1});
  TestTensor b = make_tensor(DType::kFloat32, {1}, {0});
  TestTensor y = make_output(DType::kFloat32, c.output());
  ASSERT_TRUE(run_op(OpKind::kConv, c.attrs(), {x.view, w.view, b.view}, {y.view}).ok());
  EXPECT_TRUE(expect_close(y.view, {1, std::nan(""), 0, 2, 3, 0, 5, 0, 7}));
}

TEST(CpuConvEpilogue, RejectsResidualOfTheWrongSizeAndUnknownActivation) {
  Conv2dCase c{{1, 2, 4, 4}, 3};
  c.residual = true;
  Conv2dTensors t = make_conv2d(c, DType::kFloat32, Layout::kContiguous, 5);
  TestTensor small = make_tensor(DType::kFloat32, {1, 3, 4, 3}, random_values(36, 1));
  Status s = run_op(OpKind::kConv, c.attrs(), {t.x.view, t.w.view, t.b.view, small.view},
                    {t.y.view});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("residual"), std::string::npos) << s.message();
  Attrs bad = c.attrs();
  bad.set("activation", std::string("gelu"));
  s = run_op(OpKind::kConv, bad, {t.x.view, t.w.view, t.b.view}, {t.y.view});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("gelu"), std::string::npos) << s.message();
}

void check_pool(const Pool2dCase& c, DType dtype, Layout layout = Layout::kContiguous) {
  SCOPED_TRACE(str(c.kind, " ", dtype_name(dtype), " ", layout_name(layout),
                   c.nhwc ? " nhwc" : " nchw"));
  Pool2dTensors t = make_pool2d(c, dtype, layout, 31);
  Status s = run_op(c.op(), c.attrs(), {t.x.view}, {t.y.view});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dtype, t.ref)));
}

TEST(CpuPoolNhwc, MaxAvgAndAdaptiveMatchReference) {
  for (DType dt : kFloatDTypes)
    for (Layout l : kAllLayouts)
      for (const char* kind : {"max", "avg", "adaptive"}) {
        Pool2dCase c{{2, 5, 9, 8}, kind};
        check_pool(c, dt, l);
        c.out = 3;
        c.k = 2;
        c.pad = 0;
        check_pool(c, dt, l);
      }
}

}  // namespace
}  // namespace kiln::test
