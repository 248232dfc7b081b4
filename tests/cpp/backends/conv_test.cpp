// Convolution (1d/2d/3d, groups, depthwise, dilation, transposed, bias, every tactic) against a
// double-precision direct reference written here. Op suite: runs on every backend
// (backends/op_runner.h).

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "backends/conv_nhwc_cases.h"
#include "backends/op_runner.h"

namespace kiln::test {
namespace {

using Shape64 = std::vector<int64_t>;

KILN_OP_SUITE(Conv);

struct ConvCase {
  Shape64 x = {};  // [N, C, *sp]
  int64_t out_channels = 0;
  Shape64 kernel = {}, stride = {}, pad = {}, dil = {}, out_pad = {};
  int64_t groups = 1;
  bool transposed = false;
  bool bias = true;
};

Shape64 weight_shape(const ConvCase& c) {
  Shape64 w = c.transposed ? Shape64{c.x[1], c.out_channels / c.groups}
                           : Shape64{c.out_channels, c.x[1] / c.groups};
  w.insert(w.end(), c.kernel.begin(), c.kernel.end());
  return w;
}

Shape64 output_shape(const ConvCase& c) {
  Shape64 o = {c.x[0], c.out_channels};
  for (size_t i = 0; i < c.kernel.size(); ++i) {
    const int64_t in = c.x[2 + i], span = c.dil[i] * (c.kernel[i] - 1);
    o.push_back(c.transposed ? (in - 1) * c.stride[i] - 2 * c.pad[i] + span + c.out_pad[i] + 1
                             : (in + 2 * c.pad[i] - span - 1) / c.stride[i] + 1);
  }
  return o;
}

// Direct convolution in double. Plain: gather over the window of each output; transposed:
// scatter each input element over its window of outputs.
std::vector<double> ref_conv(const ConvCase& c, const std::vector<double>& x,
                             const std::vector<double>& w, const std::vector<double>& b) {
  const Shape64 os = output_shape(c);
  const size_t sp = c.kernel.size();
  const int64_t N = c.x[0], C = c.x[1], O = c.out_channels, G = c.groups;
  const int64_t Cg = C / G, Og = O / G;
  const Shape64 in_sp(c.x.begin() + 2, c.x.end()), out_sp(os.begin() + 2, os.end());
  const int64_t in_vol = numel(in_sp), out_vol = numel(out_sp), k_vol = numel(c.kernel);
  std::vector<double> y(static_cast<size_t>(numel(os)), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t p = 0; p < out_vol; ++p) y[(n * O + o) * out_vol + p] = c.bias ? b[o] : 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t ci = 0; ci < Cg; ++ci)
        for (int64_t oi = 0; oi < Og; ++oi)
          for (int64_t kk = 0; kk < k_vol; ++kk) {
            const Shape64 k = unravel(kk, c.kernel);
            const int64_t cin = g * Cg + ci, cout = g * Og + oi;
            const double wv = c.transposed ? w[(cin * Og + oi) * k_vol + kk]
                                           : w[(cout * Cg + ci) * k_vol + kk];
            // Plain: output position q reads input q*s - p + k*d. Transposed: input i writes
            // output i*s - p + k*d.
            const Shape64& loop_sp = c.transposed ? in_sp : out_sp;
            const Shape64& other_sp = c.transposed ? out_sp : in_sp;
            for (int64_t l = 0; l < numel(loop_sp); ++l) {
              const Shape64 q = unravel(l, loop_sp);
              Shape64 t(sp);
              bool inside = true;
              for (size_t i = 0; i < sp; ++i) {
                t[i] = q[i] * c.stride[i] - c.pad[i] + k[i] * c.dil[i];
                inside = inside && t[i] >= 0 && t[i] < other_sp[i];
              }
              if (!inside) continue;
              const int64_t other = ravel(t, other_sp);
              if (c.transposed) {
                y[(n * O + cout) * out_vol + other] += x[(n * C + cin) * in_vol + l] * wv;
              } else {
                y[(n * O + cout) * out_vol + l] += x[(n * C + cin) * in_vol + other] * wv;
              }
            }
          }
  return y;
}

Attrs conv_attrs(const ConvCase& c) {
  Attrs a;
  a.set("stride", c.stride).set("padding", c.pad).set("dilation", c.dil);
  a.set("groups", c.groups).set("transposed", c.transposed);
  a.set("output_padding", c.out_pad.empty() ? Shape64(c.kernel.size(), 0) : c.out_pad);
  return a;
}

void check_conv(ConvCase c, DType dtype, Layout lx = Layout::kContiguous) {
  if (c.out_pad.empty()) c.out_pad.assign(c.kernel.size(), 0);
  SCOPED_TRACE(str(dtype_name(dtype), " x ", layout_name(lx), " groups ", c.groups,
                   c.transposed ? " transposed" : ""));
  const Shape64 ws = weight_shape(c), os = output_shape(c);
  std::vector<double> xv = round_all(dtype, random_values(numel(c.x), 11));
  std::vector<double> wv = round_all(dtype, random_values(numel(ws), 12, -1.0, 1.0));
  std::vector<double> bv = round_all(dtype, random_values(c.out_channels, 13));
  std::vector<double> ref = ref_conv(c, xv, wv, bv);
  TestTensor x = make_tensor(dtype, c.x, xv, lx);
  TestTensor w = make_tensor(dtype, ws, wv);
  TestTensor b = make_tensor(dtype, {c.out_channels}, bv);
  TestTensor y = make_output(dtype, os);
  std::vector<const TestTensor*> inputs = {&x, &w};
  if (c.bias) inputs.push_back(&b);
  Status s = run_kernel(OpKind::kConv, conv_attrs(c), inputs, {&y});
  ASSERT_TRUE(s.ok()) << s.toString();
  EXPECT_TRUE(expect_close(y.view, ref, magnitude_tolerance(dtype, ref)));
}

TEST_P(Conv, Conv1dMatchesReference) {
  for (DType dt : kFloatDTypes) {
    check_conv({{2, 3, 11}, 4, {3}, {2}, {1}, {1}}, dt);
    check_conv({{1, 5, 9}, 2, {4}, {1}, {0}, {2}, {}, 1, false, false}, dt);
    // Wide padding, stride and dilation: taps that fall wholly or partly in the padding.
    check_conv({{2, 2, 7}, 3, {5}, {3}, {5}, {3}}, dt);
    check_conv({{1, 2, 4}, 2, {3}, {2}, {6}, {4}}, dt);
  }
}

TEST_P(Conv, Conv2dMatchesReferenceWithGroupsStridePaddingDilation) {
  for (DType dt : kFloatDTypes) {
    check_conv({{2, 4, 9, 7}, 6, {3, 2}, {2, 1}, {1, 0}, {1, 2}, {}, 2}, dt);
    check_conv({{1, 3, 8, 8}, 5, {3, 3}, {1, 1}, {1, 1}, {1, 1}}, dt);
    check_conv({{2, 6, 5, 6}, 6, {1, 3}, {1, 2}, {0, 2}, {1, 1}, {}, 3}, dt);
  }
}

TEST_P(Conv, Conv3dMatchesReference) {
  for (DType dt : kFloatDTypes) {
    check_conv({{1, 2, 5, 6, 4}, 3, {2, 3, 2}, {1, 2, 1}, {1, 1, 0}, {2, 1, 1}}, dt);
    check_conv({{2, 4, 3, 4, 5}, 2, {1, 2, 3}, {2, 1, 1}, {0, 1, 1}, {1, 1, 1}, {}, 2}, dt);
  }
}

TEST_P(Conv, PointwiseConvMatchesReference) {
  for (DType dt : kFloatDTypes) check_conv({{2, 7, 5, 3}, 4, {1, 1}, {1, 1}, {0, 0}, {1, 1}}, dt);
}

TEST_P(Conv, DepthwiseMatchesReference) {
  for (DType dt : kFloatDTypes) {
    check_conv({{2, 6, 8, 8}, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, 6}, dt);
    check_conv({{1, 4, 7, 9}, 8, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {}, 4}, dt);  // multiplier 2
    check_conv({{2, 3, 10}, 3, {5}, {1}, {2}, {1}, {}, 3, false, false}, dt);  // 1-d
    check_conv({{1, 2, 4, 5, 6}, 2, {3, 3, 3}, {1, 2, 1}, {1, 1, 1}, {1, 1, 1}, {}, 2}, dt);
  }
}

TEST_P(Conv, TransposedMatchesReferenceWithOutputPadding) {
  for (DType dt : kFloatDTypes) {
    check_conv({{2, 3, 5}, 4, {3}, {2}, {1}, {1}, {1}, 1, true}, dt);
    check_conv({{1, 4, 4, 5}, 6, {3, 2}, {2, 3}, {1, 0}, {1, 2}, {1, 2}, 2, true}, dt);
    check_conv({{2, 2, 3, 3}, 3, {2, 2}, {1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, true, false}, dt);
    check_conv({{1, 2, 3, 2, 4}, 2, {2, 3, 2}, {2, 1, 2}, {0, 1, 1}, {1, 1, 2}, {1, 0, 1}, 2, true},
               dt);
  }
}

TEST_P(Conv, AcceptsStridedInput) {
  for (DType dt : kFloatDTypes)
    for (Layout l : kAllLayouts) {
      check_conv({{2, 4, 6, 5}, 4, {3, 3}, {1, 2}, {1, 1}, {1, 1}}, dt, l);
      check_conv({{2, 4, 6, 5}, 4, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {}, 4}, dt, l);
      check_conv({{1, 4, 3, 4}, 2, {2, 2}, {2, 2}, {0, 0}, {1, 1}, {1, 1}, 1, true}, dt, l);
    }
}

// Kernels keep no shared scratch: several threads running convs at once all get the right answer.
TEST_P(Conv, RunsConcurrentlyFromSeveralThreads) {
  if (current_backend() != Backend::kCpu)
    GTEST_SKIP() << "the CUDA test runner shares one stream and one device error word";
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 5; ++i) {
        check_conv({{2, 4, 9, 7}, 6, {3, 2}, {2, 1}, {1, 0}, {1, 2}, {}, 2}, DType::kFloat16);
        check_conv({{1, 4, 4, 5}, 6, {3, 2}, {2, 3}, {1, 0}, {1, 2}, {1, 2}, 2, true},
                   t % 2 ? DType::kFloat32 : DType::kBFloat16, Layout::kPermuted);
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

TEST_P(Conv, RejectsIntegerDtypes) {
  TestTensor x = make_tensor(DType::kInt32, {1, 1, 3}, {1, 2, 3});
  TestTensor w = make_tensor(DType::kInt32, {1, 1, 1}, {1});
  TestTensor y = make_output(DType::kInt32, {1, 1, 3});
  ConvCase c{{1, 1, 3}, 1, {1}, {1}, {0}, {1}};
  Status s = run_kernel(OpKind::kConv, conv_attrs(c), {&x, &w}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("conv"), std::string::npos) << s.message();
}

TEST_P(Conv, RejectsOutputOfTheWrongSize) {
  TestTensor x = make_tensor(DType::kFloat32, {1, 1, 5}, random_values(5, 1));
  TestTensor w = make_tensor(DType::kFloat32, {1, 1, 3}, random_values(3, 2));
  TestTensor y = make_output(DType::kFloat32, {1, 1, 4});  // 3 expected
  ConvCase c{{1, 1, 5}, 1, {3}, {1}, {0}, {1}};
  EXPECT_FALSE(run_kernel(OpKind::kConv, conv_attrs(c), {&x, &w}, {&y}).ok());
}


// Every tactic the backend offers for one conv (CPU: each registered kernel that supports it;
// CUDA: tactic_candidates) gives the reference's answer.
TEST_P(Conv, TacticCandidatesRunAndMatch) {
  ConvCase c{{2, 8, 12, 12}, 16, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}};
  const DType dt = DType::kFloat16;
  const Shape64 ws = weight_shape(c), os = output_shape(c);
  std::vector<double> xv = round_all(dt, random_values(numel(c.x), 41));
  std::vector<double> wv = round_all(dt, random_values(numel(ws), 42, -1.0, 1.0));
  std::vector<double> bv = round_all(dt, random_values(c.out_channels, 43));
  std::vector<double> ref = ref_conv(c, xv, wv, bv);
  TestTensor x = make_tensor(dt, c.x, xv), w = make_tensor(dt, ws, wv);
  TestTensor b = make_tensor(dt, {c.out_channels}, bv), y = make_output(dt, os);
  auto cands = op_runner().tactics(OpKind::kConv, conv_attrs(c), {&x, &w, &b}, {&y});
  ASSERT_TRUE(cands.ok()) << cands.status().toString();
  ASSERT_FALSE(cands->empty());
  for (const TacticChoice& t : *cands) {
    SCOPED_TRACE(t.label);
    RunOptions o;
    o.tactic = t.tactic.c_str();
    o.tactic_data = t.data;
    ASSERT_OK(run_kernel(OpKind::kConv, conv_attrs(c), {&x, &w, &b}, {&y}, o));
    EXPECT_TRUE(expect_close(y.view, ref, magnitude_tolerance(dt, ref)));
  }
}

// Layout nhwc conv + bias/residual/relu epilogue: on CUDA (fp16/bf16 take the conv + epilogue
// kernel path by default, fp32 without a bias) C = 64 with aligned tensors runs the 16-byte
// vector path, C = 12 (fp16/bf16) and a misaligned bias or residual the scalar fallback.
TEST_P(Conv, NhwcEpilogueVectorPathAndFallbackMatchReference) {
  for (DType dt : kFloatDTypes)
    for (int64_t channels : {64, 12})
      for (bool relu : {false, true})
        for (bool residual : {false, true})
          for (bool bias : {true, false}) {
            if (residual && !bias) continue;  // the residual is input 3, after the bias
            Conv2dCase c{{2, 8, 5, 6}, channels, 3, 1, 1};
            c.nhwc = true;
            c.relu = relu;
            c.residual = residual;
            c.bias = bias;
            SCOPED_TRACE(str(c.label(), " ", dtype_name(dt)));
            Conv2dTensors t = make_conv2d(c, dt, Layout::kContiguous, 81);
            ASSERT_OK(run_kernel(OpKind::kConv, c.attrs(), t.inputs(), {&t.y}));
            EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dt, t.ref)));
            // Misaligned epilogue operand (half types only: the fp32 bias path goes to cuDNN).
            if (dt == DType::kFloat32 || (!residual && !bias)) continue;
            SCOPED_TRACE(residual ? "misaligned residual" : "misaligned bias");
            if (residual) {
              t.z = shifted_by_one(t.z);
            } else {
              t.b = shifted_by_one(t.b);
            }
            t.y = make_output(dt, t.y.shape);
            ASSERT_OK(run_kernel(OpKind::kConv, c.attrs(), t.inputs(), {&t.y}));
            EXPECT_TRUE(expect_close(t.y.view, t.ref, magnitude_tolerance(dt, t.ref)));
          }
}

}  // namespace
}  // namespace kiln::test
