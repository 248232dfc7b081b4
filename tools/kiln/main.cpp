#include <cstdio>
#include <cstring>

#include "cli.h"
#include "kiln/version.h"

namespace {

const char* kUsage = R"(kiln - inspect, run and benchmark Kiln engine files

usage:
  kiln inspect ENGINE [--json] [--kernels]
      Target, bindings with symbolic shapes and ranges, steps with their chosen tactics,
      arena and constant sizes. --json for machines; --kernels adds generated kernel source.
      Loads nothing on a device: engines built for CUDA can be inspected on any machine.
  kiln run ENGINE [--device cpu|cuda:N] [--input NAME=FILE.npy]... [--shape NAME=AxBxC]...
           [--output-dir DIR] [--seed N]
      Runs once. Inputs come from .npy files, or are random (uniform [-1, 1); ints in [0, 8))
      with the given --shape or the profile's opt shape. Writes each output to DIR/NAME.npy.
  kiln bench ENGINE [--device cpu|cuda:N] [--shape NAME=AxBxC]... [--input NAME=FILE.npy]...
           [--iterations N] [--warmup N]
      Times repeated runs after a warm-up: median, p90, min, throughput. On CUDA the times are
      device times (cudaEvents around each enqueue, queued back to back on the stream), with
      the host time of each enqueue call beside them.
  kiln --version

  --device   where run and bench execute; default: the device the engine was built for
             (cuda:0 for a CUDA engine). On CUDA, inputs are copied to device buffers, the
             engine runs on a non-blocking stream of the CLI's, and outputs are copied back.
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln::cli;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("kiln %s\n", kiln::version());
    return 0;
  }
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2), value;
      if (auto eq = key.find('='); eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (key != "json" && key != "kernels" && i + 1 < argc) {
        value = argv[++i];
      }
      args.options.emplace(key, value);
    } else {
      args.positional.push_back(a);
    }
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "inspect") return cmd_inspect(args);
    if (cmd == "run") return cmd_run(args);
    if (cmd == "bench") return cmd_bench(args);
  } catch (const std::exception& e) {  // std::stoi on a bad number
    std::fprintf(stderr, "kiln %s: %s\n", cmd.c_str(), e.what());
    return 2;
  }
  std::fprintf(stderr, "kiln: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
