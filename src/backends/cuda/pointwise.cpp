// The fused pointwise op on CUDA: a kernel generated per op and compiled by NVRTC at build time
// (pointwise_codegen.cpp, pointwise_nvrtc.cpp). At engine load `prepare` loads the CUBIN once
// (cuLibraryLoadData: a context-independent library, so streams of other contexts such as green
// contexts can launch it too) and resolves both entries; `run` only fills the argument block and
// launches, with no synchronization and no compilation. Driver calls go through entry points the
// runtime hands out (cudaGetDriverEntryPointByVersion), so libkiln does not link libcuda and
// still loads on machines without a driver.

#include <cuda.h>

#include <algorithm>
#include <cctype>

#include "backends/cuda/cuda_util.h"
#include "backends/cuda/pointwise_codegen.h"

namespace kiln::cuda {
namespace {

constexpr const char* kTactic = "cuda.pointwise.nvrtc";

// The driver API functions this file uses.
struct Driver {
  decltype(&cuGetErrorName) get_error_name = nullptr;
  decltype(&cuGetErrorString) get_error_string = nullptr;
  decltype(&cuCtxGetCurrent) ctx_get_current = nullptr;
  decltype(&cuLibraryLoadData) library_load_data = nullptr;
  decltype(&cuLibraryUnload) library_unload = nullptr;
  decltype(&cuLibraryGetKernel) library_get_kernel = nullptr;
  decltype(&cuKernelGetFunction) kernel_get_function = nullptr;
  decltype(&cuLaunchKernel) launch_kernel = nullptr;
  std::string missing;  // the first symbol not found
};

template <typename F>
void resolve(Driver& d, const char* symbol, F& fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult q{};
  if (cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess || !p) {
    if (d.missing.empty()) d.missing = symbol;
    return;
  }
  fn = reinterpret_cast<F>(p);
}

const Driver& driver() {
  static const Driver d = [] {
    Driver d;
    resolve(d, "cuGetErrorName", d.get_error_name);
    resolve(d, "cuGetErrorString", d.get_error_string);
    resolve(d, "cuCtxGetCurrent", d.ctx_get_current);
    resolve(d, "cuLibraryLoadData", d.library_load_data);
    resolve(d, "cuLibraryUnload", d.library_unload);
    resolve(d, "cuLibraryGetKernel", d.library_get_kernel);
    resolve(d, "cuKernelGetFunction", d.kernel_get_function);
    resolve(d, "cuLaunchKernel", d.launch_kernel);
    return d;
  }();
  return d;
}

struct PreparedPointwise {
  CUlibrary library = nullptr;
  CUkernel generic = nullptr;
  CUkernel vector = nullptr;
  int device = 0;
  int sms = 1;
};

Status driver_error(const char* op, CUresult r, const std::string& what) {
  const char* name = nullptr;
  const char* text = nullptr;
  if (driver().get_error_name) driver().get_error_name(r, &name);
  if (driver().get_error_string) driver().get_error_string(r, &text);
  return Status(StatusCode::kCudaError, str(op ? op : "pointwise", ": ", what, ": ",
                                            name ? name : "?", " (", text ? text : "?", ")"));
}

Status supports_pointwise(const Op& op, std::span<const DType> dtypes) {
  auto p = decode_pointwise(op.attrs, dtypes);
  if (!p.ok()) return invalid_argument("pointwise '", op.name, "': ", p.status().message());
  return Status::Ok();
}

Result<std::shared_ptr<const void>> prepare_pointwise(const char* op_name,
                                                      std::span<const uint8_t> tactic_data) {
  auto g = decode_generated(tactic_data);
  if (!g.ok()) return g.status().withContext(str("pointwise '", op_name, "'"));
  const Driver& drv = driver();
  if (!drv.missing.empty())
    return Status(StatusCode::kCudaError, str("pointwise '", op_name, "': the CUDA driver lacks ",
                                              drv.missing, " (needs a CUDA 12 driver or newer)"));
  // The runtime made the engine's device current; make sure its primary context exists.
  CUcontext ctx = nullptr;
  if (drv.ctx_get_current(&ctx) != CUDA_SUCCESS || !ctx) (void)cudaFree(nullptr);
  auto prepared = std::shared_ptr<PreparedPointwise>(new PreparedPointwise(), [](PreparedPointwise* p) {
    if (p->library) driver().library_unload(p->library);
    delete p;
  });
  if (cudaGetDevice(&prepared->device) != cudaSuccess)
    return Status(StatusCode::kCudaError, str("pointwise '", op_name, "': cudaGetDevice failed"));
  if (cudaDeviceGetAttribute(&prepared->sms, cudaDevAttrMultiProcessorCount, prepared->device) != cudaSuccess)
    prepared->sms = 1;
  CUresult r = drv.library_load_data(&prepared->library, g->cubin.data(), nullptr, nullptr, 0, nullptr,
                                 nullptr, 0);
  if (r != CUDA_SUCCESS) return driver_error(op_name, r, "loading its CUBIN (cuLibraryLoadData)");
  const std::string names[2] = {pointwise_entry_generic(g->kernel_name), pointwise_entry_vector(g->kernel_name)};
  CUkernel* slots[2] = {&prepared->generic, &prepared->vector};
  for (int i = 0; i < 2; ++i) {
    r = drv.library_get_kernel(slots[i], prepared->library, names[i].c_str());
    if (r != CUDA_SUCCESS) return driver_error(op_name, r, "finding entry '" + names[i] + "'");
    // Loads the kernel into the current context now, so the first launch does not.
    CUfunction f = nullptr;
    r = drv.kernel_get_function(&f, *slots[i]);
    if (r != CUDA_SUCCESS) return driver_error(op_name, r, "loading entry '" + names[i] + "'");
  }
  return std::shared_ptr<const void>(prepared);
}


Status run_pointwise(const KernelArgs& args) {
  const auto* prep = static_cast<const PreparedPointwise*>(args.prepared);
  if (!prep)
    return kernel_error(args, "generated kernel not loaded (the engine prepares it at load time)");
  const int n_in = static_cast<int>(args.inputs.size()), n_out = static_cast<int>(args.outputs.size());
  if (n_in < 1 || n_in > kMaxPointwiseInputs || n_out < 1 || n_out > kMaxPointwiseOutputs)
    return kernel_error(args, "got ", n_in, " inputs and ", n_out, " outputs");
  const TensorView& out = args.outputs[0];
  if (out.rank > 8) return kernel_error(args, "rank ", out.rank, " is above 8");
  PwArgs a{};
  a.n = out.numel();
  a.rank = out.rank;
  for (int d = 0; d < out.rank; ++d) a.shape[d] = out.shape[d];
  if (a.n == 0) return Status::Ok();
  bool vec = a.n % kPwVector == 0;
  for (int o = 0; o < n_out; ++o) {
    const TensorView& v = args.outputs[static_cast<size_t>(o)];
    if (v.numel() != a.n || !v.isContiguous() || v.rank != out.rank)
      return kernel_error(args, "output ", o, " does not match output 0's shape");
    a.out[o] = v.data;
    vec = vec && aligned_to(v.data, kPwVector * dtype_size(v.dtype));
  }
  for (int k = 0; k < n_in; ++k) {
    const TensorView& in = args.inputs[static_cast<size_t>(k)];
    if (in.rank > out.rank) return kernel_error(args, "input ", k, " has a higher rank than the output");
    a.in[k] = in.data;
    // Strides over the output's dims; contiguous-suffix length for the row mode.
    int64_t expect = 1, row = 1;
    bool contiguous = true, suffix = true, prefix_zero = true;
    for (int d = out.rank - 1; d >= 0; --d) {
      const int id = d - (out.rank - in.rank);
      int64_t stride = 0;
      if (id >= 0) {
        if (in.shape[id] != out.shape[d] && in.shape[id] != 1)
          return kernel_error(args, "input ", k, " dim ", id, " (", in.shape[id],
                              ") does not broadcast to ", out.shape[d]);
        stride = in.shape[id] == 1 ? 0 : in.strides[id];
      }
      a.strides[k][d] = stride;
      const bool dense = out.shape[d] == 1 || stride == expect;
      contiguous = contiguous && dense;
      if (suffix && dense) {
        row *= out.shape[d];
        expect *= out.shape[d];
      } else {
        suffix = false;
        prefix_zero = prefix_zero && (stride == 0 || out.shape[d] == 1);
      }
    }
    const size_t esize = dtype_size(in.dtype);
    if (in.numel() == 1) {
      a.mode[k] = kPwScalar;
    } else if (contiguous) {
      a.mode[k] = kPwContiguous;
      vec = vec && aligned_to(in.data, kPwVector * esize);
    } else if (prefix_zero && row > 1) {
      a.mode[k] = kPwRow;
      a.row[k] = row;
      vec = vec && row % kPwVector == 0 && aligned_to(in.data, kPwVector * esize);
    } else {
      a.mode[k] = kPwStrided;
      vec = false;
    }
  }
  const int64_t work = vec ? a.n / kPwVector : a.n;
  const int64_t blocks = std::clamp<int64_t>((work + kPwThreads - 1) / kPwThreads, 1,
                                             static_cast<int64_t>(prep->sms) * 16);
  void* params[] = {&a};
  CUresult r = driver().launch_kernel(reinterpret_cast<CUfunction>(vec ? prep->vector : prep->generic),
                              static_cast<unsigned>(blocks), 1, 1, kPwThreads, 1, 1, 0,
                              static_cast<CUstream>(args.stream), params, nullptr);
  if (r != CUDA_SUCCESS) return driver_error(args.op_name, r, "launching the generated kernel");
  return Status::Ok();
}

}  // namespace

Result<std::vector<TacticCandidate>> pointwise_tactics(CudaBackendState& state, const Op& op,
                                                       std::span<const TensorView> inputs) {
  std::vector<DType> dtypes;
  for (const TensorView& v : inputs) dtypes.push_back(v.dtype);
  auto program = decode_pointwise(op.attrs, dtypes);
  if (!program.ok()) return invalid_argument("pointwise '", op.name, "': ", program.status().message());
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, state.device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, state.device) != cudaSuccess)
    return Status(StatusCode::kCudaError, str("pointwise '", op.name, "': cannot read the SM of device ", state.device));
  GeneratedPointwise g;
  g.kernel_name = "kiln_pw_";
  for (char c : op.name) g.kernel_name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  g.source = generate_pointwise_source(*program, g.kernel_name, op.name);
  KILN_ASSIGN_OR_RETURN(g.cubin, compile_to_cubin(g.source, op.name, major, minor));
  std::string label = str("nvrtc sm_", major, minor, ", ", program->code.size(), " instructions");
  return std::vector<TacticCandidate>{{kTactic, encode_generated(g), label}};
}

void register_pointwise_kernels(std::vector<CudaKernel>& out) {
  CudaKernel k{OpKind::kPointwise, kTactic, supports_pointwise, run_pointwise};
  k.prepare = prepare_pointwise;
  out.push_back(k);
}

}  // namespace kiln::cuda
