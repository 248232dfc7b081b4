// Writes a seed corpus for kiln_engine_reader_fuzz: a few valid engine files, each exercising
// different parts of the format. Usage: kiln_engine_corpus OUT_DIR

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "format/engine_plan.h"

namespace {

using namespace kiln;
using namespace kiln::format;

struct Seed {
  std::string name;
  EnginePlan plan;
};

std::vector<std::byte> floats(size_t n) {
  std::vector<std::byte> out(n * sizeof(float));
  for (size_t i = 0; i < n; ++i) {
    float v = 0.25f * static_cast<float>(i) - 1.0f;
    std::memcpy(out.data() + i * sizeof(float), &v, sizeof(float));
  }
  return out;
}

// Storage the seeds' constants point into; lives until main returns.
std::vector<std::vector<std::byte>> g_storage;

EnginePlan empty_plan() {
  EnginePlan p;
  p.name = "empty";
  return p;
}

// x[4, 8] @ w[8, 3] + b[3] on the CPU, static shapes.
EnginePlan linear_plan() {
  EnginePlan p;
  p.name = "linear";
  p.kiln_version = "0.1.0";
  p.target = Target{DeviceKind::kCpu, 0, 0, "x86-64 CPU", "linux-x86_64", false};
  g_storage.push_back(floats(24));
  g_storage.push_back(floats(3));
  p.constants = {Constant{"w", DType::kFloat32, {8, 3}, g_storage[g_storage.size() - 2]},
                 Constant{"b", DType::kFloat32, {3}, g_storage.back()}};
  p.tensors = {
      PlanTensor{"x", DType::kFloat32, {4, 8}, TensorRole::kInput, 0, -1, -1, 0, 0},
      PlanTensor{"w", DType::kFloat32, {8, 3}, TensorRole::kConstant, -1, 0, -1, 0, 0},
      PlanTensor{"b", DType::kFloat32, {3}, TensorRole::kConstant, -1, 1, -1, 0, 0},
      PlanTensor{"y", DType::kFloat32, {4, 3}, TensorRole::kOutput, 0, -1, -1, 0, 0},
  };
  p.inputs = {Binding{"x", 0}};
  p.outputs = {Binding{"y", 3}};
  PlanStep step;
  step.kind = OpKind::kLinear;
  step.name = "fc";
  step.inputs = {0, 1, 2};
  step.outputs = {3};
  step.tactic = "cpu.linear.gemm";
  p.steps = {step};
  return p;
}

// Dynamic shapes with every SymExpr kind, every attribute type, a view, CUDA kernels.
EnginePlan symbolic_plan() {
  EnginePlan p;
  p.name = "symbolic";
  p.build_options = "{\"optimization_level\": 2}";
  p.target = Target{DeviceKind::kCuda, 9, 0, "NVIDIA H100", "linux-x86_64", true};
  p.symbols = {SymbolInfo{"batch", 1, 4, 32}, SymbolInfo{"seq", 2, 128, 512}};
  const SymExpr b = SymExpr::symbol(0), s = SymExpr::symbol(1);
  const Shape in_shape = {b, s, 64};
  p.tensors = {
      PlanTensor{"x", DType::kFloat16, in_shape, TensorRole::kInput, 0, -1, -1, 0, 0},
      PlanTensor{"h",
                 DType::kFloat16,
                 {b * s, 64},
                 TensorRole::kActivation,
                 -1,
                 -1,
                 -1,
                 0,
                 32 * 512 * 64 * 2},
      PlanTensor{"hv", DType::kFloat16, in_shape, TensorRole::kView, -1, -1, 1, 0, 0},
      PlanTensor{"y",
                 DType::kFloat32,
                 {b + s, s - b, floordiv(s, 2), mod(s, 3), sym_max(b, s), sym_min(s, 8)},
                 TensorRole::kOutput,
                 0,
                 -1,
                 -1,
                 0,
                 0},
  };
  p.inputs = {Binding{"x", 0}};
  p.outputs = {Binding{"y", 3}};
  PlanStep a;
  a.kind = OpKind::kUnary;
  a.name = "act";
  a.attrs.set("fn", std::string("gelu"))
      .set("alpha", 0.01)
      .set("n", int64_t{3})
      .set("flag", true)
      .set("dims", std::vector<int64_t>{0, 2})
      .set("scales", std::vector<double>{0.5, 2.0})
      .set("start", floordiv(s - 1, 4))
      .set("shape", Shape{b, s, 64})
      .set("dtype", DType::kFloat32);
  a.inputs = {0};
  a.outputs = {1};
  a.tactic = "cuda.fused.0";
  a.tactic_data = {1, 0, 0, 0, 42};
  PlanStep v;
  v.kind = OpKind::kReshape;
  v.name = "view";
  v.attrs.set("shape", in_shape);
  v.inputs = {1};
  v.outputs = {2};
  v.is_view = true;
  PlanStep c;
  c.kind = OpKind::kCast;
  c.name = "cast";
  c.attrs.set("dtype", DType::kFloat32);
  c.inputs = {2};
  c.outputs = {3};
  p.steps = {a, v, c};
  p.arena_bytes = 32 * 512 * 64 * 2;
  p.kernels = {GeneratedKernel{
      "fused_0", "extern \"C\" __global__ void fused_0() {}", {0x7f, 'E', 'L', 'F', 2, 1, 1}}};
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  g_storage.reserve(16);  // constants' spans must not move
  const Seed seeds[] = {
      {"empty", empty_plan()}, {"linear", linear_plan()}, {"symbolic", symbolic_plan()}};
  for (const Seed& seed : seeds) {
    auto file = write_engine(seed.plan);
    if (!file.ok()) {
      std::fprintf(stderr, "%s: %s\n", seed.name.c_str(), file.status().toString().c_str());
      return 1;
    }
    // Every seed must read back: a corpus of rejected files would fuzz nothing but the envelope.
    auto read = read_engine(*file);
    if (!read.ok()) {
      std::fprintf(stderr, "%s: %s\n", seed.name.c_str(), read.status().toString().c_str());
      return 1;
    }
    const std::string path = std::string(argv[1]) + "/" + seed.name + ".kiln";
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(file->data()),
              static_cast<std::streamsize>(file->size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}
