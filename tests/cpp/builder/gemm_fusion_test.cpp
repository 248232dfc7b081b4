// Gemm epilogue fusion: linear/matmul + bias add + residual add + relu/gelu/gelu_tanh become one
// op with attrs `residual` and `activation`; the fused network computes what the unfused one does
// (double-precision loops).

#include <gtest/gtest.h>

#include <cmath>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

const kiln::Op* find_op(const Network& net, OpKind kind) {
  for (const kiln::Op& op : net.ops())
    if (op.kind == kind) return &op;
  return nullptr;
}

std::vector<float> values(int64_t n, uint64_t seed, double scale = 1.0) {
  return random_tensor({n}, seed, -scale, scale).data;
}

DTensor activate(DTensor x, const std::string& fn) {
  if (fn == "relu") return ref::relu(std::move(x));
  if (fn == "gelu") return ref::gelu(std::move(x));
  if (fn == "gelu_tanh") {
    for (double& v : x.v) v = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  }
  return x;
}

// x[M, K] w[K, N] (row-major) -> x @ w.
DTensor matmul_ref(const DTensor& x, const std::vector<float>& w, int64_t K, int64_t N) {
  const int64_t rows = numel(x.dims) / K;
  DTensor y{x.dims, std::vector<double>(static_cast<size_t>(rows * N), 0.0)};
  y.dims.back() = N;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) y.v[r * N + n] += x.v[r * K + k] * w[k * N + n];
  return y;
}

Network fuse(const Network& net) {
  std::vector<std::string> log;
  auto fused = kiln::builder::fuse_gemm_epilogues(net, log);
  EXPECT_TRUE(fused.ok()) << fused.status().toString();
  EXPECT_TRUE(fused->verify().ok());
  return fused.ok() ? std::move(fused).value() : Network("failed");
}

constexpr int64_t K = 24, N = 10;

// x[batch, K] -> linear(w[N, K]) [+ bias] -> add(bias2) -> act -> y
struct LinearCase {
  bool linear_bias = false;
  bool add_bias = true;
  bool bias_first = false;  // add(bias, y) instead of add(y, bias)
  std::string act = "relu";
};

void check_linear_chain(const LinearCase& c) {
  SCOPED_TRACE(kiln::str("linear bias ", c.linear_bias, " add bias ", c.add_bias, " act ", c.act));
  Network net("chain");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 3, 8);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, K});
  std::vector<float> wv = values(N * K, 1, 0.3), b1 = values(N, 2), b2 = values(N, 3);
  Tensor w = *add_constant(net, "w", {N, K}, wv);
  std::vector<Tensor> ins = {x, w};
  if (c.linear_bias) ins.push_back(*add_constant(net, "b1", {N}, b1));
  Tensor y = *net.add(OpKind::kLinear, ins, {}, "fc");
  if (c.add_bias) {
    Tensor b = *add_constant(net, "b2", {N}, b2);
    y = *net.add(OpKind::kBinary, c.bias_first ? std::vector<Tensor>{b, y} : std::vector<Tensor>{y, b},
                 {{"fn", std::string("add")}}, "bias_add");
  }
  if (c.act != "none") y = *net.add(OpKind::kUnary, {y}, {{"fn", c.act}}, "act");
  ASSERT_TRUE(net.markOutput(y, "y").ok());

  Network fused = fuse(net);
  EXPECT_EQ(fused.ops().size(), 1u) << fused.toString();
  const kiln::Op* fc = find_op(fused, OpKind::kLinear);
  ASSERT_NE(fc, nullptr) << fused.toString();
  EXPECT_EQ(fc->attrs.getString("activation", "?"), c.act);
  EXPECT_EQ(fc->inputs.size(), (c.linear_bias || c.add_bias) ? 3u : 2u);

  HostTensor in = random_tensor({5, K}, 4);
  std::vector<double> bias(N, 0.0);
  for (int64_t n = 0; n < N; ++n)
    bias[n] = (c.linear_bias ? b1[n] : 0.0f) + (c.add_bias ? b2[n] : 0.0f);
  DTensor want = activate(ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}}, {{N}, bias}), c.act);
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

TEST(GemmFusion, LinearBiasAddActivationBecomesOneLinear) {
  for (const char* act : {"relu", "gelu", "gelu_tanh", "none"}) check_linear_chain({false, true, false, act});
}

TEST(GemmFusion, LinearWithBiasAndActivation) {
  for (const char* act : {"relu", "gelu", "gelu_tanh"}) check_linear_chain({true, false, false, act});
}

TEST(GemmFusion, BiasOnTheLeftAndTwoConstantBiasesAreSummed) {
  check_linear_chain({false, true, true, "relu"});
  check_linear_chain({true, true, false, "gelu"});
}

TEST(GemmFusion, MatmulWithConstantWeightAndBiasBecomesLinear) {
  Network net("mm");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {2, 3, K});
  std::vector<float> wv = values(K * N, 5, 0.3), bv = values(N, 6);
  Tensor w = *add_constant(net, "w", {K, N}, wv);
  Tensor b = *add_constant(net, "b", {1, 1, N}, bv);  // broadcast along the last dim
  Tensor y = *net.add(OpKind::kMatmul, {x, w}, {}, "mm");
  y = *net.add(OpKind::kBinary, {y, b}, {{"fn", std::string("add")}}, "bias_add");
  y = *net.add(OpKind::kUnary, {y}, {{"fn", std::string("gelu_tanh")}}, "act");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  Network fused = fuse(net);
  EXPECT_EQ(fused.ops().size(), 1u) << fused.toString();
  const kiln::Op* fc = find_op(fused, OpKind::kLinear);
  ASSERT_NE(fc, nullptr) << fused.toString();
  EXPECT_EQ(fc->attrs.getString("activation", "?"), "gelu_tanh");

  HostTensor in = random_tensor({2, 3, K}, 7);
  DTensor want = matmul_ref(ref::from(in), wv, K, N);
  for (size_t i = 0; i < want.v.size(); ++i) want.v[i] += bv[i % N];
  want = activate(want, "gelu_tanh");
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

TEST(GemmFusion, MatmulOfTwoActivationsTakesTheActivationOnly) {
  Network net("bmm");
  Tensor a = *net.addInput("a", kiln::DType::kFloat32, {2, 4, K});
  Tensor bt = *net.addInput("bt", kiln::DType::kFloat32, {2, N, K});
  // b arrives transposed (a view), as attention scores do.
  Tensor b = *net.add(OpKind::kPermute, {bt}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "bt_t");
  Tensor y = *net.add(OpKind::kMatmul, {a, b}, {}, "bmm");
  y = *net.add(OpKind::kUnary, {y}, {{"fn", std::string("relu")}}, "act");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  Network fused = fuse(net);
  EXPECT_EQ(count_ops(fused, OpKind::kUnary), 0) << fused.toString();
  const kiln::Op* mm = find_op(fused, OpKind::kMatmul);
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->attrs.getString("activation", "?"), "relu");

  HostTensor av = random_tensor({2, 4, K}, 8), bv = random_tensor({2, N, K}, 9);
  DTensor want{{2, 4, N}, std::vector<double>(2 * 4 * N, 0.0)};
  for (int64_t g = 0; g < 2; ++g)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(av.data[(g * 4 + i) * K + k]) * bv.data[(g * N + j) * K + k];
        want.v[(g * 4 + i) * N + j] = std::max(s, 0.0);
      }
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  for (const kiln::StepInfo& s : engine->info().steps)
    EXPECT_TRUE(s.op != "permute" || s.tactic == "view") << "the transpose was copied: " << s.tactic;
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {av, bv}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

// GPT-2's MLP: linear on [B*S, K] rows, viewed back as [B, S, N], then the activation. The
// activation moves into the linear and the reshape follows it.
TEST(GemmFusion, ActivationAfterAReshapeIsTakenIn) {
  Network net("mlp");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 3, K});
  x = *net.add(OpKind::kReshape, {x}, {{"shape", kiln::Shape{batch * 3, K}}}, "rows");
  std::vector<float> wv = values(N * K, 13, 0.3), bv = values(N, 14);
  Tensor w = *add_constant(net, "w", {N, K}, wv);
  Tensor b = *add_constant(net, "b", {N}, bv);
  Tensor y = *net.add(OpKind::kLinear, {x, w, b}, {}, "fc");
  y = *net.add(OpKind::kReshape, {y}, {{"shape", kiln::Shape{batch, 3, N}}}, "view");
  y = *net.add(OpKind::kUnary, {y}, {{"fn", std::string("gelu_tanh")}}, "act");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  Network fused = fuse(net);
  ASSERT_EQ(fused.ops().size(), 3u) << fused.toString();
  EXPECT_EQ(fused.ops()[1].kind, OpKind::kLinear);
  EXPECT_EQ(fused.ops()[1].attrs.getString("activation", "?"), "gelu_tanh");
  EXPECT_EQ(fused.ops()[2].kind, OpKind::kReshape);

  HostTensor in = random_tensor({2, 3, K}, 15);
  DTensor rows = ref::from(in);
  rows.dims = {6, K};
  DTensor want = activate(ref::linear(rows, {{N, K}, {wv.begin(), wv.end()}}, {{N}, {bv.begin(), bv.end()}}),
                          "gelu_tanh");
  want.dims = {2, 3, N};
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

// A reshape that only splits dims aliases a strided input (here a transpose) instead of copying
// it, and the engine computes the same values.
TEST(ViewPlan, ReshapeSplittingAStridedDimIsAView) {
  Network net("split_view");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, 6, 4});
  Tensor t = *net.add(OpKind::kPermute, {x}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "t");  // [b, 4, 6]
  Tensor r = *net.add(OpKind::kReshape, {t}, {{"shape", kiln::Shape{batch, 4, 2, 3}}}, "split");
  Tensor y = *net.add(OpKind::kUnary, {r}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  for (const kiln::StepInfo& s : engine->info().steps)
    EXPECT_TRUE(s.op != "reshape" || s.tactic == "view") << "the split reshape copied: " << s.tactic;
  HostTensor in = random_tensor({3, 6, 4}, 12);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  DTensor want{{3, 4, 2, 3}, std::vector<double>(72)};
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 6; ++j) want.v[(b * 4 + i) * 6 + j] = -in.data[(b * 6 + j) * 4 + i];
  EXPECT_TRUE(all_close(out[0], want, 0, 0));
}

TEST(GemmFusion, NonConstantBiasVectorIsFolded) {
  Network net("dyn_bias");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {3, K});
  Tensor bias = *net.addInput("bias", kiln::DType::kFloat32, {N});
  std::vector<float> wv = values(N * K, 10, 0.3);
  Tensor w = *add_constant(net, "w", {N, K}, wv);
  Tensor y = *net.add(OpKind::kLinear, {x, w}, {}, "fc");
  y = *net.add(OpKind::kBinary, {y, bias}, {{"fn", std::string("add")}}, "bias_add");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  Network fused = fuse(net);
  EXPECT_EQ(fused.ops().size(), 1u) << fused.toString();
  HostTensor in = random_tensor({3, K}, 11), bv = random_tensor({N}, 12);
  DTensor want = ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}}, ref::from(bv));
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in, bv}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

TEST(GemmFusion, IntermediatesWithOtherUsesOrOutputsAreNotFused) {
  // fc's output is also a network output; the add's output feeds two ops.
  Network net("shared");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {3, K});
  std::vector<float> wv = values(N * K, 13, 0.3), bv = values(N, 14);
  Tensor w = *add_constant(net, "w", {N, K}, wv);
  Tensor b = *add_constant(net, "b", {N}, bv);
  Tensor y = *net.add(OpKind::kLinear, {x, w}, {}, "fc");
  Tensor s = *net.add(OpKind::kBinary, {y, b}, {{"fn", std::string("add")}}, "bias_add");
  Tensor r = *net.add(OpKind::kUnary, {s}, {{"fn", std::string("relu")}}, "relu");
  Tensor e = *net.add(OpKind::kUnary, {s}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "fc_out").ok());
  ASSERT_TRUE(net.markOutput(r, "relu_out").ok());
  ASSERT_TRUE(net.markOutput(e, "neg_out").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network fused, kiln::builder::fuse_gemm_epilogues(net, log));
  EXPECT_EQ(fused.ops().size(), net.ops().size()) << fused.toString();
  EXPECT_EQ(find_op(fused, OpKind::kLinear)->attrs.getString("activation", "none"), "none");
  EXPECT_EQ(log.back(), "gemm epilogue fusion: fused 0 matmul/linear epilogues (0 with a bias add, 0 with a residual add, 0 with an activation)");

  // Only the add has other uses: fc + bias fuses, relu stays.
  Network net2("shared2");
  x = *net2.addInput("x", kiln::DType::kFloat32, {3, K});
  w = *add_constant(net2, "w", {N, K}, wv);
  b = *add_constant(net2, "b", {N}, bv);
  y = *net2.add(OpKind::kLinear, {x, w}, {}, "fc");
  s = *net2.add(OpKind::kBinary, {y, b}, {{"fn", std::string("add")}}, "bias_add");
  r = *net2.add(OpKind::kUnary, {s}, {{"fn", std::string("relu")}}, "relu");
  e = *net2.add(OpKind::kUnary, {s}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net2.markOutput(r, "relu_out").ok());
  ASSERT_TRUE(net2.markOutput(e, "neg_out").ok());
  Network fused2 = fuse(net2);
  EXPECT_EQ(count_ops(fused2, OpKind::kBinary), 0) << fused2.toString();
  EXPECT_EQ(count_ops(fused2, OpKind::kUnary), 2) << fused2.toString();
  EXPECT_EQ(find_op(fused2, OpKind::kLinear)->attrs.getString("activation", "none"), "none");

  HostTensor in = random_tensor({3, K}, 15);
  DTensor sum = ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}}, {{N}, {bv.begin(), bv.end()}});
  DTensor neg = sum;
  for (double& v : neg.v) v = -v;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net2));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
  EXPECT_TRUE(all_close(out[0], ref::relu(sum)));
  EXPECT_TRUE(all_close(out[1], neg));
}

TEST(GemmFusion, BiasAlongAnotherDimOrUnsupportedActivationIsNotFused) {
  Network net("col_bias");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {3, K});
  Tensor w = *add_constant(net, "w", {N, K}, values(N * K, 16));
  Tensor b = *add_constant(net, "b", {3, 1}, values(3, 17));  // per row, not per column
  Tensor y = *net.add(OpKind::kLinear, {x, w}, {}, "fc");
  y = *net.add(OpKind::kBinary, {y, b}, {{"fn", std::string("add")}}, "row_add");
  y = *net.add(OpKind::kUnary, {y}, {{"fn", std::string("relu")}}, "relu");
  Tensor z = *net.add(OpKind::kLinear, {x, w}, {}, "fc2");
  z = *net.add(OpKind::kUnary, {z}, {{"fn", std::string("sigmoid")}}, "sigmoid");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  ASSERT_TRUE(net.markOutput(z, "z").ok());
  Network fused = fuse(net);
  EXPECT_EQ(fused.ops().size(), net.ops().size()) << fused.toString();
}

TEST(GemmFusion, HalfPrecisionFusedMatchesReference) {
  for (kiln::DType dt : {kiln::DType::kFloat16, kiln::DType::kBFloat16}) {
    SCOPED_TRACE(kiln::dtype_name(dt));
    Network net("half");
    Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4, K});
    std::vector<float> wv = values(N * K, 18, 0.3), bv = values(N, 19);
    Tensor w = *add_constant(net, "w", {N, K}, wv);
    Tensor b = *add_constant(net, "b", {N}, bv);
    Tensor xh = *net.add(OpKind::kCast, {x}, {{"dtype", dt}}, "to_half");
    Tensor wh = *net.add(OpKind::kCast, {w}, {{"dtype", dt}}, "w_half");
    Tensor bh = *net.add(OpKind::kCast, {b}, {{"dtype", dt}}, "b_half");
    Tensor y = *net.add(OpKind::kLinear, {xh, wh, bh}, {}, "fc");
    y = *net.add(OpKind::kUnary, {y}, {{"fn", std::string("gelu")}}, "gelu");
    y = *net.add(OpKind::kCast, {y}, {{"dtype", kiln::DType::kFloat32}}, "to_float");
    ASSERT_TRUE(net.markOutput(y, "y").ok());
    kiln::BuildReport report;
    KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, {}, &report));
    bool fused_log = false;
    for (const std::string& line : report.pass_log)
      fused_log = fused_log || line.rfind("gemm epilogue fusion: fused 1 ", 0) == 0;
    EXPECT_TRUE(fused_log);
    int units = 0;
    for (const kiln::StepInfo& s : engine->info().steps) units += s.op == "unary" ? 1 : 0;
    EXPECT_EQ(units, 0);
    HostTensor in = random_tensor({4, K}, 20);
    DTensor want = activate(ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}},
                                        {{N}, {bv.begin(), bv.end()}}), "gelu");
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in}));
    EXPECT_TRUE(all_close(out[0], want, 3e-2, 3e-2));
  }
}

TEST(GemmFusion, UnknownActivationIsRejectedByVerification) {
  Network net("bad");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {3, K});
  Tensor w = *add_constant(net, "w", {N, K}, values(N * K, 21));
  auto y = net.add(OpKind::kLinear, {x, w}, {{"activation", std::string("swish")}}, "fc");
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("activation 'swish'"), std::string::npos) << y.status().toString();
}


// ---- Residual adds -----------------------------------------------------------------------

kiln::Op const* only_linear(const Network& net) {
  EXPECT_EQ(count_ops(net, OpKind::kLinear), 1) << net.toString();
  return find_op(net, OpKind::kLinear);
}

// x[batch, K] -> fc (linear w/ bias, or matmul by a constant [K, N] + bias add) -> add(h) -> act.
void check_residual_chain(bool matmul, bool residual_first, const std::string& act) {
  SCOPED_TRACE(kiln::str("matmul ", matmul, " residual first ", residual_first, " act ", act));
  Network net("residual");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 3, 8);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, K});
  Tensor h = *net.addInput("h", kiln::DType::kFloat32, {batch, N});
  std::vector<float> wv = values(N * K, 31, 0.3), bv = values(N, 32);
  Tensor b = *add_constant(net, "b", {N}, bv);
  Tensor y;
  std::vector<float> w_kn(static_cast<size_t>(K * N));  // w^T, [K, N]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) w_kn[k * N + n] = wv[n * K + k];
  if (matmul) {
    y = *net.add(OpKind::kMatmul, {x, *add_constant(net, "w", {K, N}, w_kn)}, {}, "fc");
    y = *net.add(OpKind::kBinary, {y, b}, {{"fn", std::string("add")}}, "bias_add");
  } else {
    y = *net.add(OpKind::kLinear, {x, *add_constant(net, "w", {N, K}, wv), b}, {}, "fc");
  }
  y = *net.add(OpKind::kBinary, residual_first ? std::vector<Tensor>{h, y} : std::vector<Tensor>{y, h},
               {{"fn", std::string("add")}}, "residual_add");
  if (act != "none") y = *net.add(OpKind::kUnary, {y}, {{"fn", act}}, "act");
  ASSERT_TRUE(net.markOutput(y, "y").ok());

  Network fused = fuse(net);
  EXPECT_EQ(fused.ops().size(), 1u) << fused.toString();
  const kiln::Op* fc = only_linear(fused);
  ASSERT_NE(fc, nullptr);
  EXPECT_TRUE(fc->attrs.getBool("residual", false));
  EXPECT_EQ(fc->attrs.getString("activation", "?"), act);
  ASSERT_EQ(fc->inputs.size(), 4u);
  EXPECT_EQ(fused.tensor(fc->inputs[3]).name, "h");

  HostTensor in = random_tensor({5, K}, 33), hin = random_tensor({5, N}, 34);
  DTensor want = activate(ref::add(ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}},
                                               {{N}, {bv.begin(), bv.end()}}),
                                   ref::from(hin)),
                          act);
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in, hin}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

TEST(GemmFusion, ResidualAddBecomesTheLinearsLastInput) {
  for (bool matmul : {false, true})
    for (bool first : {false, true})
      for (const char* act : {"none", "relu", "gelu"}) check_residual_chain(matmul, first, act);
}

// ViT's attention output: linear over [B*S, K] rows, viewed as [B, S, N], plus the residual
// stream [B, S, N]. The residual is viewed as rows for the linear; the view follows it.
TEST(GemmFusion, ResidualAfterAReshapeIsReadAsRows) {
  constexpr int64_t B = 2, S = 3;
  Network net("rows");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {B * S, K});
  Tensor h = *net.addInput("h", kiln::DType::kFloat32, {B, S, N});
  std::vector<float> wv = values(N * K, 41, 0.3), bv = values(N, 42);
  Tensor y = *net.add(OpKind::kLinear, {x, *add_constant(net, "w", {N, K}, wv), *add_constant(net, "b", {N}, bv)},
                      {}, "fc");
  y = *net.add(OpKind::kReshape, {y}, {{"shape", kiln::Shape{B, S, N}}}, "view");
  y = *net.add(OpKind::kBinary, {h, y}, {{"fn", std::string("add")}}, "residual_add");
  ASSERT_TRUE(net.markOutput(y, "y").ok());

  Network fused = fuse(net);
  EXPECT_EQ(count_ops(fused, OpKind::kBinary), 0) << fused.toString();
  EXPECT_EQ(count_ops(fused, OpKind::kReshape), 2) << fused.toString();  // h as rows; the view
  const kiln::Op* fc = only_linear(fused);
  ASSERT_NE(fc, nullptr);
  ASSERT_EQ(fc->inputs.size(), 4u);
  EXPECT_TRUE(kiln::shapes_equal(fused.tensor(fc->inputs[3]).shape, kiln::Shape{B * S, N}));

  HostTensor in = random_tensor({B * S, K}, 43), hin = random_tensor({B, S, N}, 44);
  DTensor lin = ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}}, {{N}, {bv.begin(), bv.end()}});
  lin.dims = {B, S, N};
  DTensor want = ref::add(lin, ref::from(hin));
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in, hin}));
  EXPECT_TRUE(all_close(out[0], want, 1e-4, 1e-5));
}

// Pre-norm block: s = h + fc(x) feeds a layer norm and is an output (the next residual). The
// GEMM writes s; the norm after it reads s alone (no residual, no sum output).
TEST(GemmFusion, PreNormResidualLeavesTheNormOneInput) {
  Network net("prenorm");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 4, 8);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, K});
  Tensor h = *net.addInput("h", kiln::DType::kFloat32, {batch, N});
  std::vector<float> wv = values(N * K, 51, 0.3), bv = values(N, 52), gv = values(N, 53), betav = values(N, 54);
  Tensor s = *net.add(OpKind::kLinear, {x, *add_constant(net, "w", {N, K}, wv), *add_constant(net, "b", {N}, bv)},
                      {}, "fc");
  s = *net.add(OpKind::kBinary, {h, s}, {{"fn", std::string("add")}}, "residual_add");
  Tensor n = *net.add(OpKind::kLayerNorm, {s, *add_constant(net, "g", {N}, gv), *add_constant(net, "beta", {N}, betav)},
                      {{"normalized_ndim", int64_t{1}}, {"eps", 1e-5}}, "ln");
  ASSERT_TRUE(net.markOutput(s, "s").ok());
  ASSERT_TRUE(net.markOutput(n, "n").ok());

  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network fused, kiln::builder::fuse_gemm_epilogues(net, log));
  KILN_ASSERT_OK_AND_ASSIGN(fused, kiln::builder::fuse_residual_norm(fused, log));
  EXPECT_EQ(count_ops(fused, OpKind::kBinary), 0) << fused.toString();
  const kiln::Op* ln = find_op(fused, OpKind::kLayerNorm);
  ASSERT_NE(ln, nullptr);
  EXPECT_FALSE(ln->attrs.getBool("residual", false)) << fused.toString();
  EXPECT_EQ(ln->inputs.size(), 3u);

  HostTensor in = random_tensor({4, K}, 55), hin = random_tensor({4, N}, 56);
  DTensor sum = ref::add(ref::linear(ref::from(in), {{N, K}, {wv.begin(), wv.end()}}, {{N}, {bv.begin(), bv.end()}}),
                         ref::from(hin));
  DTensor norm = ref::layer_norm(sum, {{N}, {gv.begin(), gv.end()}}, {{N}, {betav.begin(), betav.end()}}, 1e-5);
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {in, hin}));
  EXPECT_TRUE(all_close(out[0], sum, 1e-4, 1e-5));
  EXPECT_TRUE(all_close(out[1], norm, 1e-4, 1e-4));
}

// Not a residual: an operand that broadcasts ([1, N], not a constant bias), or y + y.
TEST(GemmFusion, BroadcastOperandOrTheGemmItselfIsNoResidual) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    Network net("not_residual");
    Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4, K});
    Tensor y = *net.add(OpKind::kLinear, {x, *add_constant(net, "w", {N, K}, values(N * K, 61, 0.3))}, {}, "fc");
    Tensor other = y;
    if (variant == 0) other = *net.addInput("h", kiln::DType::kFloat32, {1, N});
    Tensor s = *net.add(OpKind::kBinary, {y, other}, {{"fn", std::string("add")}}, "add");
    ASSERT_TRUE(net.markOutput(s, "s").ok());
    Network fused = fuse(net);
    EXPECT_EQ(count_ops(fused, OpKind::kBinary), 1) << fused.toString();
    EXPECT_FALSE(only_linear(fused)->attrs.getBool("residual", false));
  }
}

// The sum of two linears' results is a residual add for either; the first takes it, the second
// keeps its result for it (both chains claimed the add before, and the rewrite then read the
// first linear's result before anything made it).
TEST(GemmFusion, AnAddOfTwoLinearsIsTheFirstOnesResidual) {
  Network net("two_linears");
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {4, K});
  const std::vector<float> wa = values(N * K, 71, 0.3), wb = values(N * K, 72, 0.3);
  Tensor a = *net.add(OpKind::kLinear, {x, *add_constant(net, "wa", {N, K}, wa)}, {}, "a");
  Tensor b = *net.add(OpKind::kLinear, {x, *add_constant(net, "wb", {N, K}, wb)}, {}, "b");
  Tensor s = *net.add(OpKind::kBinary, {a, b}, {{"fn", std::string("add")}}, "add");
  ASSERT_TRUE(net.markOutput(s, "s").ok());
  Network fused = fuse(net);
  EXPECT_EQ(count_ops(fused, OpKind::kBinary), 0) << fused.toString();
  int residual = 0;
  for (const kiln::Op& op : fused.ops())
    if (op.kind == OpKind::kLinear && op.attrs.getBool("residual", false)) ++residual;
  EXPECT_EQ(residual, 1) << fused.toString();
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor xh = random_tensor({4, K}, 73);
  KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {xh}));
  const DTensor xd = ref::from(xh);
  const DTensor zero{{N}, std::vector<double>(N, 0.0)};
  const DTensor want =
      ref::add(ref::linear(xd, {{N, K}, std::vector<double>(wa.begin(), wa.end())}, zero),
               ref::linear(xd, {{N, K}, std::vector<double>(wb.begin(), wb.end())}, zero));
  EXPECT_TRUE(all_close(y[0], want, 1e-5, 1e-5));
}

}  // namespace
}  // namespace kiln_test
