// Engine::inspect: an engine file's description without loading it for a device, so that a
// machine without a GPU can describe a CUDA engine, while loading one still checks the target.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "format/engine_plan.h"
#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::StatusCode;

// The same plan, relabelled as built for CUDA sm_90: a CUDA-target file that any build can
// write (the builder needs a GPU to make a real one). Inspection reads only the description.
kiln::HostMemory as_cuda_engine(const kiln::HostMemory& cpu_engine) {
  auto plan = kiln::format::read_engine(cpu_engine);
  EXPECT_TRUE(plan.ok()) << plan.status().toString();
  if (!plan.ok()) return {};
  plan->target.kind = kiln::format::DeviceKind::kCuda;
  plan->target.sm_major = 9;
  plan->target.sm_minor = 0;
  plan->target.device_name = "NVIDIA H100 80GB HBM3";
  auto bytes = kiln::format::write_engine(*plan);
  EXPECT_TRUE(bytes.ok()) << bytes.status().toString();
  if (!bytes.ok()) return {};
  return kiln::HostMemory(bytes->begin(), bytes->end());
}

class EngineInspect : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = make_model(ModelKind::kConvNet);
    if (!model.ok()) return;
    auto bytes = kiln::Builder::build(model->network, {});
    if (bytes.ok()) cpu_ = new kiln::HostMemory(std::move(bytes).value());
  }
  static void TearDownTestSuite() {
    delete cpu_;
    cpu_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(cpu_) << "the convnet failed to build"; }

  static std::string write(const std::string& name, const kiln::HostMemory& bytes) {
    std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  static kiln::HostMemory* cpu_;
};

kiln::HostMemory* EngineInspect::cpu_ = nullptr;

TEST_F(EngineInspect, DescribesACpuEngineAsItsLoadedInfoDoes) {
  KILN_ASSERT_OK_AND_ASSIGN(kiln::EngineInfo inspected, kiln::Engine::inspect(*cpu_));
  KILN_ASSERT_OK_AND_ASSIGN(auto engine, kiln::Engine::deserialize(*cpu_));
  kiln::EngineInfo loaded = engine->info();
  EXPECT_EQ(inspected.name, loaded.name);
  EXPECT_EQ(inspected.device, loaded.device);
  EXPECT_EQ(inspected.platform, loaded.platform);
  EXPECT_EQ(inspected.format_version, loaded.format_version);
  ASSERT_EQ(inspected.bindings.size(), loaded.bindings.size());
  for (size_t i = 0; i < loaded.bindings.size(); ++i) {
    EXPECT_EQ(inspected.bindings[i].name, loaded.bindings[i].name);
    EXPECT_EQ(inspected.bindings[i].is_input, loaded.bindings[i].is_input);
    EXPECT_EQ(inspected.bindings[i].dtype, loaded.bindings[i].dtype);
  }
  ASSERT_EQ(inspected.steps.size(), loaded.steps.size());
  for (size_t i = 0; i < loaded.steps.size(); ++i) {
    EXPECT_EQ(inspected.steps[i].name, loaded.steps[i].name);
    EXPECT_EQ(inspected.steps[i].tactic, loaded.steps[i].tactic);
    EXPECT_EQ(inspected.steps[i].attrs, loaded.steps[i].attrs);
    EXPECT_EQ(inspected.steps[i].inputs, loaded.steps[i].inputs);
  }
  EXPECT_EQ(inspected.symbols.size(), loaded.symbols.size());
  EXPECT_EQ(inspected.arena_bytes, engine->deviceMemorySize());
  EXPECT_EQ(inspected.constant_bytes, loaded.constant_bytes);
  EXPECT_GT(inspected.constant_bytes, 0);
  EXPECT_EQ(inspected.build_options, loaded.build_options);
}

TEST_F(EngineInspect, DescribesACudaEngineWithoutAGpu) {
  kiln::HostMemory cuda = as_cuda_engine(*cpu_);
  ASSERT_FALSE(cuda.empty());
  KILN_ASSERT_OK_AND_ASSIGN(kiln::EngineInfo info, kiln::Engine::inspect(cuda));
  EXPECT_EQ(info.device.rfind("cuda sm_90", 0), 0u) << info.device;
  EXPECT_NE(info.device.find("NVIDIA H100"), std::string::npos) << info.device;
  KILN_ASSERT_OK_AND_ASSIGN(kiln::EngineInfo cpu_info, kiln::Engine::inspect(*cpu_));
  EXPECT_EQ(info.device.rfind("cpu", 0), std::string::npos);
  EXPECT_EQ(cpu_info.device.rfind("cpu", 0), 0u) << cpu_info.device;
  EXPECT_EQ(info.name, "convnet");
  EXPECT_EQ(info.steps.size(), cpu_info.steps.size());
  ASSERT_EQ(info.bindings.size(), 2u);
  EXPECT_EQ(info.bindings[0].name, "input");
  EXPECT_EQ(info.bindings[1].name, "logits");
}

TEST_F(EngineInspect, LoadingACudaEngineForTheCpuIsStillTheWrongTarget) {
  kiln::HostMemory cuda = as_cuda_engine(*cpu_);
  ASSERT_FALSE(cuda.empty());
  auto engine = kiln::Engine::deserialize(cuda);  // default device: cpu
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kWrongTarget) << engine.status().toString();
  EXPECT_NE(engine.status().message().find("engine built for cuda sm_90"), std::string::npos)
      << engine.status().toString();
  EXPECT_NE(engine.status().message().find("this device is cpu"), std::string::npos)
      << engine.status().toString();
}

TEST_F(EngineInspect, RefusesTruncatedAndCorruptFiles) {
  auto truncated = kiln::Engine::inspect(std::span<const std::byte>(cpu_->data(), cpu_->size() / 2));
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kTruncated) << truncated.status().toString();
  kiln::HostMemory bad = *cpu_;
  bad[bad.size() / 2] ^= std::byte{0x01};
  auto corrupt = kiln::Engine::inspect(bad);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), StatusCode::kCorruptFile) << corrupt.status().toString();
}

TEST_F(EngineInspect, AcceptsBytesAtAnyAlignment) {
  kiln::HostMemory shifted(cpu_->size() + 1);
  std::copy(cpu_->begin(), cpu_->end(), shifted.begin() + 1);
  KILN_ASSERT_OK_AND_ASSIGN(kiln::EngineInfo info,
                            kiln::Engine::inspect(std::span<const std::byte>(shifted.data() + 1, cpu_->size())));
  EXPECT_EQ(info.name, "convnet");
}

TEST_F(EngineInspect, ReadsFilesAndNamesAMissingOne) {
  const std::string path = write("kiln_engine_inspect_cuda.engine", as_cuda_engine(*cpu_));
  KILN_ASSERT_OK_AND_ASSIGN(kiln::EngineInfo info, kiln::Engine::inspect(path));
  EXPECT_EQ(info.device.rfind("cuda sm_90", 0), 0u) << info.device;
  auto load = kiln::Engine::load(path);
  ASSERT_FALSE(load.ok());
  EXPECT_EQ(load.status().code(), StatusCode::kWrongTarget);
  EXPECT_NE(load.status().toString().find("kiln_engine_inspect_cuda.engine"), std::string::npos);
  std::remove(path.c_str());

  auto missing = kiln::Engine::inspect(::testing::TempDir() + "/no_such_kiln_inspect.engine");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no_such_kiln_inspect.engine"), std::string::npos);
}

}  // namespace
}  // namespace kiln_test
