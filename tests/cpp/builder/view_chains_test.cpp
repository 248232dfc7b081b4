// View-chain folding: nn.MultiheadAttention's head split (view merging N with H, transpose,
// view splitting them again) becomes a split + one permute that the plan runs as views, and the
// engine matches an index-by-index reference; chains that end in a merge, or are already short,
// stay as they are.

#include <gtest/gtest.h>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kL = 5, kH = 2, kD = 3, kE = kH * kD;

// q [L, batch, E] (a select of a permuted projection in MHA; an input here) -> view
// [L, batch*H, D] -> transpose(0, 1) -> view [batch, H, L, D] -> neg.
Network head_split(bool middle_is_output = false) {
  Network net("head_split");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor q = *net.addInput("q", DType::kFloat32, {kL, b, kE});
  Tensor merged = *net.add(OpKind::kReshape, {q}, {{"shape", kiln::Shape{kL, b * kH, kD}}}, "view_heads");
  Tensor t = *net.add(OpKind::kPermute, {merged}, {{"perm", std::vector<int64_t>{1, 0, 2}}}, "transpose");
  Tensor split = *net.add(OpKind::kReshape, {t}, {{"shape", kiln::Shape{b, kH, kL, kD}}}, "view_batch");
  Tensor y = *net.add(OpKind::kUnary, {split}, {{"fn", std::string("neg")}}, "neg");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  if (middle_is_output) EXPECT_TRUE(net.markOutput(t, "t").ok());
  return net;
}

// y[n, h, l, d] = -q[l, n, h*D + d]
DTensor head_split_reference(const HostTensor& q) {
  const int64_t batch = q.dims[1];
  DTensor out{{batch, kH, kL, kD}, std::vector<double>(static_cast<size_t>(batch * kE * kL))};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t h = 0; h < kH; ++h)
      for (int64_t l = 0; l < kL; ++l)
        for (int64_t d = 0; d < kD; ++d)
          out.v[static_cast<size_t>(((n * kH + h) * kL + l) * kD + d)] =
              -q.data[static_cast<size_t>((l * batch + n) * kE + h * kD + d)];
  return out;
}

TEST(ViewChains, HeadSplitBecomesASplitAndOnePermuteThatAreViews) {
  Network net = head_split();
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(net, log));
  EXPECT_EQ(log.back(), "view chains: 1 chain of views folded into split + permute (1 op fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kReshape), 1) << out.toString();
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 1) << out.toString();

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));  // the builder runs the pass
  for (const kiln::StepInfo& s : engine->info().steps)
    if (s.op == "reshape" || s.op == "permute") EXPECT_EQ(s.tactic, "view") << s.name << " is not a view";
  for (int64_t batch : {1, 3}) {
    HostTensor q = random_tensor({kL, batch, kE}, 20 + batch);
    KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {q}));
    EXPECT_TRUE(all_close(y[0], head_split_reference(q), 0, 0)) << "batch " << batch;
  }
}

TEST(ViewChains, AViewReadElsewhereEndsTheChain) {
  // The transpose is also an output: the chain is cut there, and neither half gets shorter.
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(head_split(true), log));
  EXPECT_EQ(log.back(), "view chains: 0 chains of views folded into split + permute (0 ops fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kReshape), 2) << out.toString();
}

TEST(ViewChains, ChainsEndingInAMergeStay) {
  // Attention's output path: [batch, H, L, D] -> permute to [L, batch, H, D] -> squeeze-free
  // reshape merging H and D, then L and batch: a merge is left, so nothing changes.
  Network net("merge");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor o = *net.addInput("o", DType::kFloat32, {b, kH, kL, kD});
  Tensor p = *net.add(OpKind::kPermute, {o}, {{"perm", std::vector<int64_t>{2, 0, 1, 3}}}, "permute");
  Tensor r = *net.add(OpKind::kReshape, {p}, {{"shape", kiln::Shape{kL * b, kE}}}, "rows");
  Tensor y = *net.add(OpKind::kUnary, {r}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(net, log));
  EXPECT_EQ(log.back(), "view chains: 0 chains of views folded into split + permute (0 ops fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 1);
  EXPECT_EQ(count_ops(out, OpKind::kReshape), 1);
}

// [N, L, H, D] made by an op (contiguous) -> transpose(1, 2) -> transpose(1, 2) -> reshape
// [N, L, H*D]: what HF attention's output path becomes once attention writes sequence-major.
// H and D are adjacent in the contiguous input, so the merge is one reshape of it: a view.
Network transposed_back_and_merged(bool from_input) {
  Network net("merge_heads");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {b, kL, kH, kD});
  Tensor a = from_input ? x : *net.add(OpKind::kUnary, {x}, {{"fn", std::string("neg")}}, "attention");
  std::vector<int64_t> swap{0, 2, 1, 3};
  Tensor t1 = *net.add(OpKind::kPermute, {a}, {{"perm", swap}}, "to_heads");
  Tensor t2 = *net.add(OpKind::kPermute, {t1}, {{"perm", swap}}, "transpose");
  Tensor r = *net.add(OpKind::kReshape, {t2}, {{"shape", kiln::Shape{b, kL, kE}}}, "merge_heads");
  Tensor y = *net.add(OpKind::kUnary, {r}, {{"fn", std::string("neg")}}, "neg");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  return net;
}

TEST(ViewChains, AdjacentDimsOfAContiguousTensorMergeInTheFirstReshape) {
  Network net = transposed_back_and_merged(false);
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(net, log));
  EXPECT_EQ(log.back(), "view chains: 1 chain of views folded into split + permute (2 ops fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kReshape), 1) << out.toString();
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 0) << out.toString();

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  for (const kiln::StepInfo& s : engine->info().steps)
    if (s.op == "reshape" || s.op == "permute") EXPECT_EQ(s.tactic, "view") << s.name << " is not a view";
  for (int64_t batch : {1, 3}) {
    HostTensor x = random_tensor({batch, kL, kH, kD}, 40 + batch);
    KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {x}));
    DTensor want{{batch, kL, kE}, std::vector<double>(x.data.begin(), x.data.end())};  // neg twice
    EXPECT_TRUE(all_close(y[0], want, 0, 0)) << "batch " << batch;
  }
}

TEST(ViewChains, MergesOfAnInputStay) {
  // An engine input may be laid out any way the caller's tensor is: the merge is not folded.
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(transposed_back_and_merged(true), log));
  EXPECT_EQ(log.back(), "view chains: 0 chains of views folded into split + permute (0 ops fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 2) << out.toString();
}

TEST(ViewChains, PermutesAndUnsqueezesCollapseAndMatch) {
  // x [2, 6, batch] -> unsqueeze -> [2, 1, 6, batch] -> permute(3, 1, 0, 2) -> [batch, 1, 2, 6]
  // -> reshape [batch, 1, 2, 2, 3] -> permute(0, 1, 2, 4, 3) -> [batch, 1, 2, 3, 2]: two permutes
  // and a reshape that only splits, so one split, one permute and one unsqueeze remain.
  Network net("collapse");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", DType::kFloat32, {2, 6, b});
  Tensor u = *net.add(OpKind::kUnsqueeze, {x}, {{"dim", int64_t{1}}}, "unsqueeze");
  Tensor p1 = *net.add(OpKind::kPermute, {u}, {{"perm", std::vector<int64_t>{3, 1, 0, 2}}}, "p1");
  Tensor r = *net.add(OpKind::kReshape, {p1}, {{"shape", kiln::Shape{b, 1, 2, 2, 3}}}, "split");
  Tensor p2 = *net.add(OpKind::kPermute, {r}, {{"perm", std::vector<int64_t>{0, 1, 2, 4, 3}}}, "p2");
  Tensor y = *net.add(OpKind::kUnary, {p2}, {{"fn", std::string("neg")}}, "neg");
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::fold_view_chains(net, log));
  EXPECT_EQ(log.back(), "view chains: 1 chain of views folded into split + permute (1 op fewer)");
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 1) << out.toString();

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  for (int64_t batch : {1, 4}) {
    HostTensor in = random_tensor({2, 6, batch}, 30 + batch);
    KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*engine, {in}));
    // y[n, 0, a, k, j] = -x[a, j*3 + k, n]
    DTensor want{{batch, 1, 2, 3, 2}, std::vector<double>(static_cast<size_t>(12 * batch))};
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t k = 0; k < 3; ++k)
          for (int64_t j = 0; j < 2; ++j)
            want.v[static_cast<size_t>(((n * 2 + a) * 3 + k) * 2 + j)] =
                -in.data[static_cast<size_t>((a * 6 + j * 3 + k) * batch + n)];
    EXPECT_TRUE(all_close(got[0], want, 0, 0)) << "batch " << batch;
  }
}

}  // namespace
}  // namespace kiln_test
