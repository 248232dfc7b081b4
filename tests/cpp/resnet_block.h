#pragma once

// A ResNet-like network for the conv fusion and layout tests (builder tests on the CPU, engine
// tests on CUDA): stem conv-bn-relu, 3x3/2 max pool, a basic block (identity residual), a
// down-sampling block (strided conv, 1x1 strided downsample conv on the residual path),
// adaptive avg pool, flatten, linear.
//
//   input [batch, 3, 16, 16] float32 -> logits [batch, 10] float32
//
// With `dtype` float16/bfloat16 the network computes in that dtype: the input is cast after it
// comes in, every weight is a float32 constant followed by a cast (constant folding makes it a
// constant of dtype), and the logits are cast back to float32. Same weights for every dtype.

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "../../examples/cpp/example_networks.h"
#include "kiln/kiln.h"

namespace kiln_test {

struct ResnetBlockOptions {
  kiln::DType dtype = kiln::DType::kFloat32;
  int64_t batch_opt = 2, batch_max = 4;
  uint64_t seed = 3;
};

namespace resnet_detail {

class Maker {
 public:
  Maker(kiln::DType dtype, uint64_t seed) : net_("resnet_block"), dtype_(dtype), rng_(seed) {}
  kiln::Network& net() { return net_; }

  kiln::Result<kiln::Tensor> to_dtype(kiln::Tensor t) {
    if (dtype_ == kiln::DType::kFloat32) return t;
    return net_.add(kiln::OpKind::kCast, {t}, {{"dtype", dtype_}});
  }
  kiln::Result<kiln::Tensor> weight(const std::string& name, std::vector<int64_t> dims, double lo,
                                    double hi) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(rng_.uniform(lo, hi));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor t, net_.addConstant(name, kiln::DType::kFloat32, dims,
                                                           std::as_bytes(std::span<const float>(v))));
    return to_dtype(t);
  }
  kiln::Result<kiln::Tensor> conv(kiln::Tensor x, int64_t cin, int64_t cout, int64_t k,
                                  int64_t stride, int64_t pad, bool bias, const std::string& name) {
    const double bound = 1.5 / std::sqrt(static_cast<double>(cin * k * k));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor w, weight(name + ".weight", {cout, cin, k, k}, -bound, bound));
    std::vector<kiln::Tensor> inputs{x, w};
    if (bias) {
      KILN_ASSIGN_OR_RETURN(kiln::Tensor b, weight(name + ".bias", {cout}, -0.2, 0.2));
      inputs.push_back(b);
    }
    kiln::Attrs attrs{{"stride", std::vector<int64_t>{stride, stride}},
                      {"padding", std::vector<int64_t>{pad, pad}}};
    return net_.add(kiln::OpKind::kConv, inputs, attrs, name);
  }
  kiln::Result<kiln::Tensor> bn(kiln::Tensor x, int64_t c, const std::string& name) {
    KILN_ASSIGN_OR_RETURN(kiln::Tensor mean, weight(name + ".running_mean", {c}, -0.2, 0.2));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor var, weight(name + ".running_var", {c}, 0.5, 1.5));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor gamma, weight(name + ".weight", {c}, 0.5, 1.5));
    KILN_ASSIGN_OR_RETURN(kiln::Tensor beta, weight(name + ".bias", {c}, -0.2, 0.2));
    return net_.add(kiln::OpKind::kBatchNorm, {x, mean, var, gamma, beta}, {{"eps", 1e-5}}, name);
  }
  kiln::Result<kiln::Tensor> relu(kiln::Tensor x, const std::string& name) {
    return net_.add(kiln::OpKind::kUnary, {x}, {{"fn", std::string("relu")}}, name);
  }
  kiln::Result<kiln::Tensor> add(kiln::Tensor a, kiln::Tensor b, const std::string& name) {
    return net_.add(kiln::OpKind::kBinary, {a, b}, {{"fn", std::string("add")}}, name);
  }

 private:
  kiln::Network net_;
  kiln::DType dtype_;
  kiln_examples::Rng rng_;
};

}  // namespace resnet_detail

inline kiln::Result<kiln::Network> make_resnet_block(const ResnetBlockOptions& o = {}) {
  using kiln::Tensor;
  resnet_detail::Maker m(o.dtype, o.seed);
  KILN_ASSIGN_OR_RETURN(kiln::SymExpr batch, m.net().addSymbol("batch", 1, o.batch_opt, o.batch_max));
  KILN_ASSIGN_OR_RETURN(Tensor in, m.net().addInput("input", kiln::DType::kFloat32, {batch, 3, 16, 16}));
  KILN_ASSIGN_OR_RETURN(Tensor x, m.to_dtype(in));
  KILN_ASSIGN_OR_RETURN(x, m.conv(x, 3, 8, 3, 1, 1, true, "stem.conv"));
  KILN_ASSIGN_OR_RETURN(x, m.bn(x, 8, "stem.bn"));
  KILN_ASSIGN_OR_RETURN(x, m.relu(x, "stem.relu"));
  kiln::Attrs pool{{"kind", std::string("max")},
                   {"kernel", std::vector<int64_t>{3, 3}},
                   {"stride", std::vector<int64_t>{2, 2}},
                   {"padding", std::vector<int64_t>{1, 1}}};
  KILN_ASSIGN_OR_RETURN(x, m.net().add(kiln::OpKind::kPool, {x}, pool, "maxpool"));  // 8x8
  // Basic block, identity residual.
  KILN_ASSIGN_OR_RETURN(Tensor y, m.conv(x, 8, 8, 3, 1, 1, false, "layer1.conv1"));
  KILN_ASSIGN_OR_RETURN(y, m.bn(y, 8, "layer1.bn1"));
  KILN_ASSIGN_OR_RETURN(y, m.relu(y, "layer1.relu1"));
  KILN_ASSIGN_OR_RETURN(y, m.conv(y, 8, 8, 3, 1, 1, false, "layer1.conv2"));
  KILN_ASSIGN_OR_RETURN(y, m.bn(y, 8, "layer1.bn2"));
  KILN_ASSIGN_OR_RETURN(y, m.add(y, x, "layer1.add"));
  KILN_ASSIGN_OR_RETURN(x, m.relu(y, "layer1.relu2"));
  // Down-sampling block: 8 -> 16 channels, 8x8 -> 4x4.
  KILN_ASSIGN_OR_RETURN(y, m.conv(x, 8, 16, 3, 2, 1, false, "layer2.conv1"));
  KILN_ASSIGN_OR_RETURN(y, m.bn(y, 16, "layer2.bn1"));
  KILN_ASSIGN_OR_RETURN(y, m.relu(y, "layer2.relu1"));
  KILN_ASSIGN_OR_RETURN(y, m.conv(y, 16, 16, 3, 1, 1, false, "layer2.conv2"));
  KILN_ASSIGN_OR_RETURN(y, m.bn(y, 16, "layer2.bn2"));
  KILN_ASSIGN_OR_RETURN(Tensor d, m.conv(x, 8, 16, 1, 2, 0, false, "layer2.downsample.conv"));
  KILN_ASSIGN_OR_RETURN(d, m.bn(d, 16, "layer2.downsample.bn"));
  KILN_ASSIGN_OR_RETURN(y, m.add(y, d, "layer2.add"));
  KILN_ASSIGN_OR_RETURN(x, m.relu(y, "layer2.relu2"));
  KILN_ASSIGN_OR_RETURN(
      x, m.net().add(kiln::OpKind::kAdaptiveAvgPool, {x},
                     {{"output_size", std::vector<int64_t>{1, 1}}}, "avgpool"));
  KILN_ASSIGN_OR_RETURN(
      x, m.net().add(kiln::OpKind::kReshape, {x}, {{"shape", kiln::Shape{batch, -1}}}, "flatten"));
  KILN_ASSIGN_OR_RETURN(Tensor fw, m.weight("fc.weight", {10, 16}, -0.25, 0.25));
  KILN_ASSIGN_OR_RETURN(Tensor fb, m.weight("fc.bias", {10}, -0.25, 0.25));
  KILN_ASSIGN_OR_RETURN(x, m.net().add(kiln::OpKind::kLinear, {x, fw, fb}, {}, "fc"));
  if (o.dtype != kiln::DType::kFloat32) {
    KILN_ASSIGN_OR_RETURN(x, m.net().add(kiln::OpKind::kCast, {x}, {{"dtype", kiln::DType::kFloat32}}));
  }
  KILN_RETURN_IF_ERROR(m.net().markOutput(x, "logits"));
  return std::move(m.net());
}

}  // namespace kiln_test
