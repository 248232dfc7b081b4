// Elementwise kernels (unary, binary, where, cast, clamp) against double references, over every
// dtype and the contiguous / permuted / sliced / expanded layouts. Op suite: runs on every backend
// (backends/op_runner.h).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "backends/op_runner.h"

namespace kiln {
namespace {

using test::Layout;
using test::make_output;
using test::make_tensor;
using test::run_kernel;
using test::Backend;
using test::current_backend;

KILN_OP_SUITE(Binary);
KILN_OP_SUITE(Cast);
KILN_OP_SUITE(Clamp);
KILN_OP_SUITE(Unary);
KILN_OP_SUITE(Where);

Attrs fn_attr(const char* fn) { return {{"fn", std::string(fn)}}; }

struct UnaryCase {
  const char* fn;
  std::function<double(double)> ref;
  double lo, hi;  // input range
};

std::vector<UnaryCase> float_unary_cases() {
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  return {
      {"neg", [](double x) { return -x; }, -3, 3},
      {"abs", [](double x) { return std::fabs(x); }, -3, 3},
      {"exp", [](double x) { return std::exp(x); }, -3, 3},
      {"log", [](double x) { return std::log(x); }, 0.1, 5},
      {"sqrt", [](double x) { return std::sqrt(x); }, 0.1, 5},
      {"rsqrt", [](double x) { return 1.0 / std::sqrt(x); }, 0.1, 5},
      {"sin", [](double x) { return std::sin(x); }, -3, 3},
      {"cos", [](double x) { return std::cos(x); }, -3, 3},
      {"tanh", [](double x) { return std::tanh(x); }, -3, 3},
      {"sigmoid", sig, -6, 6},
      {"relu", [](double x) { return x > 0 ? x : 0.0; }, -3, 3},
      {"gelu", [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, -4, 4},
      {"gelu_tanh",
       [](double x) {
         return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
       },
       -4, 4},
      {"silu", [=](double x) { return x * sig(x); }, -6, 6},
      {"erf", [](double x) { return std::erf(x); }, -3, 3},
      {"reciprocal", [](double x) { return 1.0 / x; }, 0.2, 4},
      {"floor", [](double x) { return std::floor(x); }, -5, 5},
      {"ceil", [](double x) { return std::ceil(x); }, -5, 5},
      {"round", [](double x) { return std::nearbyint(x); }, -5, 5},
      {"sign", [](double x) { return double((x > 0) - (x < 0)); }, -3, 3},
      {"log1p", [](double x) { return std::log1p(x); }, -0.9, 3},
      {"expm1", [](double x) { return std::expm1(x); }, -3, 3},
      {"hardswish", [](double x) { return x * std::clamp(x + 3, 0.0, 6.0) / 6; }, -5, 5},
      {"hardsigmoid", [](double x) { return std::clamp(x + 3, 0.0, 6.0) / 6; }, -5, 5},
      {"leaky_relu", [](double x) { return x > 0 ? x : 0.01 * x; }, -3, 3},
      {"elu", [](double x) { return x > 0 ? x : std::exp(x) - 1; }, -3, 3},
      {"softplus", [](double x) { return x > 20 ? x : std::log1p(std::exp(x)); }, -5, 25},
  };
}

TEST_P(Unary, FloatFnsMatchReferenceForEveryDtypeAndLayout) {
  const std::vector<int64_t> shape = {3, 4, 5};
  for (const UnaryCase& c : float_unary_cases()) {
    for (DType dt : test::kFloatDTypes) {
      for (Layout layout : test::kAllLayouts) {
        SCOPED_TRACE(str(c.fn, " ", dtype_name(dt), " ", test::layout_name(layout)));
        auto in = test::round_all(dt, test::random_values(60, 7, c.lo, c.hi));
        auto x = make_tensor(dt, shape, in, layout);
        auto y = make_output(dt, shape);
        ASSERT_TRUE(
            run_kernel(OpKind::kUnary, {{"fn", std::string(c.fn)}}, {&x}, {&y}).ok());
        std::vector<double> ref;
        for (double v : in) ref.push_back(test::round_to(dt, c.ref(v)));
        EXPECT_TRUE(test::expect_close(y.view, ref));
      }
    }
  }
}

TEST_P(Unary, ExpandedInputReadsThroughZeroStrides) {
  auto x = test::make_expanded(DType::kFloat32, {3, 4}, {3, 1}, {1, 2, 3});
  auto y = make_output(DType::kFloat32, {3, 4});
  ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr("neg"), {&x}, {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {-1, -1, -1, -1, -2, -2, -2, -2, -3, -3, -3, -3}));
}

TEST_P(Unary, AlphaSetsLeakyReluSlopeAndEluScale) {
  auto x = make_tensor(DType::kFloat32, {4}, {-2, -0.5, 0.5, 2});
  auto y = make_output(DType::kFloat32, {4});
  ASSERT_TRUE(run_kernel(OpKind::kUnary, {{"fn", std::string("leaky_relu")}, {"alpha", 0.2}},
                           {&x}, {&y})
                  .ok());
  EXPECT_TRUE(test::expect_close(y.view, {-0.4, -0.1, 0.5, 2}));
  ASSERT_TRUE(
      run_kernel(OpKind::kUnary, {{"fn", std::string("elu")}, {"alpha", 2.0}}, {&x}, {&y})
          .ok());
  EXPECT_TRUE(test::expect_close(y.view, {2 * std::expm1(-2.0), 2 * std::expm1(-0.5), 0.5, 2}));
}

TEST_P(Unary, IntegerFnsMatchReference) {
  const std::vector<double> in = {-7, -1, 0, 1, 5, 100};
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8}) {
    auto x = make_tensor(dt, {2, 3}, in, Layout::kPermuted);
    for (auto [fn, ref] : std::vector<std::pair<const char*, std::function<double(double)>>>{
             {"neg", [](double v) { return -v; }},
             {"abs", [](double v) { return std::fabs(v); }},
             {"sign", [](double v) { return double((v > 0) - (v < 0)); }},
             {"relu", [](double v) { return v > 0 ? v : 0; }},
             {"floor", [](double v) { return v; }},
             {"bitwise_not", [](double v) { return -v - 1; }}}) {
      SCOPED_TRACE(str(fn, " ", dtype_name(dt)));
      auto y = make_output(dt, {2, 3});
      ASSERT_TRUE(run_kernel(OpKind::kUnary, {{"fn", std::string(fn)}}, {&x}, {&y}).ok());
      std::vector<double> want;
      for (double v : in) want.push_back(ref(v));
      EXPECT_TRUE(test::expect_close(y.view, want));
    }
  }
}

TEST_P(Unary, UnsignedAndBoolFns) {
  auto u = make_tensor(DType::kUInt8, {3}, {0, 7, 255});
  auto yu = make_output(DType::kUInt8, {3});
  ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr("sign"), {&u}, {&yu}));
  EXPECT_TRUE(test::expect_close(yu.view, {0, 1, 1}));
  ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr("bitwise_not"), {&u}, {&yu}));
  EXPECT_TRUE(test::expect_close(yu.view, {255, 248, 0}));
  auto b = make_tensor(DType::kBool, {2}, {0, 1});
  auto yb = make_output(DType::kBool, {2});
  ASSERT_OK(run_kernel(OpKind::kUnary, fn_attr("bitwise_not"), {&b}, {&yb}));
  EXPECT_TRUE(test::expect_close(yb.view, {1, 0}));
}

TEST_P(Unary, LogicalNotAndIsnanGiveBoolForEveryDtype) {
  for (DType dt : test::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<double> in = {0, 1, 0, 1};
    if (is_floating(dt)) in = {0, 2.5, std::nan(""), -1};
    auto x = make_tensor(dt, {4}, in, Layout::kSliced);
    auto y = make_output(DType::kBool, {4});
    ASSERT_TRUE(
        run_kernel(OpKind::kUnary, {{"fn", std::string("logical_not")}}, {&x}, {&y})
            .ok());
    EXPECT_TRUE(test::expect_close(y.view, {1, 0, is_floating(dt) ? 0.0 : 1.0, 0}));
    ASSERT_TRUE(
        run_kernel(OpKind::kUnary, {{"fn", std::string("isnan")}}, {&x}, {&y}).ok());
    EXPECT_TRUE(test::expect_close(y.view, {0, 0, is_floating(dt) ? 1.0 : 0.0, 0}));
  }
}

TEST_P(Unary, FloatOnlyFnOnIntegersIsUnsupported) {
  auto x = make_tensor(DType::kInt32, {2}, {1, 2});
  auto y = make_output(DType::kInt32, {2});
  Status s = run_kernel(OpKind::kUnary, {{"fn", std::string("exp")}}, {&x}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("exp"), std::string::npos);
}

// ---- binary ---------------------------------------------------------------------------------

double py_floor_div(double a, double b) { return std::floor(a / b); }
double py_mod(double a, double b) { return a - b * std::floor(a / b); }

struct BinaryCase {
  const char* fn;
  std::function<double(double, double)> ref;
  bool gives_bool = false;
};

std::vector<BinaryCase> float_binary_cases() {
  return {{"add", [](double a, double b) { return a + b; }},
          {"sub", [](double a, double b) { return a - b; }},
          {"mul", [](double a, double b) { return a * b; }},
          {"div", [](double a, double b) { return a / b; }},
          {"pow", [](double a, double b) { return std::pow(std::fabs(a), b); }},
          {"maximum", [](double a, double b) { return std::max(a, b); }},
          {"minimum", [](double a, double b) { return std::min(a, b); }},
          {"floor_divide", py_floor_div},
          {"remainder", py_mod},
          {"eq", [](double a, double b) { return double(a == b); }, true},
          {"ne", [](double a, double b) { return double(a != b); }, true},
          {"lt", [](double a, double b) { return double(a < b); }, true},
          {"le", [](double a, double b) { return double(a <= b); }, true},
          {"gt", [](double a, double b) { return double(a > b); }, true},
          {"ge", [](double a, double b) { return double(a >= b); }, true},
          {"logical_and", [](double a, double b) { return double(a != 0 && b != 0); }, true},
          {"logical_or", [](double a, double b) { return double(a != 0 || b != 0); }, true},
          {"logical_xor", [](double a, double b) { return double((a != 0) != (b != 0)); }, true}};
}

// Shapes of a, b (broadcasting) and how each is laid out.
struct BroadcastCase {
  std::vector<int64_t> a, b;
  Layout la, lb;
};
const BroadcastCase kBroadcastCases[] = {
    {{2, 3, 4}, {2, 3, 4}, Layout::kContiguous, Layout::kContiguous},
    {{2, 3, 4}, {2, 3, 4}, Layout::kPermuted, Layout::kSliced},
    {{2, 3, 4}, {3, 1}, Layout::kContiguous, Layout::kPermuted},
    {{1}, {2, 3, 4}, Layout::kContiguous, Layout::kContiguous},
    {{2, 3, 4}, {1}, Layout::kSliced, Layout::kContiguous},
    {{4, 1, 5}, {3, 1}, Layout::kSliced, Layout::kContiguous},
};

TEST_P(Binary, FloatFnsBroadcastOverLayoutsForEveryDtype) {
  for (const BinaryCase& c : float_binary_cases()) {
    for (DType dt : test::kFloatDTypes) {
      for (const BroadcastCase& bc : kBroadcastCases) {
        SCOPED_TRACE(str(c.fn, " ", dtype_name(dt), " ", test::layout_name(bc.la), "/",
                         test::layout_name(bc.lb), " b rank ", bc.b.size()));
        auto out_shape = test::broadcast_shape(bc.a, bc.b);
        // Small integers (with zeros) make comparisons tie; otherwise continuous values.
        bool ints = c.gives_bool;
        std::string fn = c.fn;
        auto va = ints ? test::random_ints(test::numel(bc.a), 1, -2, 2)
                       : test::random_values(test::numel(bc.a), 1, fn == "pow" ? 0.5 : -3, 3);
        auto vb = ints ? test::random_ints(test::numel(bc.b), 2, -2, 2)
                       : test::random_values(test::numel(bc.b), 2, 0.5, 3);
        if (fn == "pow")
          for (double& v : va) v = std::fabs(v);
        va = test::round_all(dt, va);
        vb = test::round_all(dt, vb);
        auto a = make_tensor(dt, bc.a, va, bc.la);
        auto b = make_tensor(dt, bc.b, vb, bc.lb);
        DType odt = c.gives_bool ? DType::kBool : dt;
        auto y = make_output(odt, out_shape);
        ASSERT_TRUE(run_kernel(OpKind::kBinary, {{"fn", fn}}, {&a, &b}, {&y}).ok());
        auto ea = test::broadcast_values(va, bc.a, out_shape);
        auto eb = test::broadcast_values(vb, bc.b, out_shape);
        std::vector<double> ref;
        for (size_t i = 0; i < ea.size(); ++i)
          ref.push_back(test::round_to(odt, c.ref(ea[i], eb[i])));
        // float32 pow (powf) differs from double pow by a few ulps more than one rounding.
        test::Tolerance tol = test::tolerance(odt);
        if (fn == "pow" && dt == DType::kFloat32) tol = {1e-5, 4e-5};
        EXPECT_TRUE(test::expect_close(y.view, ref, tol));
      }
    }
  }
}

TEST_P(Binary, FloorDivideAndRemainderFollowPythonSignsOnFloats) {
  auto a = make_tensor(DType::kFloat32, {4}, {7, -7, 7, -7});
  auto b = make_tensor(DType::kFloat32, {4}, {2, 2, -2, -2});
  auto y = make_output(DType::kFloat32, {4});
  ASSERT_TRUE(run_kernel(OpKind::kBinary, {{"fn", std::string("floor_divide")}}, {&a, &b},
                           {&y})
                  .ok());
  EXPECT_TRUE(test::expect_close(y.view, {3, -4, -4, 3}));
  ASSERT_TRUE(
      run_kernel(OpKind::kBinary, {{"fn", std::string("remainder")}}, {&a, &b}, {&y})
          .ok());
  EXPECT_TRUE(test::expect_close(y.view, {1, 1, -1, -1}));
}

TEST_P(Binary, ExpandedOperandReadsThroughZeroStrides) {
  auto a = test::make_expanded(DType::kFloat32, {2, 3}, {1, 3}, {1, 2, 3});
  auto b = make_tensor(DType::kFloat32, {2, 3}, {10, 20, 30, 40, 50, 60}, Layout::kPermuted);
  auto y = make_output(DType::kFloat32, {2, 3});
  ASSERT_OK(run_kernel(OpKind::kBinary, fn_attr("add"), {&a, &b}, {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {11, 22, 33, 41, 52, 63}));
}

TEST_P(Binary, IntegerArithmeticMatchesPythonSemantics) {
  const std::vector<double> va = {7, -7, 7, -7, 0, 5, -128, 100};
  const std::vector<double> vb = {2, 2, -2, -2, 3, 1, 1, 3};
  auto wrap8 = [](double v) {
    int64_t i = static_cast<int64_t>(v);
    return static_cast<double>(static_cast<int8_t>(static_cast<uint8_t>(i & 0xff)));
  };
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8}) {
    auto a = make_tensor(dt, {2, 4}, va, Layout::kPermuted);
    auto b = make_tensor(dt, {2, 4}, vb, Layout::kSliced);
    for (const BinaryCase& c : std::vector<BinaryCase>{
             {"add", [](double x, double y) { return x + y; }},
             {"sub", [](double x, double y) { return x - y; }},
             {"mul", [](double x, double y) { return x * y; }},
             {"floor_divide", py_floor_div},
             {"remainder", py_mod},
             {"maximum", [](double x, double y) { return std::max(x, y); }},
             {"minimum", [](double x, double y) { return std::min(x, y); }},
             {"bitwise_and", [](double x, double y) { return double(int64_t(x) & int64_t(y)); }},
             {"bitwise_or", [](double x, double y) { return double(int64_t(x) | int64_t(y)); }},
             {"bitwise_xor", [](double x, double y) { return double(int64_t(x) ^ int64_t(y)); }},
             {"lt", [](double x, double y) { return double(x < y); }, true}}) {
      SCOPED_TRACE(str(c.fn, " ", dtype_name(dt)));
      auto y = make_output(c.gives_bool ? DType::kBool : dt, {2, 4});
      ASSERT_TRUE(
          run_kernel(OpKind::kBinary, {{"fn", std::string(c.fn)}}, {&a, &b}, {&y})
              .ok());
      std::vector<double> ref;
      for (size_t i = 0; i < va.size(); ++i) {
        double r = c.ref(va[i], vb[i]);
        ref.push_back(dt == DType::kInt8 && !c.gives_bool ? wrap8(r) : r);
      }
      EXPECT_TRUE(test::expect_close(y.view, ref));
    }
  }
}

// Every backend fails the run. The CPU stops and names the op; the CUDA kernel writes 0 there
// and flags the device error word (kOutOfRange), which reading clears.
TEST_P(Binary, IntegerDivisionByZeroIsAnError) {
  for (const char* fn : {"floor_divide", "remainder"}) {
    SCOPED_TRACE(fn);
    auto a = make_tensor(DType::kInt32, {3}, {7, 2, 3});
    auto b = make_tensor(DType::kInt32, {3}, {2, 0, 1});
    auto y = make_output(DType::kInt32, {3});
    Status s = run_kernel(OpKind::kBinary, fn_attr(fn), {&a, &b}, {&y},
                          {.op_name = "binary 'div0'"});
    EXPECT_FALSE(s.ok());
    if (current_backend() == Backend::kCpu) {
      EXPECT_NE(s.message().find("division by zero"), std::string::npos) << s.message();
      EXPECT_NE(s.message().find("div0"), std::string::npos) << s.message();
    } else {
      EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
      EXPECT_EQ(test::read_values(y.view)[1], 0.0);
    }
    // Nothing is left over from the failed run: the next clean run succeeds.
    auto ok_b = make_tensor(DType::kInt32, {3}, {1, 1, 1});
    EXPECT_TRUE(run_kernel(OpKind::kBinary, fn_attr(fn), {&a, &ok_b}, {&y}).ok());
  }
}

TEST_P(Binary, IntegerPowWrapsAndRejectsNegativeExponents) {
  auto a = make_tensor(DType::kInt8, {4}, {3, -2, 100, 5});
  auto b = make_tensor(DType::kInt8, {4}, {4, 3, 3, 0});
  auto y = make_output(DType::kInt8, {4});
  ASSERT_TRUE(
      run_kernel(OpKind::kBinary, {{"fn", std::string("pow")}}, {&a, &b}, {&y}).ok());
  EXPECT_TRUE(test::expect_close(y.view, {81, -8, 64, 1}));  // 100^3 = 1000000 wraps to 64
  auto neg = make_tensor(DType::kInt8, {4}, {1, -1, 1, 1});
  Status s = run_kernel(OpKind::kBinary, fn_attr("pow"), {&a, &neg}, {&y});
  EXPECT_FALSE(s.ok());
  if (current_backend() == Backend::kCuda) EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
}

TEST_P(Binary, FloatPowOfTheExponentsATenSpecialCases) {
  // ATen computes x^2 and x^3 as products, x^0.5 as sqrt and x^-1 as a reciprocal (also for
  // negative x, where powf would agree); the float32 result stays within two roundings of the
  // double reference.
  const std::vector<double> xs = {-3.5, -1.25, -0.5, 0.0, 0.75, 1.5, 2.0, 7.25};
  for (double e : {2.0, 3.0, 0.5, -0.5, -1.0, -2.0, 1.7}) {
    SCOPED_TRACE(str("exponent ", e));
    std::vector<double> in, ref;
    for (double x : xs) {
      if ((e == 0.5 || e == -0.5 || e == 1.7) && x < 0) continue;  // NaN both ways: not compared
      if (e < 0 && x == 0) continue;
      in.push_back(x);
      ref.push_back(std::pow(x, e));
    }
    const int64_t n = static_cast<int64_t>(in.size());
    auto a = make_tensor(DType::kFloat32, {n}, in);
    auto b = make_tensor(DType::kFloat32, {1}, {e});
    auto y = make_output(DType::kFloat32, {n});
    ASSERT_OK(run_kernel(OpKind::kBinary, fn_attr("pow"), {&a, &b}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, ref, {1e-6, 3e-7}));
  }
}

TEST_P(Binary, BoolLogicalAndBitwiseOps) {
  auto a = make_tensor(DType::kBool, {4}, {0, 0, 1, 1});
  auto b = make_tensor(DType::kBool, {4}, {0, 1, 0, 1});
  auto y = make_output(DType::kBool, {4});
  for (auto [fn, want] :
       std::vector<std::pair<const char*, std::vector<double>>>{{"logical_and", {0, 0, 0, 1}},
                                                                {"logical_or", {0, 1, 1, 1}},
                                                                {"logical_xor", {0, 1, 1, 0}},
                                                                {"bitwise_and", {0, 0, 0, 1}},
                                                                {"bitwise_xor", {0, 1, 1, 0}},
                                                                {"add", {0, 1, 1, 1}},
                                                                {"eq", {1, 0, 0, 1}}}) {
    ASSERT_TRUE(
        run_kernel(OpKind::kBinary, {{"fn", std::string(fn)}}, {&a, &b}, {&y}).ok());
    EXPECT_TRUE(test::expect_close(y.view, want)) << fn;
  }
}

TEST_P(Binary, DivOnIntegersIsUnsupported) {
  auto a = make_tensor(DType::kInt64, {2}, {1, 2});
  auto y = make_output(DType::kInt64, {2});
  Status s =
      run_kernel(OpKind::kBinary, {{"fn", std::string("div")}}, {&a, &a}, {&y});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
}

TEST_P(Binary, LargeContiguousFloat32CoversEveryElement) {
  const int64_t n = (1 << 20) + 4099;
  auto va = test::random_values(n, 3), vb = test::random_values(n, 4);
  auto a = make_tensor(DType::kFloat32, {n}, va), b = make_tensor(DType::kFloat32, {n}, vb);
  auto y = make_output(DType::kFloat32, {n});
  ASSERT_TRUE(
      run_kernel(OpKind::kBinary, {{"fn", std::string("mul")}}, {&a, &b}, {&y}).ok());
  std::vector<double> ref;
  for (int64_t i = 0; i < n; ++i) ref.push_back(float(va[i]) * double(float(vb[i])));
  EXPECT_TRUE(test::expect_close(y.view, ref));
}

// ---- where, cast, clamp -----------------------------------------------------------------------

TEST_P(Where, BroadcastsConditionAndValuesOfEveryDtype) {
  for (DType dt : test::kAllDTypes) {
    SCOPED_TRACE(dtype_name(dt));
    auto c = make_tensor(DType::kBool, {3, 1}, {1, 0, 1});
    auto a = make_tensor(dt, {3, 4}, test::random_ints(12, 5, 0, 1), Layout::kPermuted);
    auto b = make_tensor(dt, {4}, {1, 0, 1, 0});
    auto y = make_output(dt, {3, 4});
    ASSERT_OK(run_kernel(OpKind::kWhere, {}, {&c, &a, &b}, {&y}));
    auto va = test::read_values(a.view);
    std::vector<double> ref;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) ref.push_back(i != 1 ? va[i * 4 + j] : (j % 2 == 0 ? 1 : 0));
    EXPECT_TRUE(test::expect_close(y.view, ref));
  }
}

TEST_P(Cast, EveryDtypePairFollowsTheCastRules) {
  const std::vector<double> in = {-3.75, -1.0, 0.0, 0.5, 2.5, 100.25, 300.0, -200.0};
  for (DType from : test::kAllDTypes) {
    for (DType to : test::kAllDTypes) {
      SCOPED_TRACE(str(dtype_name(from), " -> ", dtype_name(to)));
      auto src = test::round_all(from, in);
      auto x = make_tensor(from, {2, 4}, src, Layout::kPermuted);
      auto y = make_output(to, {2, 4});
      ASSERT_OK(run_kernel(OpKind::kCast, {{"dtype", to}}, {&x}, {&y}));
      std::vector<double> ref;
      for (double v : test::read_values(x.view)) {
        // Floats narrow through float32 first (the kernels convert via float32).
        const double through = is_floating(from) || is_floating(to) ? double(float(v)) : v;
        if (is_integer(to) && is_integer(from)) {
          // int -> int wraps modulo 2^bits
          const int64_t i = static_cast<int64_t>(v);
          ref.push_back(test::round_to(to, to == DType::kInt8    ? double(int8_t(uint8_t(i & 0xff)))
                                           : to == DType::kUInt8 ? double(uint8_t(i & 0xff))
                                           : to == DType::kInt32 ? double(int32_t(uint32_t(i)))
                                                                 : double(i)));
        } else {
          ref.push_back(test::round_to(to, through));
        }
      }
      EXPECT_TRUE(test::expect_close(y.view, ref, {0, 0}));
    }
  }
}

TEST_P(Cast, FloatToIntSaturatesAndMapsNanToZero) {
  auto x = make_tensor(DType::kFloat32, {4}, {1e10, -1e10, std::nan(""), -2.9});
  auto y = make_output(DType::kInt32, {4});
  ASSERT_OK(run_kernel(OpKind::kCast, {{"dtype", DType::kInt32}}, {&x}, {&y}));
  EXPECT_TRUE(test::expect_close(y.view, {2147483647.0, -2147483648.0, 0, -2}));
}

TEST_P(Clamp, FloatAndIntegerBounds) {
  for (DType dt : test::kFloatDTypes) {
    auto x = make_tensor(dt, {5}, {-3, -0.5, 0.25, 1.5, std::nan("")}, Layout::kSliced);
    auto y = make_output(dt, {5});
    ASSERT_OK(run_kernel(OpKind::kClamp, {{"min", -1.0}, {"max", 1.0}}, {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, {-1, -0.5, 0.25, 1, std::nan("")})) << dtype_name(dt);
    ASSERT_OK(run_kernel(OpKind::kClamp, {{"min", 0.0}}, {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, {0, 0, 0.25, 1.5, std::nan("")})) << dtype_name(dt);
  }
  for (DType dt : {DType::kInt64, DType::kInt32, DType::kInt8, DType::kUInt8}) {
    auto x = make_tensor(dt, {4}, {0, 2, 5, 100});
    auto y = make_output(dt, {4});
    ASSERT_OK(run_kernel(OpKind::kClamp, {{"min", 1.5}, {"max", 4.5}}, {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, {2, 2, 4, 4})) << dtype_name(dt);
    ASSERT_OK(run_kernel(OpKind::kClamp, {{"max", 1000.0}}, {&x}, {&y}));
    EXPECT_TRUE(test::expect_close(y.view, {0, 2, 5, 100})) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace kiln
