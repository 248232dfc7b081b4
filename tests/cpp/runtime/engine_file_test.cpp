// Engine files: a round trip through serialize -> deserialize keeps the engine; truncated and
// corrupted files are refused with the code that says which.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::StatusCode;

class EngineFile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = make_model(ModelKind::kTransformer);
    if (!model.ok()) return;
    model_ = new ExampleNetwork(std::move(model).value());
    auto bytes = kiln::Builder::build(model_->network, {});
    if (bytes.ok()) bytes_ = new kiln::HostMemory(std::move(bytes).value());
  }
  static void TearDownTestSuite() {
    delete model_;
    delete bytes_;
    model_ = nullptr;
    bytes_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(model_ && bytes_) << "the transformer failed to build"; }

  static kiln::Status load(std::span<const std::byte> bytes) {
    return kiln::Engine::deserialize(bytes).status();
  }

  static ExampleNetwork* model_;
  static kiln::HostMemory* bytes_;
};

ExampleNetwork* EngineFile::model_ = nullptr;
kiln::HostMemory* EngineFile::bytes_ = nullptr;

TEST_F(EngineFile, RoundTripKeepsBindingsAndResults) {
  KILN_ASSERT_OK_AND_ASSIGN(auto first, kiln::Engine::deserialize(*bytes_));
  std::span<const std::byte> again = first->serialized();
  ASSERT_EQ(again.size(), bytes_->size());
  EXPECT_TRUE(std::equal(again.begin(), again.end(), bytes_->begin()));
  KILN_ASSERT_OK_AND_ASSIGN(auto second, kiln::Engine::deserialize(again));

  EXPECT_EQ(second->name(), "transformer");
  EXPECT_EQ(second->inputNames(), (std::vector<std::string>{"input", "mask"}));
  EXPECT_EQ(second->outputNames(), (std::vector<std::string>{"output"}));
  ASSERT_EQ(second->symbols().size(), 1u);
  EXPECT_EQ(second->symbols()[0].name, "batch");
  EXPECT_EQ(second->symbols()[0].opt, 4);
  EXPECT_EQ(second->deviceMemorySize(), first->deviceMemorySize());
  EXPECT_EQ(second->info().steps.size(), first->info().steps.size());

  std::vector<HostTensor> inputs = make_inputs(ModelKind::kTransformer, 3, 4);
  KILN_ASSERT_OK_AND_ASSIGN(auto a, run_engine(*first, inputs));
  KILN_ASSERT_OK_AND_ASSIGN(auto b, run_engine(*second, inputs));
  EXPECT_EQ(a[0].data, b[0].data);
  EXPECT_TRUE(all_close(b[0], reference(ModelKind::kTransformer, *model_, inputs)[0]));
}

TEST_F(EngineFile, LoadFromAFileMatchesDeserialize) {
  std::string path = ::testing::TempDir() + "/kiln_engine_file_test.engine";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes_->data()),
              static_cast<std::streamsize>(bytes_->size()));
  }
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, kiln::Engine::load(path));
  EXPECT_EQ(engine->serialized().size(), bytes_->size());
  std::remove(path.c_str());
}

TEST_F(EngineFile, MissingFileIsNotFound) {
  auto engine = kiln::Engine::load(::testing::TempDir() + "/no_such_kiln.engine");
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kNotFound);
  EXPECT_NE(engine.status().message().find("no_such_kiln.engine"), std::string::npos);
}

TEST_F(EngineFile, TruncatedFileIsRefusedAsTruncated) {
  const size_t n = bytes_->size();
  for (size_t keep : {size_t{0}, size_t{4}, size_t{16}, n / 3, n / 2, n - 256, n - 1}) {
    kiln::Status st = load(std::span<const std::byte>(bytes_->data(), keep));
    ASSERT_FALSE(st.ok()) << "accepted " << keep << " of " << n << " bytes";
    EXPECT_EQ(st.code(), StatusCode::kTruncated) << keep << " of " << n << ": " << st.toString();
  }
}

TEST_F(EngineFile, CorruptedBytesAreRefused) {
  const size_t n = bytes_->size();
  for (size_t at : {size_t{4}, size_t{5}, n / 4, n / 2, 3 * n / 4, n - 1}) {
    kiln::HostMemory bad = *bytes_;
    bad[at] ^= std::byte{0x5a};
    kiln::Status st = load(bad);
    ASSERT_FALSE(st.ok()) << "accepted a file with byte " << at << " of " << n << " flipped";
    EXPECT_TRUE(st.code() == StatusCode::kCorruptFile || st.code() == StatusCode::kTruncated ||
                st.code() == StatusCode::kVersionMismatch)
        << "byte " << at << ": " << st.toString();
  }
}

TEST_F(EngineFile, CorruptedPayloadIsRefusedAsCorrupt) {
  // The middle of the file is payload (weights, plan): only the checksum can catch a flip there.
  kiln::HostMemory bad = *bytes_;
  bad[bad.size() / 2] ^= std::byte{0x01};
  kiln::Status st = load(bad);
  EXPECT_EQ(st.code(), StatusCode::kCorruptFile) << st.toString();
}

TEST_F(EngineFile, GarbageIsRefusedWithoutCrashing) {
  kiln::HostMemory garbage(bytes_->size());
  kiln_examples::Rng rng(3);
  for (std::byte& b : garbage) b = static_cast<std::byte>(rng.next());
  kiln::Status st = load(garbage);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kInternal) << st.toString();
}

#ifndef KILN_HAS_CUDA
TEST(CudaDevices, NoneInABuildWithoutCuda) { EXPECT_TRUE(kiln::cudaDevices().empty()); }
#endif

TEST_F(EngineFile, CudaDeviceIsRefusedByThisBuild) {
  kiln::DeserializeOptions options;
  options.device = "cuda:0";
  auto engine = kiln::Engine::deserialize(*bytes_, options);
  ASSERT_FALSE(engine.ok());
  // CPU-only build: unsupported; CUDA build: a CPU engine is the wrong target, or, on a machine
  // without a GPU, cuda:0 does not exist.
  EXPECT_TRUE(engine.status().code() == StatusCode::kUnsupported ||
              engine.status().code() == StatusCode::kWrongTarget ||
              engine.status().code() == StatusCode::kInvalidArgument)
      << engine.status().toString();
}

}  // namespace
}  // namespace kiln_test
