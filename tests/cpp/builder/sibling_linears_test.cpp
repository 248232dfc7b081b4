// Sibling linears: linears reading one tensor with the same epilogue become one GEMM over their
// stacked weights and a split of its result, and the engine built from it matches a
// double-precision evaluation of the separate linears; a different activation, a residual, a
// result that is a network output, a non-constant weight, a different input and a width that is
// not a multiple of 16 bytes keep a linear apart.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kS = 3, kE = 6;

struct Dense {
  int64_t n;
  uint64_t seed;
  bool bias;
};

// The weight [n, E] and bias [n] (zeros without one) of `d`, as the reference reads them.
DTensor weight_of(const Dense& d) { return ref::from(random_tensor({d.n, kE}, d.seed)); }
DTensor bias_of(const Dense& d) {
  return d.bias ? ref::from(random_tensor({d.n}, d.seed + 100))
                : DTensor{{d.n}, std::vector<double>(static_cast<size_t>(d.n), 0.0)};
}

Tensor add_dense(Network& net, Tensor x, const Dense& d, const std::string& name,
                 kiln::Attrs attrs = {}) {
  Tensor w = *add_constant(net, name + ".w", {d.n, kE}, random_tensor({d.n, kE}, d.seed).data);
  std::vector<Tensor> inputs{x, w};
  if (d.bias)
    inputs.push_back(
        *add_constant(net, name + ".b", {d.n}, random_tensor({d.n}, d.seed + 100).data));
  return *net.add(OpKind::kLinear, std::move(inputs), std::move(attrs), name);
}

// x [batch, S, E] read by q (bias), k (no bias), v (bias, another width): merged; r (relu) alone in
// its epilogue; o, whose result is an output; u, 6 floats wide (24 bytes: its part would start
// misaligned). Outputs: q + k, v * v, r, o, u.
const Dense kQ{4, 1, true}, kK{4, 2, false}, kV{8, 3, true}, kR{3, 4, true}, kO{2, 5, true},
    kU{6, 6, true};

Network siblings() {
  Network net("siblings");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, kS, kE});
  Tensor q = add_dense(net, x, kQ, "q");
  Tensor k = add_dense(net, x, kK, "k");
  Tensor v = add_dense(net, x, kV, "v");
  Tensor r = add_dense(net, x, kR, "r", {{"activation", std::string("relu")}});
  Tensor o = add_dense(net, x, kO, "o");
  Tensor u = add_dense(net, x, kU, "u");
  Tensor uu = *net.add(OpKind::kBinary, {u, u}, {{"fn", std::string("add")}}, "uu");
  Tensor qk = *net.add(OpKind::kBinary, {q, k}, {{"fn", std::string("add")}}, "qk");
  Tensor vv = *net.add(OpKind::kBinary, {v, v}, {{"fn", std::string("mul")}}, "vv");
  EXPECT_TRUE(net.markOutput(qk, "qk").ok());
  EXPECT_TRUE(net.markOutput(vv, "vv").ok());
  EXPECT_TRUE(net.markOutput(r, "r").ok());
  EXPECT_TRUE(net.markOutput(o, "o").ok());
  EXPECT_TRUE(net.markOutput(uu, "uu").ok());
  return net;
}

TEST(SiblingLinears, LinearsOnOneInputBecomeOneGemmAndASplitThatMatchTheLinears) {
  Network net = siblings();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::merge_sibling_linears(net, log));
  EXPECT_EQ(log.back(), "sibling linears: 3 linears reading a shared input merged into 1 GEMM");
  EXPECT_EQ(count_ops(out, OpKind::kLinear), 4) << out.toString();  // q+k+v, r, o, u
  EXPECT_EQ(count_ops(out, OpKind::kSplit), 1) << out.toString();
  bool found = false;
  for (const kiln::Op& op : out.ops()) {
    if (op.kind != OpKind::kLinear || op.name != "q.siblings") continue;
    found = true;
    ASSERT_EQ(op.inputs.size(), 3u) << "k has no bias, so it gets zeros";
    const kiln::TensorInfo& w = out.tensor(op.inputs[1]);
    ASSERT_EQ(w.shape.size(), 2u);
    EXPECT_EQ(w.shape[0].constant(), kQ.n + kK.n + kV.n);
    EXPECT_EQ(w.shape[1].constant(), kE);
    EXPECT_EQ(op.attrs.getString("activation", ""), "none");
  }
  EXPECT_TRUE(found) << out.toString();
  // The split's parts keep the old results' names.
  EXPECT_TRUE(out.findTensor(net.tensor(net.ops()[0].outputs[0]).name).ok());

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));  // the builder runs the pass
  for (int64_t batch : {1, 3}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    HostTensor x = random_tensor({batch, kS, kE}, 20 + static_cast<uint64_t>(batch));
    const DTensor xd = ref::from(x);
    auto dense = [&](const Dense& d) { return ref::linear(xd, weight_of(d), bias_of(d)); };
    DTensor vv = dense(kV);
    for (double& e : vv.v) e *= e;
    KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {x}));
    ASSERT_EQ(y.size(), 5u);
    EXPECT_TRUE(all_close(y[0], ref::add(dense(kQ), dense(kK)), 1e-5, 1e-5)) << "q + k";
    EXPECT_TRUE(all_close(y[1], vv, 1e-5, 1e-5)) << "v * v";
    EXPECT_TRUE(all_close(y[2], ref::relu(dense(kR)), 1e-5, 1e-5)) << "relu(r)";
    EXPECT_TRUE(all_close(y[3], dense(kO), 1e-5, 1e-5)) << "o";
    EXPECT_TRUE(all_close(y[4], ref::add(dense(kU), dense(kU)), 1e-5, 1e-5)) << "u + u";
  }
}

// Two relu linears merge with each other (not with the plain ones); a residual linear, a
// linear on another input and one with a weight that is an input stay apart.
TEST(SiblingLinears, OnlyLinearsThatCanShareOneGemmMerge) {
  Network net("apart");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, kE});
  Tensor x2 = *net.addInput("x2", DType::kFloat32, {b, kE});
  Tensor wi = *net.addInput("w_in", DType::kFloat32, {kE, kE});
  const kiln::Attrs relu{{"activation", std::string("relu")}};
  Tensor a = add_dense(net, x, {8, 1, true}, "a", relu);
  Tensor c = add_dense(net, x, {8, 2, true}, "c", relu);
  Tensor p = add_dense(net, x, {kE, 3, true}, "p");
  Tensor z = add_dense(net, x2, {kE, 4, true}, "z");  // another input
  Tensor w = *add_constant(net, "res.w", {kE, kE}, random_tensor({kE, kE}, 5).data);
  Tensor res = *net.add(OpKind::kLinear, {x, w, z}, {{"residual", true}}, "res");
  Tensor dyn = *net.add(OpKind::kLinear, {x, wi}, {}, "dyn");  // weight is an input
  Tensor s1 = *net.add(OpKind::kBinary, {a, c}, {{"fn", std::string("add")}}, "s1");
  Tensor s2 = *net.add(OpKind::kBinary, {p, res}, {{"fn", std::string("add")}}, "s2");
  Tensor s3 = *net.add(OpKind::kBinary, {s2, dyn}, {{"fn", std::string("add")}}, "s3");
  EXPECT_TRUE(net.markOutput(s1, "s1").ok());
  EXPECT_TRUE(net.markOutput(s3, "s3").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::merge_sibling_linears(net, log));
  EXPECT_EQ(log.back(), "sibling linears: 2 linears reading a shared input merged into 1 GEMM");
  EXPECT_EQ(count_ops(out, OpKind::kLinear), 5) << out.toString();  // a+c, p, z, res, dyn
  for (const kiln::Op& op : out.ops())
    if (op.kind == OpKind::kLinear && op.name == "a.siblings")
      EXPECT_EQ(op.attrs.getString("activation", ""), "relu");

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor xh = random_tensor({3, kE}, 30), x2h = random_tensor({3, kE}, 31),
             wih = random_tensor({kE, kE}, 32);
  KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {xh, x2h, wih}));
  const DTensor xd = ref::from(xh), x2d = ref::from(x2h);
  auto dense = [&](const DTensor& in, const Dense& d) {
    return ref::linear(in, weight_of(d), bias_of(d));
  };
  const DTensor zero{{kE}, std::vector<double>(kE, 0.0)};
  DTensor want_s1 =
      ref::add(ref::relu(dense(xd, {8, 1, true})), ref::relu(dense(xd, {8, 2, true})));
  DTensor res_d = ref::add(ref::linear(xd, ref::from(random_tensor({kE, kE}, 5)), zero),
                           dense(x2d, {kE, 4, true}));
  DTensor want_s3 =
      ref::add(ref::add(dense(xd, {kE, 3, true}), res_d), ref::linear(xd, ref::from(wih), zero));
  EXPECT_TRUE(all_close(y[0], want_s1, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(y[1], want_s3, 1e-5, 1e-5));
}

// KILN_SKIP_PASSES leaves the pass out of a build (the engine is the same function); a pass
// whose absence would break the engine cannot be named.
TEST(SiblingLinears, KilnSkipPassesLeavesThePassOutAndNamesWhatItCannotSkip) {
  struct EnvGuard {
    ~EnvGuard() { unsetenv("KILN_SKIP_PASSES"); }
  } guard;
  Network net = siblings();
  auto has_line = [](const kiln::BuildReport& r, const std::string& line) {
    return std::find(r.pass_log.begin(), r.pass_log.end(), line) != r.pass_log.end();
  };
  setenv("KILN_SKIP_PASSES", "sibling_linears", 1);  // '_' for spaces
  kiln::BuildReport skipped;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, {}, &skipped));
  EXPECT_TRUE(has_line(skipped, "sibling linears: skipped (KILN_SKIP_PASSES)"));
  HostTensor x = random_tensor({2, kS, kE}, 40);
  KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {x}));
  const DTensor xd = ref::from(x);
  EXPECT_TRUE(all_close(y[3], ref::linear(xd, weight_of(kO), bias_of(kO)), 1e-5, 1e-5));

  setenv("KILN_SKIP_PASSES", "sibling linears,output isolation", 1);
  auto refused = build_engine(net);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("KILN_SKIP_PASSES names 'output isolation'"),
            std::string::npos)
      << refused.status().message();

  unsetenv("KILN_SKIP_PASSES");
  kiln::BuildReport merged;
  KILN_ASSERT_OK_AND_ASSIGN(engine, build_engine(net, {}, &merged));
  EXPECT_FALSE(has_line(merged, "sibling linears: skipped (KILN_SKIP_PASSES)"));
}

}  // namespace
}  // namespace kiln_test
