// kiln._C.make_engine and kiln._C.ABI_VERSION: the Python side of torch.classes.kiln.Engine.
#include <pybind11/stl.h>
#include <torch/csrc/jit/python/pybind_utils.h>

#include "bindings.h"
#include "engine_class.h"

namespace kiln::torch_ext {

namespace {

// Constructs the engine from the build's bytes as they are: the result is the same
// torch.classes.kiln.Engine a loaded pickle gives (its constructor runs the same loading and
// checks), without encoding the bytes to base64 and decoding them again.
py::object make_engine(const std::string& name, const py::bytes& serialized,
                       const std::vector<std::string>& input_names,
                       const std::vector<std::string>& output_names,
                       const std::string& metadata_json, const std::string& device) {
  const std::string_view bytes = serialized;  // no copy: a view of the Python bytes
  auto holder =
      c10::make_intrusive<EngineHolder>(name, device_for_build(name, device).info,
                                        std::as_bytes(std::span(bytes.data(), bytes.size())),
                                        input_names, output_names, metadata_json);
  return torch::jit::toPyObject(c10::IValue(std::move(holder)));
}

}  // namespace

void bind_engine(py::module_& m) {
  m.attr("ABI_VERSION") = kAbiVersion;
#ifdef KILN_HAS_CUDA
  m.attr("HAS_CUDA") = true;
#else
  m.attr("HAS_CUDA") = false;
#endif
  m.def("make_engine", &make_engine, py::arg("name"), py::arg("serialized"),
        py::arg("input_names"), py::arg("output_names"), py::arg("metadata_json") = "{}",
        py::arg("device") = "cpu",
        "A torch.classes.kiln.Engine from a fresh build. Empty name lists mean the engine's own "
        "binding order.");
}

}  // namespace kiln::torch_ext
