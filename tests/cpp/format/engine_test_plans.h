#pragma once

// Plans for the engine-file tests: one that uses every feature the format carries.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "format/engine_plan.h"

namespace kiln::format::testing {

// A plan plus the storage its constants' spans point into.
struct OwnedPlan {
  EnginePlan plan;
  std::vector<std::vector<std::byte>> storage;
};

template <typename T>
std::vector<std::byte> to_bytes(const std::vector<T>& values) {
  std::vector<std::byte> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// Symbols s0 = batch (1..16), s1 = seq (1..128). Under s0 = 3, s1 = 10 the output "y" has
// dims 13, 7, 5, 1, 10, 4, 33 (see kRichOutputDims).
inline constexpr int64_t kRichOutputDims[] = {13, 7, 5, 1, 10, 4, 33};

inline OwnedPlan make_rich_plan() {
  OwnedPlan owned;
  EnginePlan& p = owned.plan;
  p.name = "rich";
  p.kiln_version = "0.1.0";
  p.build_options = "{\"optimization_level\": 3}";
  p.target = Target{DeviceKind::kCuda, 9, 0, "NVIDIA H100 80GB HBM3", "linux-x86_64", false};
  p.symbols = {SymbolInfo{"batch", 1, 8, 16}, SymbolInfo{"seq", 1, 64, 128}};
  const SymExpr s0 = SymExpr::symbol(0), s1 = SymExpr::symbol(1);

  // Constants: 12 bytes then 40, so the second needs padding to reach its 256-byte boundary.
  owned.storage.push_back(to_bytes(std::vector<float>{1.5f, -2.0f, 3.25f}));
  owned.storage.push_back(to_bytes(std::vector<int64_t>{0, 1, -1, 1LL << 40, 7}));
  p.constants = {Constant{"w", DType::kFloat32, {3}, owned.storage[0]},
                 Constant{"idx", DType::kInt64, {5}, owned.storage[1]}};

  const Shape x_shape = {s0, s1, 16};
  const SymExpr composite = s0 * s1 + floordiv(s1 - 1, 4) + 1;
  p.tensors = {
      PlanTensor{"x", DType::kFloat32, x_shape, TensorRole::kInput, 0, -1, -1, 0, 0},
      PlanTensor{"w", DType::kFloat32, {3}, TensorRole::kConstant, -1, 0, -1, 0, 0},
      PlanTensor{"idx", DType::kInt64, {5}, TensorRole::kConstant, -1, 1, -1, 0, 0},
      PlanTensor{
          "h", DType::kFloat16, {s0 * s1, 16}, TensorRole::kActivation, -1, -1, -1, 0, 65536},
      PlanTensor{"h_view", DType::kFloat16, x_shape, TensorRole::kView, -1, -1, 3, 0, 0},
      PlanTensor{"y",
                 DType::kBFloat16,
                 {s0 + s1, s1 - s0, floordiv(s1, 2), mod(s1, 3), sym_max(s0, s1), sym_min(s1, 4),
                  composite},
                 TensorRole::kOutput,
                 0,
                 -1,
                 -1,
                 0,
                 0},
      PlanTensor{"scalar", DType::kInt32, {}, TensorRole::kActivation, -1, -1, -1, 65536, 4},
  };
  p.inputs = {Binding{"x", 0}};
  p.outputs = {Binding{"y", 5}};

  PlanStep fc;
  fc.kind = OpKind::kLinear;
  fc.name = "fc";
  fc.attrs.set("i", int64_t{-3})
      .set("f", 2.5)
      .set("b", true)
      .set("s", std::string("gelu_tanh"))
      .set("ints", std::vector<int64_t>{1, -2, 3})
      .set("floats", std::vector<double>{0.5, -1e-300, 1e300})
      .set("sym", s0 * s1)
      .set("shape", Shape{s0, 4, floordiv(s1, 2)})
      .set("dtype", DType::kBFloat16);
  fc.inputs = {0, 1};
  fc.outputs = {3};
  fc.tactic = "cpu.linear.gemm";
  fc.tactic_data = {1, 2, 3, 255};

  PlanStep view;
  view.kind = OpKind::kReshape;
  view.name = "view";
  view.attrs.set("shape", x_shape);
  view.inputs = {3};
  view.outputs = {4};
  view.is_view = true;
  view.tactic = "view";

  PlanStep cast;
  cast.kind = OpKind::kCast;
  cast.name = "out";
  cast.attrs.set("dtype", DType::kBFloat16);
  cast.inputs = {4, 2};
  cast.outputs = {5};

  PlanStep fill;
  fill.kind = OpKind::kFill;
  fill.name = "fill";
  fill.outputs = {6};

  p.steps = {fc, view, cast, fill};
  p.arena_bytes = 65536 + 256;
  p.kernels = {
      GeneratedKernel{
          "fused_0", "extern \"C\" __global__ void fused_0() {}", {0x7f, 'E', 'L', 'F', 0, 1}},
      GeneratedKernel{"fused_1", "// no cubin", {}}};
  return owned;
}

inline std::vector<std::byte> write_or_die(const EnginePlan& plan) {
  auto file = write_engine(plan);
  EXPECT_TRUE(file.ok()) << file.status().toString();
  return file.ok() ? std::move(file).value() : std::vector<std::byte>();
}

}  // namespace kiln::format::testing
