// NVRTC compilation of generated pointwise kernels (build time only; the runtime never calls it).

#include <nvrtc.h>

#include <memory>

#include "backends/cuda/pointwise_codegen.h"

namespace kiln::cuda {

Result<std::vector<uint8_t>> compile_to_cubin(const std::string& source, const std::string& op_name,
                                              int sm_major, int sm_minor) {
  auto fail = [&](const std::string& what, const std::string& log) {
    return Status(StatusCode::kInternal,
                  str("pointwise '", op_name, "': NVRTC ", what, log.empty() ? "" : "; NVRTC log:\n", log));
  };
  nvrtcProgram prog = nullptr;
  nvrtcResult r = nvrtcCreateProgram(&prog, source.c_str(), (op_name + ".cu").c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) return fail(str("nvrtcCreateProgram failed: ", nvrtcGetErrorString(r)), "");
  std::unique_ptr<nvrtcProgram, void (*)(nvrtcProgram*)> guard(&prog, [](nvrtcProgram* p) {
    nvrtcDestroyProgram(p);
  });
  // sm_XY (not compute_XY) makes NVRTC emit a CUBIN for exactly the build target.
  const std::string arch = str("--gpu-architecture=sm_", sm_major, sm_minor);
  const char* opts[] = {arch.c_str(), "--std=c++17", "--fmad=false"};
  r = nvrtcCompileProgram(prog, static_cast<int>(std::size(opts)), opts);
  std::string log;
  size_t log_size = 0;
  if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    if (nvrtcGetProgramLog(prog, log.data()) != NVRTC_SUCCESS) log.clear();
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }
  if (r != NVRTC_SUCCESS)
    return fail(str("compilation for ", arch.substr(20), " failed (", nvrtcGetErrorString(r), ")"), log);
  size_t size = 0;
  r = nvrtcGetCUBINSize(prog, &size);
  if (r != NVRTC_SUCCESS || size == 0)
    return fail(str("nvrtcGetCUBINSize failed: ", nvrtcGetErrorString(r)), log);
  std::vector<uint8_t> cubin(size);
  r = nvrtcGetCUBIN(prog, reinterpret_cast<char*>(cubin.data()));
  if (r != NVRTC_SUCCESS) return fail(str("nvrtcGetCUBIN failed: ", nvrtcGetErrorString(r)), log);
  return cubin;
}

}  // namespace kiln::cuda
