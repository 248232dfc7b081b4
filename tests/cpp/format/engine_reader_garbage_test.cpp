// read_engine on bytes nobody wrote: it must answer with an error, never crash (the ASan build
// turns any out-of-bounds read here into a failure).

#include <gtest/gtest.h>

#include <random>

#include "format/checksum.h"
#include "format/engine_test_plans.h"

namespace kiln::format {
namespace {

using testing::make_rich_plan;
using testing::write_or_die;

TEST(EngineReaderGarbage, RandomBytesAreRefused) {
  std::mt19937_64 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::byte> bytes(rng() % 2048);
    for (auto& b : bytes) b = static_cast<std::byte>(rng());
    // Half get a plausible header (identifier and a size prefix that fits) to reach the
    // FlatBuffers verifier.
    if (iter % 2 == 0 && bytes.size() >= 12) {
      const uint32_t size = static_cast<uint32_t>(bytes.size() - 4);
      std::memcpy(bytes.data(), &size, 4);
      std::memcpy(bytes.data() + 8, "KILN", 4);
    }
    auto read = read_engine(bytes);
    EXPECT_FALSE(read.ok()) << "iteration " << iter;
  }
}

TEST(EngineReaderGarbage, ResealedRandomEditsNeverCrash) {
  // Resealing after each edit gets past the checksum, so the edits reach the semantic checks.
  auto owned = make_rich_plan();
  const auto file = write_or_die(owned.plan);
  std::mt19937_64 rng(99);
  int refused = 0, resealed = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto edited = file;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      edited[rng() % edited.size()] = static_cast<std::byte>(rng());
    }
    if (seal_engine(edited).ok()) ++resealed;
    auto read = read_engine(edited);
    if (!read.ok()) {
      ++refused;
      continue;
    }
    // A file that reads must hold up to use: every index the checks promised is in range.
    for (const PlanStep& s : read->steps) {
      for (int32_t t : s.inputs) ASSERT_LT(static_cast<size_t>(t), read->tensors.size());
    }
    for (const Constant& c : read->constants) {
      ASSERT_GE(c.bytes.data(), edited.data());
      ASSERT_LE(c.bytes.data() + c.bytes.size(), edited.data() + edited.size());
    }
  }
  EXPECT_GT(resealed, 500);  // a fair share gets past the verifier to the semantic checks
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace kiln::format
