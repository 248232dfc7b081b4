#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli.h"

namespace kiln::cli {
namespace {

struct Stats {
  double median = 0, p90 = 0, min = 0;
};

Stats stats(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)], ms.front()};
}

}  // namespace

int cmd_bench(const Args& args) {
  int warmup = std::stoi(args.get("warmup", "5"));
  int iterations = std::stoi(args.get("iterations", "50"));
  if (iterations < 1) return fail(invalid_argument("--iterations must be at least 1"));
  if (warmup < 0) return fail(invalid_argument("--warmup must not be negative"));
  auto session = open_session(args, "usage: kiln bench ENGINE [--device cpu|cuda:N] [--shape NAME=AxB] ...");
  if (!session.ok()) return fail(session.status());
  Session& s = **session;
  // One checked run first (its errors name the failing step), then the warm-up: on CUDA the
  // first enqueues capture graphs and load kernels.
  Status st = s.enqueue();
  if (st.ok()) st = s.fetch_outputs();
  for (int i = 0; st.ok() && i < warmup; ++i) st = s.enqueue();
  if (st.ok() && s.cuda) st = s.cuda->synchronize("the warm-up runs");
  if (!st.ok()) return fail(st);

  std::vector<double> device_ms, host_ms;
  if (s.cuda) {
    st = s.cuda->time(iterations, [&] { return s.enqueue(); }, device_ms, host_ms);
    if (!st.ok()) return fail(st);
  } else {
    // The CPU runs the plan inside enqueue: its host time is the run's time.
    for (int i = 0; i < iterations; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      st = s.enqueue();
      auto t1 = std::chrono::steady_clock::now();
      if (!st.ok()) return fail(st);
      host_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    device_ms = host_ms;
  }
  Stats run = stats(device_ms);
  int64_t batch = s.inputs.empty() || s.inputs[0].dims.empty() ? 1 : s.inputs[0].dims[0];
  EngineInfo info = s.engine->info();
  std::printf("engine      %s, built for %s\n", info.name.c_str(), info.device.c_str());
  std::printf("device      %s\n", s.device_label.c_str());
  std::vector<std::string> names = s.engine->inputNames();
  for (size_t i = 0; i < s.inputs.size(); ++i)
    std::printf("input       %s %s\n", names[i].c_str(), dims_str(s.inputs[i].dims).c_str());
  std::printf("iterations  %d (after %d warm-up)\n", iterations, warmup);
  if (s.cuda) std::printf("timing      device time per call: cudaEvents around each enqueue on the stream\n");
  std::printf("median      %.3f ms\np90         %.3f ms\nmin         %.3f ms\n", run.median, run.p90, run.min);
  if (s.cuda) {
    Stats host = stats(host_ms);
    std::printf("enqueue     host time per call: median %.3f ms, p90 %.3f ms, min %.3f ms\n", host.median, host.p90,
                host.min);
  }
  std::printf("throughput  %.1f inferences/s (batch %lld)\n", 1000.0 * static_cast<double>(batch) / run.median,
              static_cast<long long>(batch));
  return 0;
}

}  // namespace kiln::cli
