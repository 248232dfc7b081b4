// Sequence-major attention output: attention read only through permutes that keep the last dim
// (HF's transpose(1, 2) before the heads' merge, ViT's permute(2, 0, 1, 3)) writes [N, L, H, D]
// and its readers permute that; the heads' merge then runs as views in both engines. The engines
// match a double-precision attention + linear written here; attention read by anything else, or
// that is an output, is left alone.

#include <gtest/gtest.h>

#include <cmath>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kH = 3, kL = 5, kD = 4, kE = kH * kD, kN = 7;

enum class Merge { kHf, kVit };

// q, k, v [batch, H, L, D] and BERT's additive mask [batch, 1, 1, L] -> attention -> HF:
// permute(0, 2, 1, 3) -> reshape [batch, L, E] -> linear(w [N, E], b [N]) -> y; ViT
// (torchvision's batch-first MultiheadAttention): permute(2, 0, 1, 3) -> reshape [L * batch, E]
// -> linear -> reshape [L, batch, N] -> transpose(0, 1) -> y. y is [batch, L, N] either way.
Network merged_heads(Merge merge) {
  Network net(merge == Merge::kHf ? "hf" : "vit");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor q = *net.addInput("q", DType::kFloat32, {b, kH, kL, kD});
  Tensor k = *net.addInput("k", DType::kFloat32, {b, kH, kL, kD});
  Tensor v = *net.addInput("v", DType::kFloat32, {b, kH, kL, kD});
  Tensor mask = *net.addInput("mask", DType::kFloat32, {b, 1, 1, kL});
  Tensor w = *add_constant(net, "w", {kN, kE}, random_tensor({kN * kE}, 3).data);
  Tensor bias = *add_constant(net, "b", {kN}, random_tensor({kN}, 4).data);
  Tensor a = *net.add(OpKind::kAttention, {q, k, v, mask}, {}, "attn");
  Tensor rows;
  if (merge == Merge::kHf) {
    Tensor t =
        *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, "transpose");
    rows = *net.add(OpKind::kReshape, {t}, {{"shape", kiln::Shape{b, kL, kE}}}, "merge");
  } else {
    Tensor t =
        *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{2, 0, 1, 3}}}, "permute");
    rows = *net.add(OpKind::kReshape, {t}, {{"shape", kiln::Shape{kL * b, kE}}}, "merge");
  }
  Tensor y = *net.add(OpKind::kLinear, {rows, w, bias}, {}, "out_proj");
  if (merge == Merge::kVit) {
    Tensor seq = *net.add(OpKind::kReshape, {y}, {{"shape", kiln::Shape{kL, b, kN}}}, "unflatten");
    y = *net.add(OpKind::kPermute, {seq}, {{"perm", std::vector<int64_t>{1, 0, 2}}}, "batch_first");
  }
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  return net;
}

// Attention per (n, h, i) in double, the heads merged into row (n, i), then the linear.
DTensor reference(const HostTensor& q, const HostTensor& k, const HostTensor& v,
                  const HostTensor& mask) {
  const int64_t batch = q.dims[0];
  auto at = [](const HostTensor& t, int64_t n, int64_t h, int64_t l, int64_t d) {
    return static_cast<double>(t.data[static_cast<size_t>(((n * kH + h) * kL + l) * kD + d)]);
  };
  std::vector<double> merged(static_cast<size_t>(batch * kL * kE));  // [batch, L, E]
  const double scale = 1.0 / std::sqrt(static_cast<double>(kD));
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t h = 0; h < kH; ++h)
      for (int64_t i = 0; i < kL; ++i) {
        std::vector<double> p(kL);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < kL; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < kD; ++d) dot += at(q, n, h, i, d) * at(k, n, h, j, d);
          p[static_cast<size_t>(j)] = dot * scale + mask.data[static_cast<size_t>(n * kL + j)];
          mx = std::max(mx, p[static_cast<size_t>(j)]);
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t d = 0; d < kD; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < kL; ++j) acc += p[static_cast<size_t>(j)] * at(v, n, h, j, d);
          merged[static_cast<size_t>((n * kL + i) * kE + h * kD + d)] = acc / sum;
        }
      }
  const std::vector<float> w = random_tensor({kN * kE}, 3).data;
  const std::vector<float> bias = random_tensor({kN}, 4).data;
  DTensor out{{batch, kL, kN}, std::vector<double>(static_cast<size_t>(batch * kL * kN))};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t i = 0; i < kL; ++i) {
      const int64_t row = n * kL + i;
      for (int64_t o = 0; o < kN; ++o) {
        double acc = bias[static_cast<size_t>(o)];
        for (int64_t e = 0; e < kE; ++e)
          acc += static_cast<double>(w[static_cast<size_t>(o * kE + e)]) *
                 merged[static_cast<size_t>((n * kL + i) * kE + e)];
        out.v[static_cast<size_t>(row * kN + o)] = acc;
      }
    }
  return out;
}

const kiln::Op* find_op(const Network& net, OpKind kind) {
  for (const kiln::Op& op : net.ops())
    if (op.kind == kind) return &op;
  return nullptr;
}

// The CPU engine of `net`: attention writes sequence-major output, no reshape/permute step
// copies, and the results match the reference.
void expect_engine_matches(const Network& net) {
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));  // the CPU builder runs the pass
  bool seq_major = false;
  for (const kiln::StepInfo& s : engine->info().steps) {
    if (s.op == "attention") seq_major = s.attrs.find("seq_major_out=true") != std::string::npos;
    if (s.op == "reshape" || s.op == "permute") {
      EXPECT_EQ(s.tactic, "view") << s.name << " copies";
    }
  }
  EXPECT_TRUE(seq_major) << "the engine's attention does not write sequence-major output";
  for (int64_t batch : {1, 3}) {
    HostTensor q = random_tensor({batch, kH, kL, kD}, 10 + batch);
    HostTensor k = random_tensor({batch, kH, kL, kD}, 20 + batch);
    HostTensor v = random_tensor({batch, kH, kL, kD}, 30 + batch);
    HostTensor mask = random_tensor({batch, 1, 1, kL}, 40 + batch, -2.0, 0.0);
    KILN_ASSERT_OK_AND_ASSIGN(auto y, run_engine(*engine, {q, k, v, mask}));
    EXPECT_TRUE(all_close(y[0], reference(q, k, v, mask), 1e-4, 1e-5)) << "batch " << batch;
  }
}

// The pass run on `net`, which must turn its one attention sequence-major.
Network rewritten(const Network& net) {
  std::vector<std::string> log;
  auto out = kiln::builder::attention_seq_major_out(net, log);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  if (!out.ok()) return Network("failed");
  EXPECT_EQ(log.back(), "attention layout: 1 attention op writes sequence-major output");
  const kiln::Op* attn = find_op(*out, OpKind::kAttention);
  EXPECT_TRUE(attn && attn->attrs.getBool("seq_major_out", false)) << out->toString();
  return std::move(out).value();
}

TEST(AttentionLayout, HfTransposeBecomesAViewOfSequenceMajorOutput) {
  Network net = merged_heads(Merge::kHf);
  Network out = rewritten(net);
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 0) << out.toString();  // swap o swap = identity
  expect_engine_matches(net);
}

TEST(AttentionLayout, VitPermuteIsComposedWithTheSwap) {
  Network net = merged_heads(Merge::kVit);
  Network out = rewritten(net);
  const kiln::Op* attn = find_op(out, OpKind::kAttention);
  ASSERT_NE(attn, nullptr) << out.toString();
  // [N, L, H, D] -> [L, N, H, D]: one permute. In the engine the linear then reads the attention
  // output's rows (linear permutes) and the views after it fold: no copy is left.
  const kiln::Op* perm = find_op(out, OpKind::kPermute);
  ASSERT_NE(perm, nullptr) << out.toString();
  EXPECT_EQ(perm->name, "permute") << out.toString();
  EXPECT_EQ(perm->inputs[0], attn->outputs[0]) << out.toString();
  EXPECT_EQ(perm->attrs.getInts("perm", {}), (std::vector<int64_t>{1, 0, 2, 3}));
  EXPECT_EQ(count_ops(out, OpKind::kPermute), 2) << out.toString();  // and batch_first
  expect_engine_matches(net);
}

// attn -> permute(0, 2, 1, 3) -> neg, plus a second reader or output given by `extra`.
enum class Extra { kNonPermuteReader, kOutput, kLastDimMoved };
Network attention_with(Extra extra) {
  Network net("extra");
  Tensor q = *net.addInput("q", DType::kFloat32, {2, kH, kL, kD});
  Tensor a = *net.add(OpKind::kAttention, {q, q, q}, {}, "attn");
  Tensor t =
      *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}, "transpose");
  Tensor y = *net.add(OpKind::kUnary, {t}, {{"fn", std::string("neg")}}, "neg");
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  if (extra == Extra::kNonPermuteReader) {
    Tensor z = *net.add(OpKind::kUnary, {a}, {{"fn", std::string("exp")}}, "exp");
    EXPECT_TRUE(net.markOutput(z, "z").ok());
  } else if (extra == Extra::kOutput) {
    EXPECT_TRUE(net.markOutput(a, "attn_out").ok());
  } else {
    Tensor u =
        *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}}, "t_last");
    EXPECT_TRUE(net.markOutput(u, "u").ok());
  }
  return net;
}

TEST(AttentionLayout, AttentionReadOtherwiseOrAnOutputIsLeftAlone) {
  for (Extra extra : {Extra::kNonPermuteReader, Extra::kOutput, Extra::kLastDimMoved}) {
    SCOPED_TRACE(static_cast<int>(extra));
    Network net = attention_with(extra);
    std::vector<std::string> log;
    KILN_ASSERT_OK_AND_ASSIGN(Network out, kiln::builder::attention_seq_major_out(net, log));
    EXPECT_EQ(log.back(), "attention layout: 0 attention ops write sequence-major output");
    const kiln::Op* attn = find_op(out, OpKind::kAttention);
    ASSERT_NE(attn, nullptr);
    EXPECT_FALSE(attn->attrs.has("seq_major_out")) << out.toString();
    EXPECT_EQ(count_ops(out, OpKind::kPermute), count_ops(net, OpKind::kPermute));
  }
}

}  // namespace
}  // namespace kiln_test
