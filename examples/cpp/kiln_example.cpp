// Builds two networks with Kiln's C++ API, writes their engines, loads them back and runs each
// once at its optimization-profile batch size.
//
//   kiln_example [OUTPUT_DIR]   writes OUTPUT_DIR/convnet.engine and OUTPUT_DIR/transformer.engine
//
// Exits non-zero on any error.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "example_networks.h"
#include "kiln/kiln.h"

namespace {

// One line on stderr, redrawn in place: "convnet  tactics            [######......]  12/30".
void draw_progress(const std::string& name, const kiln::BuildProgress& p) {
  constexpr int kWidth = 24;
  int filled = p.total > 0 ? static_cast<int>(kWidth * p.done / p.total) : 0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r%-12s %-22s [%s] %3lld/%-3lld", name.c_str(), p.stage.c_str(),
               bar.c_str(), static_cast<long long>(p.done), static_cast<long long>(p.total));
  std::fflush(stderr);
}

kiln::Status write_file(const std::string& path, const kiln::HostMemory& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return kiln::invalid_argument("cannot write '", path, "'");
  return kiln::Status::Ok();
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Builds `network`, writes DIR/NAME.engine, loads it and runs it at the opt batch size.
kiln::Status build_and_run(const std::string& name, const kiln::Network& network,
                           const std::string& dir) {
  kiln::BuilderConfig config;
  config.progress = [&](const kiln::BuildProgress& p) { draw_progress(name, p); };
  auto bytes = kiln::Builder::build(network, config);
  std::fputc('\n', stderr);
  if (!bytes.ok()) return bytes.status().withContext("building '" + name + "'");
  const std::string path = dir + "/" + name + ".engine";
  KILN_RETURN_IF_ERROR(write_file(path, *bytes));

  KILN_ASSIGN_OR_RETURN(std::shared_ptr<kiln::Engine> engine, kiln::Engine::load(path));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<kiln::ExecutionContext> ctx,
                        engine->createExecutionContext());
  std::vector<int64_t> opt;
  for (const kiln::SymbolInfo& s : engine->symbols()) opt.push_back(s.opt);

  // Inputs at the opt shapes, filled with a fixed pattern so the checksum is reproducible.
  std::vector<std::vector<float>> inputs;
  for (const kiln::BindingInfo& b : engine->bindings()) {
    if (!b.is_input) continue;
    std::vector<int64_t> dims;
    for (const kiln::SymExpr& d : b.shape) {
      KILN_ASSIGN_OR_RETURN(int64_t v, d.evaluate(opt));
      dims.push_back(v);
    }
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<float>& data = inputs.emplace_back(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      data[static_cast<size_t>(i)] = static_cast<float>(std::sin(0.37 * i));
    KILN_RETURN_IF_ERROR(ctx->setInputShape(b.name, dims));
    KILN_RETURN_IF_ERROR(ctx->setTensorAddress(b.name, data.data()));
  }
  std::vector<std::vector<float>> outputs;
  std::vector<std::vector<int64_t>> output_dims;
  for (const std::string& out : engine->outputNames()) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dims, ctx->getTensorShape(out));
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    outputs.emplace_back(static_cast<size_t>(n));
    output_dims.push_back(dims);
    KILN_RETURN_IF_ERROR(ctx->setTensorAddress(out, outputs.back().data()));
  }
  KILN_RETURN_IF_ERROR(ctx->enqueue(nullptr));

  kiln::EngineInfo info = engine->info();
  std::printf("%s: %s (%zu bytes, %zu steps, arena %lld bytes)\n", name.c_str(), path.c_str(),
              bytes->size(), info.steps.size(), static_cast<long long>(info.arena_bytes));
  for (size_t o = 0; o < outputs.size(); ++o) {
    double sum = 0, abs_sum = 0;
    for (float v : outputs[o]) {
      sum += v;
      abs_sum += std::abs(v);
    }
    if (!std::isfinite(sum))
      return kiln::internal_error("'", name, "' output has non-finite values");
    std::printf("  output %-8s %-16s checksum sum %.6f abs %.6f\n",
                engine->outputNames()[o].c_str(), dims_text(output_dims[o]).c_str(), sum, abs_sum);
  }
  return kiln::Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  struct Entry {
    const char* name;
    kiln::Result<kiln_examples::ExampleNetwork> (*make)(const kiln_examples::ExampleOptions&);
  };
  for (const Entry& e : {Entry{"convnet", kiln_examples::make_convnet},
                         Entry{"transformer", kiln_examples::make_transformer}}) {
    auto net = e.make({});
    kiln::Status st = net.ok() ? build_and_run(e.name, net->network, dir) : net.status();
    if (!st.ok()) {
      std::fprintf(stderr, "kiln_example: %s\n", st.toString().c_str());
      return 1;
    }
  }
  return 0;
}
