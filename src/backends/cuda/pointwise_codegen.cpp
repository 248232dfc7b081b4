// CUDA C++ generation for pointwise programs. The source needs no header (NVRTC compiles it
// standalone): fp16/bf16 are handled as 16-bit patterns with explicit conversions, so the code
// does not depend on where the toolkit's cuda_fp16.h lives on the build machine.
//
// Numerics match the unfused CUDA kernels (unary.cu, binary.cu, cast.cu): the same float32
// formulas, and every instruction's result rounded to its register's dtype (as the unfused op
// stored it). The source is compiled with --fmad=false so that no multiply of one instruction is
// contracted with an add of the next (the unfused network rounded in between).

#include <cstring>
#include <sstream>

#include "backends/cuda/pointwise_codegen.h"

#include "backends/common/float_pow.h"

namespace kiln::cuda {
namespace {

const char* storage_type(DType d) {
  switch (d) {
    case DType::kFloat32: return "float";
    case DType::kFloat16:
    case DType::kBFloat16: return "unsigned short";
    default: return "unsigned char";  // bool
  }
}

std::string load_expr(DType d, const std::string& v) {
  switch (d) {
    case DType::kFloat32: return v;
    case DType::kFloat16: return "kiln_h2f(" + v + ")";
    case DType::kBFloat16: return "kiln_bf2f(" + v + ")";
    default: return "(" + v + " ? 1.0f : 0.0f)";
  }
}

std::string store_expr(DType d, const std::string& v) {
  switch (d) {
    case DType::kFloat32: return v;
    case DType::kFloat16: return "kiln_f2h(" + v + ")";
    case DType::kBFloat16: return "kiln_f2bf(" + v + ")";
    default: return "(unsigned char)(" + v + " != 0.0f)";
  }
}

// A float constant, bit exact (handles inf).
std::string float_literal(double v) {
  float f = static_cast<float>(v);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "__int_as_float(0x%08x)", bits);
  return buf;
}

// The formulas of unary.cu, indexed like kPwUnaryFns; x is the operand, A the alpha literal.
std::string unary_expr(int fn, const std::string& x, const std::string& A) {
  const std::string s1_2 = "0.70710678118654752f", s2pi = "0.79788456080286536f";
  switch (fn) {
    case 0: return "-" + x;
    case 1: return "fabsf(" + x + ")";
    case 2: return "expf(" + x + ")";
    case 3: return "logf(" + x + ")";
    case 4: return "sqrtf(" + x + ")";
    case 5: return "1.0f / sqrtf(" + x + ")";
    case 6: return "sinf(" + x + ")";
    case 7: return "cosf(" + x + ")";
    case 8: return "tanhf(" + x + ")";
    case 9: return "1.0f / (1.0f + expf(-" + x + "))";
    case 10: return x + " > 0.0f ? " + x + " : (" + x + " == " + x + " ? 0.0f : " + x + ")";
    case 11: return "0.5f * " + x + " * (1.0f + erff(" + x + " * " + s1_2 + "))";
    case 12:
      return "0.5f * " + x + " * (1.0f + tanhf(" + s2pi + " * (" + x + " + 0.044715f * " + x + " * " +
             x + " * " + x + ")))";
    case 13: return x + " / (1.0f + expf(-" + x + "))";
    case 14: return "erff(" + x + ")";
    case 15: return "1.0f / " + x;
    case 16: return "floorf(" + x + ")";
    case 17: return "ceilf(" + x + ")";
    case 18: return "rintf(" + x + ")";
    case 19: return x + " > 0.0f ? 1.0f : (" + x + " < 0.0f ? -1.0f : " + x + ")";
    case 20: return "log1pf(" + x + ")";
    case 21: return "expm1f(" + x + ")";
    case 22: return x + " * fminf(fmaxf(" + x + " + 3.0f, 0.0f), 6.0f) / 6.0f";
    case 23: return "fminf(fmaxf(" + x + " + 3.0f, 0.0f), 6.0f) / 6.0f";
    case 24: return x + " > 0.0f ? " + x + " : " + A + " * " + x;
    case 25: return x + " > 0.0f ? " + x + " : " + A + " * expm1f(" + x + ")";
    case 26: return x + " > 20.0f ? " + x + " : log1pf(expf(" + x + "))";
    case 27:
    case 28: return "(" + x + " != 0.0f ? 0.0f : 1.0f)";  // logical_not; bitwise_not on bool
    case 29: return "(" + x + " != " + x + " ? 1.0f : 0.0f)";  // isnan
  }
  return x;
}

// The formulas of binary.cu, indexed like kPwBinaryFns. Bool operands are 0/1.
std::string binary_expr(int fn, const std::string& a, const std::string& b) {
  auto pred = [](const std::string& e) { return "((" + e + ") ? 1.0f : 0.0f)"; };
  switch (fn) {
    case 0: return a + " + " + b;
    case 1: return a + " - " + b;
    case 2: return a + " * " + b;
    case 3: return a + " / " + b;
    case 4: return "kiln_pow(" + a + ", " + b + ")";
    case 5: return "(" + a + " != " + a + " || " + a + " > " + b + ") ? " + a + " : " + b;
    case 6: return "(" + a + " != " + a + " || " + a + " < " + b + ") ? " + a + " : " + b;
    case 7: return "kiln_floor_divide(" + a + ", " + b + ")";
    case 8: return "kiln_remainder(" + a + ", " + b + ")";
    case 9: return pred(a + " == " + b);
    case 10: return pred(a + " != " + b);
    case 11: return pred(a + " < " + b);
    case 12: return pred(a + " <= " + b);
    case 13: return pred(a + " > " + b);
    case 14: return pred(a + " >= " + b);
    case 15:
    case 18: return pred(a + " != 0.0f && " + b + " != 0.0f");
    case 16:
    case 19: return pred(a + " != 0.0f || " + b + " != 0.0f");
    case 17:
    case 20: return pred("(" + a + " != 0.0f) != (" + b + " != 0.0f)");
  }
  return a;
}

std::string round_expr(DType d, const std::string& v) {
  switch (d) {
    case DType::kFloat16: return "kiln_h2f(kiln_f2h(" + v + "))";
    case DType::kBFloat16: return "kiln_bf2f(kiln_f2bf(" + v + "))";
    default: return v;  // float32; bool registers already hold 0/1
  }
}

constexpr const char* kPrelude = R"(typedef long long i64;
__device__ __forceinline__ float kiln_h2f(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short kiln_f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float kiln_bf2f(unsigned short b) {
  return __uint_as_float(((unsigned)b) << 16);
}
// Round to nearest even, NaN stays a quiet NaN (as the host's float_to_bf16).
__device__ __forceinline__ unsigned short kiln_f2bf(float f) {
  unsigned x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);
  return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ float kiln_floor_divide(float a, float b) {
  if (b == 0.0f) return a / b;
  const float m = fmodf(a, b);
  float div = (a - m) / b;
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return copysignf(0.0f, a / b);
  float fl = floorf(div);
  if (div - fl > 0.5f) fl += 1.0f;
  return fl;
}
)"
    KILN_FLOAT_POW_SOURCE(__device__ __forceinline__, kiln_pow) "\n" R"(__device__ __forceinline__ float kiln_remainder(float a, float b) {
  float m = fmodf(a, b);
  if (m != 0.0f && ((b < 0.0f) != (m < 0.0f))) m += b;
  return m;
}
)";

}  // namespace

std::string pointwise_entry_generic(const std::string& k) { return k + "_generic"; }
std::string pointwise_entry_vector(const std::string& k) { return k + "_vec"; }

std::string generate_pointwise_source(const PointwiseProgram& p, const std::string& k,
                                      const std::string& op_name) {
  std::ostringstream s;
  const int n_in = p.num_inputs, n_out = static_cast<int>(p.outputs.size());
  s << "// Kiln generated pointwise kernel for op '" << op_name << "'\n// program:";
  for (size_t i = 0; i < p.code.size(); ++i) {
    const PointwiseInstr& in = p.code[i];
    s << "\n//   r" << n_in + static_cast<int>(i) << " = " << PointwiseProgram::token(in) << "(";
    for (int k2 = 0; k2 < 3 && in.operands[static_cast<size_t>(k2)] >= 0; ++k2)
      s << (k2 ? ", " : "") << "r" << in.operands[static_cast<size_t>(k2)];
    s << ") : " << dtype_name(in.dtype);
  }
  s << "\n// outputs:";
  for (int32_t r : p.outputs) s << " r" << r;
  s << "\n" << kPrelude;
  s << "struct KilnPwArgs {\n  const void* in[" << kMaxPointwiseInputs << "];\n  void* out["
    << kMaxPointwiseOutputs << "];\n  i64 n;\n  i64 shape[8];\n  i64 strides["
    << kMaxPointwiseInputs << "][8];\n  i64 row[" << kMaxPointwiseInputs << "];\n  int mode["
    << kMaxPointwiseInputs << "];\n  int rank;\n  int pad;\n};\n";
  // Element offset of input `k` for output index i (mode is uniform across the grid).
  s << R"(__device__ __forceinline__ i64 kiln_offset(const KilnPwArgs& a, int k, i64 i) {
  switch (a.mode[k]) {
    case 1: return i;
    case 2: return 0;
    case 3: return i % a.row[k];
    default: {
      i64 off = 0;
      for (int d = a.rank - 1; d >= 0; --d) {
        const i64 q = i / a.shape[d];
        off += (i - q * a.shape[d]) * a.strides[k][d];
        i = q;
      }
      return off;
    }
  }
}
)";
  // The program: float registers in, float results out.
  s << "__device__ __forceinline__ void kiln_program(";
  for (int r = 0; r < n_in; ++r) s << (r ? ", " : "") << "float r" << r;
  for (int o = 0; o < n_out; ++o) s << ", float& y" << o;
  s << ") {\n";
  for (size_t i = 0; i < p.code.size(); ++i) {
    const PointwiseInstr& in = p.code[i];
    auto reg = [&](int k2) { return "r" + std::to_string(in.operands[static_cast<size_t>(k2)]); };
    std::string e;
    switch (in.opcode) {
      case PwOpcode::kUnary: e = unary_expr(in.fn, reg(0), float_literal(in.params[0])); break;
      case PwOpcode::kBinary: e = binary_expr(in.fn, reg(0), reg(1)); break;
      case PwOpcode::kWhere: e = reg(0) + " != 0.0f ? " + reg(1) + " : " + reg(2); break;
      case PwOpcode::kCast:
        e = in.dtype == DType::kBool ? "(" + reg(0) + " != 0.0f ? 1.0f : 0.0f)" : reg(0);
        break;
      case PwOpcode::kClamp: {
        std::string lo = float_literal(in.params[0]), hi = float_literal(in.params[1]);
        s << "  float c" << i << " = " << reg(0) << " < " << lo << " ? " << lo << " : " << reg(0) << ";\n";
        e = "c" + std::to_string(i) + " > " + hi + " ? " + hi + " : c" + std::to_string(i);
        break;
      }
    }
    s << "  const float r" << n_in + static_cast<int>(i) << " = " << round_expr(in.dtype, "(" + e + ")")
      << ";\n";
  }
  for (int o = 0; o < n_out; ++o) s << "  y" << o << " = r" << p.outputs[static_cast<size_t>(o)] << ";\n";
  s << "}\n";

  auto in_type = [&](int r) { return std::string(storage_type(p.reg_dtypes[static_cast<size_t>(r)])); };
  auto out_dtype = [&](int o) { return p.reg_dtypes[static_cast<size_t>(p.outputs[static_cast<size_t>(o)])]; };
  // Generic entry: one element per thread, grid-stride, any strides.
  s << "extern \"C\" __global__ void __launch_bounds__(" << kPwThreads << ") "
    << pointwise_entry_generic(k) << "(const KilnPwArgs a) {\n"
    << "  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += (i64)gridDim.x * blockDim.x) {\n";
  for (int r = 0; r < n_in; ++r)
    s << "    const float r" << r << " = "
      << load_expr(p.reg_dtypes[static_cast<size_t>(r)],
                   "((const " + in_type(r) + "*)a.in[" + std::to_string(r) + "])[kiln_offset(a, " +
                       std::to_string(r) + ", i)]")
      << ";\n";
  s << "    float";
  for (int o = 0; o < n_out; ++o) s << (o ? ", y" : " y") << o;
  s << ";\n    kiln_program(";
  for (int r = 0; r < n_in; ++r) s << (r ? ", " : "") << "r" << r;
  for (int o = 0; o < n_out; ++o) s << ", y" << o;
  s << ");\n";
  for (int o = 0; o < n_out; ++o)
    s << "    ((" << storage_type(out_dtype(o)) << "*)a.out[" << o << "])[i] = "
      << store_expr(out_dtype(o), "y" + std::to_string(o)) << ";\n";
  s << "  }\n}\n";

  // Vector entry: kPwVector consecutive elements per thread with one aligned vector load/store
  // per tensor. The launcher uses it only when n % V == 0, every input is contiguous, scalar or a
  // row whose period V divides, and every pointer is aligned to V elements.
  const int V = kPwVector;
  s << "template <typename T> struct alignas(sizeof(T) * " << V << ") KilnVec { T v[" << V << "]; };\n";
  s << "extern \"C\" __global__ void __launch_bounds__(" << kPwThreads << ") "
    << pointwise_entry_vector(k) << "(const KilnPwArgs a) {\n"
    << "  const i64 nv = a.n / " << V << ";\n"
    << "  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < nv; t += (i64)gridDim.x * blockDim.x) {\n"
    << "    const i64 i = t * " << V << ";\n";
  for (int r = 0; r < n_in; ++r) {
    std::string T = in_type(r), ptr = "((const " + T + "*)a.in[" + std::to_string(r) + "])";
    s << "    KilnVec<" << T << "> v" << r << ";\n"
      << "    if (a.mode[" << r << "] == 2) {\n"
      << "      for (int j = 0; j < " << V << "; ++j) v" << r << ".v[j] = " << ptr << "[0];\n"
      << "    } else {\n"
      << "      v" << r << " = *(const KilnVec<" << T << ">*)(" << ptr << " + kiln_offset(a, " << r << ", i));\n"
      << "    }\n";
  }
  for (int o = 0; o < n_out; ++o)
    s << "    KilnVec<" << storage_type(out_dtype(o)) << "> w" << o << ";\n";
  s << "#pragma unroll\n    for (int j = 0; j < " << V << "; ++j) {\n      float";
  for (int o = 0; o < n_out; ++o) s << (o ? ", y" : " y") << o;
  s << ";\n      kiln_program(";
  for (int r = 0; r < n_in; ++r)
    s << (r ? ", " : "") << load_expr(p.reg_dtypes[static_cast<size_t>(r)], "v" + std::to_string(r) + ".v[j]");
  for (int o = 0; o < n_out; ++o) s << ", y" << o;
  s << ");\n";
  for (int o = 0; o < n_out; ++o)
    s << "      w" << o << ".v[j] = " << store_expr(out_dtype(o), "y" + std::to_string(o)) << ";\n";
  s << "    }\n";
  for (int o = 0; o < n_out; ++o)
    s << "    *(KilnVec<" << storage_type(out_dtype(o)) << ">*)((" << storage_type(out_dtype(o))
      << "*)a.out[" << o << "] + i) = w" << o << ";\n";
  s << "  }\n}\n";
  return s.str();
}

std::vector<uint8_t> encode_generated(const GeneratedPointwise& g) {
  std::vector<uint8_t> out = {'K', 'P', 'W', '1'};
  auto put = [&](const void* data, size_t n) {
    uint32_t len = static_cast<uint32_t>(n);
    const auto* l = reinterpret_cast<const uint8_t*>(&len);
    out.insert(out.end(), l, l + 4);
    const auto* d = static_cast<const uint8_t*>(data);
    out.insert(out.end(), d, d + n);
  };
  put(g.kernel_name.data(), g.kernel_name.size());
  put(g.source.data(), g.source.size());
  put(g.cubin.data(), g.cubin.size());
  return out;
}

Result<GeneratedPointwise> decode_generated(std::span<const uint8_t> data) {
  if (data.size() < 4 || std::memcmp(data.data(), "KPW1", 4) != 0)
    return Status(StatusCode::kCorruptFile, "pointwise tactic data: bad magic (expected KPW1)");
  size_t pos = 4;
  auto take = [&](auto& dst) -> bool {
    if (data.size() - pos < 4) return false;
    uint32_t len;
    std::memcpy(&len, data.data() + pos, 4);
    pos += 4;
    if (data.size() - pos < len) return false;
    dst.assign(data.data() + pos, data.data() + pos + len);
    pos += len;
    return true;
  };
  GeneratedPointwise g;
  if (!take(g.kernel_name) || !take(g.source) || !take(g.cubin) || g.kernel_name.empty() || g.cubin.empty())
    return Status(StatusCode::kCorruptFile, "pointwise tactic data: truncated");
  return g;
}

}  // namespace kiln::cuda
