#include "engine_class.h"

#include <torch/library.h>

#include <algorithm>

#include "base64.h"
#include "json_text.h"
#include "torch_status.h"

namespace kiln::torch_ext {

namespace {

std::vector<std::string> parse_names(const std::string& engine_name, const std::string& text,
                                     const char* what) {
  auto names = parse_json_string_list(text);
  TORCH_CHECK_VALUE(names.has_value(), "Kiln engine '", engine_name, "': ", what,
                    " must be a JSON list of strings, got '", text.substr(0, 80), "'");
  return *names;
}

// A SymExpr as JSON the fake kernel can evaluate on SymInts: an int for a constant,
// ["sym", id] for an input symbol, [op, lhs, rhs] for add sub mul floordiv mod max min.
std::string sym_json(const SymExpr& e) {
  switch (e.kind()) {
    case SymExpr::Kind::kConst: return std::to_string(e.constant());
    case SymExpr::Kind::kSymbol: return "[\"sym\", " + std::to_string(e.symbolId()) + "]";
    default: break;
  }
  const char* op = "?";
  switch (e.kind()) {
    case SymExpr::Kind::kAdd: op = "add"; break;
    case SymExpr::Kind::kSub: op = "sub"; break;
    case SymExpr::Kind::kMul: op = "mul"; break;
    case SymExpr::Kind::kFloorDiv: op = "floordiv"; break;
    case SymExpr::Kind::kMod: op = "mod"; break;
    case SymExpr::Kind::kMax: op = "max"; break;
    case SymExpr::Kind::kMin: op = "min"; break;
    default: break;
  }
  return str("[\"", op, "\", ", sym_json(e.lhs()), ", ", sym_json(e.rhs()), "]");
}

std::string binding_json(const BindingInfo& b, std::span<const std::string> symbol_names) {
  std::string shape = "[", shape_text = "[";
  for (size_t d = 0; d < b.shape.size(); ++d) {
    shape += (d ? ", " : "") + sym_json(b.shape[d]);
    shape_text += (d ? ", " : "") + json_quote(b.shape[d].str(symbol_names));
  }
  return str("{\"name\": ", json_quote(b.name), ", \"dtype\": ", json_quote(dtype_name(b.dtype)),
             ", \"shape\": ", shape, "], \"shape_str\": ", shape_text, "]}");
}

}  // namespace

EngineHolder::EngineHolder(std::vector<std::string> state) {
  TORCH_CHECK_VALUE(!state.empty(), "Kiln engine pickle is empty, expected ", size_t{kNumFields},
                    " fields starting with the ABI version");
  TORCH_CHECK(state[kAbiField] == kAbiVersion, "Kiln engine ABI version ", state[kAbiField],
              ", this Kiln reads version ", kAbiVersion);
  TORCH_CHECK_VALUE(state.size() == kNumFields, "Kiln engine pickle has ", state.size(),
                    " fields, ABI version ", kAbiVersion, " has ", size_t{kNumFields});
  name_ = state[kNameField];
  metadata_ = state[kMetadataField].empty() ? "{}" : state[kMetadataField];
  auto bytes = base64_decode(state[kSerializedField]);
  TORCH_CHECK_VALUE(bytes.has_value(), "Kiln engine '", name_,
                    "': the serialized engine is not base64 text");
  load(state[kDeviceInfoField], std::as_bytes(std::span(bytes->data(), bytes->size())),
       parse_names(name_, state[kInputNamesField], "input names"),
       parse_names(name_, state[kOutputNamesField], "output names"));
}

EngineHolder::EngineHolder(std::string name, const std::string& device_info,
                           std::span<const std::byte> serialized,
                           const std::vector<std::string>& input_names,
                           const std::vector<std::string>& output_names, std::string metadata)
    : name_(std::move(name)), metadata_(metadata.empty() ? "{}" : std::move(metadata)) {
  load(device_info, serialized, input_names, output_names);
}

void EngineHolder::load(const std::string& device_info, std::span<const std::byte> serialized,
                        const std::vector<std::string>& input_names,
                        const std::vector<std::string>& output_names) {
  device_ = device_from_info(name_, device_info);
  DeserializeOptions options;
  options.device = device_.runtime_device;
  auto engine = Engine::deserialize(serialized, options);
  if (!engine.ok()) throw_status(engine.status().withContext("Kiln engine '" + name_ + "'"));
  engine_ = std::move(engine).value();

  inputs_ = orderBindings(input_names, true, "input");
  outputs_ = orderBindings(output_names, false, "output");
  for (const BindingInfo* b : inputs_) input_names_.push_back(b->name);
  for (const BindingInfo* b : outputs_) output_names_.push_back(b->name);
  info_json_ = makeInfoJson();
}

std::vector<const BindingInfo*> EngineHolder::orderBindings(const std::vector<std::string>& names,
                                                            bool inputs, const char* what) {
  std::vector<const BindingInfo*> engine_order;
  for (const BindingInfo& b : engine_->bindings())
    if (b.is_input == inputs) engine_order.push_back(&b);
  if (names.empty()) return engine_order;

  auto list = [&] {
    std::string s;
    for (const BindingInfo* b : engine_order) s += (s.empty() ? "" : ", ") + b->name;
    return s;
  };
  TORCH_CHECK_VALUE(names.size() == engine_order.size(), "Kiln engine '", name_, "': ",
                    names.size(), " ", what, " names given, the engine has ",
                    engine_order.size(), " (", list(), ")");
  std::vector<const BindingInfo*> ordered;
  for (const std::string& n : names) {
    auto it = std::find_if(engine_order.begin(), engine_order.end(),
                           [&](const BindingInfo* b) { return b->name == n; });
    TORCH_CHECK_VALUE(it != engine_order.end(), "Kiln engine '", name_, "' has no ", what, " '",
                      n, "' (", what, "s: ", list(), ")");
    TORCH_CHECK_VALUE(std::find(ordered.begin(), ordered.end(), *it) == ordered.end(),
                      "Kiln engine '", name_, "': ", what, " '", n, "' is named twice");
    ordered.push_back(*it);
  }
  return ordered;
}

std::string EngineHolder::makeInfoJson() const {
  std::vector<std::string> symbol_names;
  std::string symbols = "[";
  for (size_t i = 0; i < engine_->symbols().size(); ++i) {
    const SymbolInfo& s = engine_->symbols()[i];
    symbol_names.push_back(s.name);
    symbols += str(i ? ", " : "", "{\"name\": ", json_quote(s.name), ", \"min\": ", s.min,
                   ", \"opt\": ", s.opt, ", \"max\": ", s.max, "}");
  }
  auto bindings = [&](const std::vector<const BindingInfo*>& list) {
    std::string s = "[";
    for (size_t i = 0; i < list.size(); ++i)
      s += (i ? ", " : "") + binding_json(*list[i], symbol_names);
    return s + "]";
  };
  return str("{\"abi_version\": ", json_quote(kAbiVersion), ", \"name\": ", json_quote(name_),
             ", \"device\": ", json_quote(device()), ", \"device_info\": ",
             json_quote(device_.info), ", \"symbols\": ", symbols, "], \"inputs\": ",
             bindings(inputs_), ", \"outputs\": ", bindings(outputs_),
             ", \"metadata\": ", json_quote(metadata_), "}");
}

std::string EngineHolder::serializedBase64() const {
  std::span<const std::byte> bytes = engine_->serialized();
  return base64_encode({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

std::vector<std::string> EngineHolder::pickle() const {
  std::vector<std::string> state(kNumFields);
  state[kAbiField] = kAbiVersion;
  state[kNameField] = name_;
  state[kDeviceInfoField] = device_.info;
  state[kSerializedField] = serializedBase64();
  state[kInputNamesField] = json_string_list(input_names_);
  state[kOutputNamesField] = json_string_list(output_names_);
  state[kMetadataField] = metadata_;
  return state;
}

namespace {

using Holder = c10::intrusive_ptr<EngineHolder>;
using Item = std::tuple<std::string, std::string>;

}  // namespace

}  // namespace kiln::torch_ext

TORCH_LIBRARY(kiln, m) {
  using kiln::torch_ext::EngineHolder;
  using kiln::torch_ext::Holder;
  using kiln::torch_ext::Item;
  m.class_<EngineHolder>("Engine")
      .def(torch::init<std::vector<std::string>>())
      .def("name", [](const Holder& self) { return self->name(); })
      .def("input_names", [](const Holder& self) { return self->inputNames(); })
      .def("output_names", [](const Holder& self) { return self->outputNames(); })
      .def("serialized", [](const Holder& self) { return self->serializedBase64(); })
      .def("device", [](const Holder& self) { return self->device(); })
      .def("device_info", [](const Holder& self) { return self->deviceInfo(); })
      .def("metadata", [](const Holder& self) { return self->metadata(); })
      .def("info_json", [](const Holder& self) { return self->infoJson(); })
      .def("set_pre_allocated_outputs",
           [](const Holder& self, bool enabled, c10::List<bool> owned) {
             self->setPreAllocatedOutputs(enabled, std::vector<bool>(owned.begin(), owned.end()));
           })
      .def("pre_allocated_outputs", [](const Holder& self) { return self->preAllocatedOutputs(); })
      .def("runtime_stats", [](const Holder& self) { return self->runtimeStats(); })
      .def("cuda_graph_failure", [](const Holder& self) { return self->cudaGraphFailure(); })
      .def("l2_prefetch", [](const Holder& self) { return self->l2Prefetch(); })
      // torch.export / dynamo: the fake class (python/kiln/_ops.py) is rebuilt from this, and
      // dynamo guards on it, so it stays small: no engine bytes.
      .def("__obj_flatten__",
           [](const Holder& self) {
             return std::make_tuple(Item{"name", self->name()}, Item{"info_json", self->infoJson()});
           })
      .def_pickle([](const Holder& self) { return self->pickle(); },
                  [](std::vector<std::string> state) {
                    return c10::make_intrusive<EngineHolder>(std::move(state));
                  });
  m.def("execute_engine(Tensor[] inputs, __torch__.torch.classes.kiln.Engine engine) -> Tensor[]");
}
