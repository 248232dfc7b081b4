#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/runtime.h"
#include "npy.h"

namespace kiln::cli {

// Parsed command line: positional arguments and --flag[=value] options (repeatable).
struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  bool has(const std::string& k) const { return options.count(k) != 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = options.find(k);
    return it == options.end() ? fallback : it->second;
  }
  std::vector<std::string> all(const std::string& k) const;
};

struct HostTensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  std::vector<std::byte> data;
};

// "1x3x224x224" -> {1, 3, 224, 224}
Result<std::vector<int64_t>> parse_dims(const std::string& text);
// NAME=VALUE pairs from repeated options.
Result<std::map<std::string, std::string>> parse_named(const std::vector<std::string>& items,
                                                       const std::string& option);

// Converts a .npy array to the binding's dtype (floats convert among themselves; ints among
// themselves); the message names the binding when it can't.
Result<HostTensor> from_npy(const NpyArray& array, const BindingInfo& binding);
NpyArray to_npy(const HostTensor& tensor);  // bfloat16 is written as float32
HostTensor random_tensor(const BindingInfo& binding, const std::vector<int64_t>& dims, uint64_t seed);

// Dims of every input: from --shape NAME=AxB, else from .npy inputs, else the profile's opt.
Result<std::vector<std::vector<int64_t>>> input_dims(const Engine& engine, const Args& args,
                                                     const std::map<std::string, NpyArray>& npys);

// Buffers, a stream and events on one CUDA device, for run and bench on a CUDA engine
// (cuda_io.cpp, built only with CUDA). Each failing CUDA call is reported with its name and
// the tensor or step it served.
class CudaIo {
 public:
  virtual ~CudaIo() = default;
  virtual const std::string& label() const = 0;  // "cuda:0 (NVIDIA H100 80GB HBM3)"
  virtual cudaStream_t stream() const = 0;       // non-blocking, created for this run
  // A device buffer for binding `name`, freed with this object.
  virtual Result<void*> allocate(const std::string& name, size_t bytes) = 0;
  // Copies queued on stream(); synchronize before reading `host`.
  virtual Status upload(const std::string& name, void* device, const HostTensor& host) = 0;
  virtual Status download(const std::string& name, const void* device, HostTensor& host) = 0;
  virtual Status synchronize(const std::string& what) = 0;
  // Calls `enqueue` (which queues on stream()) `iterations` times, each between two events:
  // per call, device_ms is the events' elapsed time and host_ms how long enqueue took.
  virtual Status time(int iterations, const std::function<Status()>& enqueue,
                      std::vector<double>& device_ms, std::vector<double>& host_ms) = 0;
};
// Makes CUDA device `index` current and creates its stream; fails without CUDA.
Result<std::unique_ptr<CudaIo>> make_cuda_io(int index);

// Where run and bench execute: --device (cpu, cuda, cuda:N), else the engine file's own target
// (cuda:0 for a CUDA engine). Fails naming the value or the target this kiln cannot run.
struct DeviceChoice {
  std::string device = "cpu";  // as DeserializeOptions::device takes it
  int cuda_index = -1;         // -1: the CPU
};
Result<DeviceChoice> choose_device(const Args& args, const EngineInfo& info);

// An engine loaded for the chosen device, one context, and every binding bound: inputs from
// .npy files or random (at --shape / the .npy's / the opt shape), outputs at their shapes. On
// CUDA, the host tensors are copied to and from device buffers of `cuda`.
struct Session {
  std::unique_ptr<CudaIo> cuda;  // null on the CPU; declared first so it is freed last
  std::shared_ptr<Engine> engine;
  std::unique_ptr<ExecutionContext> ctx;
  DeviceChoice device;
  std::string device_label;  // "cpu (<model>)" or "cuda:0 (NVIDIA H100 80GB HBM3)"
  std::vector<HostTensor> inputs;
  std::vector<HostTensor> outputs;
  std::vector<void*> output_ptrs;  // where the context writes each output

  Status enqueue();  // on cuda->stream(), or on the calling thread for the CPU
  // After enqueue: on CUDA copies the outputs back and waits; on the CPU they are in place.
  Status fetch_outputs();
};
// Loads positional[0] and binds it as above; `usage` is the error for a wrong argument count.
Result<std::unique_ptr<Session>> open_session(const Args& args, const char* usage);

std::string dims_str(const std::vector<int64_t>& dims);  // "1x3x224x224"

int cmd_inspect(const Args& args);
int cmd_run(const Args& args);
int cmd_bench(const Args& args);

// Prints "kiln: <message>" to stderr and returns 1.
int fail(const Status& status);

}  // namespace kiln::cli
