// CudaBackendState: the library handles and the device error word of one execution context.

#include <cublasLt.h>
#include <cudnn.h>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_util.h"

namespace kiln::cuda {
namespace {

// Makes `device` current for a scope and restores the caller's device after.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) ok_ = cudaSetDevice(device) == cudaSuccess;
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  bool ok() const { return ok_; }

 private:
  int previous_ = -1;
  bool ok_ = true;
};

Status runtime_error(cudaError_t err, const char* what) {
  return Status(StatusCode::kCudaError,
                str("cuda backend: ", what, ": ", cudaGetErrorName(err), " (",
                    cudaGetErrorString(err), ")"));
}

}  // namespace

CudaBackendState::~CudaBackendState() {
  DeviceScope scope(device);
  if (cudnn) cudnnDestroy(cudnn);
  if (cublaslt) cublasLtDestroy(cublaslt);
  if (device_errors) cudaFree(device_errors);
}

Result<std::unique_ptr<CudaBackendState>> create_backend_state(int device) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return runtime_error(err, "cudaGetDeviceCount");
  if (device < 0 || device >= count)
    return Status(StatusCode::kCudaError,
                  str("cuda backend: device ", device, " does not exist (", count, " devices)"));
  DeviceScope scope(device);
  if (!scope.ok()) return runtime_error(cudaGetLastError(), "cudaSetDevice");
  auto state = std::make_unique<CudaBackendState>();
  state->device = device;
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&state->sm_count, cudaDevAttrMultiProcessorCount, device) !=
          cudaSuccess)
    return runtime_error(cudaGetLastError(), "cudaDeviceGetAttribute");
  state->cc = major * 10 + minor;
  cublasLtHandle_t lt = nullptr;
  if (cublasStatus_t s = cublasLtCreate(&lt); s != CUBLAS_STATUS_SUCCESS)
    return Status(StatusCode::kCudaError, str("cuda backend: cublasLtCreate failed (status ",
                                              static_cast<int>(s), ")"));
  state->cublaslt = lt;
  cudnnHandle_t dnn = nullptr;
  if (cudnnStatus_t s = cudnnCreate(&dnn); s != CUDNN_STATUS_SUCCESS)
    return Status(StatusCode::kCudaError,
                  str("cuda backend: cudnnCreate failed: ", cudnnGetErrorString(s)));
  state->cudnn = dnn;
  void* word = nullptr;
  err = cudaMalloc(&word, sizeof(uint32_t));
  if (err != cudaSuccess) return runtime_error(err, "cudaMalloc of the error word");
  state->device_errors = static_cast<uint32_t*>(word);
  err = cudaMemset(word, 0, sizeof(uint32_t));
  if (err != cudaSuccess) return runtime_error(err, "cudaMemset of the error word");
  return state;
}

Status read_device_errors(CudaBackendState& state, void* stream) {
  if (!state.device_errors) return Status::Ok();
  DeviceScope scope(state.device);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  uint32_t bits = 0;
  cudaError_t err =
      cudaMemcpyAsync(&bits, state.device_errors, sizeof(bits), cudaMemcpyDeviceToHost, s);
  if (err == cudaSuccess) err = cudaMemsetAsync(state.device_errors, 0, sizeof(bits), s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  if (err != cudaSuccess) return runtime_error(err, "reading the device error word");
  if (bits == 0) return Status::Ok();
  std::string what;
  if (bits & kDeviceErrorIndexOutOfRange) what += " an index was out of range (clamped);";
  if (bits & kDeviceErrorIntDivByZero) what += " an integer division by zero (gave 0);";
  if (bits & kDeviceErrorNegativePower) what += " an integer raised to a negative power (gave 0);";
  return out_of_range("cuda kernels reported:", what);
}

}  // namespace kiln::cuda
