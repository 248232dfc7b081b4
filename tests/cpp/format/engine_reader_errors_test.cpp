// The envelope checks of read_engine: each failure gets its own code and says which check failed.

#include <gtest/gtest.h>

#include "format/engine_test_plans.h"

namespace kiln::format {
namespace {

using testing::make_rich_plan;
using testing::write_or_die;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(EngineReader, TruncatedFileIsTruncatedAtEveryCutPoint) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  const size_t cuts[] = {0, 4, 11, 12, 100, file.size() / 2, file.size() - 8, file.size() - 1};
  for (size_t cut : cuts) {
    auto read = read_engine(std::span<const std::byte>(file.data(), cut));
    ASSERT_FALSE(read.ok()) << "cut at " << cut;
    EXPECT_EQ(read.status().code(), StatusCode::kTruncated) << read.status().toString();
    EXPECT_TRUE(contains(read.status().message(),
                         "engine file truncated: " + std::to_string(cut) + " bytes"))
        << read.status().message();
  }
}

TEST(EngineReader, TruncatedFileNamesTheRecordedSize) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(std::span<const std::byte>(file.data(), 100));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(),
            "engine file truncated: 100 bytes, expected " + std::to_string(file.size()));
}

TEST(EngineReader, FlippedConstantByteFailsTheChecksum) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto good = read_engine(file);
  ASSERT_TRUE(good.ok()) << good.status().toString();
  const size_t at = static_cast<size_t>(good->constants[1].bytes.data() - file.data()) + 3;
  auto damaged = file;
  damaged[at] ^= std::byte{0x10};
  auto read = read_engine(damaged);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kCorruptFile);
  EXPECT_TRUE(contains(read.status().message(), "checksum mismatch")) << read.status().message();
}

TEST(EngineReader, EveryFlippedByteIsRejected) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  for (size_t i = 0; i < file.size(); ++i) {
    auto damaged = file;
    damaged[i] ^= std::byte{0xFF};
    auto read = read_engine(damaged);
    EXPECT_FALSE(read.ok()) << "byte " << i << " of " << file.size();
  }
}

TEST(EngineReader, WrongIdentifierIsNotAKilnFile) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  std::memcpy(file.data() + 8, "ONNX", 4);
  auto read = read_engine(file);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kCorruptFile);
  EXPECT_TRUE(contains(read.status().message(), "not a Kiln engine file"))
      << read.status().message();
}

TEST(EngineReader, FutureVersionNamesBothVersions) {
  auto owned = make_rich_plan();
  owned.plan.format_version = 7;
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(read.status().message(), "engine file format version 7, this Kiln reads version 1");
}

TEST(EngineReader, WrongDeviceKindIsWrongTarget) {
  auto owned = make_rich_plan();  // cuda sm_90
  auto file = write_or_die(owned.plan);
  ReadOptions options;
  options.check_target = true;
  options.expected.kind = DeviceKind::kCpu;
  auto read = read_engine(file, options);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kWrongTarget);
  EXPECT_EQ(read.status().message(), "engine built for cuda sm_90, this device is cpu");
}

TEST(EngineReader, OtherSmIsWrongTarget) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  ReadOptions options;
  options.check_target = true;
  options.expected = Target{DeviceKind::kCuda, 8, 0, "NVIDIA A100", "linux-x86_64", false};
  auto read = read_engine(file, options);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kWrongTarget);
  EXPECT_EQ(read.status().message(), "engine built for cuda sm_90, this device is cuda sm_80");
}

TEST(EngineReader, MatchingTargetReads) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  ReadOptions options;
  options.check_target = true;
  options.expected = Target{DeviceKind::kCuda, 9, 0, "another name", "", false};
  auto read = read_engine(file, options);
  EXPECT_TRUE(read.ok()) << read.status().toString();
}

TEST(EngineReader, HardwareCompatibleEngineRunsOnLaterMinorsOfItsMajor) {
  auto owned = make_rich_plan();
  owned.plan.target = Target{DeviceKind::kCuda, 8, 0, "NVIDIA A100", "linux-x86_64", true};
  auto file = write_or_die(owned.plan);
  auto on = [&](int major, int minor) {
    ReadOptions options;
    options.check_target = true;
    options.expected = Target{DeviceKind::kCuda, major, minor, "", "", false};
    return read_engine(file, options).status().code();
  };
  EXPECT_EQ(on(8, 0), StatusCode::kOk);
  EXPECT_EQ(on(8, 6), StatusCode::kOk);
  EXPECT_EQ(on(9, 0), StatusCode::kWrongTarget);
  EXPECT_EQ(on(7, 5), StatusCode::kWrongTarget);
}

TEST(EngineReader, TargetIsNotCheckedUnlessAsked) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  EXPECT_TRUE(read_engine(file).ok());
}

TEST(EngineReader, MisalignedBytesAreRefused) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  std::vector<std::byte> shifted(file.size() + 1);
  std::memcpy(shifted.data() + 1, file.data(), file.size());
  auto read = read_engine(std::span<const std::byte>(shifted.data() + 1, file.size()));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::format

namespace kiln::format {
namespace {

// The rich plan's file (at `version`) with the name string's length made huge, so the file no
// longer passes the FlatBuffers verifier while its root table stays readable.
std::vector<std::byte> unverifiable_file(uint32_t version) {
  auto owned = testing::make_rich_plan();
  owned.plan.name = "rich-plan-name";
  owned.plan.format_version = version;
  auto file = testing::write_or_die(owned.plan);
  const std::string needle = "rich-plan-name";
  for (size_t i = 4; i + needle.size() <= file.size(); ++i) {
    if (std::memcmp(file.data() + i, needle.data(), needle.size()) == 0) {
      const uint32_t huge = 0x7fffff00;
      std::memcpy(file.data() + i - 4, &huge, 4);
      return file;
    }
  }
  ADD_FAILURE() << "name not found in the file";
  return file;
}

TEST(EngineReader, UnverifiableFileIsCorrupt) {
  auto read = read_engine(unverifiable_file(kFormatVersion));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kCorruptFile);
  EXPECT_TRUE(contains(read.status().message(), "FlatBuffers verification"))
      << read.status().message();
}

TEST(EngineReader, FutureVersionThatDoesNotVerifyIsStillAVersionMismatch) {
  auto read = read_engine(unverifiable_file(7));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kVersionMismatch);
  EXPECT_EQ(read.status().message(), "engine file format version 7, this Kiln reads version 1");
}

}  // namespace
}  // namespace kiln::format
