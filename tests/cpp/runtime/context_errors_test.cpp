// ExecutionContext refuses bad requests with a code and a message naming the binding at fault.

#include <gtest/gtest.h>

#include "model_util.h"

namespace kiln_test {
namespace {

using kiln::StatusCode;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class ContextErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mlp_ = new std::shared_ptr<kiln::Engine>(build(ModelKind::kMlp));
    transformer_ = new std::shared_ptr<kiln::Engine>(build(ModelKind::kTransformer));
  }
  static void TearDownTestSuite() {
    delete mlp_;
    delete transformer_;
  }
  static std::shared_ptr<kiln::Engine> build(ModelKind kind) {
    auto model = make_model(kind);
    if (!model.ok()) return nullptr;
    auto engine = build_engine(model->network);
    return engine.ok() ? *engine : nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(*mlp_ && *transformer_) << "example engines failed to build";
    auto ctx = (*mlp_)->createExecutionContext();
    ASSERT_TRUE(ctx.ok());
    ctx_ = std::move(ctx).value();
  }

  // Binds a valid MLP input of `batch` rows and its output.
  void bind_all(int64_t batch) {
    in_ = random_tensor({batch, kiln_examples::mlp::kIn}, 5);
    out_.assign(static_cast<size_t>(batch * kiln_examples::mlp::kOut), 0.0f);
    KILN_ASSERT_OK(ctx_->setInputShape("input", in_.dims));
    KILN_ASSERT_OK(ctx_->setTensorAddress("input", in_.data.data()));
    KILN_ASSERT_OK(ctx_->setTensorAddress("output", out_.data()));
  }

  static std::shared_ptr<kiln::Engine>* mlp_;
  static std::shared_ptr<kiln::Engine>* transformer_;
  std::unique_ptr<kiln::ExecutionContext> ctx_;
  HostTensor in_;
  std::vector<float> out_;
};

std::shared_ptr<kiln::Engine>* ContextErrors::mlp_ = nullptr;
std::shared_ptr<kiln::Engine>* ContextErrors::transformer_ = nullptr;

TEST_F(ContextErrors, WrongRankIsRefused) {
  std::vector<int64_t> dims = {2, 16, 1};
  kiln::Status st = ctx_->setInputShape("input", dims);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "'input'") && contains(st.message(), "rank 2"))
      << st.message();
}

TEST_F(ContextErrors, FixedDimMismatchIsRefused) {
  std::vector<int64_t> dims = {2, 15};
  kiln::Status st = ctx_->setInputShape("input", dims);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "'input'") && contains(st.message(), "dim 1") &&
              contains(st.message(), "16"))
      << st.message();
}

TEST_F(ContextErrors, MissingInputAddressIsRefused) {
  bind_all(2);
  KILN_ASSERT_OK(ctx_->setTensorAddress("input", nullptr));
  kiln::Status st = ctx_->enqueue(nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "'input'") && contains(st.message(), "setTensorAddress"))
      << st.message();
}

TEST_F(ContextErrors, MissingOutputAddressIsRefused) {
  bind_all(2);
  KILN_ASSERT_OK(ctx_->setTensorAddress("output", nullptr));
  kiln::Status st = ctx_->enqueue(nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "'output'")) << st.message();
}

TEST_F(ContextErrors, UnknownBindingNameIsRefused) {
  std::vector<int64_t> dims = {2, 16};
  kiln::Status st = ctx_->setInputShape("inptu", dims);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(st.message(), "'inptu'") && contains(st.message(), "input")) << st.message();
  EXPECT_EQ(ctx_->setTensorAddress("outptu", out_.data()).code(), StatusCode::kNotFound);
  EXPECT_EQ(ctx_->getTensorShape("nothing").status().code(), StatusCode::kNotFound);
}

// The overload that fills a caller's vector: the same shapes, the same errors (the vector left
// as it was), and no new buffer when the vector's capacity suffices.
TEST_F(ContextErrors, ShapeIntoACallersVectorReusesItsBuffer) {
  std::vector<int64_t> dims = {7, 7, 7};
  EXPECT_EQ(ctx_->getTensorShape("nothing", dims).code(), StatusCode::kNotFound);
  EXPECT_FALSE(ctx_->getTensorShape("output", dims).ok()) << "the dynamic input has no shape yet";
  EXPECT_EQ(dims, (std::vector<int64_t>{7, 7, 7}));
  bind_all(2);
  dims.reserve(8);
  const int64_t* buffer = dims.data();
  for (const char* name : {"input", "output"}) {
    SCOPED_TRACE(name);
    KILN_ASSERT_OK(ctx_->getTensorShape(name, dims));
    KILN_ASSERT_OK_AND_ASSIGN(std::vector<int64_t> fresh, ctx_->getTensorShape(name));
    EXPECT_EQ(dims, fresh);
    EXPECT_EQ(dims.data(), buffer);
  }
}

TEST_F(ContextErrors, OutputTakesNoShape) {
  std::vector<int64_t> dims = {2, 10};
  kiln::Status st = ctx_->setInputShape("output", dims);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "'output'")) << st.message();
}

TEST_F(ContextErrors, DynamicInputWithoutAShapeIsRefused) {
  auto shape = ctx_->getTensorShape("output");
  ASSERT_FALSE(shape.ok());
  EXPECT_TRUE(contains(shape.status().message(), "'input'")) << shape.status().message();
}

TEST_F(ContextErrors, InputsDisagreeingOnADynamicDimAreRefused) {
  KILN_ASSERT_OK_AND_ASSIGN(auto ctx, (*transformer_)->createExecutionContext());
  std::vector<HostTensor> two = make_inputs(ModelKind::kTransformer, 2, 1);
  std::vector<HostTensor> three = make_inputs(ModelKind::kTransformer, 3, 1);
  std::vector<float> out(2 * 8 * 32);
  KILN_ASSERT_OK(ctx->setInputShape("input", two[0].dims));
  KILN_ASSERT_OK(ctx->setInputShape("mask", three[1].dims));  // each alone is in range
  KILN_ASSERT_OK(ctx->setTensorAddress("input", two[0].data.data()));
  KILN_ASSERT_OK(ctx->setTensorAddress("mask", three[1].data.data()));
  KILN_ASSERT_OK(ctx->setTensorAddress("output", out.data()));
  auto shape = ctx->getTensorShape("output");
  ASSERT_FALSE(shape.ok());
  kiln::Status st = ctx->enqueue(nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  for (const char* part : {"'input'", "'mask'", "'batch'", "2", "3"})
    EXPECT_TRUE(contains(st.message(), part)) << part << " not in: " << st.message();
}

TEST_F(ContextErrors, NonNullStreamOnACpuEngineIsRefused) {
  bind_all(2);
  auto fake_stream = reinterpret_cast<cudaStream_t>(uintptr_t{0x10});
  kiln::Status st = ctx_->enqueue(fake_stream);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "CPU")) << st.message();
  EXPECT_TRUE(ctx_->enqueue(nullptr).ok());  // the refusal left the context usable
}

TEST_F(ContextErrors, ExecuteWithTheWrongNumberOfBindingsIsRefused) {
  std::vector<kiln::ExecutionContext::TensorRef> inputs;  // none
  std::vector<void*> outputs = {out_.data()};
  kiln::Status st = ctx_->execute(inputs, outputs);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(st.message(), "1 inputs")) << st.message();
}

}  // namespace
}  // namespace kiln_test
