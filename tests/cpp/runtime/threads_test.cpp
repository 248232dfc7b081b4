// One engine shared by several threads, each with its own context: every run is correct.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "model_util.h"

namespace kiln_test {
namespace {

TEST(Threads, ContextsOnOneSharedEngineRunConcurrently) {
  constexpr int kThreads = 4, kRuns = 50;
  for (ModelKind kind : {ModelKind::kConvNet, ModelKind::kTransformer}) {
    SCOPED_TRACE(model_name(kind));
    KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(kind));
    KILN_ASSERT_OK_AND_ASSIGN(std::shared_ptr<kiln::Engine> engine, build_engine(model.network));
    // Per thread: two input sets of different batch sizes and their references, computed first.
    struct Work {
      std::vector<HostTensor> inputs[2];
      std::vector<DTensor> want[2];
    };
    std::vector<Work> work(kThreads);
    for (int t = 0; t < kThreads; ++t)
      for (int k = 0; k < 2; ++k) {
        int64_t batch = 1 + (t * 2 + k) % 8;
        work[t].inputs[k] = make_inputs(kind, batch, static_cast<uint64_t>(100 * t + k));
        work[t].want[k] = reference(kind, model, work[t].inputs[k]);
      }

    std::atomic<int> wrong{0}, failed{0}, done{0};
    std::vector<std::string> first_error(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto ctx = engine->createExecutionContext();
        if (!ctx.ok()) {
          failed += kRuns;
          return;
        }
        for (int r = 0; r < kRuns; ++r) {
          int k = r % 2;
          auto out = run_context(**ctx, work[t].inputs[k]);
          if (!out.ok()) {
            if (failed++ == 0) first_error[t] = out.status().toString();
            continue;
          }
          if (!all_close((*out)[0], work[t].want[k][0])) ++wrong;
          ++done;
        }
      });
    }
    for (std::thread& th : threads) th.join();
    std::string errors;
    for (const std::string& e : first_error) errors += e.empty() ? "" : e + "\n";
    EXPECT_EQ(failed.load(), 0) << errors;
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(done.load(), kThreads * kRuns);
  }
}

}  // namespace
}  // namespace kiln_test
