#include <cstdio>
#include <filesystem>

#include "cli.h"

namespace kiln::cli {

int cmd_run(const Args& args) {
  auto session = open_session(args, "usage: kiln run ENGINE [--device cpu|cuda:N] [--input NAME=FILE.npy] ...");
  if (!session.ok()) return fail(session.status());
  Session& s = **session;
  Status st = s.enqueue();
  if (st.ok()) st = s.fetch_outputs();
  if (!st.ok()) return fail(st);
  std::string dir = args.get("output-dir", ".");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(invalid_argument("cannot create output directory '", dir, "': ", ec.message()));
  std::printf("device %s\n", s.device_label.c_str());
  size_t o = 0;
  for (const BindingInfo& b : s.engine->bindings()) {
    if (b.is_input) continue;
    const HostTensor& t = s.outputs[o++];
    std::string path = dir + "/" + b.name + ".npy";
    st = write_npy(path, to_npy(t));
    if (!st.ok()) return fail(st);
    std::printf("output %-20s %-9s %-16s -> %s\n", b.name.c_str(), dtype_name(t.dtype), dims_str(t.dims).c_str(),
                path.c_str());
  }
  return 0;
}

}  // namespace kiln::cli
