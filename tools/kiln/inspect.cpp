#include <cstdio>

#include "cli.h"

namespace kiln::cli {
namespace {

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return "\"" + out + "\"";
}

std::string shape_text(const BindingInfo& b, const EngineInfo& info) {
  std::vector<std::string> names;
  for (const SymbolInfo& s : info.symbols) names.push_back(s.name);
  return shape_str(b.shape, names);
}

std::string human_bytes(int64_t b) {
  char buf[32];
  if (b >= (1 << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  return buf;
}

void print_json(const EngineInfo& info, bool kernels) {
  std::string j = "{\n";
  j += "  \"name\": " + json_escape(info.name) + ",\n";
  j += "  \"kiln_version\": " + json_escape(info.kiln_version) + ",\n";
  j += "  \"format_version\": " + std::to_string(info.format_version) + ",\n";
  j += "  \"device\": " + json_escape(info.device) + ",\n";
  j += "  \"platform\": " + json_escape(info.platform) + ",\n";
  j += "  \"symbols\": [";
  for (size_t i = 0; i < info.symbols.size(); ++i) {
    const SymbolInfo& s = info.symbols[i];
    j += str(i ? ", " : "", "{\"name\": ", json_escape(s.name), ", \"min\": ", s.min, ", \"opt\": ", s.opt,
             ", \"max\": ", s.max, "}");
  }
  j += "],\n  \"bindings\": [";
  for (size_t i = 0; i < info.bindings.size(); ++i) {
    const BindingInfo& b = info.bindings[i];
    j += str(i ? ", " : "", "{\"name\": ", json_escape(b.name), ", \"io\": \"", b.is_input ? "input" : "output",
             "\", \"dtype\": \"", dtype_name(b.dtype), "\", \"shape\": ", json_escape(shape_text(b, info)), "}");
  }
  j += "],\n  \"steps\": [";
  for (size_t i = 0; i < info.steps.size(); ++i) {
    const StepInfo& s = info.steps[i];
    j += str(i ? ",\n    " : "\n    ", "{\"name\": ", json_escape(s.name), ", \"op\": ", json_escape(s.op),
             ", \"tactic\": ", json_escape(s.tactic), ", \"attrs\": ", json_escape(s.attrs), "}");
  }
  j += str("],\n  \"arena_bytes\": ", info.arena_bytes, ",\n  \"constant_bytes\": ", info.constant_bytes,
           ",\n  \"num_constants\": ", info.num_constants, ",\n  \"build_options\": ",
           info.build_options.empty() ? "{}" : info.build_options);
  if (kernels) {
    j += ",\n  \"kernels\": [";
    for (size_t i = 0; i < info.kernels.size(); ++i)
      j += str(i ? ", " : "", "{\"name\": ", json_escape(info.kernels[i].name), ", \"source\": ",
               json_escape(info.kernels[i].source), "}");
    j += "]";
  }
  j += "\n}\n";
  std::fputs(j.c_str(), stdout);
}

void print_text(const EngineInfo& info, bool kernels) {
  std::printf("engine      %s\n", info.name.c_str());
  std::printf("kiln        %s (format version %u)\n", info.kiln_version.c_str(), info.format_version);
  std::printf("target      %s, %s\n", info.device.c_str(), info.platform.c_str());
  std::printf("memory      arena %s, constants %s in %lld tensors\n", human_bytes(info.arena_bytes).c_str(),
              human_bytes(info.constant_bytes).c_str(), static_cast<long long>(info.num_constants));
  if (!info.symbols.empty()) {
    std::printf("\ndynamic dims\n");
    for (const SymbolInfo& s : info.symbols)
      std::printf("  %-12s min %lld  opt %lld  max %lld\n", s.name.c_str(), static_cast<long long>(s.min),
                  static_cast<long long>(s.opt), static_cast<long long>(s.max));
  }
  std::printf("\nbindings\n");
  for (const BindingInfo& b : info.bindings)
    std::printf("  %-6s %-20s %-9s %s\n", b.is_input ? "input" : "output", b.name.c_str(), dtype_name(b.dtype),
                shape_text(b, info).c_str());
  std::printf("\nsteps (%zu)\n", info.steps.size());
  for (size_t i = 0; i < info.steps.size(); ++i) {
    const StepInfo& s = info.steps[i];
    std::printf("  %3zu  %-18s %-28s %s\n", i, s.op.c_str(), s.tactic.c_str(), s.name.c_str());
  }
  if (kernels) {
    std::printf("\ngenerated kernels (%zu)\n", info.kernels.size());
    for (const auto& k : info.kernels) std::printf("// ---- %s\n%s\n", k.name.c_str(), k.source.c_str());
  }
}

}  // namespace

int cmd_inspect(const Args& args) {
  if (args.positional.size() != 1) return fail(invalid_argument("usage: kiln inspect ENGINE [--json] [--kernels]"));
  // Inspecting loads nothing for a device: a CUDA engine can be inspected on any machine.
  auto read = Engine::inspect(args.positional[0]);
  if (!read.ok()) return fail(read.status());
  const EngineInfo& info = *read;
  if (args.has("json")) print_json(info, args.has("kernels"));
  else print_text(info, args.has("kernels"));
  return 0;
}

}  // namespace kiln::cli
