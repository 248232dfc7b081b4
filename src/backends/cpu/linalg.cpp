// CPU matmul and linear: OpenBLAS sgemm on float32 operands. fp16/bf16 operands are staged as
// float32 copies, and the float32 result is rounded into the output. Strided float32 operands
// go to BLAS without a copy when each matrix is row- or column-major (a transposed view).

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_util.h"

namespace kiln::cpu {
namespace {

struct BlasOperand {
  const float* data;
  CBLAS_TRANSPOSE trans;
  blasint ld;
};

// A rows x cols strided matrix as BLAS sees it: row-major (NoTrans), column-major (Trans), or a
// packed row-major copy in `scratch` for any other layout.
BlasOperand blas_operand(const float* p, int64_t rows, int64_t cols, int64_t rs, int64_t cs,
                         std::vector<float>& scratch) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols))) {
    return {p, CblasNoTrans, static_cast<blasint>(rows == 1 ? std::max<int64_t>(1, cols) : rs)};
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows))) {
    return {p, CblasTrans, static_cast<blasint>(cols == 1 ? std::max<int64_t>(1, rows) : cs)};
  }
  scratch.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) scratch[i * cols + j] = p[i * rs + j * cs];
  return {scratch.data(), CblasNoTrans, static_cast<blasint>(std::max<int64_t>(1, cols))};
}

Status float_only(const Op& op, std::span<const DType> dtypes, size_t first, size_t count) {
  for (size_t i = first; i < std::min(dtypes.size(), first + count); ++i) {
    DType d = dtypes[i];
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16) {
      return unsupported(op_kind_name(op.kind), " '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
    }
    if (d != dtypes[first]) {
      return unsupported(op_kind_name(op.kind), " '", op.name, "': mixed dtypes ",
                         dtype_name(dtypes[first]), " and ", dtype_name(d));
    }
  }
  return Status::Ok();
}

enum class Activation { kNone, kRelu, kGelu, kGeluTanh };

bool parse_activation(const std::string& name, Activation& out) {
  if (name == "none") out = Activation::kNone;
  else if (name == "relu") out = Activation::kRelu;
  else if (name == "gelu") out = Activation::kGelu;
  else if (name == "gelu_tanh") out = Activation::kGeluTanh;
  else return false;
  return true;
}

Status supports_float_operands(const Op& op, std::span<const DType> dtypes) {
  Activation act;
  if (!parse_activation(op.attrs.getString("activation", "none"), act))
    return unsupported(op_kind_name(op.kind), " '", op.name, "': activation '",
                       op.attrs.getString("activation", "none"), "' is not supported");
  return float_only(op, dtypes, 0, dtypes.size());
}

// The epilogue activation (attr `activation`) on the float32 result, before it is rounded into
// the output: the same formulas as the unary kernels (elementwise.cpp).
Status apply_activation(const KernelArgs& args, float* c, int64_t n) {
  Activation act;
  const std::string name = args.attrs.getString("activation", "none");
  if (!parse_activation(name, act)) return kernel_error(args, "unknown activation '", name, "'");
  constexpr float kSqrt1_2 = 0.70710678118654752f;
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  switch (act) {
    case Activation::kNone:
      break;
    case Activation::kRelu:
      for (int64_t i = 0; i < n; ++i) c[i] = c[i] > 0.0f ? c[i] : (c[i] == c[i] ? 0.0f : c[i]);
      break;
    case Activation::kGelu:
      for (int64_t i = 0; i < n; ++i) c[i] = 0.5f * c[i] * (1.0f + std::erf(c[i] * kSqrt1_2));
      break;
    case Activation::kGeluTanh:
      for (int64_t i = 0; i < n; ++i) {
        const float x = c[i];
        c[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
      }
      break;
  }
  return Status::Ok();
}

// The float32 buffer a kernel writes its result into: the output itself for float32, else
// `scratch` (converted into the output by finish_output).
float* result_buffer(const TensorView& out, std::vector<float>& scratch) {
  if (out.dtype == DType::kFloat32) return out.as<float>();
  scratch.assign(static_cast<size_t>(out.numel()), 0.0f);
  return scratch.data();
}
void finish_output(const float* result, const TensorView& out) {
  if (out.dtype != DType::kFloat32) store_from_float(result, out);
}

// a[...,M,K] x b[...,K,N] -> out[...,M,N], batch dims broadcast.
Status run_matmul(const KernelArgs& args) {
  const TensorView& a = args.inputs[0];
  const TensorView& b = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (a.rank < 2 || b.rank < 2 || out.rank < std::max(a.rank, b.rank)) {
    return kernel_error(args, "operands need rank >= 2 (got ", a.rank, " and ", b.rank, ")");
  }
  const int r = out.rank;
  const int64_t M = out.shape[r - 2], N = out.shape[r - 1], K = a.shape[a.rank - 1];
  if (a.shape[a.rank - 2] != M || b.shape[b.rank - 2] != K || b.shape[b.rank - 1] != N) {
    return kernel_error(args, "shapes do not match: [..., ", a.shape[a.rank - 2], ", ", K,
                        "] x [..., ", b.shape[b.rank - 2], ", ", b.shape[b.rank - 1],
                        "] -> [..., ", M, ", ", N, "]");
  }
  if (out.numel() == 0) return Status::Ok();

  thread_local std::vector<float> a_store, b_store, c_store;  // kept scratch (cpu_util.h)
  const TensorView fa = float_view(a, a_store);
  const TensorView fb = float_view(b, b_store);
  // Both operands viewed with the output's batch dims (stride 0 where broadcast).
  int64_t a_shape[kMaxRank], b_shape[kMaxRank];
  std::copy(out.shape, out.shape + r, a_shape);
  std::copy(out.shape, out.shape + r, b_shape);
  a_shape[r - 1] = K;
  b_shape[r - 2] = K;
  TensorView ba, bb;
  if (!broadcast_view(fa, a_shape, r, ba) || !broadcast_view(fb, b_shape, r, bb)) {
    return kernel_error(args, "batch dims of the operands do not broadcast to the output");
  }
  const int nb = r - 2;
  int64_t batches = 1;
  for (int d = 0; d < nb; ++d) batches *= out.shape[d];

  float* c = result_buffer(out, c_store);
  const float* pa = ba.as<const float>();
  const float* pb = bb.as<const float>();
  const int64_t a_rs = ba.strides[r - 2], a_cs = ba.strides[r - 1];
  const int64_t b_rs = bb.strides[r - 2], b_cs = bb.strides[r - 1];

  // One GEMM when b is shared by all batches and a's batches stack as rows (x[B,M,K] @ w[K,N]).
  bool b_shared = true, a_stacks = (a_cs == 1 || K == 1);
  int64_t expected = M * a_rs;
  for (int d = nb - 1; d >= 0; --d) {
    if (out.shape[d] == 1) continue;
    if (bb.strides[d] != 0) b_shared = false;
    if (ba.strides[d] != expected) a_stacks = false;
    expected *= out.shape[d];
  }
  if (b_shared && a_stacks && (M == 1 || a_rs != 0)) {
    sgemm_strided(batches * M, N, K, 1.0f, pa, a_rs, a_cs, pb, b_rs, b_cs, 0.0f, c, N);
    KILN_RETURN_IF_ERROR(apply_activation(args, c, out.numel()));
    finish_output(c, out);
    return Status::Ok();
  }

  int64_t idx[kMaxRank] = {};
  int64_t a_off = 0, b_off = 0;
  for (int64_t bi = 0; bi < batches; ++bi) {
    sgemm_strided(M, N, K, 1.0f, pa + a_off, a_rs, a_cs, pb + b_off, b_rs, b_cs, 0.0f,
                  c + bi * M * N, N);
    for (int d = nb - 1; d >= 0; --d) {  // odometer over the batch dims
      a_off += ba.strides[d];
      b_off += bb.strides[d];
      if (++idx[d] < out.shape[d]) break;
      a_off -= ba.strides[d] * out.shape[d];
      b_off -= bb.strides[d] * out.shape[d];
      idx[d] = 0;
    }
  }
  KILN_RETURN_IF_ERROR(apply_activation(args, c, out.numel()));
  finish_output(c, out);
  return Status::Ok();
}

// Whether the leading dims of v (all but the last) collapse into one row dim of a uniform
// stride; sets row_stride.
bool rows_collapse(const TensorView& v, int64_t& row_stride) {
  row_stride = std::max<int64_t>(1, v.shape[v.rank - 1]);
  bool found = false;
  int64_t expected = 0;
  for (int d = v.rank - 2; d >= 0; --d) {
    if (v.shape[d] == 1) continue;
    if (!found) {
      found = true;
      row_stride = v.strides[d];
    } else if (v.strides[d] != expected) {
      return false;
    }
    expected = v.strides[d] * v.shape[d];
  }
  return true;
}

// x[...,K] w[N,K] b[N]? z? -> out[...,N] = act(x w^T + b + z) (z: attr residual, the last input).
Status run_linear(const KernelArgs& args) {
  const TensorView& x = args.inputs[0];
  const TensorView& w = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (x.rank < 1 || w.rank != 2) {
    return kernel_error(args, "expected x[..., K] and w[N, K], got ranks ", x.rank, " and ",
                        w.rank);
  }
  const int64_t K = x.shape[x.rank - 1], N = w.shape[0];
  if (w.shape[1] != K || out.rank < 1 || out.shape[out.rank - 1] != N) {
    return kernel_error(args, "x has K = ", K, ", w is [", w.shape[0], ", ", w.shape[1], "]");
  }
  if (out.numel() == 0) return Status::Ok();
  const int64_t P = out.numel() / N;

  // Kept scratch (cpu_util.h).
  thread_local std::vector<float> x_store, w_store, bias_store, c_store;
  TensorView fx = float_view(x, x_store);
  int64_t x_rs = 0;
  if (!rows_collapse(fx, x_rs)) {  // e.g. a permuted activation: gather it
    load_as_float(x, x_store);
    fx.data = x_store.data();
    set_contiguous_strides(fx);
    x_rs = K;
  }
  const TensorView fw = float_view(w, w_store);
  const bool residual = args.attrs.getBool("residual", false);
  const size_t operands = args.inputs.size() - (residual ? 1 : 0);
  // The residual is read whole before c is written: c may be out's own memory.
  thread_local std::vector<float> z_store;  // kept scratch (cpu_util.h)
  if (residual) {
    const TensorView& z = args.inputs.back();
    if (z.numel() != out.numel())
      return kernel_error(args, "residual has ", z.numel(), " elements, expected ", out.numel());
    load_as_float(z, z_store);
  }
  float* c = result_buffer(out, c_store);
  float beta = 0.0f;
  if (residual) {
    std::copy(z_store.begin(), z_store.end(), c);
    beta = 1.0f;
  }
  if (operands > 2) {
    const TensorView& bias = args.inputs[2];
    if (bias.numel() != N) return kernel_error(args, "bias has ", bias.numel(), " elements, expected ", N);
    load_as_float(bias, bias_store);
    for (int64_t p = 0; p < P; ++p) {
      float* row = c + p * N;
      if (residual) {
        for (int64_t j = 0; j < N; ++j) row[j] += bias_store[static_cast<size_t>(j)];
      } else {
        std::copy(bias_store.begin(), bias_store.end(), row);
      }
    }
    beta = 1.0f;
  }
  // w^T as a [K, N] matrix: strides swapped, so a row-major w goes to BLAS as CblasTrans.
  sgemm_strided(P, N, K, 1.0f, fx.as<const float>(), x_rs, fx.strides[fx.rank - 1],
                fw.as<const float>(), fw.strides[1], fw.strides[0], beta, c, N);
  KILN_RETURN_IF_ERROR(apply_activation(args, c, out.numel()));
  finish_output(c, out);
  return Status::Ok();
}

}  // namespace

void sgemm_strided(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_rs,
                   int64_t a_cs, const float* b, int64_t b_rs, int64_t b_cs, float beta, float* c,
                   int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  thread_local std::vector<float> a_pack, b_pack;  // kept scratch (cpu_util.h)
  const BlasOperand oa = blas_operand(a, M, K, a_rs, a_cs, a_pack);
  const BlasOperand ob = blas_operand(b, K, N, b_rs, b_cs, b_pack);
  cblas_sgemm(CblasRowMajor, oa.trans, ob.trans, static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, oa.data, oa.ld, ob.data,
              ob.ld, beta, c, static_cast<blasint>(ldc));
}

void register_linalg_kernels(std::vector<CpuKernel>& out) {
  out.push_back({OpKind::kMatmul, "cpu.matmul.openblas", supports_float_operands, run_matmul});
  out.push_back({OpKind::kLinear, "cpu.linear.openblas", supports_float_operands, run_linear});
}

}  // namespace kiln::cpu
