#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "kiln/network.h"

namespace kiln::testing {

// A network with two symbols, batch = s0 in [1, 64] and seq = s1 in [1, 512], and helpers that
// add inputs and ops and assert on the outcome.
class IrTest : public ::testing::Test {
 protected:
  IrTest() {
    batch = net.addSymbol("batch", 1, 8, 64).value();
    seq = net.addSymbol("seq", 1, 128, 512).value();
  }

  Tensor in(const std::string& name, DType dtype, const Shape& shape) {
    auto t = net.addInput(name, dtype, shape);
    EXPECT_TRUE(t.ok()) << t.status().toString();
    return t.ok() ? *t : Tensor{};
  }
  Tensor f32(const std::string& name, const Shape& shape) { return in(name, DType::kFloat32, shape); }

  // Adds an op that must succeed; returns its (first) output.
  Tensor ok(OpKind kind, std::vector<Tensor> inputs, Attrs attrs = {}, std::string name = "") {
    auto r = net.addOp(kind, std::move(inputs), std::move(attrs), std::move(name));
    EXPECT_TRUE(r.ok()) << r.status().toString();
    return r.ok() ? r->at(0) : Tensor{};
  }
  // Adds an op that must fail; returns the message, which must hold every `parts`.
  std::string fails(OpKind kind, std::vector<Tensor> inputs, Attrs attrs,
                    std::initializer_list<std::string> parts, std::string name = "bad") {
    auto r = net.addOp(kind, std::move(inputs), std::move(attrs), std::move(name));
    EXPECT_FALSE(r.ok()) << "expected an error";
    if (r.ok()) return "";
    std::string msg = r.status().message();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << msg;
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
    return msg;
  }

  const TensorInfo& info(Tensor t) { return net.tensor(t); }
  const Attrs& attrs_of(Tensor t) { return net.ops().at(static_cast<size_t>(info(t).producer)).attrs; }

  // The shape of t evaluated with batch = b, seq = s.
  std::vector<int64_t> dims(Tensor t, int64_t b = 2, int64_t s = 3) {
    std::vector<int64_t> bindings = {b, s}, out;
    for (const SymExpr& e : info(t).shape) {
      auto v = e.evaluate(bindings);
      EXPECT_TRUE(v.ok()) << v.status().toString();
      out.push_back(v.ok() ? *v : -1);
    }
    return out;
  }

  Network net{"test"};
  SymExpr batch, seq;
};

inline std::vector<int64_t> v(std::initializer_list<int64_t> l) { return l; }

}  // namespace kiln::testing
