#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "kiln/runtime.h"

namespace kiln::torch_ext {

// Where an engine runs, as torch, the Kiln runtime and the engine pickle each spell it. Every
// device decision of the extension lives in engine_device.cpp. A build without CUDA refuses CUDA
// engines there with a message that says so.
struct EngineDevice {
  c10::Device device{c10::kCPU};
  std::string runtime_device = "cpu";  // DeserializeOptions::device: "cpu" or "cuda:N"
  std::string info = "cpu";            // device_info of the pickle
};

// For a fresh build: `device` is what the engine was built for ("cpu", "cuda:N").
EngineDevice device_for_build(const std::string& engine_name, const std::string& device);
// For a loaded pickle: picks the device to run `device_info` ("cpu", or
// "device_id=0;sm=9.0;name=...") on.
EngineDevice device_from_info(const std::string& engine_name, const std::string& device_info);

// Checks that input `binding` of engine `engine_name` is a tensor on the engine's device.
void check_input_device(const std::string& engine_name, const std::string& binding,
                        const at::Tensor& tensor, const EngineDevice& device);
// The current torch stream of the engine's device (a cudaStream_t), nullptr on the CPU.
void* current_stream(const EngineDevice& device);
// Runs a context whose addresses are all set, on the engine's device: the CPU now, on this
// thread; CUDA queued on `stream` (current_stream()) without synchronizing the host.
void enqueue_on_device(const std::string& engine_name, ExecutionContext& context,
                       const EngineDevice& device, void* stream);

}  // namespace kiln::torch_ext
