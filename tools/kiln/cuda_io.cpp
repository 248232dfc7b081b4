// CudaIo on the CUDA runtime (built only with KILN_CUDA): the one CLI file that includes a
// CUDA header. The CLI owns the buffers, stream and events a user program would own.

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>

#include "cli.h"

namespace kiln::cli {
namespace {

// "cudaMalloc for output 'logits' failed: cudaErrorMemoryAllocation (out of memory)".
Status check(cudaError_t err, const char* call, const std::string& what) {
  if (err == cudaSuccess) return Status::Ok();
  (void)cudaGetLastError();  // clear a non-sticky error so later calls report their own
  return Status(err == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kCudaError,
                str(call, " for ", what, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
}

// Events made for one timing, destroyed with it.
struct Events {
  std::vector<cudaEvent_t> list;
  ~Events() {
    for (cudaEvent_t e : list) cudaEventDestroy(e);
  }
  Result<cudaEvent_t> make(int iteration) {
    cudaEvent_t e = nullptr;
    KILN_RETURN_IF_ERROR(check(cudaEventCreate(&e), "cudaEventCreate", str("timing iteration ", iteration)));
    list.push_back(e);
    return e;
  }
};

class RuntimeCudaIo final : public CudaIo {
 public:
  ~RuntimeCudaIo() override {
    // Nothing queued may still use the buffers freed below.
    if (stream_) (void)cudaStreamSynchronize(stream_);
    for (void* p : buffers_) (void)cudaFree(p);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  Status init(int index) {
    int count = 0;
    KILN_RETURN_IF_ERROR(check(cudaGetDeviceCount(&count), "cudaGetDeviceCount", str("device 'cuda:", index, "'")));
    if (index >= count)
      return invalid_argument("device 'cuda:", index, "' does not exist (", count, " CUDA devices visible)");
    const std::string device = str("cuda:", index);
    KILN_RETURN_IF_ERROR(check(cudaSetDevice(index), "cudaSetDevice", device));
    cudaDeviceProp prop{};
    KILN_RETURN_IF_ERROR(check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties", device));
    label_ = str(device, " (", prop.name, ")");
    KILN_RETURN_IF_ERROR(check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                               "cudaStreamCreateWithFlags", "the stream on " + device));
    return Status::Ok();
  }

  const std::string& label() const override { return label_; }
  cudaStream_t stream() const override { return stream_; }

  Result<void*> allocate(const std::string& name, size_t bytes) override {
    void* p = nullptr;
    // One byte at least, so that an empty tensor still has an address of its own.
    KILN_RETURN_IF_ERROR(check(cudaMalloc(&p, std::max<size_t>(bytes, 1)), "cudaMalloc",
                               str(name, " (", bytes, " bytes)")));
    buffers_.push_back(p);
    return p;
  }

  Status upload(const std::string& name, void* device, const HostTensor& host) override {
    if (host.data.empty()) return Status::Ok();
    return check(cudaMemcpyAsync(device, host.data.data(), host.data.size(), cudaMemcpyHostToDevice, stream_),
                 "cudaMemcpyAsync (host to device)", name);
  }

  Status download(const std::string& name, const void* device, HostTensor& host) override {
    if (host.data.empty()) return Status::Ok();
    return check(cudaMemcpyAsync(host.data.data(), device, host.data.size(), cudaMemcpyDeviceToHost, stream_),
                 "cudaMemcpyAsync (device to host)", name);
  }

  Status synchronize(const std::string& what) override {
    return check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize", what);
  }

  Status time(int iterations, const std::function<Status()>& enqueue, std::vector<double>& device_ms,
              std::vector<double>& host_ms) override {
    Events events;
    std::vector<cudaEvent_t> start, stop;
    for (int i = 0; i < iterations; ++i) {
      KILN_ASSIGN_OR_RETURN(cudaEvent_t a, events.make(i));
      KILN_ASSIGN_OR_RETURN(cudaEvent_t b, events.make(i));
      start.push_back(a);
      stop.push_back(b);
    }
    // Back to back, as a serving loop enqueues: while the GPU is the bottleneck each start
    // event runs right after the previous call's work, so the pair brackets one call's.
    for (int i = 0; i < iterations; ++i) {
      const std::string what = str("timing iteration ", i);
      KILN_RETURN_IF_ERROR(check(cudaEventRecord(start[static_cast<size_t>(i)], stream_), "cudaEventRecord", what));
      auto t0 = std::chrono::steady_clock::now();
      Status st = enqueue();
      auto t1 = std::chrono::steady_clock::now();
      if (!st.ok()) {
        (void)cudaStreamSynchronize(stream_);
        return st.withContext(what);
      }
      host_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      KILN_RETURN_IF_ERROR(check(cudaEventRecord(stop[static_cast<size_t>(i)], stream_), "cudaEventRecord", what));
    }
    KILN_RETURN_IF_ERROR(synchronize("the timed runs"));
    for (int i = 0; i < iterations; ++i) {
      float ms = 0;
      KILN_RETURN_IF_ERROR(check(cudaEventElapsedTime(&ms, start[static_cast<size_t>(i)], stop[static_cast<size_t>(i)]),
                                 "cudaEventElapsedTime", str("timing iteration ", i)));
      device_ms.push_back(ms);
    }
    return Status::Ok();
  }

 private:
  std::string label_;
  cudaStream_t stream_ = nullptr;
  std::vector<void*> buffers_;
};

}  // namespace

Result<std::unique_ptr<CudaIo>> make_cuda_io(int index) {
  auto io = std::make_unique<RuntimeCudaIo>();
  KILN_RETURN_IF_ERROR(io->init(index));
  return std::unique_ptr<CudaIo>(std::move(io));
}

}  // namespace kiln::cli
