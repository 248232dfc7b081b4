// Convolution (1d/2d/3d, groups, dilation, transposed) through cuDNN 9's legacy convolution API:
// cudnnConvolutionForward, and cudnnConvolutionBackwardData for transposed convolutions (the
// adjoint of the conv that maps the output grid to the input grid, with PyTorch's [C, O/g, *k]
// weight). 1d runs as 2d with a unit height. float32 uses FMA math (no TF32, so it matches a
// float32 reference), fp16/bf16 tensor-op math with float32 accumulation. Non-contiguous x, w,
// bias or residual are packed into the workspace.
//
// Epilogue y = act(conv(x, w) + b + z) (attrs activation, 4th input residual): one
// cudnnConvolutionBiasActivationForward call where cuDNN allows it (relu with any algorithm,
// identity only with IMPLICIT_PRECOMP_GEMM; not transposed; a bias), else the conv call and one
// Kiln epilogue kernel (conv_epilogue.cu). layout "nhwc": x, z, y are NHWC tensors and w is KRSC
// (cuDNN's NHWC filter format), the layout of its fast fp16/bf16 tensor-core kernels.
//
// tactic_data, when present, is a serialized cuDNN algorithm (kConvMagic, algo, math type, and
// optionally flags: kUnfused); a call without one, or whose algorithm needs more workspace than
// it got, asks cuDNN's heuristic (cudnnGet*Algorithm_v7: host only, nothing runs).
//
// Each algorithm is offered twice where the fused call applies: fused, and as the plain
// convolution plus the epilogue kernel. On sm_90 cuDNN's legacy fused call runs its old
// non-tensor-core kernels for fp16 NHWC (implicit_convolve_sgemm, convolve_common_engine_float_NHWC:
// ~10x slower on ResNet-50 than the plain call's sm90 xmma kernels plus one epilogue pass), so for
// half precision the unfused form comes first (optimization level 0 takes it) and timing decides.
//
// A 1x1, stride-1, unpadded, ungrouped NHWC convolution in half precision is also one GEMM,
// y[P, O] = x[P, C] w[O, C]^T over the P = N*H*W pixels, which cuBLASLt runs with the whole
// epilogue fused: the residual as its C operand (beta 1), the bias and relu in its epilogue. Those
// candidates (a serialized cuBLASLt algorithm as tactic_data) come first, and timing decides.

#include <cudnn.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cuda/conv_tactics.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_util.h"
#include "backends/cuda/nhwc.h"

namespace kiln::cuda {
namespace {

constexpr uint32_t kConvMagic = 0x314E'444B;  // "KDN1"
constexpr int32_t kUnfused = 1;                 // tactic flag: conv call + epilogue kernel
constexpr int kMaxAlgos = 16;
// Workspace the default choice may take when no tactic says otherwise.
constexpr size_t kDefaultWorkspaceLimit = size_t{64} << 20;

Status dnn_error(const KernelArgs& args, cudnnStatus_t s, const char* what) {
  return Status(StatusCode::kCudaError,
                str(op_label(args), ": ", what, " failed: ", cudnnGetErrorString(s)));
}
#define KILN_DNN_CHECK(args, expr, what)                                       \
  do {                                                                         \
    cudnnStatus_t kiln_dnn_s_ = (expr);                                        \
    if (kiln_dnn_s_ != CUDNN_STATUS_SUCCESS) return dnn_error(args, kiln_dnn_s_, what); \
  } while (0)

struct DnnDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  DnnDescs() = default;
  DnnDescs(const DnnDescs&) = delete;
  DnnDescs& operator=(const DnnDescs&) = delete;
  ~DnnDescs() {
    if (act) cudnnDestroyActivationDescriptor(act);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (x) cudnnDestroyTensorDescriptor(x);
  }
};

// The problem, from shapes and attrs alone (the workspace function and the run agree on it).
struct ConvPlan {
  bool transposed = false;
  int64_t groups = 1;
  int nd = 4;  // tensor rank given to cuDNN (4 or 5)
  int x_dims[5] = {}, w_dims[5] = {}, y_dims[5] = {};
  int pad[3] = {}, stride[3] = {}, dil[3] = {};
  cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
  bool nhwc = false;  // x, z, y NHWC; w KRSC
  bool relu = false, bias = false, residual = false;
  // Bytes staged in the workspace, in this order (0: used in place).
  size_t x_pack = 0, w_pack = 0, b_pack = 0, z_pack = 0;
  size_t packs() const { return x_pack + w_pack + b_pack + z_pack; }
};

bool fits_int(int64_t v) { return v >= 0 && v <= INT32_MAX; }

Status read_spatial(const KernelArgs& args, const char* name, int sp, int64_t fallback,
                    int64_t* dst) {
  std::vector<int64_t> v = args.attrs.getInts(name, {});
  for (int i = 0; i < sp; ++i) dst[i] = fallback;
  if (v.empty()) return Status::Ok();
  if (static_cast<int>(v.size()) != sp)
    return kernel_error(args, name, " has ", v.size(), " values, expected ", sp);
  std::copy(v.begin(), v.end(), dst);
  return Status::Ok();
}

Status plan_conv(const KernelArgs& args, ConvPlan& p) {
  if (args.inputs.size() < 2 || args.inputs.size() > 4 || args.outputs.size() != 1)
    return kernel_error(args, "expected 2 to 4 inputs and one output");
  KILN_ASSIGN_OR_RETURN(p.nhwc, read_nhwc(args));
  // Geometry is read from NCHW views; the physical tensors decide packing.
  const TensorView x = p.nhwc ? nchw_view(args.inputs[0]) : args.inputs[0];
  const TensorView w = p.nhwc && args.inputs[1].rank == 4 ? nchw_view(args.inputs[1]) : args.inputs[1];
  const TensorView y = p.nhwc ? nchw_view(args.outputs[0]) : args.outputs[0];
  if (x.rank < 3 || x.rank > 5 || w.rank != x.rank || y.rank != x.rank)
    return kernel_error(args, "expected x, weight and output of rank 3, 4 or 5 (got ", x.rank,
                        ", ", w.rank, ", ", y.rank, ")");
  const std::string act = args.attrs.getString("activation", "none");
  if (act != "none" && act != "relu") return kernel_unsupported(args, "activation '", act, "'");
  p.relu = act == "relu";
  if (x.dtype != w.dtype || x.dtype != y.dtype)
    return kernel_unsupported(args, "x, weight and output must share one dtype");
  p.dtype = x.dtype == DType::kFloat16    ? CUDNN_DATA_HALF
            : x.dtype == DType::kBFloat16 ? CUDNN_DATA_BFLOAT16
                                          : CUDNN_DATA_FLOAT;
  if (!is_floating(x.dtype)) return kernel_unsupported(args, dtype_name(x.dtype), " conv");
  const int sp = x.rank - 2;
  p.transposed = args.attrs.getBool("transposed", false);
  if (p.nhwc && p.transposed) return kernel_unsupported(args, "layout nhwc for a transposed conv");
  p.groups = args.attrs.getInt("groups", 1);
  int64_t stride[3], pad[3], dil[3], out_pad[3];
  KILN_RETURN_IF_ERROR(read_spatial(args, "stride", sp, 1, stride));
  KILN_RETURN_IF_ERROR(read_spatial(args, "padding", sp, 0, pad));
  KILN_RETURN_IF_ERROR(read_spatial(args, "dilation", sp, 1, dil));
  KILN_RETURN_IF_ERROR(read_spatial(args, "output_padding", sp, 0, out_pad));
  const int64_t C = x.shape[1], O = y.shape[1];
  if (p.groups < 1 || C % p.groups != 0 || O % p.groups != 0)
    return kernel_error(args, "groups = ", p.groups, " does not divide ", C, " input and ", O,
                        " output channels");
  const bool w_ok = p.transposed ? (w.shape[0] == C && w.shape[1] == O / p.groups)
                                 : (w.shape[0] == O && w.shape[1] == C / p.groups);
  if (!w_ok || y.shape[0] != x.shape[0])
    return kernel_error(args, "weight [", w.shape[0], ", ", w.shape[1], ", ...] does not fit ", C,
                        " input and ", O, " output channels in ", p.groups, " groups");
  for (int i = 0; i < sp; ++i) {
    const int64_t span = dil[i] * (w.shape[2 + i] - 1);
    const int64_t in = x.shape[2 + i];
    const int64_t expect = p.transposed ? (in - 1) * stride[i] - 2 * pad[i] + span + out_pad[i] + 1
                                        : (in + 2 * pad[i] - span - 1) / stride[i] + 1;
    if (stride[i] < 1 || dil[i] < 1 || pad[i] < 0 || expect != y.shape[2 + i])
      return kernel_error(args, "output spatial dim ", i, " is ", y.shape[2 + i], ", expected ",
                          expect);
  }
  // cuDNN's legacy API takes 4-d or 5-d tensors: 1d gets a unit height in front of the width.
  const int lead = sp == 1 ? 1 : 0;
  p.nd = x.rank + lead;
  const int nsp = p.nd - 2;
  for (int i = 0; i < p.nd; ++i) {
    const int src = i < 2 ? i : i - lead;
    const bool unit = i >= 2 && i - 2 < lead;
    const int64_t xd = unit ? 1 : x.shape[src], wd = unit ? 1 : w.shape[src];
    const int64_t yd = unit ? 1 : y.shape[src];
    if (!fits_int(xd) || !fits_int(wd) || !fits_int(yd))
      return kernel_unsupported(args, "dims beyond int32 for cuDNN");
    p.x_dims[i] = static_cast<int>(xd);
    p.w_dims[i] = static_cast<int>(wd);
    p.y_dims[i] = static_cast<int>(yd);
  }
  for (int i = 0; i < nsp; ++i) {
    const bool unit = i < lead;
    p.pad[i] = unit ? 0 : static_cast<int>(pad[i - lead]);
    p.stride[i] = unit ? 1 : static_cast<int>(stride[i - lead]);
    p.dil[i] = unit ? 1 : static_cast<int>(dil[i - lead]);
  }
  const size_t es = dtype_size(x.dtype);
  if (!args.inputs[0].isContiguous()) p.x_pack = align_up(static_cast<size_t>(x.numel()) * es);
  if (!args.inputs[1].isContiguous()) p.w_pack = align_up(static_cast<size_t>(w.numel()) * es);
  if (args.inputs.size() > 2) {
    const TensorView& b = args.inputs[2];
    if (b.numel() != O || b.dtype != y.dtype)
      return kernel_error(args, "bias must have ", O, " elements of the output's dtype");
    p.bias = true;
    if (!b.isContiguous()) p.b_pack = align_up(static_cast<size_t>(O) * es);
  }
  if (args.inputs.size() > 3) {
    const TensorView& z = args.inputs[3];
    if (!same_shape(z, args.outputs[0]) || z.dtype != y.dtype)
      return kernel_error(args, "residual must have the output's shape and dtype");
    p.residual = true;
    if (!z.isContiguous()) p.z_pack = align_up(static_cast<size_t>(z.numel()) * es);
  }
  return Status::Ok();
}

// Whether the conv is a plain GEMM over NHWC pixels (the header comment), with nothing to pack.
bool gemm_applies(const ConvPlan& p) {
  return p.nhwc && !p.transposed && p.groups == 1 && p.nd == 4 && p.dtype != CUDNN_DATA_FLOAT &&
         p.w_dims[2] == 1 && p.w_dims[3] == 1 && p.stride[0] == 1 && p.stride[1] == 1 &&
         p.pad[0] == 0 && p.pad[1] == 0 && p.packs() == 0;
}

// y[P, O] = act(x[P, C] w[O, C]^T + z + bias), row-major, as cuBLASLt's column-major
// D[O, P] = act(op_t(W)[O, C] X[C, P] + Z + bias per row).
GemmProblem gemm_problem(const ConvPlan& p, const void* x, const void* w, void* y, const void* bias,
                         const void* z) {
  GemmProblem g;
  g.dtype = p.dtype == CUDNN_DATA_HALF ? CUDA_R_16F : CUDA_R_16BF;
  g.elem_size = 2;
  const auto O = static_cast<uint64_t>(p.y_dims[1]), C = static_cast<uint64_t>(p.x_dims[1]);
  const uint64_t P = static_cast<uint64_t>(p.x_dims[0]) * static_cast<uint64_t>(p.x_dims[2]) *
                     static_cast<uint64_t>(p.x_dims[3]);
  g.m = O;
  g.n = P;
  g.k = C;
  g.op_a = CUBLAS_OP_T;
  g.a_rows = C;
  g.a_cols = O;
  g.lda = static_cast<int64_t>(C);
  g.op_b = CUBLAS_OP_N;
  g.b_rows = C;
  g.b_cols = P;
  g.ldb = static_cast<int64_t>(C);
  g.a = w;
  g.b = x;
  g.d = y;
  g.bias = bias;
  g.c = z;
  g.activation = p.relu ? LtActivation::kRelu : LtActivation::kNone;
  return g;
}

// Strides of a packed tensor of `dims` (NCHW order) in memory order NCHW or NHWC.
void packed_strides(const int* dims, int nd, bool nhwc, int* strides) {
  if (nhwc) {  // nd == 4: [N, C, H, W] dims, memory N, H, W, C
    strides[1] = 1;
    strides[3] = dims[1];
    strides[2] = dims[3] * dims[1];
    strides[0] = dims[2] * dims[3] * dims[1];
    return;
  }
  strides[nd - 1] = 1;
  for (int i = nd - 2; i >= 0; --i) strides[i] = strides[i + 1] * std::max(1, dims[i + 1]);
}

Status make_descs(const KernelArgs& args, const ConvPlan& p, DnnDescs& d) {
  int x_strides[5], y_strides[5];
  packed_strides(p.x_dims, p.nd, p.nhwc, x_strides);
  packed_strides(p.y_dims, p.nd, p.nhwc, y_strides);
  KILN_DNN_CHECK(args, cudnnCreateTensorDescriptor(&d.x), "cudnnCreateTensorDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateTensorDescriptor(&d.y), "cudnnCreateTensorDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateFilterDescriptor(&d.w), "cudnnCreateFilterDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateConvolutionDescriptor(&d.conv),
                 "cudnnCreateConvolutionDescriptor");
  KILN_DNN_CHECK(args, cudnnSetTensorNdDescriptor(d.x, p.dtype, p.nd, p.x_dims, x_strides),
                 "describing x");
  KILN_DNN_CHECK(args, cudnnSetTensorNdDescriptor(d.y, p.dtype, p.nd, p.y_dims, y_strides),
                 "describing the output");
  // Filter dims are given in KCRS order; the format says how they lie in memory (KRSC: NHWC).
  KILN_DNN_CHECK(args,
                 cudnnSetFilterNdDescriptor(d.w, p.dtype,
                                            p.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, p.nd,
                                            p.w_dims),
                 "describing the weight");
  KILN_DNN_CHECK(args,
                 cudnnSetConvolutionNdDescriptor(d.conv, p.nd - 2, p.pad, p.stride, p.dil,
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                 "describing the convolution");
  KILN_DNN_CHECK(args, cudnnSetConvolutionGroupCount(d.conv, static_cast<int>(p.groups)),
                 "setting the group count");
  const cudnnMathType_t math =
      p.dtype == CUDNN_DATA_FLOAT ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  KILN_DNN_CHECK(args, cudnnSetConvolutionMathType(d.conv, math), "setting the math type");
  return Status::Ok();
}

// One cuDNN algorithm: forward or backward-data id, math type, workspace bytes.
struct DnnAlgo {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  bool unfused = false;  // never the fused bias-activation call
};

// The heuristic's algorithms that succeed, best first.
Result<std::vector<DnnAlgo>> heuristic(const KernelArgs& args, cudnnHandle_t h, const ConvPlan& p,
                                       const DnnDescs& d) {
  std::vector<DnnAlgo> out;
  int returned = 0;
  if (!p.transposed) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMaxAlgos];
    KILN_DNN_CHECK(args, cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y,
                                                                kMaxAlgos, &returned, perf),
                   "cudnnGetConvolutionForwardAlgorithm_v7");
    for (int i = 0; i < returned; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS)
        out.push_back({static_cast<int>(perf[i].algo), perf[i].mathType, perf[i].memory});
  } else {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMaxAlgos];
    // Backward data of the conv from the output grid (dx = y) to the input grid (dy = x).
    KILN_DNN_CHECK(args, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                             h, d.w, d.x, d.conv, d.y, kMaxAlgos, &returned, perf),
                   "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    for (int i = 0; i < returned; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS)
        out.push_back({static_cast<int>(perf[i].algo), perf[i].mathType, perf[i].memory});
  }
  return out;
}

// Workspace of `a` (with its math type set on the descriptor), or an error if cuDNN refuses it.
Result<size_t> algo_workspace(const KernelArgs& args, cudnnHandle_t h, const ConvPlan& p,
                              const DnnDescs& d, const DnnAlgo& a) {
  KILN_DNN_CHECK(args, cudnnSetConvolutionMathType(d.conv, a.math), "setting the math type");
  size_t bytes = 0;
  if (!p.transposed) {
    KILN_DNN_CHECK(args, cudnnGetConvolutionForwardWorkspaceSize(
                             h, d.x, d.w, d.conv, d.y,
                             static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), &bytes),
                   "cudnnGetConvolutionForwardWorkspaceSize");
  } else {
    KILN_DNN_CHECK(args, cudnnGetConvolutionBackwardDataWorkspaceSize(
                             h, d.w, d.x, d.conv, d.y,
                             static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), &bytes),
                   "cudnnGetConvolutionBackwardDataWorkspaceSize");
  }
  return bytes;
}

// Three ints (engines before the flags) or four.
bool deserialize(std::span<const uint8_t> data, DnnAlgo& a) {
  if (data.size() != 3 * sizeof(int32_t) && data.size() != 4 * sizeof(int32_t)) return false;
  int32_t v[4] = {0, 0, 0, 0};
  std::memcpy(v, data.data(), data.size());
  if (static_cast<uint32_t>(v[0]) != kConvMagic) return false;
  a.algo = v[1];
  a.math = static_cast<cudnnMathType_t>(v[2]);
  a.unfused = (v[3] & kUnfused) != 0;
  return true;
}

// Whether cuDNN's fused bias-activation call serves this convolution with algorithm `algo`.
bool fused_call_applies(const ConvPlan& p, int algo) {
  return !p.transposed && p.bias && (p.relu || algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
}

// The algorithm for this call: the tactic's when it fits `available` bytes, else the first
// heuristic choice that does.
Result<DnnAlgo> choose(const KernelArgs& args, cudnnHandle_t h, const ConvPlan& p,
                       const DnnDescs& d, size_t available) {
  DnnAlgo a;
  if (deserialize(args.tactic_data, a)) {
    Result<size_t> ws = algo_workspace(args, h, p, d, a);
    if (ws.ok() && *ws <= available) {
      a.workspace = *ws;
      return a;
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<DnnAlgo> algos, heuristic(args, h, p, d));
  for (DnnAlgo& c : algos) {
    Result<size_t> ws = algo_workspace(args, h, p, d, c);
    if (ws.ok() && *ws <= available) {
      c.workspace = *ws;
      c.unfused = p.dtype != CUDNN_DATA_FLOAT;  // as the tactics order it
      return c;
    }
  }
  return kernel_unsupported(args, "cuDNN has no algorithm for this convolution within ",
                            available, " bytes of workspace");
}

// Workspace: [packed x][packed w][cuDNN's]. Sized for the tactic, or for the heuristic's first
// choice within kDefaultWorkspaceLimit; a run with less picks an algorithm that fits. Without
// args.backend (no cuDNN handle to ask) it returns the packs plus kDefaultWorkspaceLimit.
size_t conv_workspace(const KernelArgs& args) {
  ConvPlan p;
  if (!plan_conv(args, p).ok()) return 0;
  size_t bytes = p.packs();
  if (args.outputs[0].numel() == 0) return bytes;
  if (gemm_applies(p) && is_lt_tactic(args.tactic_data)) return kGemmLibraryWorkspace;
  CudaBackendState* state = state_of(args);
  if (!state || !state->cudnn) return bytes + kDefaultWorkspaceLimit;
  DnnDescs d;
  if (!make_descs(args, p, d).ok()) return bytes;
  Result<DnnAlgo> a = choose(args, state->cudnn, p, d, kDefaultWorkspaceLimit);
  return bytes + (a.ok() ? align_up(a->workspace) : 0);
}

// `v` packed contiguously at `cursor` (advanced by `bytes`) when bytes > 0; else v's own data.
Result<const void*> stage(const KernelArgs& args, const TensorView& v, size_t bytes, char*& cursor) {
  if (!bytes) return static_cast<const void*>(v.data);
  KILN_RETURN_IF_ERROR(launch_copy(args, v, contiguous_view(cursor, v.dtype, v.shape, v.rank)));
  const void* out = cursor;
  cursor += bytes;
  return out;
}

// y = act(conv(x, w) + b + z) in one cuDNN call. Ok(false) when cuDNN does not serve this case
// (nothing was launched); the caller then runs the conv and the epilogue kernel.
Result<bool> run_fused(const KernelArgs& args, cudnnHandle_t h, const ConvPlan& p, DnnDescs& d,
                       const DnnAlgo& a, void* ws, const void* xp, const void* wp,
                       const void* bp, const void* zp) {
  const auto algo = static_cast<cudnnConvolutionFwdAlgo_t>(a.algo);
  // cuDNN allows the identity activation only with IMPLICIT_PRECOMP_GEMM.
  if (p.transposed || !p.bias ||
      (!p.relu && algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM))
    return false;
  int bias_dims[5], bias_strides[5];
  for (int i = 0; i < p.nd; ++i) bias_dims[i] = i == 1 ? p.y_dims[1] : 1;
  packed_strides(bias_dims, p.nd, false, bias_strides);
  KILN_DNN_CHECK(args, cudnnCreateTensorDescriptor(&d.bias), "cudnnCreateTensorDescriptor");
  KILN_DNN_CHECK(args, cudnnSetTensorNdDescriptor(d.bias, p.dtype, p.nd, bias_dims, bias_strides),
                 "describing the bias");
  KILN_DNN_CHECK(args, cudnnCreateActivationDescriptor(&d.act), "cudnnCreateActivationDescriptor");
  KILN_DNN_CHECK(args,
                 cudnnSetActivationDescriptor(
                     d.act, p.relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                     CUDNN_NOT_PROPAGATE_NAN, 0.0),
                 "describing the activation");
  // z = y with alpha2 = 0 when there is no residual (cuDNN's documented no-residual form).
  const float alpha1 = 1.0f, alpha2 = p.residual ? 1.0f : 0.0f;
  void* y = args.outputs[0].data;
  cudnnStatus_t s = cudnnConvolutionBiasActivationForward(
      h, &alpha1, d.x, xp, d.w, wp, d.conv, algo, ws, a.workspace, &alpha2, d.y,
      p.residual ? zp : y, d.bias, bp, d.act, d.y, y);
  // A configuration the fused call does not take (dtype, layout, algorithm) is refused before
  // anything is launched; the unfused path computes the same result.
  const int category = static_cast<int>(s) / 1000 * 1000;
  if (category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM) return false;
  if (s != CUDNN_STATUS_SUCCESS)
    return dnn_error(args, s, "cudnnConvolutionBiasActivationForward");
  return true;
}

Status run_conv(const KernelArgs& args) {
  ConvPlan p;
  KILN_RETURN_IF_ERROR(plan_conv(args, p));
  const TensorView& x = args.inputs[0];
  const TensorView& w = args.inputs[1];
  const TensorView& y = args.outputs[0];
  if (y.numel() == 0) return Status::Ok();
  CudaBackendState* state = state_of(args);
  if (!state || !state->cudnn) return kernel_error(args, "needs the CUDA backend state");
  const size_t packs = p.packs();
  if (args.workspace_bytes < packs)
    return kernel_error(args, "workspace of ", args.workspace_bytes, " bytes, needs ", packs);
  char* cursor = static_cast<char*>(args.workspace);
  KILN_ASSIGN_OR_RETURN(const void* xp, stage(args, x, p.x_pack, cursor));
  KILN_ASSIGN_OR_RETURN(const void* wp, stage(args, w, p.w_pack, cursor));
  const void* bp = nullptr;
  const void* zp = nullptr;
  if (p.bias) {
    KILN_ASSIGN_OR_RETURN(bp, stage(args, args.inputs[2], p.b_pack, cursor));
  }
  if (p.residual) {
    KILN_ASSIGN_OR_RETURN(zp, stage(args, args.inputs[3], p.z_pack, cursor));
  }
  const size_t available = args.workspace_bytes - packs;
  bool epilogue_done = false;
  if (x.numel() == 0 || w.numel() == 0) {  // an empty sum: zeros (+ epilogue)
    KILN_RETURN_IF_ERROR(launch_fill(args, y.data, y.dtype, y.numel(), 0.0));
  } else if (gemm_applies(p) && is_lt_tactic(args.tactic_data)) {
    const GemmProblem g = gemm_problem(p, xp, wp, y.data, bp, zp);
    bool epilogue_applied = true;
    Status s = run_lt_matmul(*state, g, args.tactic_data, cursor, available, stream_of(args),
                             &epilogue_applied);
    if (!s.ok()) return Status(s.code(), str(op_label(args), ": ", s.message()));
    // The residual went in as C either way; without an epilogue the kernel below adds the bias
    // and applies relu.
    zp = nullptr;
    epilogue_done = epilogue_applied || (!p.bias && !p.relu);
  } else {
    DnnDescs d;
    KILN_RETURN_IF_ERROR(make_descs(args, p, d));
    cudnnHandle_t h = state->cudnn;
    KILN_ASSIGN_OR_RETURN(DnnAlgo a, choose(args, h, p, d, available));
    KILN_DNN_CHECK(args, cudnnSetConvolutionMathType(d.conv, a.math), "setting the math type");
    KILN_DNN_CHECK(args, cudnnSetStream(h, stream_of(args)), "cudnnSetStream");
    const float alpha = 1.0f, beta = 0.0f;
    void* ws = a.workspace ? cursor : nullptr;
    if (p.bias && !a.unfused) {
      KILN_ASSIGN_OR_RETURN(epilogue_done, run_fused(args, h, p, d, a, ws, xp, wp, bp, zp));
    }
    if (epilogue_done) {
      // conv, bias, residual and activation ran in one call
    } else if (!p.transposed) {
      KILN_DNN_CHECK(args,
                     cudnnConvolutionForward(h, &alpha, d.x, xp, d.w, wp, d.conv,
                                             static_cast<cudnnConvolutionFwdAlgo_t>(a.algo), ws,
                                             a.workspace, &beta, d.y, y.data),
                     "cudnnConvolutionForward");
    } else {
      KILN_DNN_CHECK(args,
                     cudnnConvolutionBackwardData(
                         h, &alpha, d.w, wp, d.x, xp, d.conv,
                         static_cast<cudnnConvolutionBwdDataAlgo_t>(a.algo), ws, a.workspace,
                         &beta, d.y, y.data),
                     "cudnnConvolutionBackwardData");
    }
  }
  if (!epilogue_done && (p.bias || p.residual || p.relu)) {
    // [outer, C, inner] view of the contiguous output.
    const int64_t C = p.y_dims[1];
    const int64_t inner = p.nhwc ? 1 : y.numel() / (y.shape[0] * C);
    ConvEpilogue e;
    e.y = y.data;
    e.dtype = y.dtype;
    e.outer = y.numel() / (C * inner);
    e.channels = C;
    e.inner = inner;
    e.bias = bp;
    e.residual = zp;
    e.relu = p.relu;
    KILN_RETURN_IF_ERROR(launch_conv_epilogue(args, e));
  }
  return check_launch(args, "cudnn convolution");
}

Status supports_conv(const Op& op, std::span<const DType> dtypes) {
  const std::string act = op.attrs.getString("activation", "none");
  if (act != "none" && act != "relu")
    return unsupported("conv '", op.name, "': activation '", act, "' is not supported");
  const std::string layout = op.attrs.getString("layout", "nchw");
  if (layout != "nchw" && layout != "nhwc")
    return unsupported("conv '", op.name, "': layout '", layout, "' is not supported");
  for (size_t i = 0; i < dtypes.size(); ++i) {
    const DType d = dtypes[i];
    if (d != DType::kFloat32 && d != DType::kFloat16 && d != DType::kBFloat16)
      return unsupported("conv '", op.name, "': ", dtype_name(d),
                         " is not supported (float32, float16, bfloat16 only)");
    if (i == 1 && d != dtypes[0])
      return unsupported("conv '", op.name, "': x and weight have mixed dtypes ",
                         dtype_name(dtypes[0]), " and ", dtype_name(d));
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<TacticCandidate>> conv_tactics(CudaBackendState& state, const KernelArgs& args,
                                                  size_t workspace_limit, int max_candidates) {
  ConvPlan p;
  KILN_RETURN_IF_ERROR(plan_conv(args, p));
  std::vector<TacticCandidate> out;
  DnnDescs d;
  KILN_RETURN_IF_ERROR(make_descs(args, p, d));
  KILN_ASSIGN_OR_RETURN(std::vector<DnnAlgo> algos, heuristic(args, state.cudnn, p, d));
  const bool half = p.dtype != CUDNN_DATA_FLOAT;
  std::vector<LtAlgo> tiles;  // cuBLASLt tile variants, offered after cuDNN's algorithms
  if (gemm_applies(p)) {
    // Build-time views carry no real pointers: assume the arena's 256-byte alignment.
    const void* fake = reinterpret_cast<const void*>(uintptr_t{256});
    GemmProblem g = gemm_problem(p, fake, fake, const_cast<void*>(fake), p.bias ? fake : nullptr,
                                 p.residual ? fake : nullptr);
    g.assume_aligned = true;
    const size_t lt_workspace = std::min(workspace_limit, kGemmLibraryWorkspace);
    KILN_ASSIGN_OR_RETURN(std::vector<LtAlgo> lt,
                          lt_heuristic(state, g, lt_workspace, std::max(1, max_candidates / 2)));
    KILN_ASSIGN_OR_RETURN(
        tiles, lt_tile_variants(state, g, lt_workspace, lt, state.sm_count, kMaxConvTileVariants));
    for (const LtAlgo& a : lt)
      out.push_back({"cuda.conv.cudnn", serialize_lt_algo(a),
                     str("1x1 conv as gemm: ", describe_lt_algo(a), " +epilogue fused")});
  }
  for (DnnAlgo& a : algos) {
    Result<size_t> ws = algo_workspace(args, state.cudnn, p, d, a);
    if (!ws.ok() || *ws > workspace_limit) continue;
    // The forms of this algorithm, in the order offered: see the header comment.
    std::vector<bool> forms = {false};
    if (fused_call_applies(p, a.algo)) forms = half ? std::vector<bool>{true, false} : std::vector<bool>{false, true};
    for (bool unfused : forms) {
      if (static_cast<int>(out.size()) >= max_candidates) break;
      const int32_t v[4] = {static_cast<int32_t>(kConvMagic), a.algo, static_cast<int32_t>(a.math),
                            unfused ? kUnfused : 0};
      std::vector<uint8_t> blob(sizeof(v));
      std::memcpy(blob.data(), v, sizeof(v));
      const char* epilogue = fused_call_applies(p, a.algo) && !unfused ? " +bias-act fused"
                             : (p.bias || p.residual || p.relu)         ? " +epilogue kernel"
                                                                        : "";
      out.push_back({"cuda.conv.cudnn", std::move(blob),
                     str("cudnn ", p.transposed ? "bwd-data" : "fwd", p.nhwc ? " nhwc" : "",
                         " algo ", a.algo, " math ", static_cast<int>(a.math), " ws ", *ws,
                         epilogue)});
    }
  }
  for (const LtAlgo& a : tiles)
    out.push_back({"cuda.conv.cudnn", serialize_lt_algo(a),
                   str("1x1 conv as gemm: ", describe_lt_algo(a), " +epilogue fused"), 1.0,
                   /*always_timed=*/true});
  if (out.empty()) out.push_back({"cuda.conv.cudnn", {}, "cudnn heuristic at run time"});
  return out;
}

void register_conv_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kConv, "cuda.conv.cudnn", supports_conv, run_conv, conv_workspace});
}

}  // namespace kiln::cuda
