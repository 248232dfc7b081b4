#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli.h"

namespace kiln::cli {

Result<std::vector<HostTensor>> run_once(Engine& engine, ExecutionContext& ctx, const Args& args,
                                         std::vector<HostTensor>& inputs);

int cmd_bench(const Args& args) {
  if (args.positional.size() != 1) return fail(invalid_argument("usage: kiln bench ENGINE [--shape NAME=AxB] ..."));
  auto engine = Engine::load(args.positional[0]);
  if (!engine.ok()) return fail(engine.status());
  auto ctx = (*engine)->createExecutionContext();
  if (!ctx.ok()) return fail(ctx.status());
  int warmup = std::stoi(args.get("warmup", "5"));
  int iterations = std::stoi(args.get("iterations", "50"));
  if (iterations < 1) return fail(invalid_argument("--iterations must be at least 1"));
  std::vector<HostTensor> inputs;
  auto outputs = run_once(**engine, **ctx, args, inputs);  // binds everything, runs once
  if (!outputs.ok()) return fail(outputs.status());
  for (int i = 0; i < warmup; ++i) {
    Status st = (*ctx)->enqueue(nullptr);
    if (!st.ok()) return fail(st);
  }
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Status st = (*ctx)->enqueue(nullptr);
    auto t1 = std::chrono::steady_clock::now();
    if (!st.ok()) return fail(st);
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  double p90 = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  int64_t batch = inputs.empty() || inputs[0].dims.empty() ? 1 : inputs[0].dims[0];
  std::printf("engine      %s on %s\n", (*engine)->name().c_str(), (*engine)->info().device.c_str());
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::string dims;
    for (size_t d = 0; d < inputs[i].dims.size(); ++d) dims += (d ? "x" : "") + std::to_string(inputs[i].dims[d]);
    std::printf("input       %s %s\n", (*engine)->inputNames()[i].c_str(), dims.c_str());
  }
  std::printf("iterations  %d (after %d warm-up)\n", iterations, warmup);
  std::printf("median      %.3f ms\np90         %.3f ms\nmin         %.3f ms\n", median, p90, ms.front());
  std::printf("throughput  %.1f inferences/s (batch %lld)\n", 1000.0 * static_cast<double>(batch) / median,
              static_cast<long long>(batch));
  return 0;
}

}  // namespace kiln::cli
