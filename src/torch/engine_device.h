#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "kiln/runtime.h"

namespace kiln::torch_ext {

// Where an engine runs, as torch, the Kiln runtime and the engine pickle each spell it. Every
// device decision of the extension lives in engine_device.cpp; this build runs CPU engines only,
// and refuses the others there with a message that says so.
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
// Runs a context whose addresses are all set, on the engine's device (CPU: now, on this thread).
void enqueue_on_device(const std::string& engine_name, ExecutionContext& context,
                       const EngineDevice& device);

}  // namespace kiln::torch_ext
