#include "engine_device.h"

#include "torch_status.h"

namespace kiln::torch_ext {

namespace {

[[noreturn]] void refuse_device(const std::string& engine_name, const std::string& device) {
  TORCH_CHECK_NOT_IMPLEMENTED(false, "Kiln engine '", engine_name, "' targets device '", device,
                              "', but this build of Kiln runs CPU engines only");
  throw std::logic_error("not reached");
}

}  // namespace

EngineDevice device_for_build(const std::string& engine_name, const std::string& device) {
  if (device == "cpu") return EngineDevice{};
  if (device.rfind("cuda", 0) == 0) refuse_device(engine_name, device);
  TORCH_CHECK_VALUE(false, "Kiln engine '", engine_name, "': unknown device '", device,
                    "' (expected \"cpu\" or \"cuda:N\")");
  throw std::logic_error("not reached");
}

EngineDevice device_from_info(const std::string& engine_name, const std::string& device_info) {
  if (device_info == "cpu") return EngineDevice{};
  refuse_device(engine_name, device_info);
}

void check_input_device(const std::string& engine_name, const std::string& binding,
                        const at::Tensor& tensor, const EngineDevice& device) {
  TORCH_CHECK_VALUE(tensor.device() == device.device, "execute_engine '", engine_name,
                    "': input '", binding, "' is on ", tensor.device(), ", engine runs on ",
                    device.device);
}

void enqueue_on_device(const std::string& engine_name, ExecutionContext& context,
                       const EngineDevice& device) {
  TORCH_CHECK(device.device.is_cpu(), "execute_engine '", engine_name, "': device ",
              device.device, " is not supported by this build");
  Status status = context.enqueue(nullptr);
  if (!status.ok()) throw_status(status.withContext("execute_engine '" + engine_name + "'"));
}

}  // namespace kiln::torch_ext
