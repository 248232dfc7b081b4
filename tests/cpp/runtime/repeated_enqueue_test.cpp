// Repeated enqueues of one context: with unchanged shapes and addresses enqueue reuses the
// layouts and data pointers of the previous call, yet reads the inputs afresh, honours a new
// address and a new shape, and treats an identical shape or address as no change.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "model_util.h"

namespace kiln_test {
namespace {

constexpr ModelKind kKind = ModelKind::kTransformer;  // two inputs, a shared dynamic batch

struct Fixture {
  ExampleNetwork model;
  std::shared_ptr<kiln::Engine> engine;
  std::unique_ptr<kiln::ExecutionContext> ctx;
};

void make_fixture(Fixture& f) {
  KILN_ASSERT_OK_AND_ASSIGN(f.model, make_model(kKind));
  KILN_ASSERT_OK_AND_ASSIGN(f.engine, build_engine(f.model.network));
  KILN_ASSERT_OK_AND_ASSIGN(f.ctx, f.engine->createExecutionContext());
}

// Binds `inputs` (their buffers and shapes) and `out` as the output.
void bind(kiln::ExecutionContext& ctx, std::vector<HostTensor>& inputs, HostTensor& out) {
  std::vector<std::string> names = ctx.engine().inputNames();
  for (size_t i = 0; i < inputs.size(); ++i) {
    KILN_ASSERT_OK(ctx.setInputShape(names[i], inputs[i].dims));
    KILN_ASSERT_OK(ctx.setTensorAddress(names[i], inputs[i].data.data()));
  }
  std::string out_name = ctx.engine().outputNames()[0];
  KILN_ASSERT_OK_AND_ASSIGN(out.dims, ctx.getTensorShape(out_name));
  out.data.assign(static_cast<size_t>(numel(out.dims)), NAN);
  KILN_ASSERT_OK(ctx.setTensorAddress(out_name, out.data.data()));
}

// Overwrites the contents of `inputs` in place (same buffers, same shapes) with a new seed's.
void refill(std::vector<HostTensor>& inputs, uint64_t seed) {
  std::vector<HostTensor> fresh = make_inputs(kKind, inputs[0].dims[0], seed);
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(fresh[i].data.size(), inputs[i].data.size());
    std::memcpy(inputs[i].data.data(), fresh[i].data.data(), fresh[i].data.size() * sizeof(float));
  }
}

TEST(RepeatedEnqueue, UnchangedShapesReadFreshInputsEveryCall) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(make_fixture(f));
  std::vector<HostTensor> inputs = make_inputs(kKind, 3, 1);
  HostTensor out;
  ASSERT_NO_FATAL_FAILURE(bind(*f.ctx, inputs, out));
  std::vector<std::string> names = f.engine->inputNames();
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE(seed);
    ASSERT_NO_FATAL_FAILURE(refill(inputs, seed));
    // The same shape and the same address again: no change, and the run is still correct.
    KILN_ASSERT_OK(f.ctx->setInputShape(names[0], inputs[0].dims));
    KILN_ASSERT_OK(f.ctx->setTensorAddress(names[0], inputs[0].data.data()));
    KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
    EXPECT_TRUE(all_close(out, reference(kKind, f.model, inputs)[0]));
  }
}

TEST(RepeatedEnqueue, NewOutputAddressIsHonoured) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(make_fixture(f));
  std::vector<HostTensor> inputs = make_inputs(kKind, 2, 5);
  HostTensor first;
  ASSERT_NO_FATAL_FAILURE(bind(*f.ctx, inputs, first));
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  std::vector<DTensor> want = reference(kKind, f.model, inputs);
  ASSERT_TRUE(all_close(first, want[0]));
  HostTensor second{first.dims, std::vector<float>(first.data.size(), NAN)};
  std::vector<float> first_before = first.data;
  std::fill(first.data.begin(), first.data.end(), -7.0f);  // a sentinel the engine never writes
  KILN_ASSERT_OK(f.ctx->setTensorAddress(f.engine->outputNames()[0], second.data.data()));
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  EXPECT_TRUE(all_close(second, want[0]));
  for (float v : first.data) ASSERT_EQ(v, -7.0f) << "the old output buffer was written";
}

TEST(RepeatedEnqueue, ShapeChangeAfterRepeatedRunsIsHonoured) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(make_fixture(f));
  for (int64_t batch : {4, 4, 4, 1, 1, 6, 4}) {
    SCOPED_TRACE(batch);
    std::vector<HostTensor> inputs = make_inputs(kKind, batch, static_cast<uint64_t>(batch) + 20);
    HostTensor out;
    ASSERT_NO_FATAL_FAILURE(bind(*f.ctx, inputs, out));
    ASSERT_EQ(out.dims[0], batch);
    KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
    EXPECT_TRUE(all_close(out, reference(kKind, f.model, inputs)[0]));
  }
}

TEST(RepeatedEnqueue, UserMemorySwappedBetweenRunsIsUsed) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(make_fixture(f));
  KILN_ASSERT_OK_AND_ASSIGN(f.ctx, f.engine->createExecutionContext(/*allocate_memory=*/false));
  ASSERT_GT(f.engine->deviceMemorySize(), 0);
  auto bytes = static_cast<size_t>(f.engine->deviceMemorySize());
  std::vector<std::byte> a(bytes + 256), b(bytes + 256);
  auto aligned = [](std::vector<std::byte>& v) {
    auto p = reinterpret_cast<uintptr_t>(v.data());
    return v.data() + (256 - p % 256) % 256;
  };
  std::vector<HostTensor> inputs = make_inputs(kKind, 3, 9);
  HostTensor out;
  ASSERT_NO_FATAL_FAILURE(bind(*f.ctx, inputs, out));
  std::vector<DTensor> want = reference(kKind, f.model, inputs);
  KILN_ASSERT_OK(f.ctx->setDeviceMemory(aligned(a), bytes));
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  ASSERT_TRUE(all_close(out, want[0]));
  // Poison the first arena: a run that still used it would read garbage activations or write there.
  std::fill(a.begin(), a.end(), std::byte{0xff});
  std::vector<std::byte> a_poisoned = a;
  KILN_ASSERT_OK(f.ctx->setDeviceMemory(aligned(b), bytes));
  std::fill(out.data.begin(), out.data.end(), NAN);
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  EXPECT_TRUE(all_close(out, want[0]));
  EXPECT_TRUE(a == a_poisoned) << "the replaced activation memory was touched";
}

TEST(RepeatedEnqueue, CpuContextsReportNoCudaGraphs) {
  Fixture f;
  ASSERT_NO_FATAL_FAILURE(make_fixture(f));
  f.ctx->setCudaGraphs(true);
  EXPECT_FALSE(f.ctx->cudaGraphs());
  std::vector<HostTensor> inputs = make_inputs(kKind, 2, 3);
  HostTensor out;
  ASSERT_NO_FATAL_FAILURE(bind(*f.ctx, inputs, out));
  KILN_ASSERT_OK(f.ctx->enqueue(nullptr));
  EXPECT_EQ(f.ctx->cudaGraphReplays(), 0);
  EXPECT_EQ(f.ctx->cudaGraphCaptures(), 0);
}

}  // namespace
}  // namespace kiln_test
