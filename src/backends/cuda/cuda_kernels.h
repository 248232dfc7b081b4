#pragma once

// The CUDA backend's kernel registry: the mirror of src/backends/cpu/cpu_kernels.h. This header
// includes no CUDA header, so the builder and runtime can name kernels without nvcc.
//
// Kernel contract (every CudaKernel::run):
// - TensorView data pointers are device pointers; inputs may be strided views (stride 0 for
//   expand, negative never), outputs are contiguous.
// - Work is launched on `args.stream` (a cudaStream_t) only. A kernel never synchronizes: no
//   cudaDeviceSynchronize / cudaStreamSynchronize, no synchronous cudaMemcpy, no cudaMalloc or
//   cudaFree. Scratch memory comes from `args.workspace` (at least `workspace(args)` bytes).
// - `args.backend` points to the execution context's CudaBackendState (library handles, the
//   device error word). cuBLASLt and cuDNN kernels need it; the others use it only to report
//   data-dependent errors (see below) and run without it.
// - Launch errors come back as StatusCode::kCudaError naming the op.
// - Data-dependent errors (an index out of range, an integer division by zero) cannot be
//   returned without a synchronization. The kernel then clamps (indices) or writes 0 (integer
//   division), never touches memory out of bounds, and sets a bit in the state's device error
//   word; read_device_errors() reports them (it synchronizes: call it after the stream is idle,
//   in debug mode or tests).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/common/tensor_view.h"
#include "kiln/network.h"

struct cublasLtContext;
struct cudnnContext;

namespace kiln::cuda {

// One CUDA implementation of an op. `supports` (nullable = everything) answers before anything
// runs whether this kernel serves an op with these input dtypes and attributes.
struct CudaKernel {
  OpKind kind;
  const char* tactic;  // "cuda.matmul.cublaslt"
  Status (*supports)(const Op& op, std::span<const DType> input_dtypes) = nullptr;
  KernelFn run = nullptr;
  // Scratch bytes one call with these concrete args needs (nullptr = none). It reads shapes,
  // dtypes, strides, attrs and tactic_data; data pointers may be null. cuDNN kernels use
  // args.backend (a handle) to size their workspace.
  size_t (*workspace)(const KernelArgs& args) = nullptr;
  // Per-engine setup from the step's tactic data, run once when an engine is loaded, with the
  // engine's device current (it may block: loading a generated CUBIN). Its result reaches `run`
  // as KernelArgs::prepared and lives as long as the engine. nullptr = nothing to prepare.
  Result<std::shared_ptr<const void>> (*prepare)(const char* op_name,
                                                 std::span<const uint8_t> tactic_data) = nullptr;
};

// The kernels registered for `kind` (the first is the default tactic).
std::span<const CudaKernel> kernels_for(OpKind kind);
// The kernel with this tactic name, or nullptr.
const CudaKernel* find_kernel(OpKind kind, std::string_view tactic);

// Per-execution-context library state: the device, a cuBLASLt handle, a cuDNN handle and a
// device word of error bits. Not thread-safe: one per context (a context runs one execution at
// a time). The library handles are forward-declared so this header needs no CUDA header.
struct CudaBackendState {
  int device = 0;
  int cc = 0;        // compute capability, major * 10 + minor (90: H100/H200)
  int sm_count = 0;  // multiprocessors
  cublasLtContext* cublaslt = nullptr;  // cublasLtHandle_t
  cudnnContext* cudnn = nullptr;        // cudnnHandle_t
  uint32_t* device_errors = nullptr;    // device memory, one word of DeviceError bits

  CudaBackendState() = default;
  CudaBackendState(const CudaBackendState&) = delete;
  CudaBackendState& operator=(const CudaBackendState&) = delete;
  ~CudaBackendState();  // destroys the handles (the caller's stream work must be done)
};

// Creates the state on `device` (made current for the call; the caller's device is restored).
Result<std::unique_ptr<CudaBackendState>> create_backend_state(int device);

// Bits of the device error word.
enum DeviceError : uint32_t {
  kDeviceErrorIndexOutOfRange = 1u << 0,  // gather/embedding/index_select: clamped
  kDeviceErrorIntDivByZero = 1u << 1,     // integer floor_divide/remainder by 0: wrote 0
  kDeviceErrorNegativePower = 1u << 2,    // integer pow with a negative exponent: wrote 0
};
// Reads and clears the error word. SYNCHRONIZES with `stream` (void* = cudaStream_t): for
// debug mode and tests only, never inside enqueue. OK when no bit was set.
Status read_device_errors(CudaBackendState& state, void* stream);

// One implementation choice for an op, produced at build time and stored in the engine:
// `tactic` names the kernel (find_kernel key), `data` becomes KernelArgs::tactic_data, `label`
// is for humans ("cublaslt algo 23 tile 128x128 ws 4MiB"). `handicap` scales the candidate's
// timed ms when candidates are compared (not in the timing cache): above 1 for a cost the
// timing does not see (attention_cudnn.h). `always_timed`: timed at optimization level 1 past
// the first candidates of its kernel (builder/tactics.h; cuBLASLt's tile variants).
struct TacticCandidate {
  std::string tactic;
  std::vector<uint8_t> data;
  std::string label;
  double handicap = 1.0;
  bool always_timed = false;
};

// Tactic candidates for ops with several implementations: cuBLASLt heuristic algorithms for
// matmul/linear (each serialized into `data`), cuDNN algorithms for conv. `inputs` / `outputs`
// carry the concrete shapes to tune for (the profile's opt shapes; data pointers may be null,
// which means "assume 256-byte alignment"). At most `max_candidates` from the library's
// heuristic, best first; small-M GEMMs add up to 12 split-K variants after them
// (lt_split_k_variants). None need more than `workspace_limit` bytes of library workspace. Ops
// with one implementation get one candidate per registered kernel with empty data. A kernel
// given empty tactic_data picks an algorithm itself at run time (host-side heuristic, no sync).
Result<std::vector<TacticCandidate>> tactic_candidates(CudaBackendState& state, const Op& op,
                                                       std::span<const TensorView> inputs,
                                                       std::span<const TensorView> outputs,
                                                       std::span<const int64_t> bindings,
                                                       size_t workspace_limit,
                                                       int max_candidates = 8);

// Registration: each family file defines one of these; registry.cpp calls them all.
void register_unary_kernels(std::vector<CudaKernel>& out);        // unary, clamp
void register_binary_kernels(std::vector<CudaKernel>& out);       // binary, where
void register_cast_kernels(std::vector<CudaKernel>& out);
void register_reduction_kernels(std::vector<CudaKernel>& out);    // reduce, softmax
void register_norm_kernels(std::vector<CudaKernel>& out);
void register_linalg_kernels(std::vector<CudaKernel>& out);       // matmul, linear (cuBLASLt)
void register_conv_kernels(std::vector<CudaKernel>& out);         // conv (cuDNN)
void register_pool_kernels(std::vector<CudaKernel>& out);         // pool, adaptive avg pool
void register_attention_kernels(std::vector<CudaKernel>& out);
void register_indexing_kernels(std::vector<CudaKernel>& out);
void register_shape_kernels(std::vector<CudaKernel>& out);        // view copies, concat, pad...
void register_pointwise_kernels(std::vector<CudaKernel>& out);    // generated (NVRTC) kernels

// The generated kernel of a pointwise op: CUDA C++ for its program, compiled by NVRTC for the
// state's device; one candidate whose data holds the source and the CUBIN (pointwise.cpp).
Result<std::vector<TacticCandidate>> pointwise_tactics(CudaBackendState& state, const Op& op,
                                                       std::span<const TensorView> inputs);

}  // namespace kiln::cuda
