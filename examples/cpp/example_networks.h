#pragma once

// Three small networks built through Kiln's public C++ API, with deterministic random weights:
// an MLP, a conv net with batch norm and residual blocks, and a transformer encoder block. Each
// has one dynamic batch dim ("batch") and float32 inputs and outputs. The weights are also
// returned by name so that tests can evaluate the same model independently.

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.h"

namespace kiln_examples {

// A constant as the network holds it (row-major float32).
struct Weight {
  std::vector<int64_t> dims;
  std::vector<float> values;
};

struct ExampleNetwork {
  kiln::Network network;
  std::map<std::string, Weight> weights;  // by constant name
};

struct ExampleOptions {
  int64_t batch_min = 1;
  int64_t batch_opt = 4;
  int64_t batch_max = 8;
  uint64_t seed = 1;
};

// Architecture constants, shared with the reference evaluator in tests/cpp/model_util.h.
namespace mlp {
inline constexpr int64_t kIn = 16, kHidden = 32, kOut = 10;
}
namespace convnet {
inline constexpr int64_t kInC = 3, kInHW = 32;  // input [batch, 3, 32, 32]
inline constexpr int64_t kC1 = 8, kC2 = 16;     // channels before / after the strided conv
inline constexpr int64_t kPoolOut = 3;          // adaptive avg pool to 3x3 (uneven bins of 8)
inline constexpr int64_t kClasses = 10;
inline constexpr double kBnEps = 1e-5;
}  // namespace convnet
namespace transformer {
inline constexpr int64_t kSeq = 8, kModel = 32, kHeads = 4, kHeadDim = kModel / kHeads;
inline constexpr int64_t kFf = 64;
inline constexpr double kLnEps = 1e-5;
}  // namespace transformer

// SplitMix64: the same numbers on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  }

 private:
  uint64_t state_;
};

// Builds one network: layer helpers that add weights (recorded in `weights`) and ops.
class NetworkMaker {
 public:
  NetworkMaker(const std::string& name, uint64_t seed)
      : out_{kiln::Network(name), {}}, rng_(seed) {}

  kiln::Network& net() { return out_.network; }
  ExampleNetwork finish() { return std::move(out_); }

  kiln::Result<kiln::Tensor> weight(const std::string& name, std::vector<int64_t> dims, double lo,
                                    double hi) {
    Weight w{dims, {}};
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    for (int64_t i = 0; i < n; ++i) w.values.push_back(static_cast<float>(rng_.uniform(lo, hi)));
    auto t = net().addConstant(name, kiln::DType::kFloat32, dims,
                               std::as_bytes(std::span<const float>(w.values)));
    if (t.ok()) out_.weights[name] = std::move(w);
    return t;
  }

  kiln::Result<kiln::Tensor> linear(kiln::Tensor x, int64_t in, int64_t out,
                                    const std::string& name) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor w, weight(name + ".weight", {out, in}, -bound, bound));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor b, weight(name + ".bias", {out}, -bound, bound));
    return net().add(kiln::OpKind::kLinear, {x, w, b}, {}, name);
  }

  kiln::Result<kiln::Tensor> conv(kiln::Tensor x, int64_t cin, int64_t cout, int64_t k,
                                  int64_t stride, int64_t pad, bool bias, const std::string& name) {
    double bound = 1.0 / std::sqrt(static_cast<double>(cin * k * k));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor w,
                          weight(name + ".weight", {cout, cin, k, k}, -bound, bound));
    std::vector<kiln::Tensor> inputs{x, w};
    if (bias) {
      KILN_ASSIGN_OR_RETURN(kiln::Tensor b, weight(name + ".bias", {cout}, -bound, bound));
      inputs.push_back(b);
    }
    kiln::Attrs attrs{{"stride", std::vector<int64_t>{stride, stride}},
                      {"padding", std::vector<int64_t>{pad, pad}}};
    return net().add(kiln::OpKind::kConv, inputs, attrs, name);
  }

  kiln::Result<kiln::Tensor> batch_norm(kiln::Tensor x, int64_t c, const std::string& name) {
    KILN_ASSIGN_OR_RETURN(kiln::Tensor mean, weight(name + ".running_mean", {c}, -0.2, 0.2));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor var, weight(name + ".running_var", {c}, 0.5, 1.5));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor gamma, weight(name + ".weight", {c}, 0.5, 1.5));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor beta, weight(name + ".bias", {c}, -0.2, 0.2));
    return net().add(kiln::OpKind::kBatchNorm, {x, mean, var, gamma, beta},
                     {{"eps", convnet::kBnEps}}, name);
  }

  kiln::Result<kiln::Tensor> layer_norm(kiln::Tensor x, int64_t d, const std::string& name) {
    KILN_ASSIGN_OR_RETURN(kiln::Tensor gamma, weight(name + ".weight", {d}, 0.5, 1.5));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor beta, weight(name + ".bias", {d}, -0.2, 0.2));
    return net().add(kiln::OpKind::kLayerNorm, {x, gamma, beta},
                     {{"normalized_ndim", int64_t{1}}, {"eps", transformer::kLnEps}}, name);
  }

  kiln::Result<kiln::Tensor> unary(kiln::Tensor x, const std::string& fn, const std::string& name) {
    return net().add(kiln::OpKind::kUnary, {x}, {{"fn", fn}}, name);
  }

  kiln::Result<kiln::Tensor> add(kiln::Tensor a, kiln::Tensor b, const std::string& name) {
    return net().add(kiln::OpKind::kBinary, {a, b}, {{"fn", std::string("add")}}, name);
  }

 private:
  ExampleNetwork out_;
  Rng rng_;
};

// input [batch, 16] -> linear 32 -> relu -> linear 32 -> gelu -> linear 10 -> output.
inline kiln::Result<ExampleNetwork> make_mlp(const ExampleOptions& o = {}) {
  using namespace mlp;
  NetworkMaker m("mlp", o.seed);
  KILN_ASSIGN_OR_RETURN(kiln::SymExpr batch,
                        m.net().addSymbol("batch", o.batch_min, o.batch_opt, o.batch_max));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor x,
                        m.net().addInput("input", kiln::DType::kFloat32, {batch, kIn}));
  KILN_ASSIGN_OR_RETURN(x, m.linear(x, kIn, kHidden, "fc1"));
  KILN_ASSIGN_OR_RETURN(x, m.unary(x, "relu", "relu1"));
  KILN_ASSIGN_OR_RETURN(x, m.linear(x, kHidden, kHidden, "fc2"));
  KILN_ASSIGN_OR_RETURN(x, m.unary(x, "gelu", "gelu2"));
  KILN_ASSIGN_OR_RETURN(x, m.linear(x, kHidden, kOut, "fc3"));
  KILN_RETURN_IF_ERROR(m.net().markOutput(x, "output"));
  return m.finish();
}

// conv-bn-relu stem, two residual blocks (conv-bn-relu-conv-bn + skip, relu), a strided
// conv-bn-relu, max pool 2x2, adaptive avg pool 3x3, flatten (reshape), linear.
// input [batch, 3, 32, 32] -> logits [batch, 10].
inline kiln::Result<ExampleNetwork> make_convnet(const ExampleOptions& o = {}) {
  using namespace convnet;
  NetworkMaker m("convnet", o.seed);
  KILN_ASSIGN_OR_RETURN(kiln::SymExpr batch,
                        m.net().addSymbol("batch", o.batch_min, o.batch_opt, o.batch_max));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor x, m.net().addInput("input", kiln::DType::kFloat32,
                                                         {batch, kInC, kInHW, kInHW}));
  KILN_ASSIGN_OR_RETURN(x, m.conv(x, kInC, kC1, 3, 1, 1, /*bias=*/true, "stem.conv"));
  KILN_ASSIGN_OR_RETURN(x, m.batch_norm(x, kC1, "stem.bn"));
  KILN_ASSIGN_OR_RETURN(x, m.unary(x, "relu", "stem.relu"));
  for (const char* block : {"block1", "block2"}) {
    std::string b = block;
    KILN_ASSIGN_OR_RETURN(kiln::Tensor y, m.conv(x, kC1, kC1, 3, 1, 1, false, b + ".conv1"));
    KILN_ASSIGN_OR_RETURN(y, m.batch_norm(y, kC1, b + ".bn1"));
    KILN_ASSIGN_OR_RETURN(y, m.unary(y, "relu", b + ".relu1"));
    KILN_ASSIGN_OR_RETURN(y, m.conv(y, kC1, kC1, 3, 1, 1, false, b + ".conv2"));
    KILN_ASSIGN_OR_RETURN(y, m.batch_norm(y, kC1, b + ".bn2"));
    KILN_ASSIGN_OR_RETURN(y, m.add(y, x, b + ".residual"));
    KILN_ASSIGN_OR_RETURN(x, m.unary(y, "relu", b + ".relu2"));
  }
  KILN_ASSIGN_OR_RETURN(x, m.conv(x, kC1, kC2, 3, 2, 1, false, "down.conv"));
  KILN_ASSIGN_OR_RETURN(x, m.batch_norm(x, kC2, "down.bn"));
  KILN_ASSIGN_OR_RETURN(x, m.unary(x, "relu", "down.relu"));
  kiln::Attrs pool{{"kind", std::string("max")},
                   {"kernel", std::vector<int64_t>{2, 2}},
                   {"stride", std::vector<int64_t>{2, 2}}};
  KILN_ASSIGN_OR_RETURN(x, m.net().add(kiln::OpKind::kPool, {x}, pool, "maxpool"));
  KILN_ASSIGN_OR_RETURN(
      x, m.net().add(kiln::OpKind::kAdaptiveAvgPool, {x},
                     {{"output_size", std::vector<int64_t>{kPoolOut, kPoolOut}}}, "avgpool"));
  KILN_ASSIGN_OR_RETURN(
      x, m.net().add(kiln::OpKind::kReshape, {x}, {{"shape", kiln::Shape{batch, -1}}}, "flatten"));
  KILN_ASSIGN_OR_RETURN(x, m.linear(x, kC2 * kPoolOut * kPoolOut, kClasses, "fc"));
  KILN_RETURN_IF_ERROR(m.net().markOutput(x, "logits"));
  return m.finish();
}

// A pre-norm transformer encoder block:
//   h = x + out_proj(attention(heads(q(ln1 x)), heads(k(ln1 x)), heads(v(ln1 x)), mask))
//   y = h + fc2(gelu(fc1(ln2 h)))
// input [batch, 8, 32], mask [batch, 1, 1, 8] (float, added to the scores) -> output [batch, 8,
// 32].
inline kiln::Result<ExampleNetwork> make_transformer(const ExampleOptions& o = {}) {
  using namespace transformer;
  NetworkMaker m("transformer", o.seed);
  kiln::Network& net = m.net();
  KILN_ASSIGN_OR_RETURN(kiln::SymExpr batch,
                        net.addSymbol("batch", o.batch_min, o.batch_opt, o.batch_max));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor x,
                        net.addInput("input", kiln::DType::kFloat32, {batch, kSeq, kModel}));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor mask,
                        net.addInput("mask", kiln::DType::kFloat32, {batch, 1, 1, kSeq}));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor h, m.layer_norm(x, kModel, "ln1"));
  kiln::Attrs to_heads_shape{{"shape", kiln::Shape{batch, kSeq, kHeads, kHeadDim}}};
  kiln::Attrs swap{{"perm", std::vector<int64_t>{0, 2, 1, 3}}};
  std::vector<kiln::Tensor> qkv;
  for (const char* p : {"q", "k", "v"}) {
    std::string name = std::string("attn.") + p;
    KILN_ASSIGN_OR_RETURN(kiln::Tensor t, m.linear(h, kModel, kModel, name));
    KILN_ASSIGN_OR_RETURN(
        t, net.add(kiln::OpKind::kReshape, {t}, to_heads_shape, name + ".split_heads"));
    KILN_ASSIGN_OR_RETURN(t, net.add(kiln::OpKind::kPermute, {t}, swap, name + ".to_heads"));
    qkv.push_back(t);
  }
  KILN_ASSIGN_OR_RETURN(kiln::Tensor a, net.add(kiln::OpKind::kAttention,
                                                {qkv[0], qkv[1], qkv[2], mask}, {}, "attn.sdpa"));
  KILN_ASSIGN_OR_RETURN(a, net.add(kiln::OpKind::kPermute, {a}, swap, "attn.from_heads"));
  KILN_ASSIGN_OR_RETURN(
      a, net.add(kiln::OpKind::kReshape, {a}, {{"shape", kiln::Shape{batch, kSeq, kModel}}},
                 "attn.merge_heads"));
  KILN_ASSIGN_OR_RETURN(a, m.linear(a, kModel, kModel, "attn.out"));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor x1, m.add(x, a, "attn.residual"));
  KILN_ASSIGN_OR_RETURN(h, m.layer_norm(x1, kModel, "ln2"));
  KILN_ASSIGN_OR_RETURN(h, m.linear(h, kModel, kFf, "mlp.fc1"));
  KILN_ASSIGN_OR_RETURN(h, m.unary(h, "gelu", "mlp.gelu"));
  KILN_ASSIGN_OR_RETURN(h, m.linear(h, kFf, kModel, "mlp.fc2"));
  KILN_ASSIGN_OR_RETURN(kiln::Tensor y, m.add(x1, h, "mlp.residual"));
  KILN_RETURN_IF_ERROR(net.markOutput(y, "output"));
  return m.finish();
}

}  // namespace kiln_examples
