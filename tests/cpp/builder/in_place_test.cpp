// In-place reuse: an elementwise op writes into the buffer of an input that dies there, so an
// elementwise chain needs one activation buffer instead of two, and results stay correct.

#include <gtest/gtest.h>

#include <cmath>

#include "builder/memory_plan.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kWidth = 1000;
constexpr int64_t kMaxBatch = 4;

Tensor unary(Network& net, Tensor x, const char* fn) {
  return *net.add(OpKind::kUnary, {x}, {{"fn", std::string(fn)}}, std::string(fn) + "_op");
}

Tensor binary(Network& net, Tensor a, Tensor b, const char* fn) {
  return *net.add(OpKind::kBinary, {a, b}, {{"fn", std::string(fn)}}, std::string(fn) + "_op");
}

// y = sin(exp(-relu(x))) * x: four activations a (relu), b (neg), c (exp), d (sin).
Network make_chain() {
  Network net("chain");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, kMaxBatch);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, kWidth});
  Tensor d = unary(net, unary(net, unary(net, unary(net, x, "relu"), "neg"), "exp"), "sin");
  EXPECT_TRUE(net.markOutput(binary(net, d, x, "mul"), "y").ok());
  return net;
}

int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

TEST(InPlace, ElementwiseChainNeedsOneActivationBuffer) {
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(make_chain()));
  const int64_t buffer = align_up(kMaxBatch * kWidth * 4, 256);
  // Without in-place reuse, each activation lives from its step to the next: two at a time.
  std::vector<kiln::builder::BufferRequest> separate;
  for (int32_t s = 0; s < 4; ++s) separate.push_back({kMaxBatch * kWidth * 4, s, s + 1});
  const int64_t without = kiln::builder::plan_memory(separate, 256).arena_bytes;
  ASSERT_EQ(without, 2 * buffer);
  // Pointwise fusion makes this chain one op that needs no activation at all; at most one
  // buffer either way.
  EXPECT_LE(engine->deviceMemorySize(), buffer);
  EXPECT_LT(engine->deviceMemorySize(), without);
}

TEST(InPlace, ElementwiseChainStaysCorrect) {
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(make_chain()));
  for (int64_t batch : {1, 3, 4}) {
    HostTensor x = random_tensor({batch, kWidth}, static_cast<uint64_t>(batch));
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {x}));
    DTensor want = ref::from(x);
    for (size_t i = 0; i < want.v.size(); ++i)
      want.v[i] = std::sin(std::exp(-std::max(want.v[i], 0.0))) * want.v[i];
    EXPECT_TRUE(all_close(out[0], want)) << "batch " << batch;
  }
}

// b = exp(a) cannot overwrite a, which add reads after it; c = sub(a, b) may take a's buffer.
TEST(InPlace, InputStillNeededLaterIsNotOverwritten) {
  Network net("still_needed");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, kMaxBatch);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, kWidth});
  Tensor a = unary(net, x, "relu");
  Tensor b = unary(net, a, "exp");
  Tensor c = binary(net, a, b, "sub");
  Tensor d = binary(net, c, a, "add");  // a must survive past c only if c did not overwrite it
  ASSERT_TRUE(net.markOutput(unary(net, d, "neg"), "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor x_in = random_tensor({3, kWidth}, 9);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {x_in}));
  DTensor want = ref::from(x_in);
  for (double& v : want.v) {
    double r = std::max(v, 0.0);
    v = -((r - std::exp(r)) + r);
  }
  EXPECT_TRUE(all_close(out[0], want));
}

}  // namespace
}  // namespace kiln_test

namespace kiln_test {
namespace {

// c = a + a^T: the transpose is a view of a's buffer, so c must not be written over a while the
// transpose still reads it, even though a itself dies at c.
TEST(InPlace, OperandViewingTheSameBufferIsNotOverwritten) {
  constexpr int64_t n = 16;
  Network net("self_transpose");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, kMaxBatch);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, n, n});
  Tensor a = unary(net, x, "relu");
  Tensor at =
      *net.add(OpKind::kPermute, {a}, {{"perm", std::vector<int64_t>{0, 2, 1}}}, "transpose");
  Tensor c = binary(net, a, at, "add");
  ASSERT_TRUE(net.markOutput(unary(net, c, "neg"), "y").ok());
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
  HostTensor x_in = random_tensor({2, n, n}, 10);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*engine, {x_in}));
  DTensor want{x_in.dims, std::vector<double>(x_in.data.size())};
  auto relu_at = [&](int64_t b, int64_t i, int64_t j) {
    return std::max(0.0, static_cast<double>(x_in.data[static_cast<size_t>((b * n + i) * n + j)]));
  };
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        want.v[static_cast<size_t>((b * n + i) * n + j)] = -(relu_at(b, i, j) + relu_at(b, j, i));
  EXPECT_TRUE(all_close(out[0], want));
}

}  // namespace
}  // namespace kiln_test
