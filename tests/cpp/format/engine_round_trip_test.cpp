#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "format/engine_test_plans.h"

namespace kiln::format {
namespace {

using testing::make_rich_plan;
using testing::write_or_die;

void expect_same_shape(const Shape& actual, const Shape& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_TRUE(actual[i].equals(expected[i]))
        << what << "[" << i << "]: " << actual[i].str() << " vs " << expected[i].str();
  }
}

TEST(EngineFile, RoundTripKeepsHeaderAndTarget) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  const EnginePlan& p = *read;
  EXPECT_EQ(p.format_version, kFormatVersion);
  EXPECT_EQ(p.name, "rich");
  EXPECT_EQ(p.kiln_version, "0.1.0");
  EXPECT_EQ(p.build_options, "{\"optimization_level\": 3}");
  EXPECT_EQ(p.target.kind, DeviceKind::kCuda);
  EXPECT_EQ(p.target.sm_major, 9);
  EXPECT_EQ(p.target.sm_minor, 0);
  EXPECT_EQ(p.target.device_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(p.target.platform, "linux-x86_64");
  EXPECT_FALSE(p.target.hardware_compatible);
  EXPECT_EQ(p.arena_bytes, 65536 + 256);
  ASSERT_EQ(p.symbols.size(), 2u);
  EXPECT_EQ(p.symbols[0].name, "batch");
  EXPECT_EQ(p.symbols[0].min, 1);
  EXPECT_EQ(p.symbols[0].opt, 8);
  EXPECT_EQ(p.symbols[0].max, 16);
  EXPECT_EQ(p.symbols[1].name, "seq");
  EXPECT_EQ(p.symbols[1].max, 128);
  ASSERT_EQ(p.inputs.size(), 1u);
  EXPECT_EQ(p.inputs[0].name, "x");
  EXPECT_EQ(p.inputs[0].tensor, 0);
  ASSERT_EQ(p.outputs.size(), 1u);
  EXPECT_EQ(p.outputs[0].name, "y");
  EXPECT_EQ(p.outputs[0].tensor, 5);
}

TEST(EngineFile, RoundTripKeepsTensors) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  const auto& expected = owned.plan.tensors;
  const auto& actual = read->tensors;
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(expected[i].name);
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].dtype, expected[i].dtype);
    EXPECT_EQ(actual[i].role, expected[i].role);
    EXPECT_EQ(actual[i].binding, expected[i].binding);
    EXPECT_EQ(actual[i].constant, expected[i].constant);
    EXPECT_EQ(actual[i].view_of, expected[i].view_of);
    EXPECT_EQ(actual[i].arena_offset, expected[i].arena_offset);
    EXPECT_EQ(actual[i].max_bytes, expected[i].max_bytes);
    expect_same_shape(actual[i].shape, expected[i].shape, expected[i].name);
  }
}

TEST(EngineFile, RoundTripSymbolicShapesOfEveryKindEvaluate) {
  auto owned = make_rich_plan();
  const Shape& y = owned.plan.tensors[5].shape;
  // The plan really holds every SymExpr kind (after the folding done at construction).
  using Kind = SymExpr::Kind;
  const Kind kinds[] = {Kind::kAdd, Kind::kSub, Kind::kFloorDiv,
                        Kind::kMod, Kind::kMax, Kind::kMin};
  for (size_t i = 0; i < std::size(kinds); ++i) ASSERT_EQ(y[i].kind(), kinds[i]) << y[i].str();
  ASSERT_EQ(owned.plan.tensors[3].shape[0].kind(), Kind::kMul);
  ASSERT_EQ(owned.plan.tensors[3].shape[1].kind(), Kind::kConst);
  ASSERT_EQ(owned.plan.tensors[0].shape[0].kind(), Kind::kSymbol);

  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  const Shape& dims = read->tensors[5].shape;
  ASSERT_EQ(dims.size(), std::size(testing::kRichOutputDims));
  const int64_t bindings[] = {3, 10};
  for (size_t i = 0; i < dims.size(); ++i) {
    auto v = dims[i].evaluate(bindings);
    ASSERT_TRUE(v.ok()) << v.status().toString();
    EXPECT_EQ(*v, testing::kRichOutputDims[i]) << dims[i].str();
  }
  auto h0 = read->tensors[3].shape[0].evaluate(bindings);
  ASSERT_TRUE(h0.ok());
  EXPECT_EQ(*h0, 30);
}

TEST(EngineFile, RoundTripKeepsStepsAndEveryAttrType) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  const auto& expected = owned.plan.steps;
  const auto& actual = read->steps;
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(expected[i].name);
    EXPECT_EQ(actual[i].kind, expected[i].kind);
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_EQ(actual[i].inputs, expected[i].inputs);
    EXPECT_EQ(actual[i].outputs, expected[i].outputs);
    EXPECT_EQ(actual[i].is_view, expected[i].is_view);
    EXPECT_EQ(actual[i].tactic, expected[i].tactic);
    EXPECT_EQ(actual[i].tactic_data, expected[i].tactic_data);
    EXPECT_EQ(actual[i].attrs.values().size(), expected[i].attrs.values().size());
  }
  const Attrs& a = actual[0].attrs;
  ASSERT_NE(a.find<int64_t>("i"), nullptr);
  EXPECT_EQ(*a.find<int64_t>("i"), -3);
  ASSERT_NE(a.find<double>("f"), nullptr);
  EXPECT_EQ(*a.find<double>("f"), 2.5);
  ASSERT_NE(a.find<bool>("b"), nullptr);
  EXPECT_TRUE(*a.find<bool>("b"));
  ASSERT_NE(a.find<std::string>("s"), nullptr);
  EXPECT_EQ(*a.find<std::string>("s"), "gelu_tanh");
  ASSERT_NE(a.find<std::vector<int64_t>>("ints"), nullptr);
  EXPECT_EQ(*a.find<std::vector<int64_t>>("ints"), (std::vector<int64_t>{1, -2, 3}));
  ASSERT_NE(a.find<std::vector<double>>("floats"), nullptr);
  EXPECT_EQ(*a.find<std::vector<double>>("floats"), (std::vector<double>{0.5, -1e-300, 1e300}));
  ASSERT_NE(a.find<SymExpr>("sym"), nullptr);
  const int64_t bindings[] = {3, 10};
  EXPECT_EQ(a.find<SymExpr>("sym")->evaluate(bindings).value(), 30);
  ASSERT_NE(a.find<Shape>("shape"), nullptr);
  const Shape& shape = *a.find<Shape>("shape");
  ASSERT_EQ(shape.size(), 3u);
  EXPECT_EQ(shape[0].evaluate(bindings).value(), 3);
  EXPECT_EQ(shape[1].evaluate(bindings).value(), 4);
  EXPECT_EQ(shape[2].evaluate(bindings).value(), 5);
  ASSERT_NE(a.find<DType>("dtype"), nullptr);
  EXPECT_EQ(*a.find<DType>("dtype"), DType::kBFloat16);
  EXPECT_TRUE(actual[2].attrs == expected[2].attrs);
  EXPECT_TRUE(actual[3].attrs.values().empty());
}

TEST(EngineFile, RoundTripKeepsKernels) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  ASSERT_EQ(read->kernels.size(), 2u);
  EXPECT_EQ(read->kernels[0].name, "fused_0");
  EXPECT_EQ(read->kernels[0].source, "extern \"C\" __global__ void fused_0() {}");
  EXPECT_EQ(read->kernels[0].cubin, (std::vector<uint8_t>{0x7f, 'E', 'L', 'F', 0, 1}));
  EXPECT_EQ(read->kernels[1].name, "fused_1");
  EXPECT_TRUE(read->kernels[1].cubin.empty());
}

TEST(EngineFile, ConstantsAreByteEqualAndPointIntoTheFile) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  ASSERT_EQ(read->constants.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const Constant& c = read->constants[i];
    const Constant& e = owned.plan.constants[i];
    SCOPED_TRACE(e.name);
    EXPECT_EQ(c.name, e.name);
    EXPECT_EQ(c.dtype, e.dtype);
    EXPECT_EQ(c.dims, e.dims);
    ASSERT_EQ(c.bytes.size(), e.bytes.size());
    EXPECT_EQ(std::memcmp(c.bytes.data(), e.bytes.data(), e.bytes.size()), 0);
    // Zero copy: the span lies inside the file, at a 256-byte multiple from its start.
    EXPECT_GE(c.bytes.data(), file.data());
    EXPECT_LE(c.bytes.data() + c.bytes.size(), file.data() + file.size());
    EXPECT_EQ(static_cast<size_t>(c.bytes.data() - file.data()) % 256, 0u);
  }
  const float w0 = 1.5f;
  EXPECT_EQ(std::memcmp(read->constants[0].bytes.data(), &w0, sizeof(float)), 0);
}

TEST(EngineFile, ConstantsAreAlignedInAnAlignedBuffer) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  const size_t size = (file.size() + 255) / 256 * 256;
  std::unique_ptr<std::byte, decltype(&std::free)> aligned(
      static_cast<std::byte*>(std::aligned_alloc(256, size)), &std::free);
  std::memcpy(aligned.get(), file.data(), file.size());
  auto read = read_engine(std::span<const std::byte>(aligned.get(), file.size()));
  ASSERT_TRUE(read.ok()) << read.status().toString();
  for (const Constant& c : read->constants) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(c.bytes.data()) % 256, 0u) << c.name;
  }
}

TEST(EngineFile, EmptyPlanRoundTrips) {
  EnginePlan plan;
  plan.target.kind = DeviceKind::kCpu;
  auto file = write_or_die(plan);
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  EXPECT_TRUE(read->tensors.empty());
  EXPECT_TRUE(read->steps.empty());
  EXPECT_TRUE(read->constants.empty());
  EXPECT_EQ(read->target.kind, DeviceKind::kCpu);
}

TEST(EngineFile, TrailingBytesAfterTheRecordedSizeAreIgnored) {
  auto owned = make_rich_plan();
  auto file = write_or_die(owned.plan);
  const size_t size = file.size();
  file.resize(size + 100, std::byte{0xAB});
  auto read = read_engine(file);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  EXPECT_EQ(read->name, "rich");
}

TEST(EngineFile, WriterRejectsConstantWhoseBytesDoNotMatchItsDims) {
  auto owned = make_rich_plan();
  owned.plan.constants[0].dims = {4};  // 16 bytes expected, 12 given
  auto file = write_engine(owned.plan);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("constant 'w'"), std::string::npos)
      << file.status().message();
}

TEST(EngineFile, WriterRejectsExpressionDeeperThanTheLimit) {
  auto owned = make_rich_plan();
  SymExpr e = SymExpr::symbol(0);
  for (int i = 0; i < 300; ++i) e = sym_max(e * SymExpr::symbol(1), SymExpr::symbol(0));
  owned.plan.tensors[3].shape = {e};
  auto file = write_engine(owned.plan);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("tensor 'h'"), std::string::npos)
      << file.status().message();
}

}  // namespace
}  // namespace kiln::format
