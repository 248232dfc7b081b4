// matmul and linear through cuBLASLt: float32 accumulation (CUBLAS_COMPUTE_32F: no TF32, so a
// float32 result matches a float32 reference), one strided-batched call for every batch, the
// bias of linear in the epilogue. Row-major Kiln matrices are column-major transposes, so
// out[M,N] = a[M,K] b[K,N] runs as out^T = b^T a^T with m = N, n = M. A strided operand that is a
// plain transpose goes to cuBLASLt with a transpose flag; any other layout (gaps in both dims,
// batch dims that do not collapse to one stride) is packed into the workspace first.
//
// attr `residual` (linear, gemm epilogue fusion): the last input z is cuBLASLt's C (beta 1), so
// D = act(A B + z + bias) in one call; a z that is not contiguous is packed into the workspace.
//
// attr `activation` (gemm epilogue fusion): relu and gelu_tanh run in cuBLASLt's epilogue with
// the bias (RELU_BIAS / GELU_BIAS; cuBLASLt's GELU is the tanh form). Exact (erf) gelu has no
// cuBLASLt epilogue: the bias stays in the epilogue and the registered unary gelu kernel runs in
// place on the output afterwards, so fused and unfused networks compute the same function.
//
// tactic_data, when present, is a serialized cuBLASLt algorithm (see cublaslt_gemm.h); it is used
// when cublasLtMatmulAlgoCheck accepts it for the concrete problem and the pointers are as
// aligned as the build assumed, else the kernel asks the heuristic (host only, no sync).

#include <cublasLt.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_util.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/linear_cutlass.h"

namespace kiln::cuda {
namespace {

// A matrix operand as cuBLASLt sees it (column-major layout + op), batched by one stride.
struct LtOperand {
  const void* data = nullptr;
  cublasOperation_t op = CUBLAS_OP_N;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 1;
  int64_t batch_stride = 0;
  bool packed = false;   // staged into the workspace as a contiguous [batches, R, C] copy
  TensorView source;     // the (broadcast) view to pack from
  size_t pack_bytes = 0;
};

// Row-major X[R, C] with strides (rs, cs) as a cuBLASLt operand whose op(layout) is X^T.
// False when X is neither row- nor column-major.
bool lt_layout(int64_t R, int64_t C, int64_t rs, int64_t cs, LtOperand& o) {
  if ((C == 1 || cs == 1) && (R == 1 || rs >= std::max<int64_t>(1, C))) {
    o.op = CUBLAS_OP_N;  // X row-major = X^T column-major [C, R]
    o.rows = static_cast<uint64_t>(C);
    o.cols = static_cast<uint64_t>(R);
    o.ld = R == 1 ? std::max<int64_t>(1, C) : rs;
    return true;
  }
  if ((R == 1 || rs == 1) && (C == 1 || cs >= std::max<int64_t>(1, R))) {
    o.op = CUBLAS_OP_T;  // X column-major [R, C]; op T gives X^T
    o.rows = static_cast<uint64_t>(R);
    o.cols = static_cast<uint64_t>(C);
    o.ld = C == 1 ? std::max<int64_t>(1, R) : cs;
    return true;
  }
  return false;
}

// The operand for row-major matrices [..., R, C] of `v` (already broadcast to the output's batch
// dims): in place when possible, else marked for packing into a contiguous copy.
LtOperand make_operand(const TensorView& v, int nb, int64_t batches) {
  LtOperand o;
  o.source = v;
  o.data = v.data;
  const int r = v.rank;
  const int64_t R = v.shape[r - 2], C = v.shape[r - 1];
  int64_t bs = 0;
  if (lt_layout(R, C, v.strides[r - 2], v.strides[r - 1], o) && uniform_batch(v, v.shape, nb, bs)) {
    o.batch_stride = bs;
    return o;
  }
  o.packed = true;
  lt_layout(R, C, std::max<int64_t>(1, C), 1, o);
  o.batch_stride = R * C;
  o.pack_bytes = align_up(static_cast<size_t>(batches * R * C) * dtype_size(v.dtype));
  return o;
}

cudaDataType_t lt_type(DType d) {
  return d == DType::kFloat16 ? CUDA_R_16F : d == DType::kBFloat16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Everything one GEMM call needs, decided from shapes and strides alone (so the workspace
// function and the run agree).
struct GemmPlan {
  DType dtype = DType::kFloat32;
  int64_t M = 0, N = 0, K = 0, batches = 1;
  LtOperand a;  // cuBLASLt's A: from Kiln's b (op(A) = b^T [N, K])
  LtOperand b;  // cuBLASLt's B: from Kiln's a (op(B) = a^T [K, M])
  void* out = nullptr;
  const TensorView* bias = nullptr;  // linear
  const TensorView* residual = nullptr;  // linear with attr residual: cuBLASLt's C
  bool residual_packed = false;
  size_t residual_bytes = 0;
  std::string activation = "none";   // attr activation
  LtActivation lt_activation = LtActivation::kNone;  // the part cuBLASLt's epilogue can do
  bool bias_packed = false;
  size_t bias_bytes = 0;
  size_t pack_bytes() const { return a.pack_bytes + b.pack_bytes + bias_bytes + residual_bytes; }
};

Status plan_activation(const KernelArgs& args, GemmPlan& p) {
  p.activation = args.attrs.getString("activation", "none");
  if (p.activation == "relu") {
    p.lt_activation = LtActivation::kRelu;
  } else if (p.activation == "gelu_tanh") {
    p.lt_activation = LtActivation::kGeluTanh;
  } else if (p.activation != "none" && p.activation != "gelu") {
    return kernel_unsupported(args, "activation '", p.activation, "' is not supported");
  }
  return Status::Ok();
}

Status plan_matmul(const KernelArgs& args, GemmPlan& p) {
  KILN_RETURN_IF_ERROR(plan_activation(args, p));
  const TensorView& a = args.inputs[0];
  const TensorView& b = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (a.rank < 2 || b.rank < 2 || out.rank < std::max(a.rank, b.rank))
    return kernel_error(args, "operands need rank >= 2 (got ", a.rank, " and ", b.rank, ")");
  if (a.dtype != b.dtype || a.dtype != out.dtype)
    return kernel_unsupported(args, "operands and output must share one dtype");
  const int r = out.rank, nb = r - 2;
  p.dtype = out.dtype;
  p.M = out.shape[r - 2];
  p.N = out.shape[r - 1];
  p.K = a.shape[a.rank - 1];
  if (a.shape[a.rank - 2] != p.M || b.shape[b.rank - 2] != p.K || b.shape[b.rank - 1] != p.N)
    return kernel_error(args, "shapes do not match: [..., ", a.shape[a.rank - 2], ", ", p.K,
                        "] x [..., ", b.shape[b.rank - 2], ", ", b.shape[b.rank - 1],
                        "] -> [..., ", p.M, ", ", p.N, "]");
  int64_t a_shape[kMaxRank], b_shape[kMaxRank];
  std::copy(out.shape, out.shape + r, a_shape);
  std::copy(out.shape, out.shape + r, b_shape);
  a_shape[r - 1] = p.K;
  b_shape[r - 2] = p.K;
  TensorView ba, bb;
  if (!broadcast_view(a, a_shape, r, ba) || !broadcast_view(b, b_shape, r, bb))
    return kernel_error(args, "batch dims of the operands do not broadcast to the output");
  for (int d = 0; d < nb; ++d) p.batches *= out.shape[d];
  p.a = make_operand(bb, nb, p.batches);
  p.b = make_operand(ba, nb, p.batches);
  p.out = out.data;
  return Status::Ok();
}

Status plan_linear(const KernelArgs& args, GemmPlan& p) {
  KILN_RETURN_IF_ERROR(plan_activation(args, p));
  const TensorView& x = args.inputs[0];
  const TensorView& w = args.inputs[1];
  const TensorView& out = args.outputs[0];
  if (x.rank < 1 || w.rank != 2)
    return kernel_error(args, "expected x[..., K] and w[N, K], got ranks ", x.rank, " and ",
                        w.rank);
  if (x.dtype != w.dtype || x.dtype != out.dtype)
    return kernel_unsupported(args, "x, w and the output must share one dtype");
  p.dtype = out.dtype;
  p.K = x.shape[x.rank - 1];
  p.N = w.shape[0];
  if (w.shape[1] != p.K || out.rank < 1 || out.shape[out.rank - 1] != p.N)
    return kernel_error(args, "x has K = ", p.K, ", w is [", w.shape[0], ", ", w.shape[1], "]");
  p.M = p.N ? out.numel() / p.N : 0;
  // x as rows [M, K] when its leading dims collapse to one row stride, else packed.
  int64_t rs = 0;
  if (uniform_batch(x, x.shape, x.rank - 1, rs)) {
    TensorView xr = x;
    xr.rank = 2;
    xr.shape[0] = p.M;
    xr.shape[1] = p.K;
    xr.strides[0] = p.M == 1 ? std::max<int64_t>(1, p.K) : rs;
    xr.strides[1] = x.strides[x.rank - 1];
    p.b = make_operand(xr, 0, 1);
  } else {
    // Rows that do not collapse (a [S, B, K] activation permuted to [B, S, K], say): batch over
    // the dims before the last two, each batch's rows a strided matrix; w is shared (stride 0).
    LtOperand batched;
    int64_t batches = 1;
    if (x.rank >= 3) {
      for (int d = 0; d < x.rank - 2; ++d) batches *= x.shape[d];
      batched = make_operand(x, x.rank - 2, batches);
    }
    if (x.rank >= 3 && !batched.packed) {
      p.batches = batches;
      p.M = x.shape[x.rank - 2];
      p.b = batched;
    } else {
      p.b.packed = true;
      p.b.source = x;  // packed contiguous: row-major [M, K]
      lt_layout(p.M, p.K, std::max<int64_t>(1, p.K), 1, p.b);
      p.b.pack_bytes = align_up(static_cast<size_t>(p.M * p.K) * dtype_size(x.dtype));
    }
  }
  // w^T as the row-major [K, N] operand (strides swapped).
  TensorView wt = w;
  wt.shape[0] = p.K;
  wt.shape[1] = p.N;
  wt.strides[0] = w.strides[1];
  wt.strides[1] = w.strides[0];
  p.a = make_operand(wt, 0, 1);
  p.out = out.data;
  const bool residual = args.attrs.getBool("residual", false);
  const size_t operands = args.inputs.size() - (residual ? 1 : 0);
  if (residual) {
    const TensorView& z = args.inputs.back();
    if (z.dtype != out.dtype || z.numel() != out.numel())
      return kernel_error(args, "residual must have the output's shape and dtype");
    p.residual = &z;
    p.residual_packed = !z.isContiguous();
    if (p.residual_packed) p.residual_bytes = align_up(static_cast<size_t>(z.numel()) * dtype_size(z.dtype));
  }
  if (operands > 2) {
    const TensorView& bias = args.inputs[2];
    if (bias.numel() != p.N)
      return kernel_error(args, "bias has ", bias.numel(), " elements, expected ", p.N);
    if (!is_floating(bias.dtype)) return kernel_unsupported(args, "bias must be a float tensor");
    p.bias = &bias;
    p.bias_packed = bias.dtype != out.dtype || !bias.isContiguous();
    if (p.bias_packed) p.bias_bytes = align_up(static_cast<size_t>(p.N) * dtype_size(out.dtype));
  }
  return Status::Ok();
}

size_t workspace_for(const KernelArgs& args, bool linear) {
  GemmPlan p;
  Status s = linear ? plan_linear(args, p) : plan_matmul(args, p);
  return kGemmLibraryWorkspace + (s.ok() ? p.pack_bytes() : 0);
}
size_t matmul_workspace(const KernelArgs& args) { return workspace_for(args, false); }
size_t linear_workspace(const KernelArgs& args) { return workspace_for(args, true); }

// fn (relu gelu gelu_tanh) in place on the contiguous output, with the registered unary kernel
// (elementwise, so in place is safe; the planner runs unary in place too).
Status apply_activation(const KernelArgs& args, const TensorView& out, const std::string& fn) {
  static const Attrs kRelu{{"fn", std::string("relu")}};
  static const Attrs kGelu{{"fn", std::string("gelu")}};
  static const Attrs kGeluTanh{{"fn", std::string("gelu_tanh")}};
  const Attrs* attrs = fn == "relu" ? &kRelu : fn == "gelu" ? &kGelu : fn == "gelu_tanh" ? &kGeluTanh : nullptr;
  if (!attrs) return kernel_error(args, "unknown activation '", fn, "'");
  std::span<const CudaKernel> unary = kernels_for(OpKind::kUnary);
  if (unary.empty() || !unary[0].run) return kernel_error(args, "no CUDA unary kernel for the ", fn, " epilogue");
  Op op;
  op.kind = OpKind::kUnary;
  op.name = op_label(args);
  op.attrs = *attrs;
  const DType dtype = out.dtype;
  if (unary[0].supports)
    KILN_RETURN_IF_ERROR(unary[0].supports(op, std::span<const DType>(&dtype, 1)));
  const std::span<const TensorView> view(&out, 1);
  KernelArgs a{args.op_name, *attrs, view, view, args.bindings};
  a.stream = args.stream;
  a.backend = args.backend;
  if (unary[0].workspace && unary[0].workspace(a) > 0)
    return kernel_error(args, "the unary kernel needs a workspace; cannot run the ", fn, " epilogue");
  return unary[0].run(a);
}

Status run_gemm(const KernelArgs& args, bool linear) {
  GemmPlan p;
  KILN_RETURN_IF_ERROR(linear ? plan_linear(args, p) : plan_matmul(args, p));
  const TensorView& out = args.outputs[0];
  if (out.numel() == 0) return Status::Ok();
  CudaBackendState* state = state_of(args);
  if (!state || !state->cublaslt) return kernel_error(args, "needs the CUDA backend state");
  const size_t need = kGemmLibraryWorkspace + p.pack_bytes();
  if (args.workspace_bytes < need || (need && !args.workspace))
    return kernel_error(args, "workspace of ", args.workspace_bytes, " bytes, needs ", need);
  // Workspace: [library workspace][packed A][packed B][bias][residual].
  char* ws = static_cast<char*>(args.workspace);
  char* cursor = ws + kGemmLibraryWorkspace;
  for (LtOperand* o : {&p.a, &p.b}) {
    if (!o->packed) continue;
    const TensorView& v = o->source;
    KILN_RETURN_IF_ERROR(launch_copy(args, v, contiguous_view(cursor, v.dtype, v.shape, v.rank)));
    o->data = cursor;
    cursor += o->pack_bytes;
  }
  const void* bias = nullptr;
  if (p.bias) {
    bias = p.bias->data;
    if (p.bias_packed) {
      KILN_RETURN_IF_ERROR(launch_convert(args, *p.bias, cursor, out.dtype));
      bias = cursor;
      cursor += p.bias_bytes;
    }
  }
  const void* residual = nullptr;
  if (p.residual) {
    residual = p.residual->data;
    if (p.residual_packed) {
      const TensorView& z = *p.residual;
      KILN_RETURN_IF_ERROR(launch_copy(args, z, contiguous_view(cursor, z.dtype, z.shape, z.rank)));
      residual = cursor;
      cursor += p.residual_bytes;
    }
  }
  const int64_t rows = p.M * p.batches;  // of the output, as [rows, N]
  if (p.K == 0) {  // an empty sum: zeros (or the residual) (+ bias), then the activation
    if (p.residual) {
      KILN_RETURN_IF_ERROR(launch_copy(args, *p.residual, contiguous_view(p.out, out.dtype, out.shape, out.rank)));
    } else {
      KILN_RETURN_IF_ERROR(launch_fill(args, p.out, out.dtype, out.numel(), 0.0));
    }
    if (p.bias)
      KILN_RETURN_IF_ERROR(launch_channel_bias(args, p.out, out.dtype, rows, p.N, 1, *p.bias));
    if (p.activation != "none") KILN_RETURN_IF_ERROR(apply_activation(args, out, p.activation));
    return Status::Ok();
  }
  GemmProblem prob;
  prob.dtype = lt_type(p.dtype);
  prob.m = static_cast<uint64_t>(p.N);
  prob.n = static_cast<uint64_t>(p.M);
  prob.k = static_cast<uint64_t>(p.K);
  prob.batches = p.batches;
  prob.op_a = p.a.op;
  prob.op_b = p.b.op;
  prob.a_rows = p.a.rows;
  prob.a_cols = p.a.cols;
  prob.lda = p.a.ld;
  prob.a_batch_stride = p.a.batch_stride;
  prob.b_rows = p.b.rows;
  prob.b_cols = p.b.cols;
  prob.ldb = p.b.ld;
  prob.b_batch_stride = p.b.batch_stride;
  prob.d_batch_stride = p.M * p.N;
  prob.a = p.a.data;
  prob.b = p.b.data;
  prob.d = p.out;
  prob.bias = bias;
  prob.c = residual;
  prob.activation = p.lt_activation;
  prob.elem_size = dtype_size(p.dtype);
  bool epilogue_applied = true;
  Status s = run_lt_matmul(*state, prob, args.tactic_data, ws, kGemmLibraryWorkspace,
                           stream_of(args), &epilogue_applied);
  if (!s.ok()) return Status(s.code(), str(op_label(args), ": ", s.message()));
  KILN_RETURN_IF_ERROR(check_launch(args, "cublasLtMatmul"));
  if (p.bias && !epilogue_applied)
    KILN_RETURN_IF_ERROR(launch_channel_bias(args, p.out, out.dtype, rows, p.N, 1, *p.bias));
  // Exact gelu always runs here; relu / gelu_tanh only when cuBLASLt had no epilogue for them.
  if (p.activation == "gelu" || (p.lt_activation != LtActivation::kNone && !epilogue_applied))
    KILN_RETURN_IF_ERROR(apply_activation(args, out, p.activation));
  return Status::Ok();
}

Status run_matmul(const KernelArgs& args) { return run_gemm(args, false); }
Status run_linear(const KernelArgs& args) { return run_gemm(args, true); }

// Tactic "cuda.linear.cutlass_gelu": Kiln's CUTLASS GEMM with bias + exact gelu in the epilogue
// where it serves the args (linear_cutlass.cpp), the cuBLASLt kernel otherwise.
Status run_linear_cutlass_or_cublaslt(const KernelArgs& args) {
  bool served = false;
  KILN_RETURN_IF_ERROR(run_linear_cutlass(args, served));
  return served ? Status::Ok() : run_linear(args);
}
size_t linear_cutlass_or_cublaslt_workspace(const KernelArgs& args) {
  return std::max(linear_cutlass_workspace(args), linear_workspace(args));
}

Status supports_float_operands(const Op& op, std::span<const DType> dtypes) {
  const std::string act = op.attrs.getString("activation", "none");
  if (act != "none" && act != "relu" && act != "gelu" && act != "gelu_tanh")
    return unsupported(op_kind_name(op.kind), " '", op.name, "': activation '", act,
                       "' is not supported");
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const DType d = dtypes[i];
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16)
      return unsupported(op_kind_name(op.kind), " '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
    if (i < 2 && d != dtypes[0])
      return unsupported(op_kind_name(op.kind), " '", op.name, "': mixed dtypes ",
                         dtype_name(dtypes[0]), " and ", dtype_name(d));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<TacticCandidate>> gemm_tactics(CudaBackendState& state, const KernelArgs& args,
                                                  bool linear, size_t workspace_limit,
                                                  int max_candidates) {
  GemmPlan p;
  KILN_RETURN_IF_ERROR(linear ? plan_linear(args, p) : plan_matmul(args, p));
  std::vector<TacticCandidate> out;
  const char* tactic = linear ? "cuda.linear.cublaslt" : "cuda.matmul.cublaslt";
  if (p.M == 0 || p.N == 0 || p.K == 0) {
    out.push_back({tactic, {}, "empty problem"});
    return out;
  }
  GemmProblem prob;
  prob.dtype = lt_type(p.dtype);
  prob.m = static_cast<uint64_t>(p.N);
  prob.n = static_cast<uint64_t>(p.M);
  prob.k = static_cast<uint64_t>(p.K);
  prob.batches = p.batches;
  prob.op_a = p.a.op;
  prob.op_b = p.b.op;
  prob.a_rows = p.a.rows;
  prob.a_cols = p.a.cols;
  prob.lda = p.a.ld;
  prob.a_batch_stride = p.a.batch_stride;
  prob.b_rows = p.b.rows;
  prob.b_cols = p.b.cols;
  prob.ldb = p.b.ld;
  prob.b_batch_stride = p.b.batch_stride;
  prob.d_batch_stride = p.M * p.N;
  prob.elem_size = dtype_size(p.dtype);
  // Build-time shapes carry no pointers: assume the alignment the arena gives (256 bytes).
  prob.assume_aligned = true;
  prob.bias = p.bias ? reinterpret_cast<const void*>(uintptr_t{256}) : nullptr;
  prob.c = p.residual ? reinterpret_cast<const void*>(uintptr_t{512}) : nullptr;
  prob.activation = p.lt_activation;  // candidates must serve the epilogue the run will ask for
  const size_t library_workspace = std::min(workspace_limit, kGemmLibraryWorkspace);
  KILN_ASSIGN_OR_RETURN(std::vector<LtAlgo> algos,
                        lt_heuristic(state, prob, library_workspace, max_candidates));
  // Small-M problems (batch-1 transformer layers) leave most SMs idle with the heuristic's
  // algorithms: split-K copies of the best few join the timed candidates (none otherwise).
  constexpr int kMaxSplitKVariants = 12;  // each one is timed at build time
  KILN_ASSIGN_OR_RETURN(
      std::vector<LtAlgo> split_k,
      lt_split_k_variants(state, prob, library_workspace, algos, kMaxSplitKVariants));
  // Large problems: tiles that fill the SMs' waves better than the heuristic's (ViT-B/16 b32's
  // QKV: 128x144 at 34.4 us against the heuristic's best 37.6, H100).
  constexpr int kMaxTileVariants = 48;
  KILN_ASSIGN_OR_RETURN(
      std::vector<LtAlgo> tiles,
      lt_tile_variants(state, prob, library_workspace, algos, state.sm_count, kMaxTileVariants));
  algos.insert(algos.end(), split_k.begin(), split_k.end());
  for (const LtAlgo& a : algos) out.push_back({tactic, serialize_lt_algo(a), describe_lt_algo(a)});
  for (const LtAlgo& a : tiles)
    out.push_back({tactic, serialize_lt_algo(a), describe_lt_algo(a), 1.0, /*always_timed=*/true});
  if (out.empty()) out.push_back({tactic, {}, "cublaslt heuristic at run time"});
  // Exact gelu: the CUTLASS GEMM writes the activation once, where cuBLASLt's path writes the
  // GEMM's result and the gelu kernel rewrites it; timing decides.
  if (linear)
    for (TacticCandidate& c : linear_cutlass_candidates(state, args)) out.push_back(std::move(c));
  return out;
}

void register_linalg_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kMatmul, "cuda.matmul.cublaslt", supports_float_operands, run_matmul,
                 matmul_workspace});
  out.push_back({OpKind::kLinear, "cuda.linear.cublaslt", supports_float_operands, run_linear,
                 linear_workspace});
  out.push_back({OpKind::kLinear, "cuda.linear.cutlass_gelu", supports_float_operands,
                 run_linear_cutlass_or_cublaslt, linear_cutlass_or_cublaslt_workspace});
}

}  // namespace kiln::cuda
