// Convolution (1d/2d/3d, groups, dilation, transposed) through cuDNN 9's legacy convolution API:
// cudnnConvolutionForward, and cudnnConvolutionBackwardData for transposed convolutions (the
// adjoint of the conv that maps the output grid to the input grid, with PyTorch's [C, O/g, *k]
// weight). 1d runs as 2d with a unit height. float32 uses FMA math (no TF32, so it matches a
// float32 reference), fp16/bf16 tensor-op math with float32 accumulation. The bias is added by
// a Kiln kernel after the call. Non-contiguous x or w are packed into the workspace.
//
// tactic_data, when present, is a serialized cuDNN algorithm (kConvMagic, algo, math type); a
// call without one, or whose algorithm needs more workspace than it got, asks cuDNN's heuristic
// (cudnnGet*Algorithm_v7: host only, nothing runs).

#include <cudnn.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cuda/conv_tactics.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_util.h"

namespace kiln::cuda {
namespace {

constexpr uint32_t kConvMagic = 0x314E'444B;  // "KDN1"
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
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  DnnDescs() = default;
  DnnDescs(const DnnDescs&) = delete;
  DnnDescs& operator=(const DnnDescs&) = delete;
  ~DnnDescs() {
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
  size_t x_pack = 0, w_pack = 0;  // bytes staged in the workspace (0: used in place)
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
  const TensorView& x = args.inputs[0];
  const TensorView& w = args.inputs[1];
  const TensorView& y = args.outputs[0];
  if (x.rank < 3 || x.rank > 5 || w.rank != x.rank || y.rank != x.rank)
    return kernel_error(args, "expected x, weight and output of rank 3, 4 or 5 (got ", x.rank,
                        ", ", w.rank, ", ", y.rank, ")");
  if (x.dtype != w.dtype || x.dtype != y.dtype)
    return kernel_unsupported(args, "x, weight and output must share one dtype");
  p.dtype = x.dtype == DType::kFloat16    ? CUDNN_DATA_HALF
            : x.dtype == DType::kBFloat16 ? CUDNN_DATA_BFLOAT16
                                          : CUDNN_DATA_FLOAT;
  if (!is_floating(x.dtype)) return kernel_unsupported(args, dtype_name(x.dtype), " conv");
  const int sp = x.rank - 2;
  p.transposed = args.attrs.getBool("transposed", false);
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
  if (!x.isContiguous()) p.x_pack = align_up(static_cast<size_t>(x.numel()) * es);
  if (!w.isContiguous()) p.w_pack = align_up(static_cast<size_t>(w.numel()) * es);
  return Status::Ok();
}

Status make_descs(const KernelArgs& args, const ConvPlan& p, DnnDescs& d) {
  int x_strides[5], y_strides[5];
  x_strides[p.nd - 1] = y_strides[p.nd - 1] = 1;
  for (int i = p.nd - 2; i >= 0; --i) {
    x_strides[i] = x_strides[i + 1] * std::max(1, p.x_dims[i + 1]);
    y_strides[i] = y_strides[i + 1] * std::max(1, p.y_dims[i + 1]);
  }
  KILN_DNN_CHECK(args, cudnnCreateTensorDescriptor(&d.x), "cudnnCreateTensorDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateTensorDescriptor(&d.y), "cudnnCreateTensorDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateFilterDescriptor(&d.w), "cudnnCreateFilterDescriptor");
  KILN_DNN_CHECK(args, cudnnCreateConvolutionDescriptor(&d.conv),
                 "cudnnCreateConvolutionDescriptor");
  KILN_DNN_CHECK(args, cudnnSetTensorNdDescriptor(d.x, p.dtype, p.nd, p.x_dims, x_strides),
                 "describing x");
  KILN_DNN_CHECK(args, cudnnSetTensorNdDescriptor(d.y, p.dtype, p.nd, p.y_dims, y_strides),
                 "describing the output");
  KILN_DNN_CHECK(args,
                 cudnnSetFilterNdDescriptor(d.w, p.dtype, CUDNN_TENSOR_NCHW, p.nd, p.w_dims),
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

bool deserialize(std::span<const uint8_t> data, DnnAlgo& a) {
  if (data.size() != 3 * sizeof(int32_t)) return false;
  int32_t v[3];
  std::memcpy(v, data.data(), sizeof(v));
  if (static_cast<uint32_t>(v[0]) != kConvMagic) return false;
  a.algo = v[1];
  a.math = static_cast<cudnnMathType_t>(v[2]);
  return true;
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
  size_t bytes = p.x_pack + p.w_pack;
  if (args.outputs[0].numel() == 0) return bytes;
  CudaBackendState* state = state_of(args);
  if (!state || !state->cudnn) return bytes + kDefaultWorkspaceLimit;
  DnnDescs d;
  if (!make_descs(args, p, d).ok()) return bytes;
  Result<DnnAlgo> a = choose(args, state->cudnn, p, d, kDefaultWorkspaceLimit);
  return bytes + (a.ok() ? align_up(a->workspace) : 0);
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
  const size_t packs = p.x_pack + p.w_pack;
  if (args.workspace_bytes < packs)
    return kernel_error(args, "workspace of ", args.workspace_bytes, " bytes, needs ", packs);
  char* cursor = static_cast<char*>(args.workspace);
  const void* xp = x.data;
  const void* wp = w.data;
  if (p.x_pack) {
    KILN_RETURN_IF_ERROR(launch_copy(args, x, contiguous_view(cursor, x.dtype, x.shape, x.rank)));
    xp = cursor;
    cursor += p.x_pack;
  }
  if (p.w_pack) {
    KILN_RETURN_IF_ERROR(launch_copy(args, w, contiguous_view(cursor, w.dtype, w.shape, w.rank)));
    wp = cursor;
    cursor += p.w_pack;
  }
  const size_t available = args.workspace_bytes - packs;
  if (x.numel() == 0 || w.numel() == 0) {  // an empty sum: zeros (+ bias)
    KILN_RETURN_IF_ERROR(launch_fill(args, y.data, y.dtype, y.numel(), 0.0));
  } else {
    DnnDescs d;
    KILN_RETURN_IF_ERROR(make_descs(args, p, d));
    cudnnHandle_t h = state->cudnn;
    KILN_ASSIGN_OR_RETURN(DnnAlgo a, choose(args, h, p, d, available));
    KILN_DNN_CHECK(args, cudnnSetConvolutionMathType(d.conv, a.math), "setting the math type");
    KILN_DNN_CHECK(args, cudnnSetStream(h, stream_of(args)), "cudnnSetStream");
    const float alpha = 1.0f, beta = 0.0f;
    void* ws = a.workspace ? cursor : nullptr;
    if (!p.transposed) {
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
  if (args.inputs.size() > 2) {
    const int64_t inner = y.numel() / (y.shape[0] * y.shape[1]);
    KILN_RETURN_IF_ERROR(
        launch_channel_bias(args, y.data, y.dtype, y.shape[0], y.shape[1], inner, args.inputs[2]));
  }
  return check_launch(args, "cudnn convolution");
}

Status supports_conv(const Op& op, std::span<const DType> dtypes) {
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
  for (DnnAlgo& a : algos) {
    if (static_cast<int>(out.size()) >= max_candidates) break;
    Result<size_t> ws = algo_workspace(args, state.cudnn, p, d, a);
    if (!ws.ok() || *ws > workspace_limit) continue;
    const int32_t v[3] = {static_cast<int32_t>(kConvMagic), a.algo, static_cast<int32_t>(a.math)};
    std::vector<uint8_t> blob(sizeof(v));
    std::memcpy(blob.data(), v, sizeof(v));
    out.push_back({"cuda.conv.cudnn", std::move(blob),
                   str("cudnn ", p.transposed ? "bwd-data" : "fwd", " algo ", a.algo, " math ",
                       static_cast<int>(a.math), " ws ", *ws)});
  }
  if (out.empty()) out.push_back({"cuda.conv.cudnn", {}, "cudnn heuristic at run time"});
  return out;
}

void register_conv_kernels(std::vector<CudaKernel>& out) {
  out.push_back({OpKind::kConv, "cuda.conv.cudnn", supports_conv, run_conv, conv_workspace});
}

}  // namespace kiln::cuda
