// Timed tactic selection and the timing cache, with an in-process TacticProvider that offers two
// candidates per linear op and counts its time() calls: a cold build times every candidate and
// picks the faster, a warm build times nothing and picks the same, a corrupt cache is ignored
// with a log line, failed candidates are dropped (and remembered).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "builder/tactics.h"
#include "builder/timing_cache.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::Network;
using kiln::OpKind;
using kiln::Tensor;
using kiln::builder::TacticCandidate;

class FakeProvider final : public kiln::builder::TacticProvider {
 public:
  // ms per candidate name; a missing name fails to run.
  explicit FakeProvider(std::map<std::string, double> ms) : ms_(std::move(ms)) {}

  kiln::Result<std::vector<TacticCandidate>> candidates(const Network&, const kiln::Op& op,
                                                        const kiln::builder::OpShapes& shapes) override {
    if (op.kind != OpKind::kLinear) return std::vector<TacticCandidate>{{"fake.only", {}, ""}};
    EXPECT_EQ(shapes.inputs.size(), op.inputs.size());
    std::vector<TacticCandidate> out{{"fake.slow", {1, 2, 3}, ""},
                                     {"fake.fast", {4, 5}, "tile 4x5", fast_handicap}};
    for (int i = 0; i < extra; ++i)
      out.push_back({"fake.extra",
                     {static_cast<uint8_t>(10 + i)},
                     kiln::str("variant ", i),
                     1.0,
                     i >= extra - always_timed});
    if (other) out.push_back({"fake.other", {99}, "another kernel"});
    return out;
  }
  double fast_handicap = 1.0;  // fake.fast's TacticCandidate::handicap
  int extra = 0;       // variants of kernel fake.extra (labels "variant 0"..) after the two above
  int always_timed = 0;  // how many of the last variants are marked always_timed
  bool other = false;  // then one candidate of kernel fake.other
  bool can_time() const override { return true; }
  kiln::Result<double> time(const Network&, const kiln::Op& op, const kiln::builder::OpShapes&,
                            const TacticCandidate& c) override {
    ++calls;
    EXPECT_EQ(op.kind, OpKind::kLinear);
    auto it = ms_.find(c.name);
    if (it == ms_.end()) it = ms_.find(c.label);  // a variant of fake.extra, by its label
    if (it == ms_.end()) return kiln::Status(kiln::StatusCode::kCudaError, "launch failed");
    return it->second;
  }
  int calls = 0;

 private:
  std::map<std::string, double> ms_;
};

// Three linear layers of different shapes (so three op signatures), or of one shape.
Network three_layer_mlp(bool same_shapes = false) {
  Network net("mlp");
  kiln::SymExpr batch = *net.addSymbol("batch", 1, 4, 8);
  const std::vector<int64_t> dims = same_shapes ? std::vector<int64_t>{8, 8, 8, 8}
                                                : std::vector<int64_t>{8, 16, 12, 8};
  Tensor x = *net.addInput("x", kiln::DType::kFloat32, {batch, dims[0]});
  for (int l = 0; l < 3; ++l) {
    const int64_t out = dims[l + 1], in = dims[l];
    Tensor w = *add_constant(net, kiln::str("w", l), {out, in}, random_tensor({out * in}, l + 1).data);
    x = *net.add(OpKind::kLinear, {x, w}, {}, kiln::str("fc", l));
    x = *net.add(OpKind::kUnary, {x}, {{"fn", std::string("tanh")}}, kiln::str("tanh", l));
  }
  EXPECT_TRUE(net.markOutput(x, "y").ok());
  return net;
}

class TimingCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           kiln::str("kiln_timing_cache_test_", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                     "_", ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    config_.optimization_level = 1;
    config_.timing_cache_path = (dir_ / "timings.txt").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  kiln::builder::TacticSelection select(FakeProvider& provider, const std::string& device = "fake gpu sm_90") {
    log_.clear();
    auto sel = kiln::builder::select_tactics(net_, provider, config_, device, log_);
    EXPECT_TRUE(sel.ok()) << sel.status().toString();
    return sel.ok() ? std::move(sel).value() : kiln::builder::TacticSelection{};
  }
  std::vector<std::string> linear_choices(const kiln::builder::TacticSelection& sel) {
    std::vector<std::string> out;
    for (size_t i = 0; i < net_.ops().size(); ++i)
      if (net_.ops()[i].kind == OpKind::kLinear) out.push_back(sel.tactics[i].name);
    return out;
  }
  bool log_has(const std::string& needle) const {
    for (const std::string& l : log_)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }

  std::filesystem::path dir_;
  kiln::BuilderConfig config_;
  Network net_ = three_layer_mlp();
  std::vector<std::string> log_;
};

const std::vector<std::string> kAllFast(3, "fake.fast");
const std::vector<std::string> kAllSlow(3, "fake.slow");

TEST_F(TimingCacheTest, ColdBuildTimesEveryCandidateWarmBuildTimesNone) {
  FakeProvider cold({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  auto first = select(cold);
  EXPECT_EQ(cold.calls, 6);
  EXPECT_EQ(first.timings, 6);
  EXPECT_EQ(first.cache_hits, 0);
  EXPECT_EQ(linear_choices(first), kAllFast);
  EXPECT_EQ(first.tactics[0].data, (std::vector<uint8_t>{4, 5}));
  ASSERT_TRUE(std::filesystem::exists(config_.timing_cache_path));

  // Times that would now pick the other candidate: a warm build must not even ask.
  FakeProvider warm({{"fake.slow", 0.5}, {"fake.fast", 1.0}});
  auto second = select(warm);
  EXPECT_EQ(warm.calls, 0);
  EXPECT_EQ(second.timings, 0);
  EXPECT_EQ(second.cache_hits, 6);
  EXPECT_EQ(linear_choices(second), kAllFast);
  EXPECT_TRUE(log_has("loaded 6 timings")) << ::testing::PrintToString(log_);
}

// A handicapped candidate must beat the others by its factor; the cache keeps the timed ms, so
// a later build with another handicap decides afresh from the same timings.
TEST_F(TimingCacheTest, HandicapScalesACandidatesTimeInTheComparisonOnly) {
  FakeProvider close({{"fake.slow", 1.04}, {"fake.fast", 1.0}});
  close.fast_handicap = 1.05;
  EXPECT_EQ(linear_choices(select(close)), kAllSlow);
  FakeProvider plain({});  // every timing comes from the cache
  EXPECT_EQ(linear_choices(select(plain)), kAllFast);
  EXPECT_EQ(plain.calls, 0);

  config_.timing_cache_path.clear();
  FakeProvider clear({{"fake.slow", 1.06}, {"fake.fast", 1.0}});
  clear.fast_handicap = 1.05;
  EXPECT_EQ(linear_choices(select(clear)), kAllFast);
}

TEST_F(TimingCacheTest, CacheFileNamesEachCandidateByItsLabel) {
  FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  select(p);
  std::ifstream in(config_.timing_cache_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t labelled = 0;
  for (size_t pos = 0; (pos = text.find("fake.fast", pos)) != std::string::npos; ++pos) {
    const size_t eol = text.find('\n', pos);
    if (text.substr(pos, eol - pos).find("tile 4x5") != std::string::npos) ++labelled;
  }
  EXPECT_EQ(labelled, 3u) << text;  // one line per linear op signature
}

TEST_F(TimingCacheTest, LevelOneTimesEightCandidatesPerKernelLevelTwoAll) {
  // Per linear op: fake.slow, fake.fast, then ten variants of kernel fake.extra; the fastest is
  // the last variant, which only level 2 reaches (level 1 times the first eight of a kernel).
  std::map<std::string, double> ms{{"fake.slow", 2.0}, {"fake.fast", 1.0}};
  for (int i = 0; i < 10; ++i) ms[kiln::str("variant ", i)] = i == 9 ? 0.1 : 3.0;
  FakeProvider one(ms);
  one.extra = 10;
  auto level1 = select(one);
  EXPECT_EQ(one.calls, 3 * (2 + 8));
  EXPECT_EQ(linear_choices(level1), kAllFast);

  config_.optimization_level = 2;
  FakeProvider two(ms);
  two.extra = 10;
  auto level2 = select(two);
  EXPECT_EQ(two.calls, 3 * 2);  // the first ten of each op come from the cache
  EXPECT_EQ(linear_choices(level2), std::vector<std::string>(3, "fake.extra"));
  for (size_t i = 0; i < net_.ops().size(); ++i) {
    if (net_.ops()[i].kind == OpKind::kLinear) {
      EXPECT_EQ(level2.tactics[i].label, "variant 9");
    }
  }
}

TEST_F(TimingCacheTest, LevelOneAlsoTimesCandidatesMarkedAlwaysTimed) {
  // Twelve fake.extra variants, the last two marked always_timed (as cuBLASLt's tile variants
  // follow its heuristic's list): level 1 times the kernel's first eight and those two, and the
  // last one wins; variants 8 and 9 stay untimed (9 would have been faster still).
  std::map<std::string, double> ms{{"fake.slow", 2.0}, {"fake.fast", 1.0}};
  for (int i = 0; i < 12; ++i) ms[kiln::str("variant ", i)] = i == 11 ? 0.1 : i == 9 ? 0.05 : 3.0;
  FakeProvider p(ms);
  p.extra = 12;
  p.always_timed = 2;
  auto sel = select(p);
  EXPECT_EQ(p.calls, 3 * (2 + 8 + 2));
  for (size_t i = 0; i < net_.ops().size(); ++i) {
    if (net_.ops()[i].kind == OpKind::kLinear) {
      EXPECT_EQ(sel.tactics[i].label, "variant 11");
    }
  }
}

TEST_F(TimingCacheTest, LevelOneTimesAKernelListedAfterAnotherKernelsLongList) {
  // Ten fake.extra variants come before fake.other (as cuBLASLt's algorithms come before cuDNN's
  // plans for a linear): fake.other is still timed at level 1, and is the fastest.
  std::map<std::string, double> ms{{"fake.slow", 2.0}, {"fake.fast", 1.0}, {"fake.other", 0.5}};
  for (int i = 0; i < 10; ++i) ms[kiln::str("variant ", i)] = 3.0;
  FakeProvider p(ms);
  p.extra = 10;
  p.other = true;
  auto sel = select(p);
  EXPECT_EQ(p.calls, 3 * (2 + 8 + 1));
  EXPECT_EQ(linear_choices(sel), std::vector<std::string>(3, "fake.other"));
}

TEST_F(TimingCacheTest, OtherDeviceKeyMissesTheCache) {
  FakeProvider a({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  select(a);
  FakeProvider b({{"fake.slow", 0.5}, {"fake.fast", 1.0}});
  auto sel = select(b, "another gpu sm_80");
  EXPECT_EQ(b.calls, 6);
  EXPECT_EQ(linear_choices(sel), kAllSlow);
}

// Keys carry the kernels' revision (a hash of the kernel sources): timings recorded by a Kiln
// whose kernels differ are not reused, whatever the version string says.
TEST_F(TimingCacheTest, TimingsOfOtherKernelSourcesMissTheCache) {
  const std::string id = kiln::builder::kernels_id();
  ASSERT_EQ(id.size(), 16u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  FakeProvider a({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  select(a);
  std::ifstream in(config_.timing_cache_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::string why;
  auto entries = kiln::builder::TimingCache::parse(text, why);
  ASSERT_TRUE(entries) << why;
  ASSERT_EQ(entries->size(), 6u);
  // The same file as another revision of the kernels would have written it.
  std::map<std::string, double> other;
  for (const auto& [key, ms] : *entries) {
    const size_t at = key.find(" kernels " + id + " ");
    ASSERT_NE(at, std::string::npos) << key;
    other[key.substr(0, at) + " kernels 0123456789abcdef " + key.substr(at + 26)] = ms;
  }
  std::ofstream(config_.timing_cache_path) << kiln::builder::TimingCache::serialize(other);
  FakeProvider b({{"fake.slow", 0.5}, {"fake.fast", 1.0}});
  auto sel = select(b);
  EXPECT_EQ(b.calls, 6) << "every candidate timed again";
  EXPECT_EQ(linear_choices(sel), kAllSlow);
}

TEST_F(TimingCacheTest, LevelZeroTakesTheFirstCandidateWithoutTiming) {
  config_.optimization_level = 0;
  FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  auto sel = select(p);
  EXPECT_EQ(p.calls, 0);
  EXPECT_EQ(linear_choices(sel), kAllSlow);
  EXPECT_FALSE(std::filesystem::exists(config_.timing_cache_path));
}

TEST_F(TimingCacheTest, CorruptCacheIsIgnoredWithALogLineAndReplaced) {
  FakeProvider cold({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  select(cold);
  std::string text;
  {
    std::ifstream in(config_.timing_cache_path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::vector<std::string> corruptions = {
      "garbage\n",
      text.substr(0, text.size() / 2),  // truncated
      std::string(text).replace(text.find("\t") + 1, 1, "9"),  // a flipped timing (checksum)
      "",
  };
  for (const std::string& bad : corruptions) {
    SCOPED_TRACE(bad.substr(0, 40));
    {
      std::ofstream out(config_.timing_cache_path, std::ios::trunc);
      out << bad;
    }
    FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
    auto sel = select(p);
    EXPECT_EQ(p.calls, 6);
    EXPECT_EQ(linear_choices(sel), kAllFast);
    EXPECT_TRUE(log_has("warning: timing cache")) << ::testing::PrintToString(log_);
    // The build wrote a good file again: the next build is warm.
    FakeProvider again({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
    select(again);
    EXPECT_EQ(again.calls, 0);
  }
}

TEST_F(TimingCacheTest, FailedCandidateIsDroppedAndRemembered) {
  FakeProvider p({{"fake.slow", 2.0}});  // fake.fast fails to run
  auto sel = select(p);
  EXPECT_EQ(p.calls, 6);
  EXPECT_EQ(linear_choices(sel), kAllSlow);
  EXPECT_TRUE(log_has("3 candidates failed")) << ::testing::PrintToString(log_);
  FakeProvider warm({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  auto again = select(warm);
  EXPECT_EQ(warm.calls, 0);
  EXPECT_EQ(linear_choices(again), kAllSlow);
}

TEST_F(TimingCacheTest, WithoutACachePathEveryBuildTimes) {
  config_.timing_cache_path.clear();
  for (int i = 0; i < 2; ++i) {
    FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
    auto sel = select(p);
    EXPECT_EQ(p.calls, 6);
    EXPECT_EQ(linear_choices(sel), kAllFast);
  }
}

TEST_F(TimingCacheTest, TimingProgressIsReportedPerOp) {
  std::vector<kiln::BuildProgress> calls;
  config_.progress = [&](const kiln::BuildProgress& p) { calls.push_back(p); };
  FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  select(p);
  std::vector<int64_t> done;
  for (const kiln::BuildProgress& c : calls)
    if (c.stage == "tactic timing") {
      EXPECT_EQ(c.total, 3);
      done.push_back(c.done);
    }
  EXPECT_EQ(done, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(TimingCacheTest, OpsWithOneSignatureAreTimedOnce) {
  net_ = three_layer_mlp(true);
  config_.timing_cache_path.clear();  // even without a file, within one build
  FakeProvider p({{"fake.slow", 2.0}, {"fake.fast", 1.0}});
  auto sel = select(p);
  EXPECT_EQ(p.calls, 2);
  EXPECT_EQ(sel.cache_hits, 4);
  EXPECT_EQ(linear_choices(sel), kAllFast);
}

// Tactic timing reads an op's activations back into L2 after each flush and leaves its weights
// cold: the linears' first inputs (the network input, then the tanh outputs), never their
// weights, each cut to what is left of the L2 budget.
TEST(WarmInputs, ActivationsUpToTheL2BudgetNeverConstants) {
  Network net = three_layer_mlp();  // batch opt 4; widths 8, 16, 12, 8; float32
  auto shapes = kiln::builder::opt_op_shapes(net);
  ASSERT_TRUE(shapes.ok()) << shapes.status().toString();
  std::vector<std::vector<std::pair<size_t, size_t>>> per_linear;
  for (size_t i = 0; i < net.ops().size(); ++i)
    if (net.ops()[i].kind == OpKind::kLinear)
      per_linear.push_back(kiln::builder::warm_input_bytes(net, net.ops()[i], (*shapes)[i], 1 << 20));
  using Warm = std::vector<std::pair<size_t, size_t>>;
  ASSERT_EQ(per_linear.size(), 3u);
  EXPECT_EQ(per_linear[0], (Warm{{0, 4 * 8 * 4}}));
  EXPECT_EQ(per_linear[1], (Warm{{0, 4 * 16 * 4}}));
  EXPECT_EQ(per_linear[2], (Warm{{0, 4 * 12 * 4}}));
  size_t first_linear = 0;
  while (net.ops()[first_linear].kind != OpKind::kLinear) ++first_linear;
  const kiln::Op& fc0 = net.ops()[first_linear];
  EXPECT_EQ(kiln::builder::warm_input_bytes(net, fc0, (*shapes)[first_linear], 100),
            (Warm{{0, 100}}));
  EXPECT_TRUE(kiln::builder::warm_input_bytes(net, fc0, (*shapes)[first_linear], 0).empty());
}

// An engine that prefetches its weights into L2 times its GEMMs with them read back too: after
// the activations, in the budget they leave; only for weight-streaming ops (not the tanh).
TEST(WarmInputs, WeightsOfWeightStreamingOpsWhenAsked) {
  Network net = three_layer_mlp();
  auto shapes = kiln::builder::opt_op_shapes(net);
  ASSERT_TRUE(shapes.ok()) << shapes.status().toString();
  using Warm = std::vector<std::pair<size_t, size_t>>;
  std::vector<Warm> per_linear;
  for (size_t i = 0; i < net.ops().size(); ++i) {
    const kiln::Op& op = net.ops()[i];
    const Warm warm = kiln::builder::warm_input_bytes(net, op, (*shapes)[i], 1 << 20, true);
    if (op.kind == OpKind::kLinear) {
      per_linear.push_back(warm);
    } else {
      EXPECT_EQ(warm, kiln::builder::warm_input_bytes(net, op, (*shapes)[i], 1 << 20)) << op.name;
    }
  }
  ASSERT_EQ(per_linear.size(), 3u);
  EXPECT_EQ(per_linear[0], (Warm{{0, 4 * 8 * 4}, {1, 16 * 8 * 4}}));
  EXPECT_EQ(per_linear[1], (Warm{{0, 4 * 16 * 4}, {1, 12 * 16 * 4}}));
  EXPECT_EQ(per_linear[2], (Warm{{0, 4 * 12 * 4}, {1, 8 * 12 * 4}}));
  size_t first_linear = 0;
  while (net.ops()[first_linear].kind != OpKind::kLinear) ++first_linear;
  const kiln::Op& fc0 = net.ops()[first_linear];
  EXPECT_EQ(
      kiln::builder::warm_input_bytes(net, fc0, (*shapes)[first_linear], 4 * 8 * 4 + 100, true),
      (Warm{{0, 4 * 8 * 4}, {1, 100}}));
  EXPECT_EQ(kiln::builder::warm_input_bytes(net, fc0, (*shapes)[first_linear], 100, true),
            (Warm{{0, 100}}));
}

// What the L2 prefetch rule judges, from the network at the opt shapes (batch 4): the linears'
// weights, and their inputs and outputs.
TEST(WeightTraffic, LinearsWeightsAgainstTheirActivations) {
  Network net = three_layer_mlp();
  auto shapes = kiln::builder::opt_op_shapes(net);
  ASSERT_TRUE(shapes.ok()) << shapes.status().toString();
  const kiln::builder::WeightTraffic t = kiln::builder::weight_traffic(net, *shapes);
  EXPECT_EQ(t.steps, 3u);
  EXPECT_EQ(t.weight_bytes, (16u * 8 + 12 * 16 + 8 * 12) * 4);
  EXPECT_EQ(t.activation_bytes, 4u * (8 + 16 + 12) * 4 + 4u * (16 + 12 + 8) * 4);
}

// The provider sees the whole network before it times anything, and what it decided there is
// part of the timing cache's key: timings made one way are not read back for the other.
TEST_F(TimingCacheTest, TheProvidersPlanOfTheNetworkKeysItsTimings) {
  class PlanningProvider final : public kiln::builder::TacticProvider {
   public:
    kiln::Result<std::vector<TacticCandidate>> candidates(const Network&, const kiln::Op& op,
                                                          const kiln::builder::OpShapes&) override {
      if (op.kind != OpKind::kLinear) return std::vector<TacticCandidate>{{"fake.only", {}, ""}};
      return std::vector<TacticCandidate>{{"fake.a", {1}, ""}, {"fake.b", {2}, ""}};
    }
    bool can_time() const override { return true; }
    void plan_network(const Network& network,
                      const std::vector<kiln::builder::OpShapes>& shapes) override {
      EXPECT_EQ(calls, 0) << "planned after timing";
      EXPECT_EQ(shapes.size(), network.ops().size());
      ++plans;
      warm = kiln::builder::weight_traffic(network, shapes).steps == 3 && warm_if_three;
    }
    std::string timing_method() const override { return warm ? "weights warm" : "weights cold"; }
    kiln::Result<double> time(const Network&, const kiln::Op&, const kiln::builder::OpShapes&,
                              const TacticCandidate& c) override {
      ++calls;
      return c.name == "fake.a" ? 1.0 : 2.0;
    }
    bool warm_if_three = false, warm = false;
    int plans = 0, calls = 0;
  } p;
  auto cold = kiln::builder::select_tactics(net_, p, config_, "fake gpu sm_90", log_);
  ASSERT_TRUE(cold.ok()) << cold.status().toString();
  EXPECT_EQ(p.plans, 1);
  EXPECT_EQ(cold->timings, 6);
  EXPECT_TRUE(log_has("tactic timing (weights cold): 3 ops")) << log_.back();
  p.warm_if_three = true;
  p.calls = 0;
  log_.clear();
  auto warm = kiln::builder::select_tactics(net_, p, config_, "fake gpu sm_90", log_);
  ASSERT_TRUE(warm.ok()) << warm.status().toString();
  EXPECT_EQ(warm->timings, 6);  // the other method's timings are not this one's
  EXPECT_EQ(warm->cache_hits, 0);
  EXPECT_TRUE(log_has("tactic timing (weights warm)"));
  p.calls = 0;
  auto again = kiln::builder::select_tactics(net_, p, config_, "fake gpu sm_90", log_);
  ASSERT_TRUE(again.ok()) << again.status().toString();
  EXPECT_EQ(again->timings, 0);
  EXPECT_EQ(again->cache_hits, 6);
  EXPECT_EQ(p.plans, 3);
}

TEST(TimingCacheFile, RoundTripsKeysWithSpecialCharacters) {
  std::map<std::string, double> entries = {{"a\tb\nc\\d", 1.5}, {"plain", kiln::builder::TimingCache::kFailed}, {"", 0.25}};
  std::string why;
  auto back = kiln::builder::TimingCache::parse(kiln::builder::TimingCache::serialize(entries), why);
  ASSERT_TRUE(back.has_value()) << why;
  EXPECT_EQ(*back, entries);
}

TEST(TimingCacheFile, BuilderReportCountsTimings) {
  // The CPU backend offers one kernel per op: nothing to time, at any level.
  Network net = three_layer_mlp();
  kiln::BuilderConfig config;
  config.optimization_level = 3;
  kiln::BuildReport report;
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, build_engine(net, config, &report));
  EXPECT_EQ(report.tactic_timings, 0);
  EXPECT_EQ(report.timing_cache_hits, 0);
}

}  // namespace
}  // namespace kiln_test
