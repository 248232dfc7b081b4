// The fused pointwise op: an interpreter over its program (ir/pointwise_program.h). Works on
// blocks of output elements: gathers each input's block (broadcasting through strides) as
// float32, runs each instruction over the block, and rounds each result to its register's
// dtype, so it matches the unfused CPU kernels bit for bit.

#include <algorithm>
#include <cmath>

#include "backends/common/float_pow.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"
#include "ir/pointwise_program.h"

namespace kiln::cpu {
namespace {

constexpr int64_t kBlock = 256;

Status supports_pointwise(const Op& op, std::span<const DType> dtypes) {
  auto p = decode_pointwise(op.attrs, dtypes);
  if (!p.ok()) return invalid_argument("pointwise '", op.name, "': ", p.status().message());
  return Status::Ok();
}


// Same formulas as the unary kernel (elementwise.cpp), indexed like kPwUnaryFns.
float unary(int fn, float x, float alpha) {
  constexpr float kSqrt1_2 = 0.70710678118654752f;
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  switch (fn) {
    case 0: return -x;
    case 1: return std::fabs(x);
    case 2: return std::exp(x);
    case 3: return std::log(x);
    case 4: return std::sqrt(x);
    case 5: return 1.0f / std::sqrt(x);
    case 6: return std::sin(x);
    case 7: return std::cos(x);
    case 8: return std::tanh(x);
    case 9: return 1.0f / (1.0f + std::exp(-x));
    case 10: return x > 0.0f ? x : (x == x ? 0.0f : x);
    case 11: return 0.5f * x * (1.0f + std::erf(x * kSqrt1_2));
    case 12: return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    case 13: return x / (1.0f + std::exp(-x));
    case 14: return std::erf(x);
    case 15: return 1.0f / x;
    case 16: return std::floor(x);
    case 17: return std::ceil(x);
    case 18: return std::nearbyint(x);
    case 19: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case 20: return std::log1p(x);
    case 21: return std::expm1(x);
    case 22: return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case 23: return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case 24: return x > 0.0f ? x : alpha * x;
    case 25: return x > 0.0f ? x : alpha * std::expm1(x);
    case 26: return x > 20.0f ? x : std::log1p(std::exp(x));
    case 27: return x != 0.0f ? 0.0f : 1.0f;  // logical_not
    case 28: return x != 0.0f ? 0.0f : 1.0f;  // bitwise_not (bool only)
    case 29: return x != x ? 1.0f : 0.0f;     // isnan
  }
  return x;
}

// Same formulas as the binary kernel (binary.cpp), indexed like kPwBinaryFns. Bool operands
// are 0/1 (maximum/minimum/bitwise on bool reduce to the same 0/1 arithmetic).
float binary(int fn, float a, float b) {
  switch (fn) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return float_pow(a, b);
    case 5: return (a != a || a > b) ? a : b;
    case 6: return (a != a || a < b) ? a : b;
    case 7: return float_floor_divide(a, b);
    case 8: return float_remainder(a, b);
    case 9: return a == b;
    case 10: return a != b;
    case 11: return a < b;
    case 12: return a <= b;
    case 13: return a > b;
    case 14: return a >= b;
    case 15: return a != 0.0f && b != 0.0f;
    case 16: return a != 0.0f || b != 0.0f;
    case 17: return (a != 0.0f) != (b != 0.0f);
    case 18: return a != 0.0f && b != 0.0f;  // bitwise_and on bool
    case 19: return a != 0.0f || b != 0.0f;
    case 20: return (a != 0.0f) != (b != 0.0f);
  }
  return a;
}

// Rounds n floats to `dtype` in place (float32: nothing; bool registers already hold 0/1).
void round_to(DType dtype, float* v, int64_t n) {
  if (dtype == DType::kFloat16) {
    for (int64_t i = 0; i < n; ++i) v[i] = to_float(from_float<Half>(v[i]));
  } else if (dtype == DType::kBFloat16) {
    for (int64_t i = 0; i < n; ++i) v[i] = to_float(from_float<BFloat16>(v[i]));
  }
}

void run_instruction(const PointwiseInstr& in, std::vector<float>& regs, int64_t dst, int64_t n) {
  float* y = regs.data() + dst * kBlock;
  const float* a = regs.data() + std::max(in.operands[0], 0) * kBlock;
  const float* b = regs.data() + std::max(in.operands[1], 0) * kBlock;
  const float* c = regs.data() + std::max(in.operands[2], 0) * kBlock;
  switch (in.opcode) {
    case PwOpcode::kUnary: {
      const float alpha = static_cast<float>(in.params[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = unary(in.fn, a[i], alpha);
      break;
    }
    case PwOpcode::kBinary:
      for (int64_t i = 0; i < n; ++i) y[i] = binary(in.fn, a[i], b[i]);
      break;
    case PwOpcode::kWhere:
      for (int64_t i = 0; i < n; ++i) y[i] = a[i] != 0.0f ? b[i] : c[i];
      break;
    case PwOpcode::kCast:
      if (in.dtype == DType::kBool) {
        for (int64_t i = 0; i < n; ++i) y[i] = a[i] != 0.0f ? 1.0f : 0.0f;
      } else {
        std::copy(a, a + n, y);
      }
      break;
    case PwOpcode::kClamp: {
      const float lo = static_cast<float>(in.params[0]), hi = static_cast<float>(in.params[1]);
      for (int64_t i = 0; i < n; ++i) {
        float x = a[i] < lo ? lo : a[i];
        y[i] = x > hi ? hi : x;
      }
      break;
    }
  }
  round_to(in.dtype, y, n);
}

Status run_pointwise(const KernelArgs& args) {
  std::vector<DType> dtypes;
  for (const TensorView& v : args.inputs) dtypes.push_back(v.dtype);
  auto decoded = decode_pointwise(args.attrs, dtypes);
  if (!decoded.ok()) return kernel_error(args, decoded.status().message());
  const PointwiseProgram& p = *decoded;
  if (args.outputs.size() != p.outputs.size())
    return kernel_error(args, "got ", args.outputs.size(), " outputs, the program has ", p.outputs.size());
  const TensorView& out0 = args.outputs[0];
  for (size_t o = 0; o < args.outputs.size(); ++o) {
    const TensorView& out = args.outputs[o];
    if (!same_shape(out, out0) || out.dtype != p.reg_dtypes[static_cast<size_t>(p.outputs[o])])
      return kernel_error(args, "output ", o, " has the wrong shape or dtype");
  }
  // Each input's strides over the output's dims (0 where it broadcasts).
  std::vector<TensorView> bviews(args.inputs.size());
  for (size_t i = 0; i < args.inputs.size(); ++i)
    if (!broadcast_view(args.inputs[i], out0, bviews[i]))
      return kernel_error(args, "input ", i, " does not broadcast to the output shape");
  const int rank = out0.rank;
  const int64_t total = out0.numel();
  std::vector<float> regs(static_cast<size_t>(p.numRegisters() * kBlock));
  std::vector<int64_t> index(static_cast<size_t>(std::max(rank, 1)), 0);
  std::vector<int64_t> offsets(args.inputs.size(), 0);
  for (int64_t start = 0; start < total; start += kBlock) {
    const int64_t n = std::min(kBlock, total - start);
    // Gather: walk the output index, keeping each input's element offset in step.
    for (int64_t e = 0; e < n; ++e) {
      for (size_t i = 0; i < args.inputs.size(); ++i) {
        const int64_t off = offsets[i];
        float& dst = regs[i * kBlock + static_cast<size_t>(e)];
        dispatch_all(args.inputs[i].dtype, [&](auto tag) {
          using T = typename decltype(tag)::type;
          dst = to_float(args.inputs[i].as<const T>()[off]);
        });
      }
      for (int d = rank - 1; d >= 0; --d) {
        if (++index[static_cast<size_t>(d)] < out0.shape[d]) {
          for (size_t i = 0; i < args.inputs.size(); ++i) offsets[i] += bviews[i].strides[d];
          break;
        }
        index[static_cast<size_t>(d)] = 0;
        for (size_t i = 0; i < args.inputs.size(); ++i)
          offsets[i] -= bviews[i].strides[d] * (out0.shape[d] - 1);
      }
    }
    for (size_t k = 0; k < p.code.size(); ++k)
      run_instruction(p.code[k], regs, p.num_inputs + static_cast<int64_t>(k), n);
    for (size_t o = 0; o < args.outputs.size(); ++o) {
      const float* src = regs.data() + p.outputs[o] * kBlock;
      dispatch_all(args.outputs[o].dtype, [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* dst = args.outputs[o].as<T>() + start;
        for (int64_t e = 0; e < n; ++e) dst[e] = from_float<T>(src[e]);
      });
    }
  }
  return Status::Ok();
}

}  // namespace

void register_pointwise_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kPointwise, "cpu.pointwise", supports_pointwise,
                 checked_kernel<run_pointwise, 1, kMaxPointwiseInputs, -1>});
}

}  // namespace kiln::cpu
