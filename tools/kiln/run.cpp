#include <cstdio>
#include <filesystem>

#include "cli.h"

namespace kiln::cli {

// Loads the engine, binds inputs (.npy or random), runs once; returns outputs.
Result<std::vector<HostTensor>> run_once(Engine& engine, ExecutionContext& ctx, const Args& args,
                                         std::vector<HostTensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(auto files, parse_named(args.all("input"), "input"));
  std::map<std::string, NpyArray> npys;
  for (const auto& [name, path] : files) {
    KILN_ASSIGN_OR_RETURN(NpyArray a, read_npy(path));
    npys[name] = std::move(a);
  }
  KILN_ASSIGN_OR_RETURN(auto dims, input_dims(engine, args, npys));
  uint64_t seed = std::stoull(args.get("seed", "0"));
  size_t i = 0;
  for (const BindingInfo& b : engine.bindings()) {
    if (!b.is_input) continue;
    if (auto it = npys.find(b.name); it != npys.end()) {
      KILN_ASSIGN_OR_RETURN(HostTensor t, from_npy(it->second, b));
      inputs.push_back(std::move(t));
    } else {
      inputs.push_back(random_tensor(b, dims[i], seed + i));
    }
    KILN_RETURN_IF_ERROR(ctx.setInputShape(b.name, inputs.back().dims));
    KILN_RETURN_IF_ERROR(ctx.setTensorAddress(b.name, inputs.back().data.data()));
    ++i;
  }
  for (const auto& [name, path] : files) {
    bool known = false;
    for (const BindingInfo& b : engine.bindings()) known = known || (b.is_input && b.name == name);
    if (!known) return not_found("--input names '", name, "', which is not an input of engine '", engine.name(), "'");
  }
  std::vector<HostTensor> outputs;
  for (const BindingInfo& b : engine.bindings()) {
    if (b.is_input) continue;
    KILN_ASSIGN_OR_RETURN(auto shape, ctx.getTensorShape(b.name));
    HostTensor t{b.dtype, shape, {}};
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    t.data.resize(n * dtype_size(b.dtype));
    outputs.push_back(std::move(t));
  }
  size_t o = 0;
  for (const BindingInfo& b : engine.bindings())
    if (!b.is_input) KILN_RETURN_IF_ERROR(ctx.setTensorAddress(b.name, outputs[o++].data.data()));
  KILN_RETURN_IF_ERROR(ctx.enqueue(nullptr));
  return outputs;
}

int cmd_run(const Args& args) {
  if (args.positional.size() != 1) return fail(invalid_argument("usage: kiln run ENGINE [--input NAME=FILE.npy] ..."));
  auto engine = Engine::load(args.positional[0]);
  if (!engine.ok()) return fail(engine.status());
  auto ctx = (*engine)->createExecutionContext();
  if (!ctx.ok()) return fail(ctx.status());
  std::vector<HostTensor> inputs;
  auto outputs = run_once(**engine, **ctx, args, inputs);
  if (!outputs.ok()) return fail(outputs.status());
  std::string dir = args.get("output-dir", ".");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(invalid_argument("cannot create output directory '", dir, "': ", ec.message()));
  size_t o = 0;
  for (const BindingInfo& b : (*engine)->bindings()) {
    if (b.is_input) continue;
    const HostTensor& t = (*outputs)[o++];
    std::string path = dir + "/" + b.name + ".npy";
    Status st = write_npy(path, to_npy(t));
    if (!st.ok()) return fail(st);
    std::string dims;
    for (size_t d = 0; d < t.dims.size(); ++d) dims += (d ? "x" : "") + std::to_string(t.dims[d]);
    std::printf("output %-20s %-9s %-16s -> %s\n", b.name.c_str(), dtype_name(t.dtype), dims.c_str(), path.c_str());
  }
  return 0;
}

}  // namespace kiln::cli
