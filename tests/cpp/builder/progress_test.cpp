// The progress callback sees the build's stages in order, each counting up to its total.

#include <gtest/gtest.h>

#include <algorithm>

#include "model_util.h"

namespace kiln_test {
namespace {

TEST(BuildProgress, StagesArriveInOrderAndCountUp) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kConvNet));
  std::vector<kiln::BuildProgress> calls;
  kiln::BuilderConfig config;
  config.progress = [&](const kiln::BuildProgress& p) { calls.push_back(p); };
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(model.network, config));
  ASSERT_FALSE(calls.empty());

  // The distinct stages, in the order they first appear.
  std::vector<std::string> stages;
  for (const kiln::BuildProgress& p : calls)
    if (stages.empty() || stages.back() != p.stage) stages.push_back(p.stage);
  const std::vector<std::string> expected = {"constant folding", "batch-norm folding", "tactics",
                                             "memory planning", "serialization"};
  size_t last = 0;
  for (const std::string& want : expected) {
    auto it = std::find(stages.begin(), stages.end(), want);
    ASSERT_NE(it, stages.end()) << "stage '" << want << "' never reported";
    size_t at = static_cast<size_t>(it - stages.begin());
    EXPECT_GE(at, last) << "stage '" << want << "' out of order";
    last = at;
  }

  // Within a run of one stage, done never decreases and never passes total.
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_LE(calls[i].done, calls[i].total) << calls[i].stage;
    EXPECT_GE(calls[i].done, 0) << calls[i].stage;
    if (i > 0 && calls[i].stage == calls[i - 1].stage) {
      EXPECT_GE(calls[i].done, calls[i - 1].done) << calls[i].stage;
    }
  }
  // The tactics stage counts every op of the optimized network, ending at its total.
  int64_t tactic_total = -1, tactic_done = -1;
  for (const kiln::BuildProgress& p : calls)
    if (p.stage == "tactics") tactic_total = p.total, tactic_done = p.done;
  EXPECT_EQ(tactic_done, tactic_total);
  EXPECT_EQ(tactic_total, static_cast<int64_t>(engine->info().steps.size()));
  EXPECT_EQ(calls.back().done, calls.back().total);
}

TEST(BuildProgress, EmptyCallbackIsAllowed) {
  KILN_ASSERT_OK_AND_ASSIGN(ExampleNetwork model, make_model(ModelKind::kMlp));
  kiln::BuilderConfig config;
  config.progress = nullptr;
  EXPECT_TRUE(kiln::Builder::build(model.network, config).ok());
}

}  // namespace
}  // namespace kiln_test
