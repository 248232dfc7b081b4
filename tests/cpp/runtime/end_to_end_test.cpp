// End to end on the CPU: the three example models at batch sizes inside the built range match
// the double-precision reference; batch sizes outside it are refused by name.

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::StatusCode;

struct Built {
  ExampleNetwork model;
  std::shared_ptr<kiln::Engine> engine;
};

// One engine per model for the whole suite (building is the slow part).
const Built& built(ModelKind kind) {
  static std::map<ModelKind, Built> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(kind);
  if (it == cache.end()) {
    Built b;
    auto model = make_model(kind);
    EXPECT_TRUE(model.ok()) << model.status().toString();
    if (model.ok()) {
      b.model = std::move(model).value();
      auto engine = build_engine(b.model.network);
      EXPECT_TRUE(engine.ok()) << engine.status().toString();
      if (engine.ok()) b.engine = *engine;
    }
    it = cache.emplace(kind, std::move(b)).first;
  }
  return it->second;
}

struct Case {
  ModelKind kind;
  int64_t batch;
};

class EndToEnd : public ::testing::TestWithParam<Case> {};

TEST_P(EndToEnd, MatchesReference) {
  const Case c = GetParam();
  const Built& b = built(c.kind);
  ASSERT_TRUE(b.engine);
  std::vector<HostTensor> inputs =
      make_inputs(c.kind, c.batch, static_cast<uint64_t>(c.batch) * 31 + 1);
  KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*b.engine, inputs));
  std::vector<DTensor> want = reference(c.kind, b.model, inputs);
  ASSERT_EQ(out.size(), want.size());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(all_close(out[i], want[i])) << "output " << i;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (ModelKind k : {ModelKind::kMlp, ModelKind::kConvNet, ModelKind::kTransformer})
    for (int64_t batch : {1, 3, 8}) cases.push_back({k, batch});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Models, EndToEnd, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(model_name(info.param.kind)) + "_batch" +
                                  std::to_string(info.param.batch);
                         });

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(EndToEndRange, BatchOutsideTheBuiltRangeIsRefusedByName) {
  for (ModelKind kind : {ModelKind::kMlp, ModelKind::kConvNet, ModelKind::kTransformer}) {
    SCOPED_TRACE(model_name(kind));
    const Built& b = built(kind);
    ASSERT_TRUE(b.engine);
    KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext());
    for (int64_t batch : {0, 9, 100}) {
      std::vector<int64_t> dims = make_inputs(kind, 1, 0)[0].dims;
      dims[0] = batch;
      kiln::Status st = ctx->setInputShape("input", dims);
      ASSERT_FALSE(st.ok()) << "batch " << batch;
      EXPECT_EQ(st.code(), StatusCode::kOutOfRange) << st.toString();
      EXPECT_TRUE(contains(st.message(), "'input'")) << st.message();
      EXPECT_TRUE(contains(st.message(), "dim 0")) << st.message();
      EXPECT_TRUE(contains(st.message(), "[1, 8]")) << st.message();
      EXPECT_TRUE(contains(st.message(), "'batch'")) << st.message();
    }
  }
}

TEST(EndToEndRange, RangeEdgesAreAccepted) {
  const Built& b = built(ModelKind::kMlp);
  ASSERT_TRUE(b.engine);
  for (int64_t batch : {1, 8}) {
    std::vector<HostTensor> inputs = make_inputs(ModelKind::kMlp, batch, 77);
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_engine(*b.engine, inputs));
    EXPECT_TRUE(all_close(out[0], reference(ModelKind::kMlp, b.model, inputs)[0]));
  }
}

}  // namespace
}  // namespace kiln_test
