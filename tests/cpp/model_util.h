#pragma once

// Shared by the builder and runtime tests: the example networks (examples/cpp), inputs for
// them, an independent double-precision reference evaluator of exactly those models (naive loops;
// never calls Kiln code), and helpers that build and run engines.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../../examples/cpp/example_networks.h"
#include "kiln/kiln.h"

namespace kiln_test {

using kiln_examples::ExampleNetwork;
using kiln_examples::ExampleOptions;
using kiln_examples::Weight;

// A float32 tensor on the host, as an engine reads and writes it.
struct HostTensor {
  std::vector<int64_t> dims;
  std::vector<float> data;
};

// A double tensor of the reference evaluator.
struct DTensor {
  std::vector<int64_t> dims;
  std::vector<double> v;
};

// How many ops of `kind` the network holds.
inline int count_ops(const kiln::Network& net, kiln::OpKind kind) {
  int n = 0;
  for (const kiln::Op& op : net.ops()) n += op.kind == kind;
  return n;
}

inline int64_t numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

inline HostTensor random_tensor(std::vector<int64_t> dims, uint64_t seed, double lo = -1.0,
                                double hi = 1.0) {
  kiln_examples::Rng rng(seed * 7919 + 17);
  HostTensor t{std::move(dims), {}};
  t.data.resize(static_cast<size_t>(numel(t.dims)));
  for (float& x : t.data) x = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

// A float32 constant from values (row-major).
inline kiln::Result<kiln::Tensor> add_constant(kiln::Network& net, const std::string& name,
                                               std::vector<int64_t> dims,
                                               const std::vector<float>& values) {
  return net.addConstant(name, kiln::DType::kFloat32, dims,
                         std::as_bytes(std::span<const float>(values)));
}

// ---- The models -------------------------------------------------------------------------

enum class ModelKind { kMlp, kConvNet, kTransformer };

inline const char* model_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMlp:
      return "mlp";
    case ModelKind::kConvNet:
      return "convnet";
    case ModelKind::kTransformer:
      return "transformer";
  }
  return "?";
}

inline kiln::Result<ExampleNetwork> make_model(ModelKind kind, const ExampleOptions& options = {}) {
  switch (kind) {
    case ModelKind::kMlp:
      return kiln_examples::make_mlp(options);
    case ModelKind::kConvNet:
      return kiln_examples::make_convnet(options);
    case ModelKind::kTransformer:
      return kiln_examples::make_transformer(options);
  }
  return kiln::invalid_argument("unknown model");
}

// Inputs in the engine's input order. The transformer's mask hides a different number of
// trailing keys per batch row (-1e9) and adds small values to the others.
inline std::vector<HostTensor> make_inputs(ModelKind kind, int64_t batch, uint64_t seed) {
  switch (kind) {
    case ModelKind::kMlp:
      return {random_tensor({batch, kiln_examples::mlp::kIn}, seed)};
    case ModelKind::kConvNet: {
      using namespace kiln_examples::convnet;
      return {random_tensor({batch, kInC, kInHW, kInHW}, seed)};
    }
    case ModelKind::kTransformer: {
      using namespace kiln_examples::transformer;
      HostTensor mask = random_tensor({batch, 1, 1, kSeq}, seed + 1000, -0.5, 0.5);
      for (int64_t b = 0; b < batch; ++b) {
        int64_t valid = 1 + static_cast<int64_t>((static_cast<uint64_t>(b) * 3 + seed) % kSeq);
        for (int64_t j = valid; j < kSeq; ++j) mask.data[static_cast<size_t>(b * kSeq + j)] = -1e9f;
      }
      return {random_tensor({batch, kSeq, kModel}, seed), mask};
    }
  }
  return {};
}

// ---- Reference evaluator (double precision, naive loops) ----------------------------------

namespace ref {

inline DTensor from(const HostTensor& t) {
  return {t.dims, std::vector<double>(t.data.begin(), t.data.end())};
}
inline DTensor from(const Weight& w) {
  return {w.dims, std::vector<double>(w.values.begin(), w.values.end())};
}

// x [..., K] times W [N, K]^T plus b [N].
inline DTensor linear(const DTensor& x, const DTensor& w, const DTensor& b) {
  const int64_t K = x.dims.back(), N = w.dims[0], rows = numel(x.dims) / K;
  DTensor y{x.dims, std::vector<double>(static_cast<size_t>(rows * N))};
  y.dims.back() = N;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double acc = b.v[static_cast<size_t>(n)];
      for (int64_t k = 0; k < K; ++k)
        acc += x.v[static_cast<size_t>(r * K + k)] * w.v[static_cast<size_t>(n * K + k)];
      y.v[static_cast<size_t>(r * N + n)] = acc;
    }
  return y;
}

// 2-D convolution, NCHW, weight [O, C, kh, kw], square stride and padding, optional bias.
inline DTensor conv2d(const DTensor& x, const DTensor& w, const DTensor* b, int64_t stride,
                      int64_t pad) {
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const int64_t O = w.dims[0], KH = w.dims[2], KW = w.dims[3];
  const int64_t OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
  DTensor y{{N, O, OH, OW}, std::vector<double>(static_cast<size_t>(N * O * OH * OW))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b ? b->v[static_cast<size_t>(o)] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                int64_t ih = oh * stride - pad + i, iw = ow * stride - pad + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x.v[static_cast<size_t>(((n * C + c) * H + ih) * W + iw)] *
                       w.v[static_cast<size_t>(((o * C + c) * KH + i) * KW + j)];
              }
          y.v[static_cast<size_t>(((n * O + o) * OH + oh) * OW + ow)] = acc;
        }
  return y;
}

inline DTensor batch_norm(const DTensor& x, const DTensor& mean, const DTensor& var,
                          const DTensor& gamma, const DTensor& beta, double eps) {
  const int64_t C = x.dims[1], inner = numel(x.dims) / (x.dims[0] * C);
  DTensor y = x;
  for (size_t i = 0; i < y.v.size(); ++i) {
    size_t c = static_cast<size_t>((static_cast<int64_t>(i) / inner) % C);
    y.v[i] = (x.v[i] - mean.v[c]) / std::sqrt(var.v[c] + eps) * gamma.v[c] + beta.v[c];
  }
  return y;
}

inline DTensor relu(DTensor x) {
  for (double& v : x.v) v = std::max(v, 0.0);
  return x;
}

inline DTensor gelu(DTensor x) {  // the exact (erf) form, torch's default
  for (double& v : x.v) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  return x;
}

inline DTensor add(DTensor a, const DTensor& b) {
  for (size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
  return a;
}

inline DTensor max_pool2d(const DTensor& x, int64_t k, int64_t s) {
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const int64_t OH = (H - k) / s + 1, OW = (W - k) / s + 1;
  DTensor y{{N, C, OH, OW}, std::vector<double>(static_cast<size_t>(N * C * OH * OW))};
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double m = -INFINITY;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j)
            m = std::max(m, x.v[static_cast<size_t>((nc * H + oh * s + i) * W + ow * s + j)]);
        y.v[static_cast<size_t>((nc * OH + oh) * OW + ow)] = m;
      }
  return y;
}

// PyTorch's bins: [floor(i*H/OH), ceil((i+1)*H/OH)).
inline DTensor adaptive_avg_pool2d(const DTensor& x, int64_t OH, int64_t OW) {
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  DTensor y{{N, C, OH, OW}, std::vector<double>(static_cast<size_t>(N * C * OH * OW))};
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = oh * H / OH, h1 = ((oh + 1) * H + OH - 1) / OH;
        int64_t w0 = ow * W / OW, w1 = ((ow + 1) * W + OW - 1) / OW;
        double sum = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) sum += x.v[static_cast<size_t>((nc * H + h) * W + w)];
        y.v[static_cast<size_t>((nc * OH + oh) * OW + ow)] =
            sum / static_cast<double>((h1 - h0) * (w1 - w0));
      }
  return y;
}

// Over the last dim.
inline DTensor layer_norm(const DTensor& x, const DTensor& gamma, const DTensor& beta, double eps) {
  const int64_t D = x.dims.back(), rows = numel(x.dims) / D;
  DTensor y = x;
  for (int64_t r = 0; r < rows; ++r) {
    const double* p = &x.v[static_cast<size_t>(r * D)];
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mean += p[i];
    mean /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i) var += (p[i] - mean) * (p[i] - mean);
    var /= static_cast<double>(D);
    for (int64_t i = 0; i < D; ++i)
      y.v[static_cast<size_t>(r * D + i)] =
          (p[i] - mean) / std::sqrt(var + eps) * gamma.v[static_cast<size_t>(i)] +
          beta.v[static_cast<size_t>(i)];
  }
  return y;
}

// Multi-head attention straight from [B, S, H*Dh] projections: head h of token s is columns
// h*Dh .. h*Dh+Dh-1. mask [B, 1, 1, S] is added to every score row of batch b.
inline DTensor attention(const DTensor& q, const DTensor& k, const DTensor& v, const DTensor& mask,
                         int64_t heads) {
  const int64_t B = q.dims[0], S = q.dims[1], D = q.dims[2], Dh = D / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  DTensor out{q.dims, std::vector<double>(q.v.size())};
  std::vector<double> p(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < S; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < Dh; ++e)
            dot += q.v[static_cast<size_t>((b * S + i) * D + h * Dh + e)] *
                   k.v[static_cast<size_t>((b * S + j) * D + h * Dh + e)];
          p[static_cast<size_t>(j)] = dot * scale + mask.v[static_cast<size_t>(b * S + j)];
          mx = std::max(mx, p[static_cast<size_t>(j)]);
        }
        double sum = 0;
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t e = 0; e < Dh; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < S; ++j)
            acc +=
                p[static_cast<size_t>(j)] * v.v[static_cast<size_t>((b * S + j) * D + h * Dh + e)];
          out.v[static_cast<size_t>((b * S + i) * D + h * Dh + e)] = acc / sum;
        }
      }
  return out;
}

inline DTensor mlp(const std::map<std::string, Weight>& w, const HostTensor& input) {
  auto W = [&](const std::string& name) { return from(w.at(name)); };
  DTensor x = relu(linear(from(input), W("fc1.weight"), W("fc1.bias")));
  x = gelu(linear(x, W("fc2.weight"), W("fc2.bias")));
  return linear(x, W("fc3.weight"), W("fc3.bias"));
}

inline DTensor convnet(const std::map<std::string, Weight>& w, const HostTensor& input) {
  using namespace kiln_examples::convnet;
  auto W = [&](const std::string& name) { return from(w.at(name)); };
  auto bn = [&](const DTensor& x, const std::string& n) {
    return batch_norm(x, W(n + ".running_mean"), W(n + ".running_var"), W(n + ".weight"),
                      W(n + ".bias"), kBnEps);
  };
  DTensor stem_bias = W("stem.conv.bias");
  DTensor x = relu(bn(conv2d(from(input), W("stem.conv.weight"), &stem_bias, 1, 1), "stem.bn"));
  for (std::string b : {"block1", "block2"}) {
    DTensor y = relu(bn(conv2d(x, W(b + ".conv1.weight"), nullptr, 1, 1), b + ".bn1"));
    y = bn(conv2d(y, W(b + ".conv2.weight"), nullptr, 1, 1), b + ".bn2");
    x = relu(add(y, x));
  }
  x = relu(bn(conv2d(x, W("down.conv.weight"), nullptr, 2, 1), "down.bn"));
  x = adaptive_avg_pool2d(max_pool2d(x, 2, 2), kPoolOut, kPoolOut);
  x.dims = {x.dims[0], numel(x.dims) / x.dims[0]};  // flatten: NCHW order is already row-major
  return linear(x, W("fc.weight"), W("fc.bias"));
}

inline DTensor transformer(const std::map<std::string, Weight>& w, const HostTensor& input,
                           const HostTensor& mask) {
  using namespace kiln_examples::transformer;
  auto W = [&](const std::string& name) { return from(w.at(name)); };
  auto lin = [&](const DTensor& x, const std::string& n) {
    return linear(x, W(n + ".weight"), W(n + ".bias"));
  };
  DTensor x = from(input);
  DTensor h = layer_norm(x, W("ln1.weight"), W("ln1.bias"), kLnEps);
  DTensor a = attention(lin(h, "attn.q"), lin(h, "attn.k"), lin(h, "attn.v"), from(mask), kHeads);
  DTensor x1 = add(x, lin(a, "attn.out"));
  h = layer_norm(x1, W("ln2.weight"), W("ln2.bias"), kLnEps);
  h = lin(gelu(lin(h, "mlp.fc1")), "mlp.fc2");
  return add(x1, h);
}

}  // namespace ref

// The reference outputs of `kind` (in the engine's output order) for inputs from make_inputs.
inline std::vector<DTensor> reference(ModelKind kind, const ExampleNetwork& model,
                                      const std::vector<HostTensor>& inputs) {
  switch (kind) {
    case ModelKind::kMlp:
      return {ref::mlp(model.weights, inputs[0])};
    case ModelKind::kConvNet:
      return {ref::convnet(model.weights, inputs[0])};
    case ModelKind::kTransformer:
      return {ref::transformer(model.weights, inputs[0], inputs[1])};
  }
  return {};
}

// ---- Engines ----------------------------------------------------------------------------

inline kiln::Result<std::shared_ptr<kiln::Engine>> build_engine(
    const kiln::Network& network, const kiln::BuilderConfig& config = {},
    kiln::BuildReport* report = nullptr) {
  KILN_ASSIGN_OR_RETURN(kiln::HostMemory bytes, kiln::Builder::build(network, config, report));
  return kiln::Engine::deserialize(bytes);
}

// Binds `inputs` in the engine's input order, allocates outputs at their computed shapes, runs.
inline kiln::Result<std::vector<HostTensor>> run_context(kiln::ExecutionContext& ctx,
                                                         const std::vector<HostTensor>& inputs) {
  const kiln::Engine& engine = ctx.engine();
  std::vector<std::string> in_names = engine.inputNames();
  if (in_names.size() != inputs.size())
    return kiln::invalid_argument("engine takes ", in_names.size(), " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    KILN_RETURN_IF_ERROR(ctx.setInputShape(in_names[i], inputs[i].dims));
    KILN_RETURN_IF_ERROR(
        ctx.setTensorAddress(in_names[i], const_cast<float*>(inputs[i].data.data())));
  }
  std::vector<HostTensor> outputs;
  for (const std::string& name : engine.outputNames()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, ctx.getTensorShape(name));
    outputs.push_back({dims, std::vector<float>(static_cast<size_t>(numel(dims)), NAN)});
  }
  std::vector<std::string> out_names = engine.outputNames();
  for (size_t o = 0; o < outputs.size(); ++o)
    KILN_RETURN_IF_ERROR(ctx.setTensorAddress(out_names[o], outputs[o].data.data()));
  KILN_RETURN_IF_ERROR(ctx.enqueue(nullptr));
  return outputs;
}

inline kiln::Result<std::vector<HostTensor>> run_engine(kiln::Engine& engine,
                                                        const std::vector<HostTensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::ExecutionContext> ctx,
                        engine.createExecutionContext());
  return run_context(*ctx, inputs);
}

// |got - want| <= atol + rtol * |want| everywhere, and the same dims.
inline ::testing::AssertionResult all_close(const HostTensor& got, const DTensor& want,
                                            double rtol = 1e-4, double atol = 1e-5) {
  if (got.dims != want.dims) return ::testing::AssertionFailure() << "dims differ";
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < want.v.size(); ++i) {
    double err = std::abs(static_cast<double>(got.data[i]) - want.v[i]);
    if (!(err <= atol + rtol * std::abs(want.v[i]))) {
      if (bad++ == 0) first = i;
      if (!(err <= worst)) worst = err;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << want.v.size() << " elements differ; first at " << first << ": got "
         << got.data[first] << ", want " << want.v[first] << "; worst error " << worst;
}

#define KILN_ASSERT_OK(expr)                                             \
  do {                                                                   \
    ::kiln::Status kiln_test_status_ = (expr);                           \
    ASSERT_TRUE(kiln_test_status_.ok()) << kiln_test_status_.toString(); \
  } while (0)

// ASSERT_OK_AND_ASSIGN(auto x, f()): fails the test with the status message.
#define KILN_ASSERT_OK_AND_ASSIGN(lhs, expr)                       \
  auto KILN_CONCAT_(kiln_test_r_, __LINE__) = (expr);              \
  ASSERT_TRUE(KILN_CONCAT_(kiln_test_r_, __LINE__).ok())           \
      << KILN_CONCAT_(kiln_test_r_, __LINE__).status().toString(); \
  lhs = std::move(KILN_CONCAT_(kiln_test_r_, __LINE__)).value()

}  // namespace kiln_test
