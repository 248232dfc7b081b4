// Attention fusion: HF-eager-style unfused attention (matmul, scale, mask add, softmax, matmul)
// becomes one attention op whose results match a double-precision reference and the unfused
// network run through the CPU backend; chains that must not fuse stay as they are.

#include <gtest/gtest.h>

#include <cmath>

#include "builder/passes/passes.h"
#include "ir/half.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::DType;
using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kL = 6, kH = 2, kE = 4;

int count_steps(const kiln::EngineInfo& info, const std::string& op) {
  int n = 0;
  for (const kiln::StepInfo& s : info.steps) n += s.op == op;
  return n;
}

enum class Scale { kNone, kMul, kMulLeft, kDiv };

struct Chain {
  Scale scale = Scale::kMul;
  double c = 0.4;            // the constant multiplied or divided by
  bool mask = true;          // input "mask" [batch, 1, 1, L], float, added
  bool mask_left = false;    // mask + scores
  bool k_as_kt = false;      // the key input is fed already transposed (no permute to strip)
  bool half = false;         // f16 chain, softmax in float32 between casts (HF's upcast)
  bool softmax_out = false;  // the probabilities are a network output too
  int64_t softmax_dim = -1;
  bool scale_from_input = false;  // multiply by an input tensor instead of a constant
};

kiln::Result<Tensor> scalar(Network& net, const std::string& name, double value, DType dt) {
  if (dt == DType::kFloat16) {
    uint16_t h = kiln::float_to_half(static_cast<float>(value));
    return net.addConstant(name, dt, std::vector<int64_t>{}, std::as_bytes(std::span(&h, 1)));
  }
  float f = static_cast<float>(value);
  return net.addConstant(name, dt, std::vector<int64_t>{}, std::as_bytes(std::span(&f, 1)));
}

// Inputs q, k, v: [batch, L, H*E] viewed as heads [batch, H, L, E] (HF's view + transpose);
// mask [batch, 1, 1, L]. Output "y": [batch, H, L, E].
Network make_chain(const Chain& o) {
  Network net("attn");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  const DType dt = o.half ? DType::kFloat16 : DType::kFloat32;
  auto heads = [&](Tensor x, bool transposed) {
    Tensor r = *net.add(OpKind::kReshape, {x}, {{"shape", kiln::Shape{b, kL, kH, kE}}});
    std::vector<int64_t> perm =
        transposed ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3};
    Tensor h = *net.add(OpKind::kPermute, {r}, {{"perm", perm}});
    return o.half ? *net.add(OpKind::kCast, {h}, {{"dtype", dt}}) : h;
  };
  Tensor q = heads(*net.addInput("q", DType::kFloat32, {b, kL, kH * kE}), false);
  Tensor k_in = *net.addInput("k", DType::kFloat32, {b, kL, kH * kE});
  Tensor v = heads(*net.addInput("v", DType::kFloat32, {b, kL, kH * kE}), false);
  Tensor mask;
  if (o.mask) {
    mask = *net.addInput("mask", DType::kFloat32, {b, 1, 1, kL});
    if (o.half) mask = *net.add(OpKind::kCast, {mask}, {{"dtype", dt}});
  }
  Tensor scale_in;
  if (o.scale_from_input) scale_in = *net.addInput("scale", DType::kFloat32, {1});
  Tensor kt = o.k_as_kt ? heads(k_in, true)
                        : *net.add(OpKind::kPermute, {heads(k_in, false)},
                                   {{"perm", std::vector<int64_t>{0, 1, 3, 2}}});
  Tensor s = *net.add(OpKind::kMatmul, {q, kt}, {}, "scores");
  auto bin = [&](const char* fn, Tensor a, Tensor c) {
    return *net.add(OpKind::kBinary, {a, c}, {{"fn", std::string(fn)}});
  };
  if (o.scale_from_input) {
    s = bin("mul", s, scale_in);
  } else if (o.scale != Scale::kNone) {
    Tensor c = *scalar(net, "scale_c", o.c, dt);
    s = o.scale == Scale::kMul       ? bin("mul", s, c)
        : o.scale == Scale::kMulLeft ? bin("mul", c, s)
                                     : bin("div", s, c);
  }
  if (o.mask) s = o.mask_left ? bin("add", mask, s) : bin("add", s, mask);
  if (o.half) s = *net.add(OpKind::kCast, {s}, {{"dtype", DType::kFloat32}});
  Tensor p = *net.add(OpKind::kSoftmax, {s}, {{"dim", o.softmax_dim}}, "probs");
  Tensor pv = o.half ? *net.add(OpKind::kCast, {p}, {{"dtype", dt}}) : p;
  Tensor y = *net.add(OpKind::kMatmul, {pv, v}, {}, "context");
  if (o.half) y = *net.add(OpKind::kCast, {y}, {{"dtype", DType::kFloat32}});
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  if (o.softmax_out) {
    EXPECT_TRUE(net.markOutput(p, "probs_out").ok());
  }
  return net;
}

// softmax over keys (or over queries, softmax_dim 2) of the chain's scores, times v.
DTensor reference(const Chain& o, const std::vector<HostTensor>& in) {
  const HostTensor &q = in[0], &k = in[1], &v = in[2];
  const int64_t B = q.dims[0];
  const double c = o.scale_from_input        ? in.back().data[0]
                   : o.scale == Scale::kNone ? 1.0
                   : o.scale == Scale::kDiv  ? 1.0 / o.c
                                             : o.c;
  auto at = [&](const HostTensor& t, int64_t b, int64_t l, int64_t h, int64_t e) {
    return static_cast<double>(t.data[static_cast<size_t>(((b * kL + l) * kH + h) * kE + e)]);
  };
  DTensor out{{B, kH, kL, kE}, std::vector<double>(static_cast<size_t>(B * kH * kL * kE), 0.0)};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < kH; ++h) {
      std::vector<double> s(static_cast<size_t>(kL * kL));
      for (int64_t i = 0; i < kL; ++i)
        for (int64_t j = 0; j < kL; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < kE; ++e) dot += at(q, b, i, h, e) * at(k, b, j, h, e);
          s[i * kL + j] = dot * c + (o.mask ? in[3].data[static_cast<size_t>(b * kL + j)] : 0.0);
        }
      // Normalize along keys (dim -1) or along queries (dim 2).
      const bool keys = o.softmax_dim == -1 || o.softmax_dim == 3;
      for (int64_t a = 0; a < kL; ++a) {
        auto idx = [&](int64_t x) { return keys ? a * kL + x : x * kL + a; };
        double mx = -INFINITY, sum = 0;
        for (int64_t x = 0; x < kL; ++x) mx = std::max(mx, s[idx(x)]);
        for (int64_t x = 0; x < kL; ++x) sum += (s[idx(x)] = std::exp(s[idx(x)] - mx));
        for (int64_t x = 0; x < kL; ++x) s[idx(x)] /= sum;
      }
      for (int64_t i = 0; i < kL; ++i)
        for (int64_t e = 0; e < kE; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < kL; ++j) acc += s[i * kL + j] * at(v, b, j, h, e);
          out.v[static_cast<size_t>(((b * kH + h) * kL + i) * kE + e)] = acc;
        }
    }
  return out;
}

std::vector<HostTensor> inputs_for(const Chain& o, int64_t batch, uint64_t seed) {
  std::vector<HostTensor> in;
  for (int i = 0; i < 3; ++i) in.push_back(random_tensor({batch, kL, kH * kE}, seed + i, -1, 1));
  if (o.mask) {
    HostTensor m = random_tensor({batch, 1, 1, kL}, seed + 3, -1, 1);
    m.data[1] = -1e4f;  // a padded key, as HF's extended attention mask writes it
    in.push_back(m);
  }
  if (o.scale_from_input) in.push_back({{1}, {0.3f}});
  return in;
}

// Runs the pass alone and counts attention ops, then builds and runs the network on the CPU and
// checks it against the reference and against the same chain kept unfused (the probabilities
// made an output too, which forbids the fusion).
void check_chain(const Chain& o, bool expect_fused) {
  Network net = make_chain(o);
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network fused, kiln::builder::fuse_attention(net, log));
  EXPECT_EQ(count_ops(fused, OpKind::kAttention), expect_fused ? 1 : 0) << fused.toString();
  EXPECT_EQ(count_ops(fused, OpKind::kSoftmax), expect_fused ? 0 : 1) << fused.toString();
  EXPECT_EQ(log.back(), expect_fused ? "attention fusion: fused 1 attention pattern"
                                     : "attention fusion: fused 0 attention patterns");

  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(count_steps(engine->info(), "attention"), expect_fused ? 1 : 0);
  std::vector<HostTensor> in = inputs_for(o, 3, 17);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, in));
  const double tol = o.half ? 1e-2 : 1e-5;
  const DTensor want = reference(o, in);
  EXPECT_TRUE(all_close(out[0], want, tol, tol));

  if (!o.softmax_out) {
    Chain unfused_chain = o;
    unfused_chain.softmax_out = true;
    KILN_ASSERT_OK_AND_ASSIGN(auto unfused, build_engine(make_chain(unfused_chain)));
    EXPECT_EQ(count_steps(unfused->info(), "attention"), 0);
    KILN_ASSERT_OK_AND_ASSIGN(auto ref_out, run_engine(*unfused, in));
    EXPECT_TRUE(all_close(out[0], ref::from(ref_out[0]), tol, tol));
  }
}

TEST(AttentionFusion, HfEagerChainBecomesOneAttentionOp) { check_chain({}, true); }

TEST(AttentionFusion, ScaleAndMaskOperandOrderAndDivision) {
  {
    SCOPED_TRACE("c * scores, mask + scores");
    check_chain({.scale = Scale::kMulLeft, .mask_left = true}, true);
  }
  {
    SCOPED_TRACE("scores / c");
    check_chain({.scale = Scale::kDiv, .c = 2.5}, true);
  }
  {
    SCOPED_TRACE("no scale, no mask");
    check_chain({.scale = Scale::kNone, .mask = false}, true);
  }
}

TEST(AttentionFusion, KeyFedTransposedGetsAPermute) {
  Chain o{.k_as_kt = true};
  check_chain(o, true);
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network fused, kiln::builder::fuse_attention(make_chain(o), log));
  for (const kiln::Op& op : fused.ops())
    if (op.kind == OpKind::kAttention) {
      const kiln::Shape& k = fused.tensor(op.inputs[1]).shape;
      ASSERT_EQ(k.size(), 4u);
      EXPECT_TRUE(k[2].equals(kiln::SymExpr(kL)) && k[3].equals(kiln::SymExpr(kE)))
          << kiln::shape_str(k);
    }
}

TEST(AttentionFusion, HalfChainWithFloat32SoftmaxFuses) { check_chain({.half = true}, true); }

TEST(AttentionFusion, ProbabilitiesUsedElsewhereAreNotFused) {
  check_chain({.softmax_out = true}, false);
}

TEST(AttentionFusion, SoftmaxOverQueriesIsNotFused) {
  // No mask: its -1e4 column would be added along the normalized dim, where it cancels only
  // up to float32 rounding of the large sums.
  check_chain({.mask = false, .softmax_dim = 2}, false);
}

TEST(AttentionFusion, ScaleThatIsNotAConstantIsNotFused) {
  check_chain({.scale_from_input = true}, false);
}

TEST(AttentionFusion, MaskThatWidensTheScoresIsNotFused) {
  // scores [H, L, L] (no batch dim) + mask [batch, H, L, L]: the add broadcasts the scores up,
  // which the attention op (batch dims from q, k, v) cannot express.
  Network net("widen");
  kiln::SymExpr b = *net.addSymbol("batch", 1, 2, 4);
  Tensor q = *net.addInput("q", DType::kFloat32, {kH, kL, kE});
  Tensor k = *net.addInput("k", DType::kFloat32, {kH, kL, kE});
  Tensor v = *net.addInput("v", DType::kFloat32, {kH, kL, kE});
  Tensor m = *net.addInput("mask", DType::kFloat32, {b, kH, kL, kL});
  Tensor kt = *net.add(OpKind::kPermute, {k}, {{"perm", std::vector<int64_t>{0, 2, 1}}});
  Tensor s = *net.add(OpKind::kMatmul, {q, kt});
  s = *net.add(OpKind::kBinary, {s, m}, {{"fn", std::string("add")}});
  Tensor p = *net.add(OpKind::kSoftmax, {s}, {{"dim", int64_t{-1}}});
  Tensor y = *net.add(OpKind::kMatmul, {p, v});
  ASSERT_TRUE(net.markOutput(y, "y").ok());
  std::vector<std::string> log;
  KILN_ASSERT_OK_AND_ASSIGN(Network fused, kiln::builder::fuse_attention(net, log));
  EXPECT_EQ(count_ops(fused, OpKind::kAttention), 0) << fused.toString();
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  EXPECT_EQ(count_steps(engine->info(), "attention"), 0);
}

}  // namespace
}  // namespace kiln_test
