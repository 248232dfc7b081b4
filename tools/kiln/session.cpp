// The device choice and the loaded, bound engine that `kiln run` and `kiln bench` share.

#include "cli.h"

namespace kiln::cli {

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (d) s += 'x';
    s += std::to_string(dims[d]);
  }
  return s;
}

Result<DeviceChoice> choose_device(const Args& args, const EngineInfo& info) {
  const bool given = args.has("device");
  // EngineInfo::device starts with the target's kind: "cpu (...)" or "cuda sm_90 (...)".
  const std::string device = given ? args.get("device") : info.device.rfind("cuda", 0) == 0 ? "cuda:0" : "cpu";
  DeviceChoice choice;
  if (device == "cpu") return choice;
  int index = 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() <= 9 &&
      device.find_first_not_of("0123456789", 5) == std::string::npos) {
    index = std::stoi(device.substr(5));
  } else if (device != "cuda") {
    return invalid_argument("--device '", device, "': expected cpu, cuda or cuda:N");
  }
#ifndef KILN_HAS_CUDA
  (void)index;
  if (given)
    return unsupported("--device ", device, ": this kiln was built without CUDA (KILN_CUDA=OFF); it runs CPU engines only");
  return unsupported("engine '", info.name, "' was built for ", info.device,
                     ", and this kiln was built without CUDA (KILN_CUDA=OFF): it can inspect the engine, not run it");
#else
  choice.device = str("cuda:", index);
  choice.cuda_index = index;
  return choice;
#endif
}

#ifndef KILN_HAS_CUDA
Result<std::unique_ptr<CudaIo>> make_cuda_io(int index) {
  return unsupported("device 'cuda:", index, "': this kiln was built without CUDA (KILN_CUDA=OFF)");
}
#endif

Result<std::unique_ptr<Session>> open_session(const Args& args, const char* usage) {
  if (args.positional.size() != 1) return invalid_argument(usage);
  const std::string& path = args.positional[0];
  // The file's own target picks the default device; the load below still checks it.
  KILN_ASSIGN_OR_RETURN(EngineInfo info, Engine::inspect(path));
  auto s = std::make_unique<Session>();
  KILN_ASSIGN_OR_RETURN(s->device, choose_device(args, info));
  DeserializeOptions options;
  options.device = s->device.device;
  KILN_ASSIGN_OR_RETURN(s->engine, Engine::load(path, options));
  if (s->device.cuda_index >= 0) {
    KILN_ASSIGN_OR_RETURN(s->cuda, make_cuda_io(s->device.cuda_index));
    s->device_label = s->cuda->label();
  } else {
    s->device_label = "cpu";
  }
  KILN_ASSIGN_OR_RETURN(s->ctx, s->engine->createExecutionContext());
  const Engine& engine = *s->engine;
  ExecutionContext& ctx = *s->ctx;

  KILN_ASSIGN_OR_RETURN(auto files, parse_named(args.all("input"), "input"));
  for (const auto& [name, file] : files) {
    bool known = false;
    for (const BindingInfo& b : engine.bindings()) known = known || (b.is_input && b.name == name);
    if (!known) return not_found("--input names '", name, "', which is not an input of engine '", engine.name(), "'");
  }
  std::map<std::string, NpyArray> npys;
  for (const auto& [name, file] : files) {
    KILN_ASSIGN_OR_RETURN(NpyArray a, read_npy(file));
    npys[name] = std::move(a);
  }
  KILN_ASSIGN_OR_RETURN(auto dims, input_dims(engine, args, npys));
  uint64_t seed = std::stoull(args.get("seed", "0"));
  size_t i = 0;
  for (const BindingInfo& b : engine.bindings()) {
    if (!b.is_input) continue;
    if (auto it = npys.find(b.name); it != npys.end()) {
      KILN_ASSIGN_OR_RETURN(HostTensor t, from_npy(it->second, b));
      s->inputs.push_back(std::move(t));
    } else {
      s->inputs.push_back(random_tensor(b, dims[i], seed + i));
    }
    HostTensor& t = s->inputs.back();
    KILN_RETURN_IF_ERROR(ctx.setInputShape(b.name, t.dims));
    void* address = t.data.data();
    if (s->cuda) {
      KILN_ASSIGN_OR_RETURN(address, s->cuda->allocate("input '" + b.name + "'", t.data.size()));
      KILN_RETURN_IF_ERROR(s->cuda->upload("input '" + b.name + "'", address, t));
    }
    KILN_RETURN_IF_ERROR(ctx.setTensorAddress(b.name, address));
    ++i;
  }
  for (const BindingInfo& b : engine.bindings()) {
    if (b.is_input) continue;
    KILN_ASSIGN_OR_RETURN(auto shape, ctx.getTensorShape(b.name));
    HostTensor t{b.dtype, shape, {}};
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    t.data.resize(n * dtype_size(b.dtype));
    s->outputs.push_back(std::move(t));
    void* address = s->outputs.back().data.data();
    if (s->cuda) {
      KILN_ASSIGN_OR_RETURN(address, s->cuda->allocate("output '" + b.name + "'", n * dtype_size(b.dtype)));
    }
    s->output_ptrs.push_back(address);
    KILN_RETURN_IF_ERROR(ctx.setTensorAddress(b.name, address));
  }
  return s;
}

Status Session::enqueue() {
  Status st = ctx->enqueue(cuda ? cuda->stream() : nullptr);
  if (!st.ok()) return st.withContext(str("running engine '", engine->name(), "' on ", device.device));
  return st;
}

Status Session::fetch_outputs() {
  if (!cuda) return Status::Ok();
  size_t o = 0;
  for (const BindingInfo& b : engine->bindings()) {
    if (b.is_input) continue;
    KILN_RETURN_IF_ERROR(cuda->download("output '" + b.name + "'", output_ptrs[o], outputs[o]));
    ++o;
  }
  return cuda->synchronize(str("running engine '", engine->name(), "' and copying its outputs back"));
}

}  // namespace kiln::cli
