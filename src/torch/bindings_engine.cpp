// kiln._C.make_engine and kiln._C.ABI_VERSION: the Python side of torch.classes.kiln.Engine.
#include <pybind11/stl.h>

#include "base64.h"
#include "bindings.h"
#include "engine_class.h"
#include "json_text.h"

namespace kiln::torch_ext {

namespace {

// Builds the pickle list and constructs the engine through torch.classes, so a fresh engine
// and a loaded one go through the same constructor and checks.
py::object make_engine(const std::string& name, const py::bytes& serialized,
                       const std::vector<std::string>& input_names,
                       const std::vector<std::string>& output_names,
                       const std::string& metadata_json, const std::string& device) {
  std::vector<std::string> state(EngineHolder::kNumFields);
  state[EngineHolder::kAbiField] = kAbiVersion;
  state[EngineHolder::kNameField] = name;
  state[EngineHolder::kDeviceInfoField] = device_for_build(name, device).info;
  state[EngineHolder::kSerializedField] = base64_encode(std::string_view(serialized));
  state[EngineHolder::kInputNamesField] = json_string_list(input_names);
  state[EngineHolder::kOutputNamesField] = json_string_list(output_names);
  state[EngineHolder::kMetadataField] = metadata_json;
  py::object engine_class =
      py::module_::import("torch").attr("classes").attr("kiln").attr("Engine");
  return engine_class(py::cast(state));
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
