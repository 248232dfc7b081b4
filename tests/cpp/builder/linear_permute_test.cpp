// Linear on permuted rows: linear(permute(x)) with the last dim kept becomes
// permute(linear(x)), and the engine built from it matches a double-precision linear over the
// permuted input; permutes that move the last dim, and rank-2 inputs, are left alone.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kS = 5, kE = 6, kN = 7;

// x [batch, s, E] -> permute(perm) -> linear(w [N, E], b [N]) -> y (and the permuted view as a
// second output when `view_is_output`).
Network permuted_linear(std::vector<int64_t> perm, bool view_is_output = false, int64_t s = kS) {
  Network net("permuted_linear");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, s, kE});
  Tensor w = *add_constant(net, "w", {kN, kE}, random_tensor({kN * kE}, 3).data);
  Tensor bias = *add_constant(net, "b", {kN}, random_tensor({kN}, 4).data);
  Tensor xt = *net.add(OpKind::kPermute, {x}, {{"perm", perm}}, "transpose");
  Tensor y = *net.add(OpKind::kLinear, {xt, w, bias}, {}, "in_proj");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  if (view_is_output) EXPECT_TRUE(net.markOutput(xt, "xt").ok());
  return net;
}

// y[s, b, n] = bias[n] + sum_e x[b, s, e] w[n, e]: the linear over x transposed to [S, B, E].
DTensor reference(const HostTensor& x) {
  const std::vector<float> w = random_tensor({kN * kE}, 3).data;
  const std::vector<float> bias = random_tensor({kN}, 4).data;
  const int64_t batch = x.dims[0];
  DTensor out{{kS, batch, kN}, std::vector<double>(static_cast<size_t>(kS * batch * kN))};
  for (int64_t s = 0; s < kS; ++s)
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t n = 0; n < kN; ++n) {
        double acc = bias[static_cast<size_t>(n)];
        for (int64_t e = 0; e < kE; ++e)
          acc += static_cast<double>(w[static_cast<size_t>(n * kE + e)]) *
                 x.data[static_cast<size_t>((i * kS + s) * kE + e)];
        out.v[static_cast<size_t>((s * batch + i) * kN + n)] = acc;
      }
  return out;
}

TEST(LinearPermute, TransposedRowsBecomeOneGemmThenAPermuteThatMatchesTheLinear) {
  for (bool view_is_output : {false, true}) {
    SCOPED_TRACE(view_is_output ? "the permuted view is also an output" : "the view feeds the linear only");
    Network net = permuted_linear({1, 0, 2}, view_is_output);
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::move_permutes_after_linear(net, log));
    EXPECT_EQ(log.back(), "linear permutes: 1 linear now read the unpermuted rows (the views follow)");
    ASSERT_EQ(count_ops(out, OpKind::kLinear), 1) << out.toString();
    for (const kiln::Op& op : out.ops())
      if (op.kind == OpKind::kLinear) EXPECT_EQ(op.inputs[0], out.inputs()[0]) << out.toString();

    KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));  // the builder runs the pass
    for (int64_t batch : {1, 3}) {
      HostTensor x = random_tensor({batch, kS, kE}, 10 + batch);
      KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {x}));
      EXPECT_TRUE(all_close(y[0], reference(x), 1e-5, 1e-5)) << "batch " << batch;
    }
  }
}

// ViT's out-projection once attention writes [N, L, H, D]: a [N, H, L, D] view of it, permuted
// to [L, N, H, D] and merged to rows [L*N, E], then the linear's rows viewed back as [L, N, E]
// and transposed to [N, L, E]. The linear reads the attention output's own rows, and nothing
// on the way copies.
TEST(LinearPermute, OutProjectionOverMergedHeadsRunsOnTheRowsAndCopiesNothing) {
  constexpr int64_t L = 5, H = 2, D = 3, E = H * D;
  Network net("out_projection");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, L, H, D});
  Tensor a = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("neg")}}, "attention");
  Tensor heads = *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, "heads");
  Tensor seq = *net.add(OpKind::kPermute, {heads}, {{"perm", std::vector<int64_t>{2, 0, 1, 3}}}, "seq_first");
  Tensor rows = *net.add(OpKind::kReshape, {seq}, {{"shape", kiln::Shape{L * b, E}}}, "rows");
  Tensor w = *add_constant(net, "w", {E, E}, random_tensor({E * E}, 5).data);
  Tensor bias = *add_constant(net, "b", {E}, random_tensor({E}, 6).data);
  Tensor o = *net.add(OpKind::kLinear, {rows, w, bias}, {}, "out_proj");
  Tensor o3 = *net.add(OpKind::kReshape, {o}, {{"shape", kiln::Shape{L, b, E}}}, "unflatten");
  Tensor ot = *net.add(OpKind::kPermute, {o3}, {{"perm", std::vector<int64_t>{1, 0, 2}}}, "batch_first");
  Tensor y = *net.add(OpKind::kUnary, {ot}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "y").ok());

  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::move_permutes_after_linear(net, log));
  EXPECT_EQ(log.back(), "linear permutes: 1 linear now read the unpermuted rows (the views follow)");

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  for (const kiln::StepInfo& s : engine->info().steps)
    if (s.op == "reshape" || s.op == "permute") EXPECT_EQ(s.tactic, "view") << s.name << " copies";
  const std::vector<float> wv = random_tensor({E * E}, 5).data, bv = random_tensor({E}, 6).data;
  for (int64_t batch : {1, 3}) {
    HostTensor in = random_tensor({batch, L, H, D}, 50 + batch);
    KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*engine, {in}));
    // y[n, l, j] = -(b[j] + sum_e w[j, e] * -x[n, l, e])
    DTensor want{{batch, L, E}, std::vector<double>(static_cast<size_t>(batch * L * E))};
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t j = 0; j < E; ++j) {
          double acc = bv[static_cast<size_t>(j)];
          for (int64_t e = 0; e < E; ++e)
            acc -= static_cast<double>(wv[static_cast<size_t>(j * E + e)]) *
                   in.data[static_cast<size_t>((n * L + l) * E + e)];
          want.v[static_cast<size_t>((n * L + l) * E + j)] = -acc;
        }
    EXPECT_TRUE(all_close(got[0], want, 1e-5, 1e-5)) << "batch " << batch;
  }
}

TEST(LinearPermute, PermutesThatMoveTheLastDimStay) {
  std::vector<std::string> log;
  // x [batch, E, E] transposed in its last two dims: the rows themselves change.
  KILN_ASSERT_OK_AND_ASSIGN(Network out,
                            kiln::builder::move_permutes_after_linear(permuted_linear({0, 2, 1}, false, kE), log));
  EXPECT_EQ(log.back(), "linear permutes: 0 linears now read the unpermuted rows (the views follow)");
  for (const kiln::Op& op : out.ops())
    if (op.kind == OpKind::kLinear) EXPECT_NE(op.inputs[0], out.inputs()[0]) << out.toString();
}

}  // namespace
}  // namespace kiln_test
