// kiln._C.build and kiln._C.engine_info.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "py_status.h"

namespace kiln::torch_ext {

namespace {

py::bytes build(const Network& network, const std::string& device,
                const std::map<std::string, std::tuple<int64_t, int64_t, int64_t>>& profile,
                int optimization_level, const std::string& timing_cache_path,
                const py::object& progress) {
  BuilderConfig config;
  config.device = device;
  config.optimization_level = optimization_level;
  config.timing_cache_path = timing_cache_path;
  if (!profile.empty()) {
    OptimizationProfile p;
    for (const auto& [symbol, range] : profile)
      p.ranges.push_back({symbol, std::get<0>(range), std::get<1>(range), std::get<2>(range)});
    config.profiles.push_back(std::move(p));
  }
  // The build runs without the GIL; the callback takes it back. A Python exception in the
  // callback cannot unwind through the builder, so it is kept and raised after the build.
  std::optional<py::error_already_set> callback_error;
  if (!progress.is_none()) {
    config.progress = [&](const BuildProgress& p) {
      py::gil_scoped_acquire gil;
      if (callback_error) return;
      try {
        progress(p.stage, p.done, p.total);
      } catch (py::error_already_set& e) {
        callback_error = std::move(e);
      }
    };
  }
  Result<HostMemory> engine = [&] {
    py::gil_scoped_release no_gil;
    return Builder::build(network, config);
  }();
  if (callback_error) throw std::move(*callback_error);
  HostMemory bytes = unwrap(std::move(engine));
  return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

py::dict engine_info(const py::bytes& serialized, const std::string& device) {
  std::string_view data = serialized;
  DeserializeOptions options;
  options.device = device;
  auto engine = unwrap(Engine::deserialize(std::as_bytes(std::span(data.data(), data.size())), options));
  EngineInfo info = engine->info();
  std::vector<std::string> names;
  py::list symbols;
  for (const SymbolInfo& s : info.symbols) {
    names.push_back(s.name);
    symbols.append(py::dict(py::arg("name") = s.name, py::arg("min") = s.min,
                            py::arg("opt") = s.opt, py::arg("max") = s.max));
  }
  py::list bindings;
  for (const BindingInfo& b : info.bindings) {
    std::vector<std::string> shape;
    for (const SymExpr& e : b.shape) shape.push_back(e.str(names));
    bindings.append(py::dict(py::arg("name") = b.name, py::arg("is_input") = b.is_input,
                             py::arg("dtype") = b.dtype, py::arg("shape") = shape));
  }
  py::list steps;
  for (const StepInfo& s : info.steps)
    steps.append(py::dict(py::arg("name") = s.name, py::arg("op") = s.op,
                          py::arg("tactic") = s.tactic, py::arg("attrs") = s.attrs,
                          py::arg("inputs") = s.inputs, py::arg("outputs") = s.outputs));
  py::list kernels;
  for (const EngineInfo::Kernel& k : info.kernels)
    kernels.append(py::dict(py::arg("name") = k.name, py::arg("source") = k.source));
  py::dict out;
  out["name"] = info.name;
  out["kiln_version"] = info.kiln_version;
  out["format_version"] = info.format_version;
  out["device"] = info.device;
  out["platform"] = info.platform;
  out["symbols"] = symbols;
  out["bindings"] = bindings;
  out["steps"] = steps;
  out["arena_bytes"] = info.arena_bytes;
  out["constant_bytes"] = info.constant_bytes;
  out["num_constants"] = info.num_constants;
  out["kernels"] = kernels;
  out["build_options"] = info.build_options;
  return out;
}

}  // namespace

void bind_builder(py::module_& m) {
  m.def("build", &build, py::arg("network"), py::kw_only(), py::arg("device") = "cpu",
        py::arg("profile") = std::map<std::string, std::tuple<int64_t, int64_t, int64_t>>{},
        py::arg("optimization_level") = 1, py::arg("timing_cache_path") = "",
        py::arg("progress") = py::none(),
        "Builds `network` into a serialized engine (bytes). profile: {symbol: (min, opt, max)}; "
        "progress(stage, done, total) is called as the build goes.");
  m.def("engine_info", &engine_info, py::arg("serialized"), py::kw_only(),
        py::arg("device") = "cpu", "What a serialized engine holds, as a dict.");
}

}  // namespace kiln::torch_ext
