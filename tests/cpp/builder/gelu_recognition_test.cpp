// GELU recognition: the tanh GELU written out op by op (GPT-2's gelu_new) becomes one unary
// gelu_tanh, in each operand order a model may write it; near misses stay as they are. The
// recognized network computes the formula (double-precision reference, CPU engine).

#include <gtest/gtest.h>

#include <cmath>

#include "builder/passes/passes.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;

constexpr int64_t kWidth = 9;

struct Form {
  bool scalars_left = false;   // mul(c, t) / add(c, t) instead of mul(t, c) / add(t, c)
  bool cube_left = false;      // add(0.044715 x^3, x) instead of add(x, 0.044715 x^3)
  int half = 0;                // 0: (0.5 x) * v, 1: v * (0.5 x), 2: (x * v) * 0.5, 3: x * (0.5 v)
  double cube_coefficient = 0.044715;
  double exponent = 3.0;
  bool tanh_is_output = false;
};

Tensor scalar(Network& net, double v, int* n) {
  return *add_constant(net, kiln::str("c", (*n)++), {}, {static_cast<float>(v)});
}

Tensor bin(Network& net, const char* fn, Tensor a, Tensor b) {
  return *net.add(OpKind::kBinary, {a, b}, {{"fn", std::string(fn)}}, "");
}

// t op c, or c op t.
Tensor with_scalar(Network& net, const Form& f, const char* fn, Tensor t, double c, int* n) {
  Tensor k = scalar(net, c, n);
  return f.scalars_left ? bin(net, fn, k, t) : bin(net, fn, t, k);
}

Network gelu_network(const Form& f, bool linear_first = false) {
  Network net("gelu");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 2, 4);
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, kWidth});
  int n = 0;
  if (linear_first) {
    Tensor w = *add_constant(net, "w", {kWidth, kWidth}, random_tensor({kWidth * kWidth}, 3, -0.4, 0.4).data);
    Tensor b = *add_constant(net, "b", {kWidth}, random_tensor({kWidth}, 4).data);
    x = *net.add(OpKind::kLinear, {x, w, b}, {}, "fc");
  }
  Tensor p = bin(net, "pow", x, scalar(net, f.exponent, &n));
  Tensor q = with_scalar(net, f, "mul", p, f.cube_coefficient, &n);
  Tensor s = f.cube_left ? bin(net, "add", q, x) : bin(net, "add", x, q);
  Tensor u = with_scalar(net, f, "mul", s, std::sqrt(2.0 / M_PI), &n);
  Tensor t = *net.add(OpKind::kUnary, {u}, {{"fn", std::string("tanh")}}, "tanh");
  Tensor v = with_scalar(net, f, "add", t, 1.0, &n);
  Tensor y;
  switch (f.half) {
    case 0: y = bin(net, "mul", with_scalar(net, f, "mul", x, 0.5, &n), v); break;
    case 1: y = bin(net, "mul", v, with_scalar(net, f, "mul", x, 0.5, &n)); break;
    case 2: y = with_scalar(net, f, "mul", bin(net, "mul", x, v), 0.5, &n); break;
    default: y = bin(net, "mul", x, with_scalar(net, f, "mul", v, 0.5, &n)); break;
  }
  EXPECT_TRUE(net.markOutput(y, "y").ok());
  if (f.tanh_is_output) {
    EXPECT_TRUE(net.markOutput(t, "t").ok());
  }
  return net;
}

Network recognize(const Network& net) {
  std::vector<std::string> log;
  auto out = kiln::builder::recognize_gelu(net, log);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  EXPECT_TRUE(out->verify().ok());
  return out.ok() ? std::move(out).value() : Network("failed");
}

int count_unary(const Network& net, const char* fn) {
  int c = 0;
  for (const kiln::Op& op : net.ops())
    c += op.kind == OpKind::kUnary && op.attrs.getString("fn", "") == fn ? 1 : 0;
  return c;
}

double gelu_tanh(double v) { return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))); }

TEST(GeluRecognition, EveryWrittenOutFormBecomesOneGeluTanh) {
  for (bool scalars_left : {false, true}) {
    for (bool cube_left : {false, true}) {
      for (int half = 0; half < 4; ++half) {
        SCOPED_TRACE(kiln::str("scalars left ", scalars_left, " cube left ", cube_left, " half form ", half));
        Form f;
        f.scalars_left = scalars_left;
        f.cube_left = cube_left;
        f.half = half;
        Network net = gelu_network(f);
        Network out = recognize(net);
        ASSERT_EQ(out.ops().size(), 1u) << out.toString();
        EXPECT_EQ(count_unary(out, "gelu_tanh"), 1);

        HostTensor in = random_tensor({3, kWidth}, 5, -4.0, 4.0);
        KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net));
        KILN_ASSERT_OK_AND_ASSIGN(auto got, run_engine(*engine, {in}));
        DTensor want = ref::from(in);
        for (double& v : want.v) v = gelu_tanh(v);
        EXPECT_TRUE(all_close(got[0], want, 1e-5, 1e-5));
      }
    }
  }
}

TEST(GeluRecognition, NearMissesStayAsTheyAre) {
  Form other_coefficient;
  other_coefficient.cube_coefficient = 0.04;
  Form square;
  square.exponent = 2.0;
  Form read_elsewhere;
  read_elsewhere.tanh_is_output = true;
  for (const Form& f : {other_coefficient, square, read_elsewhere}) {
    Network net = gelu_network(f);
    Network out = recognize(net);
    EXPECT_EQ(out.ops().size(), net.ops().size()) << out.toString();
    EXPECT_EQ(count_unary(out, "gelu_tanh"), 0);
  }
}

TEST(GeluRecognition, GemmFusionThenTakesItIntoTheLinear) {
  Network net = gelu_network(Form{}, /*linear_first=*/true);
  std::vector<std::string> log;
  auto recognized = kiln::builder::recognize_gelu(net, log);
  ASSERT_TRUE(recognized.ok()) << recognized.status().toString();
  auto fused = kiln::builder::fuse_gemm_epilogues(*recognized, log);
  ASSERT_TRUE(fused.ok()) << fused.status().toString();
  ASSERT_EQ(fused->ops().size(), 1u) << fused->toString();
  EXPECT_EQ(fused->ops()[0].kind, OpKind::kLinear);
  EXPECT_EQ(fused->ops()[0].attrs.getString("activation", ""), "gelu_tanh");
}

}  // namespace
}  // namespace kiln_test
