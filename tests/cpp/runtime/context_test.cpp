// ExecutionContext: output shapes from input shapes, user-supplied activation memory, shapes
// that change between runs of one context.

#include <gtest/gtest.h>

#include <cstring>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::StatusCode;

struct Built {
  ExampleNetwork model;
  std::shared_ptr<kiln::Engine> engine;
};

Built build(ModelKind kind) {
  Built b;
  auto model = make_model(kind);
  EXPECT_TRUE(model.ok()) << model.status().toString();
  if (!model.ok()) return b;
  b.model = std::move(model).value();
  auto engine = build_engine(b.model.network);
  EXPECT_TRUE(engine.ok()) << engine.status().toString();
  if (engine.ok()) b.engine = *engine;
  return b;
}

// Caller-owned, 256-aligned activation memory.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t bytes) : storage(bytes + 512) {
    auto p = reinterpret_cast<uintptr_t>(storage.data());
    data = storage.data() + ((256 - p % 256) % 256);
  }
  std::vector<std::byte> storage;
  std::byte* data;
};

TEST(ExecutionContext, OutputShapesAreKnownOnceInputShapesAreSet) {
  struct Expect {
    ModelKind kind;
    std::vector<int64_t> output;
  };
  for (const Expect& e : {Expect{ModelKind::kMlp, {5, 10}}, Expect{ModelKind::kConvNet, {5, 10}},
                          Expect{ModelKind::kTransformer, {5, 8, 32}}}) {
    SCOPED_TRACE(model_name(e.kind));
    Built b = build(e.kind);
    ASSERT_TRUE(b.engine);
    KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext());
    std::vector<HostTensor> inputs = make_inputs(e.kind, 5, 0);
    std::vector<std::string> names = b.engine->inputNames();
    for (size_t i = 0; i < inputs.size(); ++i)
      KILN_ASSERT_OK(ctx->setInputShape(names[i], inputs[i].dims));
    KILN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> out,
                              ctx->getTensorShape(b.engine->outputNames()[0]));
    EXPECT_EQ(out, e.output);
    KILN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> in, ctx->getTensorShape("input"));
    EXPECT_EQ(in, inputs[0].dims);
    // A new batch size changes the output shape too.
    inputs = make_inputs(e.kind, 2, 0);
    for (size_t i = 0; i < inputs.size(); ++i)
      KILN_ASSERT_OK(ctx->setInputShape(names[i], inputs[i].dims));
    KILN_ASSERT_OK_AND_ASSIGN(out, ctx->getTensorShape(b.engine->outputNames()[0]));
    EXPECT_EQ(out[0], 2);
  }
}

TEST(ExecutionContext, ShapesChangeBetweenRunsOfOneContext) {
  Built b = build(ModelKind::kTransformer);
  ASSERT_TRUE(b.engine);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext());
  for (int64_t batch : {3, 1, 8, 3}) {
    std::vector<HostTensor> inputs =
        make_inputs(ModelKind::kTransformer, batch, static_cast<uint64_t>(batch) + 40);
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_context(*ctx, inputs));
    EXPECT_TRUE(all_close(out[0], reference(ModelKind::kTransformer, b.model, inputs)[0]))
        << "batch " << batch;
  }
}

TEST(ExecutionContext, ExecuteBindsAndRuns) {
  Built b = build(ModelKind::kMlp);
  ASSERT_TRUE(b.engine);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext());
  std::vector<HostTensor> inputs = make_inputs(ModelKind::kMlp, 3, 8);
  std::vector<float> out(3 * kiln_examples::mlp::kOut);
  std::vector<kiln::ExecutionContext::TensorRef> refs = {{inputs[0].data.data(), inputs[0].dims}};
  std::vector<void*> outs = {out.data()};
  KILN_ASSERT_OK(ctx->execute(refs, outs));
  EXPECT_TRUE(all_close(HostTensor{{3, kiln_examples::mlp::kOut}, out},
                        reference(ModelKind::kMlp, b.model, inputs)[0]));
}

TEST(UserMemory, ContextWithoutMemoryRefusesToRun) {
  Built b = build(ModelKind::kConvNet);
  ASSERT_TRUE(b.engine);
  ASSERT_GT(b.engine->deviceMemorySize(), 0);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext(false));
  auto result = run_context(*ctx, make_inputs(ModelKind::kConvNet, 2, 3));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("setDeviceMemory"), std::string::npos)
      << result.status().message();
}

TEST(UserMemory, SuppliedMemoryGivesCorrectResults) {
  Built b = build(ModelKind::kConvNet);
  ASSERT_TRUE(b.engine);
  const auto size = static_cast<size_t>(b.engine->deviceMemorySize());
  AlignedBuffer memory(size);
  std::memset(memory.storage.data(), 0xff,
              memory.storage.size());  // NaNs: nothing may read before writing
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext(false));
  KILN_ASSERT_OK(ctx->setDeviceMemory(memory.data, size));
  for (int64_t batch : {8, 2}) {
    std::vector<HostTensor> inputs = make_inputs(ModelKind::kConvNet, batch, 21);
    KILN_ASSERT_OK_AND_ASSIGN(auto out, run_context(*ctx, inputs));
    EXPECT_TRUE(all_close(out[0], reference(ModelKind::kConvNet, b.model, inputs)[0]))
        << "batch " << batch;
  }
  // The engine wrote only inside the memory it was given.
  const auto slack =
      static_cast<size_t>(memory.storage.data() + memory.storage.size() - memory.data) - size;
  for (size_t i = 0; i < slack; ++i)
    ASSERT_EQ(memory.data[size + i], std::byte{0xff})
        << "byte " << i << " past the end was written";
}

TEST(UserMemory, TooSmallMemoryIsRefused) {
  Built b = build(ModelKind::kConvNet);
  ASSERT_TRUE(b.engine);
  const auto size = static_cast<size_t>(b.engine->deviceMemorySize());
  AlignedBuffer memory(size);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext(false));
  kiln::Status st = ctx->setDeviceMemory(memory.data, size - 1);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(std::to_string(size)), std::string::npos) << st.message();
  // Still without memory: running is refused rather than writing through a null arena.
  EXPECT_FALSE(run_context(*ctx, make_inputs(ModelKind::kConvNet, 1, 1)).ok());
}

TEST(UserMemory, MisalignedMemoryIsRefused) {
  Built b = build(ModelKind::kConvNet);
  ASSERT_TRUE(b.engine);
  const auto size = static_cast<size_t>(b.engine->deviceMemorySize());
  AlignedBuffer memory(size + 256);
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, b.engine->createExecutionContext(false));
  EXPECT_EQ(ctx->setDeviceMemory(memory.data + 8, size).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln_test
