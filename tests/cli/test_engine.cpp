// Writes the engine files the CLI tests need (test_cli.sh, test_cli_gpu.sh).
//
//   kiln_test_engine build NETWORK DEVICE OUT   builds convnet or transformer (examples/cpp)
//                                               for DEVICE (cpu, cuda:N) and writes OUT
//   kiln_test_engine retarget IN OUT            writes IN's plan relabelled as built for CUDA
//                                               sm_90: a CUDA-target file that a machine
//                                               without a GPU can make, for `kiln inspect`
//                                               and the wrong-target errors
//
// Exits non-zero with the error on stderr.

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "../../examples/cpp/example_networks.h"
#include "format/engine_plan.h"
#include "kiln/kiln.h"

namespace {

kiln::Result<std::vector<std::byte>> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return kiln::not_found("cannot open '", path, "'");
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  if (!chars.empty()) std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

kiln::Status write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return kiln::invalid_argument("cannot write '", path, "'");
  return kiln::Status::Ok();
}

kiln::Status build(const std::string& name, const std::string& device, const std::string& out) {
  kiln::Result<kiln_examples::ExampleNetwork> net =
      name == "convnet"       ? kiln_examples::make_convnet({})
      : name == "transformer" ? kiln_examples::make_transformer({})
                              : kiln::Result<kiln_examples::ExampleNetwork>(
                                    kiln::invalid_argument("unknown network '", name, "'"));
  if (!net.ok()) return net.status();
  kiln::BuilderConfig config;
  config.device = device;
  KILN_ASSIGN_OR_RETURN(kiln::HostMemory bytes, kiln::Builder::build(net->network, config));
  return write_file(out, bytes);
}

kiln::Status retarget(const std::string& in, const std::string& out) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, read_file(in));
  KILN_ASSIGN_OR_RETURN(kiln::format::EnginePlan plan, kiln::format::read_engine(bytes));
  plan.target.kind = kiln::format::DeviceKind::kCuda;
  plan.target.sm_major = 9;
  plan.target.sm_minor = 0;
  plan.target.device_name = "NVIDIA H100 80GB HBM3";
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> cuda, kiln::format::write_engine(plan));
  return write_file(out, cuda);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  kiln::Status st = kiln::invalid_argument(
      "usage: kiln_test_engine build NETWORK DEVICE OUT | retarget IN OUT");
  if (a.size() == 4 && a[0] == "build") st = build(a[1], a[2], a[3]);
  if (a.size() == 3 && a[0] == "retarget") st = retarget(a[1], a[2]);
  if (!st.ok()) {
    std::fprintf(stderr, "kiln_test_engine: %s\n", st.toString().c_str());
    return 1;
  }
  return 0;
}
