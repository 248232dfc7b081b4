#include "engine_device.h"

#include "torch_status.h"

#ifdef KILN_HAS_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <charconv>
#endif

namespace kiln::torch_ext {

namespace {

[[noreturn]] void fail_value(const std::string& message) {
  TORCH_CHECK_VALUE(false, message);
  throw std::logic_error("not reached");
}

#ifdef KILN_HAS_CUDA

std::string info_text(const CudaDeviceInfo& d) {
  return str("device_id=", d.index, ";sm=", d.sm_major, ".", d.sm_minor, ";name=", d.name);
}

// "device_id=0;sm=9.0;name=NVIDIA H100 80GB HBM3" (the name may hold anything but ';').
std::optional<CudaDeviceInfo> parse_info(const std::string& text) {
  CudaDeviceInfo d;
  bool has_id = false, has_sm = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(';', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view field(text.data() + pos, end - pos);
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    auto to_int = [](std::string_view s, int& out) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && p == s.data() + s.size();
    };
    if (key == "device_id") {
      has_id = to_int(value, d.index);
    } else if (key == "sm") {
      size_t dot = value.find('.');
      has_sm = dot != std::string_view::npos && to_int(value.substr(0, dot), d.sm_major) &&
               to_int(value.substr(dot + 1), d.sm_minor);
    } else if (key == "name") {
      d.name = std::string(value);
    }
    pos = end + 1;
  }
  if (!has_id || !has_sm) return std::nullopt;
  return d;
}

EngineDevice cuda_engine_device(const CudaDeviceInfo& d) {
  EngineDevice e;
  e.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(d.index));
  e.runtime_device = str("cuda:", d.index);
  e.info = info_text(d);
  return e;
}

#endif  // KILN_HAS_CUDA

}  // namespace

EngineDevice device_for_build(const std::string& engine_name, const std::string& device) {
  if (device == "cpu") return EngineDevice{};
  if (device.rfind("cuda", 0) == 0) {
#ifdef KILN_HAS_CUDA
    c10::Device parsed(device);  // throws on "cuda:x"
    int id = parsed.has_index() ? parsed.index() : 0;
    std::vector<CudaDeviceInfo> devices = cudaDevices();
    TORCH_CHECK_VALUE(id < static_cast<int>(devices.size()), "Kiln engine '", engine_name,
                      "' targets '", device, "', but ", devices.size(), " CUDA device(s) are visible");
    return cuda_engine_device(devices[id]);
#else
    TORCH_CHECK_NOT_IMPLEMENTED(false, "Kiln engine '", engine_name, "' targets device '", device,
                                "', but this build of Kiln has no CUDA (built with KILN_CUDA=OFF)");
#endif
  }
  fail_value(str("Kiln engine '", engine_name, "': unknown device '", device,
                 "' (expected \"cpu\" or \"cuda:N\")"));
}

EngineDevice device_from_info(const std::string& engine_name, const std::string& device_info) {
  if (device_info == "cpu") return EngineDevice{};
#ifdef KILN_HAS_CUDA
  auto recorded = parse_info(device_info);
  if (!recorded)
    fail_value(str("Kiln engine '", engine_name, "': device_info '", device_info,
                   "' is neither \"cpu\" nor \"device_id=N;sm=X.Y;name=...\""));
  std::vector<CudaDeviceInfo> devices = cudaDevices();
  TORCH_CHECK(!devices.empty(), "Kiln engine '", engine_name, "' was built for CUDA (",
              device_info, ") but no CUDA device is visible");
  // The most compatible device: same SM and name, preferring the current device, then the
  // recorded id, then the lowest id; a device of the same SM but another name comes after.
  const int current = c10::cuda::current_device();
  auto rank = [&](const CudaDeviceInfo& d) {
    if (d.sm_major != recorded->sm_major || d.sm_minor != recorded->sm_minor) return -1;
    int score = d.name == recorded->name ? 4 : 0;
    if (d.index == current) score += 2;
    else if (d.index == recorded->index) score += 1;
    return score;
  };
  const CudaDeviceInfo* best = nullptr;
  int best_rank = -1;
  std::string seen;
  for (const CudaDeviceInfo& d : devices) {
    seen += str(seen.empty() ? "" : ", ", "cuda:", d.index, " sm_", d.sm_major, d.sm_minor, " (", d.name, ")");
    if (int r = rank(d); r > best_rank) {
      best_rank = r;
      best = &d;
    }
  }
  TORCH_CHECK(best != nullptr, "Kiln engine '", engine_name, "' was built for sm_",
              recorded->sm_major, recorded->sm_minor, " (", recorded->name,
              "); no visible device has that SM: ", seen, ". Rebuild the engine on this machine.");
  return cuda_engine_device(*best);
#else
  TORCH_CHECK_NOT_IMPLEMENTED(false, "Kiln engine '", engine_name, "' targets '", device_info,
                              "', but this build of Kiln has no CUDA (built with KILN_CUDA=OFF)");
  throw std::logic_error("not reached");
#endif
}

void check_input_device(const std::string& engine_name, const std::string& binding,
                        const at::Tensor& tensor, const EngineDevice& device) {
  TORCH_CHECK_VALUE(tensor.device() == device.device, "execute_engine '", engine_name,
                    "': input '", binding, "' is on ", tensor.device(), ", engine runs on ",
                    device.device);
}

void* current_stream(const EngineDevice& device) {
#ifdef KILN_HAS_CUDA
  if (device.device.is_cuda()) {
    // torch's default stream is the legacy default stream, whose handle is null; the runtime
    // reads a null stream as "no stream given" (the per-thread stream), so name it explicitly.
    cudaStream_t s = c10::cuda::getCurrentCUDAStream(device.device.index()).stream();
    return s ? s : cudaStreamLegacy;
  }
#endif
  return nullptr;
}

void enqueue_on_device(const std::string& engine_name, ExecutionContext& context,
                       const EngineDevice& device, void* stream) {
  Status status;
  if (device.device.is_cpu()) {
    status = context.enqueue(nullptr);
  } else {
#ifdef KILN_HAS_CUDA
    // The current torch stream of the engine's device; the runtime switches devices itself
    // (and back) when the caller's current device is another one.
    status = context.enqueue(static_cast<cudaStream_t>(stream));
#else
    TORCH_CHECK(false, "execute_engine '", engine_name, "': device ", device.device,
                " is not supported by this build");
#endif
  }
  if (!status.ok()) throw_status(status.withContext("execute_engine '" + engine_name + "'"));
}

}  // namespace kiln::torch_ext
